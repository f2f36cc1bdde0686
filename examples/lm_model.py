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
  reads the mask as a side input too;
* ``NextToken`` samples the next token with a key from the random effect.

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
          f"{self.num_heads}; pick a d_model divisible by the head count."
      )
    return self.d_model // self.num_heads


def attention_mask(
    key_valid: jax.Array, query_positions: jax.Array
) -> jax.Array:
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

  def __init__(
      self,
      config: ModelConfig,
      cache_batch: int = 1,
      decode: bool = False,
      name: str | None = None,
  ):
    super().__init__(name=name)
    self.config = config
    self.cache_batch = cache_batch
    self.decode = decode
    self.stats = hke.SideOutputRequest(STATS_TAG)

  def __call__(self, x: jax.Array) -> jax.Array:
    cfg = self.config
    h = hk.LayerNorm(-1, True, True, name="attention_norm")(x)
    h = hke.KVCachedAttention(
        cfg.num_heads,
        cfg.key_size,
        max_length=cfg.max_length,
        batch_size=self.cache_batch,
        mask_tag=MASK_TAG,
        cache_category=CACHE_CATEGORY,
        name="attention",
    )(h, decode=self.decode)
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

  def __init__(
      self,
      config: ModelConfig,
      cache_batch: int = 1,
      decode: bool = False,
      name: str | None = None,
  ):
    super().__init__(name=name)
    self.config = config
    self.cache_batch = cache_batch
    self.decode = decode
    self.positions = hke.SideInputRequest(POSITIONS_TAG)

  def __call__(self, tokens: jax.Array) -> jax.Array:
    cfg = self.config
    x = hk.Embed(cfg.vocab_size, cfg.d_model, name="token_embed")(tokens)
    x = (
        x
        + hk.Embed(cfg.max_length, cfg.d_model, name="position_embed")(
            self.positions.ask()
        )[None]
    )
    x = hke.Dropout(cfg.dropout_rate, name="embed_dropout")(x)
    for i in range(cfg.num_layers):
      x = Block(cfg, self.cache_batch, self.decode, name=f"block_{i}")(x)
    x = hk.LayerNorm(-1, True, True, name="final_norm")(x)
    return hk.Linear(cfg.vocab_size, name="unembed")(x)


def _model_fn(
    config: ModelConfig, cache_batch: int = 1, decode: bool = False
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
      _model_fn(config), tags=(MASK_TAG, POSITIONS_TAG)
  )
  forward = hke.handlers.WithHaikuRandom.handling(forward)
  return hke.handlers.CollectingSideOutputs.handling(forward, tag=STATS_TAG)


class NextToken(hk.Module):
  """Picks the next token from the last position's logits.

  At temperature 0 it takes the most likely token; otherwise it samples from
  ``softmax(logits / temperature)`` with a key drawn from the random effect
  (so ``apply``'s rng, through ``hke.handlers.WithHaikuRandom``, decides the
  sample).

  Example:

  >>> import jax, jax.numpy as jnp
  >>> f = hke.transform(hke.handlers.WithHaikuRandom.handling(
  ...     lambda logits: NextToken(temperature=1.0)(logits)))
  >>> logits = jnp.log(jnp.array([[0.0, 1.0, 0.0]]))
  >>> f.apply({}, jax.random.key(0), logits).tolist()
  [1]
  """

  def __init__(self, temperature: float = 0.0, name: str | None = None):
    super().__init__(name=name)
    if temperature < 0:
      raise ValueError(
          f"temperature={temperature} is negative; pass 0 for "
          "greedy decoding or a positive temperature to sample."
      )
    self.temperature = temperature
    self.rng = hke.RandomRequest()

  def __call__(self, logits: jax.Array) -> jax.Array:
    if self.temperature == 0:
      return jnp.argmax(logits, -1).astype(jnp.int32)
    return jax.random.categorical(
        self.rng.next_key(), logits / self.temperature
    ).astype(jnp.int32)


