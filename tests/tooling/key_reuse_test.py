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
"""JAX's key-reuse checker is on for the whole suite (tests/conftest.py).

A handler that hands out one key twice, or a test that feeds one key to two
random draws, then fails with ``jax.errors.KeyReuseError``. These tests prove
the checker is live, eagerly and under jit, inside ``hke.transform`` and
inside ``hk.vmap(split_rng=True)`` (which needs conftest's rule for
``jnp.stack``), and that a cloned key is not a reuse.
"""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import conftest  # pylint: disable=unused-import  # Key-reuse checker, alone.
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke


class DrawTwice(hk.Module):
  """Draws two numbers; ``reuse=True`` draws both from the one served key."""

  def __init__(self, reuse: bool, name: str | None = None):
    super().__init__(name=name)
    self.reuse = reuse
    self.rng = hke.RandomRequest()

  def __call__(self, x: jax.Array) -> jax.Array:
    first = self.rng.next_key()
    second = first if self.reuse else self.rng.next_key()
    return x + jax.random.uniform(first) - jax.random.uniform(second)


def _apply(forward, jit: bool) -> jax.Array:
  f = hke.transform(hke.handlers.WithHaikuRandom.handling(forward))
  apply = jax.jit(f.apply) if jit else f.apply
  return apply({}, jax.random.key(0), jnp.zeros(4))


class KeyReuseCheckerTest(parameterized.TestCase):

  def test_checker_is_on(self):
    self.assertTrue(jax.config.jax_debug_key_reuse)

  def test_reused_key_raises(self):
    key = jax.random.key(0)
    jax.random.uniform(key)
    with self.assertRaises(jax.errors.KeyReuseError):
      jax.random.uniform(key)

  def test_cloned_key_is_not_a_reuse(self):
    key = jax.random.key(0)
    copy = jax.random.clone(key)
    np.testing.assert_array_equal(
        jax.random.uniform(key), jax.random.uniform(copy)
    )

  @parameterized.parameters(False, True)
  def test_one_served_key_drawn_twice_raises(self, jit):
    with self.assertRaises(jax.errors.KeyReuseError):
      _apply(lambda x: DrawTwice(reuse=True)(x), jit)

  @parameterized.parameters(False, True)
  def test_two_served_keys_pass(self, jit):
    out = _apply(lambda x: DrawTwice(reuse=False)(x), jit)
    self.assertFalse(np.any(np.asarray(out) == 0.0))

  @parameterized.parameters(False, True)
  def test_reuse_inside_hk_vmap_split_rng_raises(self, jit):
    def forward(x):
      return hk.vmap(lambda xi: DrawTwice(reuse=True)(xi), split_rng=True)(x)

    with self.assertRaises(jax.errors.KeyReuseError):
      _apply(forward, jit)

  @parameterized.parameters(False, True)
  def test_hk_vmap_split_rng_draws_pass(self, jit):
    # Without conftest's rule for `jnp.stack`, hk.next_rng_keys's stacked
    # keys count as used and this raises.
    def forward(x):
      return hk.vmap(lambda xi: DrawTwice(reuse=False)(xi), split_rng=True)(x)

    out = np.asarray(_apply(forward, jit))
    self.assertLen(set(out.tolist()), 4)


if __name__ == "__main__":
  absltest.main()
