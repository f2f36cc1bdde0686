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
"""Tests of how path keys are derived (_src/effects/random/path_keys.py).

What users see of path keys (the same keys under refactors, loops and
layer stacks) is in refactor_invariant_test.py; these pin the derivation:
one message per draw, equal for static and traced coordinates, no shared
message for coordinate lists that differ in one place.
"""

from __future__ import annotations

import itertools

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke
from hk_effects._src.effects.random import path_keys


class MessageTest(absltest.TestCase):

  def test_lists_differing_in_one_place_never_share_a_message(self):
    base = (3, 0, 7, 2**31 + 5)
    lists = {base}
    for position, value in itertools.product(
        range(len(base)), [0, 1, 2, 9, 2**32 - 1]
    ):
      lists.add(base[:position] + (value,) + base[position + 1 :])
    messages = {path_keys._message(list(words)) for words in lists}
    self.assertLen(messages, len(lists))

  def test_lengths_are_part_of_the_message(self):
    self.assertNotEqual(path_keys._message([0]), path_keys._message([0, 0]))
    self.assertNotEqual(path_keys._message([]), path_keys._message([0]))

  def test_traced_words_give_the_static_message(self):
    words = [4, 1, 2**32 - 3]
    static = path_keys._message(words)
    traced = jax.jit(lambda i: path_keys._message([i, 1, 2**32 - 3]))(
        jnp.int32(4)
    )
    self.assertEqual(static, tuple(int(w) for w in traced))

  def test_one_threefry_folds_both_words(self):
    key = jax.random.key(5)
    folded = path_keys._fold_message(jax.random.clone(key), (11, 2**32 - 2))
    by_hand = jax.extend.random.threefry_2x32(
        jax.random.key_data(key), jnp.array([11, 2**32 - 2], jnp.uint32)
    )
    np.testing.assert_array_equal(jax.random.key_data(folded), by_hand)

  def test_other_key_kinds_fold_twice(self):
    def data(key):
      typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
      return jax.random.key_data(key) if typed else key

    for key in (jax.random.key(5, impl="rbg"), jax.random.PRNGKey(5)):
      folded = path_keys._fold_message(key, (11, 12))
      expected = jax.random.fold_in(jax.random.fold_in(key, 11), 12)
      np.testing.assert_array_equal(data(folded), data(expected))


class _Noise(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.rng = hke.RandomRequest()

  def __call__(self, x):
    return x + jax.random.normal(self.rng.next_key(), x.shape)


class UserViewTest(absltest.TestCase):

  def _apply(self, forward, key):
    f = hke.transform(
        hke.handlers.WithHaikuRandom.handling(forward, path_keys=True)
    )
    return f.apply({}, key, jnp.zeros([3]))

  def test_every_block_and_draw_gets_its_own_key(self):
    def forward(x):
      outs = []
      for i in range(6):
        block = _Noise(name=f"block_{i}")
        outs += [block(x), block(x)]
      return jnp.stack(outs)

    out = self._apply(forward, jax.random.key(0))
    self.assertLen({tuple(np.asarray(row).round(6)) for row in out}, 12)

  def test_rbg_keys_work_and_are_distinct_per_site(self):
    def forward(x):
      return jnp.stack([_Noise(name=f"n_{i}")(x) for i in range(4)])

    out = self._apply(forward, jax.random.key(0, impl="rbg"))
    self.assertLen({tuple(np.asarray(row).round(6)) for row in out}, 4)

  def test_a_python_loop_and_hk_scan_draw_the_same_keys(self):
    def looped(x):
      layer = _Noise(name="layer")
      return jnp.stack([layer(x) for _ in range(4)])

    def scanned(x):
      layer = _Noise(name="layer")
      _, ys = hk.scan(lambda c, _: (c, layer(x)), 0, None, length=4)
      return ys

    key = jax.random.key(3)
    np.testing.assert_array_equal(
        self._apply(looped, jax.random.clone(key)), self._apply(scanned, key)
    )


if __name__ == "__main__":
  absltest.main()
