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
"""Tests of the layers Dropout and ApplyAttentionMask (_src/nn/layers.py)."""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from test_utils import transform_and_run

import hk_effects as hke


def _dropout(rate, key=jax.random.key(0), n=1000):
  handled = hke.handlers.WithFrozenRandomState.handling(
      lambda x: hke.Dropout(rate)(x), key
  )
  return hke.transform(handled, apply_rng=False).apply({}, jnp.ones(n))


class DropoutTest(parameterized.TestCase):

  @parameterized.parameters(0.1, 0.5, 0.9)
  def test_keeps_scaled_units_at_the_expected_rate(self, rate):
    out = np.asarray(_dropout(rate, n=20000))
    kept = out != 0.0
    np.testing.assert_allclose(out[kept], 1.0 / (1.0 - rate), rtol=1e-6)
    self.assertAlmostEqual(kept.mean(), 1.0 - rate, delta=0.02)

  @transform_and_run(handler=hke.handlers.WithHaikuRandom.handling)
  def test_inverted_scaling_keeps_the_mean(self):
    out = hke.Dropout(0.2)(jnp.ones(20000))
    self.assertAlmostEqual(float(out.mean()), 1.0, delta=0.02)
    self.assertEqual(out.dtype, jnp.float32)

  def test_mask_is_bernoulli_of_the_served_key(self):
    key = jax.random.key(4)
    served = next(hk.PRNGSequence(jax.random.fold_in(key, 0)))
    expected = jnp.where(
        jax.random.bernoulli(served, 0.75, (50,)), 1.0 / 0.75, 0.0
    )
    np.testing.assert_array_equal(_dropout(0.25, key, n=50), expected)

  def test_rate_zero_is_the_identity_and_needs_no_handler(self):
    x = jnp.arange(4.0)
    out = hke.transform(lambda x: hke.Dropout(0.0)(x), apply_rng=False).apply(
        {}, x
    )
    np.testing.assert_array_equal(out, x)

  @parameterized.parameters(True, False)
  def test_a_ported_rate_zero_dropout_keeps_haikus_later_draws(self, parity):
    def plain(x):
      x = hk.dropout(hk.next_rng_key(), 0.0, x)
      return hk.dropout(hk.next_rng_key(), 0.5, x)

    def ported(x):
      x = hke.Dropout(0.0, draw_at_zero_rate=parity)(x)
      return hke.Dropout(0.5)(x)

    x = jnp.ones(64)
    want = hk.transform(plain).apply({}, jax.random.key(1), x)
    got = hke.transform(hke.handlers.WithHaikuRandom.handling(ported)).apply(
        {}, jax.random.key(1), x
    )
    # Without parity the second dropout gets the key the first one skipped.
    self.assertEqual(np.array_equal(got, want), parity)

  def test_two_dropouts_draw_different_masks(self):
    def forward(x):
      return hke.Dropout(0.5)(x), hke.Dropout(0.5)(x)

    handled = hke.handlers.WithHaikuRandom.handling(forward)
    first, second = hke.transform(handled).apply(
        {}, jax.random.key(0), jnp.ones(200)
    )
    self.assertFalse(np.array_equal(first, second))

  def test_without_a_handler_the_error_names_the_dropout(self):
    f = hke.transform(lambda x: hke.Dropout(0.5, name="drop")(x))
    with self.assertRaisesRegex(
        hke.UnhandledEffectError, "module 'drop', attribute 'rng'"
    ):
      f.apply({}, jax.random.key(0), jnp.ones(2))

  @parameterized.parameters(-0.1, 1.0, 1.5)
  def test_rate_outside_zero_one_is_an_error_naming_it(self, rate):
    with self.assertRaisesRegex(
        ValueError, rf"rate must be in \[0, 1\); got {rate}"
    ):
      hke.transform(lambda x: hke.Dropout(rate)(x)).init(None, jnp.ones(1))


class ApplyAttentionMaskTest(absltest.TestCase):

  def _apply(self, logits, mask, **kwargs):
    handled = hke.handlers.WithConstantSideInputs.handling(
        lambda x: hke.ApplyAttentionMask("mask", **kwargs)(x), {"mask": mask}
    )
    return hke.transform(handled, apply_rng=False).apply({}, logits)

  def test_masked_logits_get_the_masked_out_value(self):
    mask = jnp.array([[True, False], [True, True]])
    out = self._apply(jnp.full((2, 2), 0.5), mask, masked_out_value=-7.0)
    np.testing.assert_array_equal(out, [[0.5, -7.0], [0.5, 0.5]])

  def test_mask_broadcasts_against_leading_axes(self):
    causal = jnp.tril(jnp.ones((3, 3), bool))
    out = self._apply(jnp.zeros((2, 3, 3)), causal)
    expected = np.where(np.tril(np.ones((3, 3), bool)), 0.0, -1e9)
    np.testing.assert_array_equal(out, np.broadcast_to(expected, (2, 3, 3)))

  def test_keeps_the_logits_dtype(self):
    out = self._apply(jnp.ones(2, jnp.bfloat16), jnp.array([True, False]))
    self.assertEqual(out.dtype, jnp.bfloat16)

  def test_mask_may_be_a_traced_argument(self):
    handled = hke.handlers.WithSideInputsFromInputTuple.handling(
        lambda x: hke.ApplyAttentionMask("mask")(x), ("mask",)
    )
    apply = jax.jit(hke.transform(handled, apply_rng=False).apply)
    out = apply({}, (jnp.ones(2), jnp.array([False, True])))
    np.testing.assert_array_equal(out, [-1e9, 1.0])


if __name__ == "__main__":
  absltest.main()