def decoding_forward(
    config: ModelConfig, batch_size: int, temperature: float = 0.0
) -> Callable[[Any], Any]:
  """The handled forward function that decodes with a KV cache.

  Called as ``f((tokens, mask, positions))`` under
  ``hke.transform_with_state``, with ``tokens`` ``[batch_size, queries]``
  the next tokens, ``positions`` their absolute positions and ``mask``
  ``[batch_size, 1, queries, max_length]``. Returns ``(logits, next_tokens)``:
  the logits of every query and the token ``NextToken(temperature)`` picks
  after the last one (sampling draws its key from ``apply``'s rng). ``init``
  returns the empty caches as Haiku state, and ``apply`` the caches with the
  new keys and values. Dropout is off.

  Example:

  >>> cfg = ModelConfig(vocab_size=4, max_length=3)
  >>> callable(decoding_forward(cfg, batch_size=2, temperature=0.8))
  True
  """
  config = dataclasses.replace(config, dropout_rate=0.0)
  model = _model_fn(config, cache_batch=batch_size, decode=True)

  def forward(tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    logits = model(tokens)
    return logits, NextToken(temperature, name="next_token")(logits[:, -1])

  forward = hke.handlers.WithSideInputsFromInputTuple.handling(
      forward, tags=(MASK_TAG, POSITIONS_TAG)
  )
  forward = hke.handlers.WithHaikuRandom.handling(forward)
  return hke.handlers.handle_local_states(forward, category=CACHE_CATEGORY)


def model_inputs(
    tokens: jax.Array, key_valid: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(tokens, mask, positions)`` for a full-sequence call on ``tokens``.

  Args:
    tokens: ``[batch, time]`` token ids.
    key_valid: ``[batch, time]``, false for padding; ``None``: no padding.

  Example:

  >>> import jax.numpy as jnp
  >>> _, mask, positions = model_inputs(jnp.zeros([2, 3], jnp.int32))
  >>> mask.shape, positions.tolist()
  ((2, 1, 3, 3), [0, 1, 2])
  """
  positions = jnp.arange(tokens.shape[1])
  if key_valid is None:
    key_valid = jnp.ones(tokens.shape, bool)
  return tokens, attention_mask(key_valid, positions), positions


def decode_cached(
    decoder: Any,
    params: Any,
    rng: jax.Array | None,
    prompt: jax.Array,
    num_tokens: int,
    prompt_valid: jax.Array | None = None,
):
  """Continues ``prompt`` by ``num_tokens`` tokens using the KV cache.

  The prompt fills the cache in one call; then each step feeds the token
  the decoder's ``NextToken`` picked, alone. Step ``k`` passes
  ``fold_in(rng, k)`` to ``apply``, so a sampling decoder draws a fresh key
  per token from the random effect (``rng`` may be ``None`` when greedy).

  Args:
    decoder: ``hke.transform_with_state(decoding_forward(config, batch))``.
    params: the training model's parameters.
    rng: key of the samples, or ``None``.
    prompt: ``[batch, prompt_length]`` token ids.
    num_tokens: tokens to produce; ``prompt_length + num_tokens - 1`` must
      not exceed the cache's ``max_length``.
    prompt_valid: ``[batch, prompt_length]``, false for left padding.

  Returns:
    ``(tokens, logits, local_states)``: ``[batch, num_tokens]`` the tokens
    produced, ``[batch, num_tokens, vocab]`` the logits each was picked from,
    and the caches after the last step.

  Example:

  >>> import jax, jax.numpy as jnp
  >>> cfg = ModelConfig(vocab_size=5, max_length=6, num_layers=1, d_model=8,
  ...                   num_heads=2)
  >>> model = hke.transform(training_forward(cfg))
  >>> params = model.init(jax.random.key(0),
  ...                     model_inputs(jnp.zeros([1, 6], jnp.int32)))
  >>> decoder = hke.transform_with_state(decoding_forward(cfg, 2, 1.0))
  >>> prompt = jnp.ones([2, 2], jnp.int32)
  >>> tokens, _, _ = decode_cached(decoder, params, jax.random.key(1), prompt, 4)
  >>> tokens.shape
  (2, 4)
  """
  batch, prompt_length = prompt.shape
  max_length = prompt_length + num_tokens - 1
  if prompt_valid is None:
    prompt_valid = jnp.ones(prompt.shape, bool)

  def step_rng(k):
    return None if rng is None else jax.random.fold_in(rng, k)

  def key_valid(cache_length):
    return jnp.concatenate(
        [prompt_valid, jnp.ones([batch, cache_length - prompt_length], bool)], 1
    )

  positions = jnp.arange(prompt_length)
  # The mask's key axis spans the whole cache, whose length is known only
  # once init has built it: init gets a mask that broadcasts over keys.
  probe = (prompt, jnp.ones([batch, 1, prompt_length, 1], bool), positions)
  _, states = decoder.init(jax.random.key(0), probe)
  cache_length = max(x.shape[1] for x in jax.tree.leaves(states) if x.ndim)
  if max_length > cache_length:
    raise ValueError(
        f"a prompt of {prompt_length} tokens and {num_tokens} new tokens "
        f"need a KV cache of {max_length} positions, but the decoder's "
        f"max_length is {cache_length}; decode fewer tokens or train with a "
        "longer sequence length."
    )
  valid = key_valid(cache_length)
  args = (prompt, attention_mask(valid, positions), positions)
  (logits, token), states = decoder.apply(params, states, step_rng(0), args)

  def one_token(carry, k):
    states, token = carry
    position = (prompt_length + k - 1)[None]
    args = (token[:, None], attention_mask(valid, position), position)
    (logits, next_token), states = decoder.apply(
        params, states, step_rng(k), args
    )
    return (states, next_token), (token, logits[:, 0])

  (states, last), (tokens, step_logits) = jax.lax.scan(
      one_token, (states, token), jnp.arange(1, num_tokens)
  )
  tokens = jnp.concatenate([jnp.moveaxis(tokens, 0, 1), last[:, None]], 1)
  logits = jnp.concatenate([logits[:, -1:], jnp.moveaxis(step_logits, 0, 1)], 1)
  return tokens, logits, states


def greedy_decode_uncached(
    scorer: Any,
    params: Any,
    prompt: jax.Array,
    num_tokens: int,
    prompt_valid: jax.Array | None = None,
):
  """Greedy tokens by re-running the whole sequence at every step.

  The reference ``decode_cached`` must match at temperature 0; ``scorer`` is
  ``hke.transform(training_forward(config))`` with ``dropout_rate=0``.
  Returns ``(tokens, logits)`` shaped as ``decode_cached``'s.

  Example:

  >>> import jax, jax.numpy as jnp
  >>> cfg = ModelConfig(vocab_size=5, max_length=4, num_layers=1, d_model=8,
  ...                   num_heads=2, dropout_rate=0.0)
  >>> scorer = hke.transform(training_forward(cfg))
  >>> params = scorer.init(jax.random.key(0),
  ...                      model_inputs(jnp.zeros([1, 4], jnp.int32)))
  >>> tokens, _ = greedy_decode_uncached(scorer, params,
  ...                                    jnp.ones([1, 2], jnp.int32), 3)
  >>> tokens.shape
  (1, 3)
  """
  batch, prompt_length = prompt.shape
  if prompt_valid is None:
    prompt_valid = jnp.ones(prompt.shape, bool)
  buffer = jnp.concatenate(
      [prompt, jnp.zeros([batch, num_tokens - 1], jnp.int32)], 1
  )
  key_valid = jnp.concatenate(
      [prompt_valid, jnp.ones([batch, num_tokens - 1], bool)], 1
  )
  inputs = model_inputs(buffer, key_valid)

  def one_token(buffer, k):
    logits, _ = scorer.apply(params, None, (buffer,) + inputs[1:])
    step_logits = jax.lax.dynamic_index_in_dim(
        logits, prompt_length - 1 + k, axis=1, keepdims=False
    )
    token = jnp.argmax(step_logits, -1).astype(jnp.int32)
    buffer = jax.lax.dynamic_update_index_in_dim(
        buffer, token, jnp.minimum(prompt_length + k, buffer.shape[1] - 1), 1
    )
    return buffer, (token, step_logits)

  _, (tokens, logits) = jax.lax.scan(one_token, buffer, jnp.arange(num_tokens))
  return jnp.moveaxis(tokens, 0, 1), jnp.moveaxis(logits, 0, 1)
