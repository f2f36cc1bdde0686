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
"""Tests of _src/nn/attention.py: KVCachedAttention decoding one token at
a time gives the full-sequence outputs, its cache lives in local state."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

T, D = 5, 8


def _model(decode):
  def forward(x):
    attn = hke.KVCachedAttention(
        num_heads=2, key_size=4, max_length=T, batch_size=2, name="attn"
    )
    return attn(x, decode=decode)

  return hke.transform_with_state(hke.handlers.handle_local_states(forward))


class KVCacheTest(absltest.TestCase):

  def test_step_by_step_decoding_equals_the_full_sequence(self):
    x = jax.random.normal(jax.random.key(0), [2, T, D])
    full = _model(False)
    params, state = full.init(jax.random.key(1), x)
    expected, _ = full.apply(params, state, None, x)
    step = jax.jit(_model(True).apply)
    outs = []
    for t in range(T):
      out, state = step(params, state, None, x[:, t : t + 1])
      outs.append(out)
    np.testing.assert_allclose(
        jnp.concatenate(outs, axis=1), expected, rtol=1e-5, atol=1e-5
    )
    index = state["~local_state/kv_cache"]["attn:cache['index']"]
    self.assertEqual(int(index), T)

  def test_decoding_fills_the_cache_up_to_the_counter(self):
    x = jax.random.normal(jax.random.key(0), [2, 2, D])
    f = _model(True)
    params, state = f.init(jax.random.key(1), x[:, :1])
    for t in range(2):
      _, state = f.apply(params, state, None, x[:, t : t + 1])
    cache = state["~local_state/kv_cache"]
    self.assertEqual(int(cache["attn:cache['index']"]), 2)
    keys = np.asarray(cache["attn:cache['k']"])
    self.assertTrue(np.all(np.abs(keys[:, :2]).sum(axis=(2, 3)) > 0))
    np.testing.assert_array_equal(keys[:, 2:], 0.0)

  def test_decoding_past_max_length_under_jit_gives_nan_and_says_so(self):
    x = jax.random.normal(jax.random.key(0), [2, T + 2, D])
    f = _model(True)
    params, state = f.init(jax.random.key(1), x[:, :1])
    step = jax.jit(f.apply)
    outs = []
    for t in range(T + 2):
      out, state = step(params, state, None, x[:, t : t + 1])
      outs.append(np.asarray(out))
    self.assertTrue(all(np.isfinite(o).all() for o in outs[:T]))
    # Past the end: never a plausible number, and the counter shows why.
    self.assertTrue(np.isnan(outs[T]).all())
    self.assertTrue(np.isnan(outs[T + 1]).all())
    index = state["~local_state/kv_cache"]["attn:cache['index']"]
    self.assertEqual(int(index), T + 2)

  def test_decoding_past_max_length_in_a_scan_gives_nan(self):
    def forward(xs):
      attn = hke.KVCachedAttention(
          num_heads=2, key_size=4, max_length=T, batch_size=2, name="attn"
      )

      def body(carry, x_t):
        return carry, attn(x_t[:, None], decode=True)[:, 0]

      _, ys = hk.scan(body, 0, jnp.swapaxes(xs, 0, 1))
      return ys

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    x = jax.random.normal(jax.random.key(0), [2, T + 1, D])
    params, state = f.init(jax.random.key(1), x)
    ys, _ = jax.jit(f.apply)(params, state, None, x)
    self.assertTrue(np.isfinite(np.asarray(ys[:T])).all())
    self.assertTrue(np.isnan(np.asarray(ys[T])).all())

  def test_decoding_past_max_length_eagerly_raises(self):
    x = jax.random.normal(jax.random.key(0), [2, 3, D])
    f = _model(True)
    params, state = f.init(jax.random.key(1), x)
    _, state = f.apply(params, state, None, x)  # positions 0..2 of 5
    with self.assertRaisesRegex(
        ValueError,
        r"'attn': decoding 3 position\(s\) at cache index 3 would pass "
        r"max_length=5",
    ):
      f.apply(params, state, None, x)

  def test_prompt_longer_than_max_length_names_module_and_bound(self):
    x = jnp.ones([2, T + 1, D])
    with self.assertRaisesRegex(
        ValueError, r"'attn': a decode call with 6 positions .*max_length=5"
    ):
      _model(True).init(jax.random.key(1), x)

  def test_wrong_batch_names_module_and_batch_size(self):
    x = jnp.ones([3, 1, D])
    with self.assertRaisesRegex(
        ValueError, r"'attn': decoding a batch of 3 .*batch_size=2"
    ):
      _model(True).init(jax.random.key(1), x)

  def test_full_sequence_call_ignores_the_cache_bounds(self):
    # decode=False never touches the cache, so any length and batch works.
    x = jax.random.normal(jax.random.key(0), [3, T + 2, D])
    f = _model(False)
    params, state = f.init(jax.random.key(1), x)
    out, _ = f.apply(params, state, None, x)
    self.assertEqual(out.shape, (3, T + 2, D))
    self.assertTrue(np.isfinite(np.asarray(out)).all())


if __name__ == "__main__":
  absltest.main()
