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
"""Causal self-attention with a key/value cache kept as local state."""

from __future__ import annotations

import functools
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp

from hk_effects._src.effects.local_state import local_state
from hk_effects._src.effects.side_input import side_input


class KVCachedAttention(hk.Module):
  """Causal multi-head self-attention with a KV cache in local state.

  ``__call__(x, decode=False)`` attends causally over ``x`` of shape
  ``[batch, time, model]`` and leaves the cache alone. With ``decode=True``
  the new positions' keys and values are written into the cache at the
  cached position counter, the queries attend to every cached position up to
  their own, and the counter advances: greedy decoding one token at a time
  gives the same outputs as the full-sequence call. The cache and counter
  are local states of category ``cache_category`` (keys ``<module>:cache['k']``,
  ``<module>:cache['v']``, ``<module>:cache['index']``).

  An optional ``mask_tag`` names a boolean side input, broadcastable to
  ``[batch, heads, query, key]``, combined with the causal mask (for
  padding); with ``decode=True`` its key axis spans the whole cache,
  ``max_length``.

  The cache never wraps around or drops old positions: a decode call whose
  batch differs from ``batch_size``, or that brings more than ``max_length``
  positions, raises ``ValueError`` while tracing. A call that would write
  past ``max_length`` raises ``ValueError`` when the counter is a concrete
  value; under ``jax.jit`` or ``hk.scan``, where it is only known at run
  time, that call's outputs and every later decode output are NaN, and the
  stored counter (``cache['index']``) exceeds ``max_length``: the overflow
  stays visible in the state until the cache is reset (initialized anew).

  Example:

  >>> import jax, jax.numpy as jnp, hk_effects as hke
  >>> def forward(x):
  ...   attn = hke.KVCachedAttention(num_heads=2, key_size=4, max_length=8,
  ...                                batch_size=1)
  ...   return attn(x, decode=True)
  >>> f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
  >>> params, state = f.init(jax.random.key(0), jnp.ones([1, 1, 8]))
  >>> out, state = f.apply(params, state, None, jnp.ones([1, 1, 8]))
  >>> int(state["~local_state/kv_cache"]["kv_cached_attention:cache['index']"])
  1
  """

  def __init__(
      self,
      num_heads: int,
      key_size: int,
      max_length: int,
      batch_size: int,
      model_size: int | None = None,
      mask_tag: Any = None,
      cache_category: Any = "kv_cache",
      w_init: hk.initializers.Initializer | None = None,
      name: str | None = None,
  ):
    super().__init__(name=name)
    self.num_heads = num_heads
    self.key_size = key_size
    self.max_length = max_length
    self.batch_size = batch_size
    self.model_size = model_size
    self.w_init = w_init or hk.initializers.VarianceScaling(1.0)
    kv = (batch_size, max_length, num_heads, key_size)
    zeros = {
        "k": (kv, jnp.float32),
        "v": (kv, jnp.float32),
        "index": ([], jnp.int32),
    }
    self.cache = {
        name: local_state.InitialLocalStateRequest(
            functools.partial(jnp.zeros, shape, dtype), cache_category
        )
        for name, (shape, dtype) in zeros.items()
    }
    self.mask = None
    if mask_tag is not None:
      self.mask = side_input.SideInputRequest(mask_tag)

  def _project(self, x: jax.Array, name: str) -> jax.Array:
    y = hk.Linear(
        self.num_heads * self.key_size, w_init=self.w_init, name=name
    )(x)
    return y.reshape(x.shape[:-1] + (self.num_heads, self.key_size))

  def __call__(self, x: jax.Array, *, decode: bool = False) -> jax.Array:
    q, k, v = (self._project(x, n) for n in ("query", "key", "value"))
    time = x.shape[1]
    if decode:
      self._check_decode_shape(x)
      index = self.cache["index"].get()
      # The write below clamps its start index into range, so a call past
      # the end would overwrite cached positions and return plausible
      # numbers: refuse it when the counter is known, poison it when not.
      overflow = index + time > self.max_length
      if not isinstance(index, jax.core.Tracer) and bool(overflow):
        raise ValueError(
            f"KVCachedAttention {self.module_name!r}: decoding {time} "
            f"position(s) at cache index {int(index)} would pass "
            f"max_length={self.max_length}. Give the module a larger "
            "max_length, or reset the cache (initialize the state anew) "
            "before decoding further."
        )
      k, v = self._cached("k", k, index), self._cached("v", v, index)
      self.cache["index"].set(index + time)
      query_pos = index + jnp.arange(time)
      key_pos = jnp.arange(self.max_length)
      mask = (key_pos[None, :] <= query_pos[:, None])[None, None]
    else:
      mask = jnp.tril(jnp.ones([time, time], bool))[None, None]
    if self.mask is not None:
      # Also when decoding: a left-padded prompt leaves padding keys in the
      # cache, which later queries must not read.
      mask = mask & self.mask.ask()
    logits = jnp.einsum("bthd,bThd->bhtT", q, k) / jnp.sqrt(
        jnp.asarray(self.key_size, q.dtype)
    )
    logits = jnp.where(mask, logits, jnp.asarray(-1e30, logits.dtype))
    weights = jax.nn.softmax(logits)
    attended = jnp.einsum("bhtT,bThd->bthd", weights, v)
    attended = attended.reshape(attended.shape[:2] + (-1,))
    model_size = self.model_size or x.shape[-1]
    out = hk.Linear(model_size, w_init=self.w_init, name="output")(attended)
    if decode:
      out = jnp.where(overflow, jnp.asarray(jnp.nan, out.dtype), out)
    return out

  def _cached(self, name: str, new: jax.Array, index) -> jax.Array:
    """Cache ``name`` with ``new`` written at ``index``, in ``new``'s dtype."""
    full = jax.lax.dynamic_update_slice_in_dim(
        self.cache[name].get(), new.astype(jnp.float32), index, axis=1
    )
    self.cache[name].set(full)
    return full.astype(new.dtype)

  def _check_decode_shape(self, x: jax.Array) -> None:
    batch, time = x.shape[0], x.shape[1]
    if batch != self.batch_size:
      raise ValueError(
          f"KVCachedAttention {self.module_name!r}: decoding a batch of "
          f"{batch} but the cache holds batch_size={self.batch_size} rows "
          f"(input shape {tuple(x.shape)}). Create the module with "
          f"batch_size={batch}, or pad the batch to {self.batch_size}."
      )
    if time > self.max_length:
      raise ValueError(
          f"KVCachedAttention {self.module_name!r}: a decode call with "
          f"{time} positions (input shape {tuple(x.shape)}) cannot fit a "
          f"cache of max_length={self.max_length}. Create the module with "
          f"max_length>={time}."
      )
