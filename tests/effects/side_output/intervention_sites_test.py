# Copyright 2026 The hk_effects Authors. All Rights Reserved.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
# ==============================================================================
"""Tests of _src/effects/side_output/intervention_sites.py: the paths patching
and perturbing handlers select are the collector's paths, inside
``hk.layer_stack`` too, and a selector matching nothing names the closest."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke


class _Block(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.out = hke.SideOutputRequest("resid")

  def __call__(self, x):
    return self.out.tell(x + 1.0)


def _stacked(x):
  return hk.layer_stack(3)(lambda y: _Block(name="block")(y))(x)


class SitesTest(absltest.TestCase):

  def test_collected_paths_select_the_same_sites_for_patching(self):
    collect = hke.transform(
        hke.handlers.CollectingSideOutputs.handling(_stacked, tag="resid")
    )
    _, [told] = collect.apply({}, None, jnp.zeros([2]))
    patched = hke.transform(
        hke.handlers.PatchingSideOutputs.handling(
            _stacked, {told.path: lambda v: v * 0.0}
        )
    )
    np.testing.assert_allclose(
        patched.apply({}, None, jnp.zeros([2])), [0.0, 0.0]
    )

  def test_unknown_path_lists_the_closest(self):
    patched = hke.transform(
        hke.handlers.PatchingSideOutputs.handling(
            _stacked, {"layer_stack/blok/out": jnp.zeros([2])}
        )
    )
    with self.assertRaisesRegex(ValueError, r"blok.*block"):
      jax.jit(lambda x: patched.apply({}, None, x))(jnp.zeros([2]))


if __name__ == "__main__":
  absltest.main()
