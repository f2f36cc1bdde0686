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
"""A small decoder-only transformer written with hk_effects requests.

Every layer asks for what it needs instead of taking it as an argument:

* ``hke.Dropout`` draws its keys from the random effect;
* attention reads the causal-and-padding mask with ``hke.ApplyAttentionMask``
  and the embedding reads the token positions, both side inputs;
* each block tells the mean and RMS of its output as a side output;
* ``hke.KVCachedAttention`` keeps its keys and values in local states (a KV
  cache) when decoding, so one token at a time can be fed after a prompt; it
  reads the mask as a side input too.

The handlers that serve these requests are put around the forward function
by ``training_forward`` and ``decoding_forward``.

Example:

>>> import jax, jax.numpy as jnp
>>> cfg = ModelConfig(vocab_size=8, max_length=6, num_layers=1, d_model=8,
...                   num_heads=2)
>>> f = hke.transform(training_forward(cfg))
>>> tokens = jnp.ones([2, 6], jnp.int32)
>>> args = (tokens, attention_mask(tokens != 0, jnp.arange(6)), jnp.arange(6))
>>> params = f.init(jax.random.key(0), args)
>>> logits, side_outputs = f.apply(params, jax.random.key(1), args)
>>> logits.shape
(2, 6, 8)
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import haiku as hk
import jax
import jax.numpy as jnp

import hk_effects as hke

MASK_TAG = "attn_mask"
POSITIONS_TAG = "positions"
STATS_TAG = "block_stats"
CACHE_CATEGORY = "kv_cache"


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Hyperparameters of the transformer.

  Attributes:
    vocab_size: number of token ids.
    max_length: longest sequence (and the KV-cache length when decoding).
    num_layers: transformer blocks.
    d_model: width of the residual stream.
    num_heads: attention heads (``d_model`` must divide evenly).
    mlp_ratio: hidden width of the MLP over ``d_model``.
    dropout_rate: dropout after embeddings, attention and MLP.

  Example:

  >>> ModelConfig(vocab_size=14, max_length=18).key_size
  16
  """
  vocab_size: int
  max_length: int
  num_layers: int = 2
  d_model: int = 64
  num_heads: int = 4
  mlp_ratio: int = 4
  dropout_rate: float = 0.1

  @property
  def key_size(self) -> int:
    if self.d_model % self.num_heads:
      raise ValueError(
          f"d_model={self.d_model} is not a multiple of num_heads="
          f"{self.num_heads}; pick a d_model divisible by the head count.")
    return self.d_model // self.num_heads


def attention_mask(key_valid: jax.Array, query_positions: jax.Array) -> jax.Array:
  """The boolean mask ``[batch, 1, queries, keys]`` attention reads.

  A query at position ``p`` sees the valid keys at positions ``<= p``, and
  always itself, so that a padding query never has an empty row (which would
  make cached and uncached results differ on rows nobody reads).

  Args:
    key_valid: ``[batch, keys]``, false for padding keys.
    query_positions: ``[queries]`` absolute positions of the queries.

  Returns:
    The mask, true where attention is allowed.

  Example:

  >>> import jax.numpy as jnp
  >>> m = attention_mask(jnp.array([[False, True, True]]), jnp.arange(3))
  >>> m[0, 0].astype(int).tolist()
  [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
  """
  key_positions = jnp.arange(key_valid.shape[-1])
  causal = key_positions[None, :] <= query_positions[:, None]
  itself = key_positions[None, :] == query_positions[:, None]
  allowed = (causal[None] & key_valid[:, None, :]) | itself[None]
  return allowed[:, None]


class Block(hk.Module):
  """A pre-LayerNorm transformer block that reports its activation stats.

  After the residual update it tells ``{"mean", "rms"}`` of its output as a
  side output tagged ``STATS_TAG`` (a no-op when nobody collects).

  Example:

  >>> import jax, jax.numpy as jnp
  >>> cfg = ModelConfig(vocab_size=4, max_length=3, d_model=8, num_heads=2,
  ...                   dropout_rate=0.0)
  >>> f = hke.transform(hke.handlers.WithConstantSideInputs.handling(
  ...     lambda x: Block(cfg)(x), {MASK_TAG: jnp.ones([1, 1, 3, 3], bool)}))
  >>> x = jnp.ones([1, 3, 8])
  >>> f.apply(f.init(jax.random.key(0), x), None, x).shape
  (1, 3, 8)
  """

  def __init__(self, config: ModelConfig, cache_batch: int = 1,
               decode: bool = False, name: str | None = None):
    super().__init__(name=name)
    self.config = config
    self.cache_batch = cache_batch
    self.decode = decode
    self.stats = hke.SideOutputRequest(STATS_TAG)

  def __call__(self, x: jax.Array) -> jax.Array:
    cfg = self.config
    h = hk.LayerNorm(-1, True, True, name="attention_norm")(x)
    h = hke.KVCachedAttention(
        cfg.num_heads, cfg.key_size, max_length=cfg.max_length,
        batch_size=self.cache_batch, mask_tag=MASK_TAG,
        cache_category=CACHE_CATEGORY, name="attention")(h, decode=self.decode)
    x = x + hke.Dropout(cfg.dropout_rate, name="attention_dropout")(h)
    h = hk.LayerNorm(-1, True, True, name="mlp_norm")(x)
    h = hk.Linear(cfg.mlp_ratio * cfg.d_model, name="mlp_in")(h)
    h = hk.Linear(cfg.d_model, name="mlp_out")(jax.nn.gelu(h))
    x = x + hke.Dropout(cfg.dropout_rate, name="mlp_dropout")(h)
    self.stats.tell({"mean": jnp.mean(x), "rms": jnp.sqrt(jnp.mean(x * x))})
    return x


