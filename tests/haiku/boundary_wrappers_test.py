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
"""Tests of _src/haiku/boundary_wrappers.py: hk_effects' wrappers stand in
for Haiku's under every name, and a model that uses no boundary effect
traces exactly Haiku's program."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
from haiku._src import stateful
import jax
import jax.numpy as jnp

import hk_effects as hke
from hk_effects._src.haiku import haiku_internals as hki


def _model(x):
  layer = hk.Linear(3, name="lin")
  y, _ = hk.scan(lambda c, _: (layer(c), None), x, None, length=2)
  y = hk.remat(layer)(y)
  return hk.cond(y.sum() > 0, layer, lambda v: v, y)


class WrappersTest(absltest.TestCase):

  def test_every_wrapper_is_hk_effects_under_each_name(self):
    for name in (
        "scan",
        "fori_loop",
        "while_loop",
        "vmap",
        "remat",
        "cond",
        "switch",
        "grad",
        "value_and_grad",
        "eval_shape",
    ):
      wrapper = getattr(hk, name)
      self.assertIs(wrapper, getattr(stateful, name), name)
      self.assertIs(wrapper.__hk_effects_original__, hki.original(name))

  def test_without_effects_the_program_is_haikus(self):
    x = jnp.ones([2, 3])
    params = hk.transform(_model).init(jax.random.key(0), x)
    ours = jax.make_jaxpr(hke.transform(_model).apply)(params, None, x)
    theirs = jax.make_jaxpr(hk.transform(_model).apply)(params, None, x)
    self.assertEqual(str(ours), str(theirs))


if __name__ == "__main__":
  absltest.main()
