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
"""Tests of hk_effects/attention.py: KVCachedAttention decoding one token at
a time gives the full-sequence outputs, its cache lives in local state."""

from __future__ import annotations

from absl.testing import absltest
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


if __name__ == "__main__":
  absltest.main()