class Transformer(hk.Module):
  """Token and position embeddings, ``num_layers`` blocks, output logits.

  Positions are a side input tagged ``POSITIONS_TAG`` (``[queries]``), so the
  same module serves a whole sequence or one cached decoding step.

  Example:

  >>> import jax, jax.numpy as jnp
  >>> cfg = ModelConfig(vocab_size=4, max_length=3, num_layers=1, d_model=8,
  ...                   num_heads=2, dropout_rate=0.0)
  >>> f = hke.transform(hke.handlers.WithConstantSideInputs.handling(
  ...     lambda t: Transformer(cfg)(t),
  ...     {MASK_TAG: jnp.ones([1, 1, 3, 3], bool),
  ...      POSITIONS_TAG: jnp.arange(3)}))
  >>> t = jnp.zeros([1, 3], jnp.int32)
  >>> f.apply(f.init(jax.random.key(0), t), None, t).shape
  (1, 3, 4)
  """

  def __init__(self, config: ModelConfig, cache_batch: int = 1,
               decode: bool = False, name: str | None = None):
    super().__init__(name=name)
    self.config = config
    self.cache_batch = cache_batch
    self.decode = decode
    self.positions = hke.SideInputRequest(POSITIONS_TAG)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    cfg = self.config
    x = hk.Embed(cfg.vocab_size, cfg.d_model, name="token_embed")(tokens)
    x = x + hk.Embed(cfg.max_length, cfg.d_model,
                     name="position_embed")(self.positions.ask())[None]
    x = hke.Dropout(cfg.dropout_rate, name="embed_dropout")(x)
    for i in range(cfg.num_layers):
      x = Block(cfg, self.cache_batch, self.decode, name=f"block_{i}")(x)
    x = hk.LayerNorm(-1, True, True, name="final_norm")(x)
    return hk.Linear(cfg.vocab_size, name="unembed")(x)


def _model_fn(config: ModelConfig, cache_batch: int = 1, decode: bool = False
              ) -> Callable[[jax.Array], jax.Array]:
  def forward(tokens: jax.Array) -> jax.Array:
    return Transformer(config, cache_batch, decode, name="transformer")(tokens)
  return forward


def training_forward(config: ModelConfig) -> Callable[[Any], Any]:
  """The handled forward function used for training and scoring.

  Called as ``f((tokens, mask, positions))`` under ``hke.transform``; returns
  ``(logits, side_outputs)`` where ``side_outputs`` lists every block's
  ``{"mean", "rms"}`` in call order. Dropout keys come from ``apply``'s rng.

  Example:

  >>> cfg = ModelConfig(vocab_size=4, max_length=3)
  >>> type(training_forward(cfg)).__name__
  'CollectingSideOutputs'
  """
  forward = hke.handlers.WithSideInputsFromInputTuple.handling(
      _model_fn(config), tags=(MASK_TAG, POSITIONS_TAG))
  forward = hke.handlers.WithHaikuRandom.handling(forward)
  return hke.handlers.CollectingSideOutputs.handling(forward, tag=STATS_TAG)


def decoding_forward(config: ModelConfig, batch_size: int
                     ) -> Callable[[Any], Any]:
  """The handled forward function that decodes with a KV cache.

  Called as ``f((tokens, mask, positions))`` under
  ``hke.transform_with_state``, with ``tokens`` ``[batch_size, queries]``
  the next tokens, ``positions`` their absolute positions and ``mask``
  ``[batch_size, 1, queries, max_length]``. ``init`` returns the empty caches
  as Haiku state, and ``apply`` the caches with the new keys and values.
  Dropout is off: decoding is deterministic.

  Example:

  >>> cfg = ModelConfig(vocab_size=4, max_length=3)
  >>> callable(decoding_forward(cfg, batch_size=2))
  True
  """
  config = dataclasses.replace(config, dropout_rate=0.0)
  forward = hke.handlers.WithSideInputsFromInputTuple.handling(
      _model_fn(config, cache_batch=batch_size, decode=True),
      tags=(MASK_TAG, POSITIONS_TAG))
  forward = hke.handlers.WithHaikuRandom.handling(forward)
  return hke.handlers.handle_local_states(forward, category=CACHE_CATEGORY)
