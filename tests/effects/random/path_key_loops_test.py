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
"""Tests of _src/effects/random/path_key_loops.py: path keys index loop
iterations at Haiku's boundaries, so a loop draws what the unrolled Python loop
draws."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from test_utils import DrawKey

import hk_effects as hke


def _keys(forward):
  f = hke.transform(
      hke.handlers.WithRandomKeyFromArg.handling(forward, path_keys=True),
      apply_rng=False,
  )
  return np.asarray(f.apply({}, (jnp.zeros([]), jax.random.key(7))))


class LoopIndexTest(absltest.TestCase):

  def test_fori_loop_with_static_bounds_draws_the_python_loop_keys(self):
    def looped(x):
      del x
      layer = DrawKey(name="draw")
      return jnp.stack([layer() for _ in range(3)])

    def fori(x):
      del x
      layer = DrawKey(name="draw")

      def body(i, acc):
        return acc.at[i].set(layer())

      return hk.fori_loop(0, 3, body, jnp.zeros([3, 2], jnp.uint32))

    np.testing.assert_array_equal(_keys(fori), _keys(looped))

  def test_reversed_scan_indexes_by_call_order(self):
    def looped(x):
      del x
      layer = DrawKey(name="draw")
      return jnp.stack([layer() for _ in range(3)])

    def scanned(x):
      del x
      layer = DrawKey(name="draw")
      _, ys = hk.scan(
          lambda c, _: (c, layer()), 0, None, length=3, reverse=True
      )
      return ys

    looped_keys, scanned_keys = _keys(looped), _keys(scanned)
    # Iteration i of a reversed scan runs i-th from the end and stacks at i.
    self.assertEqual(
        {tuple(r) for r in looped_keys}, {tuple(r) for r in scanned_keys}
    )
    self.assertLen({tuple(r) for r in scanned_keys}, 3)


class CollisionMessageTest(absltest.TestCase):

  def test_two_unnamed_dropouts_in_a_layer_are_told_to_take_names(self):
    def forward(named):
      def layer(x):
        if named:
          return hke.Dropout(0.5, name="attn_dropout")(x) + hke.Dropout(
              0.5, name="mlp_dropout"
          )(x)
        return hke.Dropout(0.5)(x) + hke.Dropout(0.5)(x)

      return lambda x: hk.layer_stack(3)(layer)(x)

    def run(named):
      f = hke.transform(
          hke.handlers.WithHaikuRandom.handling(forward(named), path_keys=True)
      )
      return f.apply({}, jax.random.key(0), jnp.ones(64))

    with self.assertRaisesRegex(
        hke.PathKeyCollisionError,
        r"modules of family 'dropout' \(here 'dropout_1'\) are called 2 "
        r"times in one iteration of hk\.layer_stack.*give each a name of its "
        r"own: the family is the name without its _N suffix, so e\.g\. "
        r"name='attn_dropout' and name='mlp_dropout'",
    ):
      run(named=False)
    out = run(named=True)  # The fix the message gives works.
    self.assertEqual(out.shape, (64,))
    self.assertGreater(len(np.unique(np.asarray(out))), 1)


if __name__ == "__main__":
  absltest.main()
