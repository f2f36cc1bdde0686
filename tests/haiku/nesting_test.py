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
"""Tests of _src/haiku/nesting.py: values told in a transform nested in
another (``hk.lift``, a model applied inside a model) are named after the
nesting module, under jit too."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke
from hk_effects._src.haiku import nesting


class _Tells(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.out = hke.SideOutputRequest("acts")

  def __call__(self, x):
    return self.out.tell(hk.Linear(2, w_init=jnp.ones, name="lin")(x))


def _inner_transform():
  return hk.transform(lambda x: _Tells(name="tells")(x))


class LiftTest(absltest.TestCase):

  def _outer(self):
    inner = _inner_transform()

    def forward(x):
      params = hk.lift(inner.init, name="inner")(hk.next_rng_key(), x)
      return inner.apply(params, None, x)

    return hke.transform(
        hke.handlers.CollectingSideOutputs.handling(forward, tag="acts")
    )

  def test_a_lifted_models_tells_are_named_after_the_lifting_module(self):
    f = self._outer()
    x = jnp.ones([1, 3])
    params = f.init(jax.random.key(0), x)
    for apply in (f.apply, jax.jit(f.apply)):
      out, told = apply(params, jax.random.key(1), x)
      np.testing.assert_allclose(out, [[3.0, 3.0]])
      self.assertEqual([t.path for t in told], ["inner/tells/out"])
      np.testing.assert_allclose(told[0].value, [[3.0, 3.0]])

  def test_nesting_state_is_cleared_after_the_call(self):
    f = self._outer()
    x = jnp.ones([1, 3])
    f.init(jax.random.key(0), x)
    self.assertEqual(nesting.lifts_done(), 0)


if __name__ == "__main__":
  absltest.main()
