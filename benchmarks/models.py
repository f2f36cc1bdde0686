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
"""One pre-LayerNorm transformer stack, written three ways, for benchmarks.

Every version computes the same thing per block: LayerNorm, multi-head
self-attention whose logits are masked by a boolean mask, dropout, residual;
LayerNorm, MLP (Linear, GELU, Linear), dropout, residual; it reports the
block's output as an intermediate and increments a per-block counter.
Only the way the mask, the dropout keys, the intermediates and the counters
travel differs:

* ``hand_threaded``: plain Haiku; the mask is an argument of every call, keys
  come from ``hk.next_rng_key()``, intermediates are returned, counters live
  in ``hk.get_state`` / ``hk.set_state``;
* ``effectful``: hk_effects; the same modules read the mask with a
  ``SideInputRequest``, draw keys with ``hke.Dropout`` under
  ``WithHaikuRandom``, tell intermediates with a ``SideOutputRequest`` and
  count with an ``InitialLocalStateRequest``;
* ``penzai``: Penzai v1 (``penzai.deprecated.v1``) layers with its data
  effects, written as a Penzai user would (named axes, ``pz.nn`` layers).

The Haiku versions have the same module tree (a dropout or mask *module* in
both), so their difference is the effect machinery and nothing else.
Each builder returns a ``Version``: ``make_step()`` gives a *fresh* step
function (JAX caches traces by function identity) and ``args`` its inputs.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

D_MODEL = 128
NUM_HEADS = 4
MLP_HIDDEN = 512
SEQUENCE = 64
BATCH = 8
DROPOUT_RATE = 0.1
MASKED_OUT = -1e9
LN_EPS = 1e-5
MASK_TAG = "mask"
OUTPUT_TAG = "block_output"
COUNTER = "counter"


@dataclasses.dataclass
class Version:
  """A model version ready to trace: fresh step functions and their inputs."""

  name: str
  make_step: Callable[[], Callable[..., Any]]
  args: tuple[Any, ...]


def inputs(seed: int = 0) -> tuple[jax.Array, jax.Array]:
  """Activations ``[B, T, D]`` and a causal mask ``[B, 1, T, T]``."""
  x = jax.random.normal(jax.random.key(seed), (BATCH, SEQUENCE, D_MODEL))
  causal = jnp.tril(jnp.ones((SEQUENCE, SEQUENCE), bool))
  mask = jnp.broadcast_to(causal, (BATCH, 1, SEQUENCE, SEQUENCE))
  return x, mask


def _split_heads(x: jax.Array) -> jax.Array:
  return jnp.reshape(x, (*x.shape[:-1], NUM_HEADS, D_MODEL // NUM_HEADS))


def _gelu(x: jax.Array) -> jax.Array:
  return jax.nn.gelu(x)


def _layer_norm(name: str) -> hk.LayerNorm:
  return hk.LayerNorm(
      -1, create_scale=True, create_offset=True, eps=LN_EPS, name=name
  )


def _zero_count() -> jax.Array:
  return jnp.zeros([], jnp.int32)


def materialize(shapes: Any, seed: int = 0) -> Any:
  """Concrete arrays for a tree of ``ShapeDtypeStruct``: floats small normal.

  Initializing a deep model op by op (Haiku's or Penzai's eager ``init``)
  takes far longer than the benchmark itself; values do not matter for it.
  """
  rng = np.random.default_rng(seed)

  def fill(leaf):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      return jnp.asarray(rng.normal(scale=0.02, size=leaf.shape), leaf.dtype)
    return jnp.zeros(leaf.shape, leaf.dtype)

  return jax.tree_util.tree_map(fill, shapes)


def _init_haiku(transformed: Any, *args: Any) -> tuple[Any, Any]:
  return materialize(jax.eval_shape(transformed.init, jax.random.key(1), *args))


# --- Hand-threaded Haiku ----------------------------------------------------


class HandDropout(hk.Module):
  """``hke.Dropout``'s computation with a key from ``hk.next_rng_key()``."""

  def __init__(self, rate: float, name: str | None = None):
    super().__init__(name=name)
    self.rate = rate

  def __call__(self, x: jax.Array) -> jax.Array:
    keep = jax.random.bernoulli(hk.next_rng_key(), 1.0 - self.rate, x.shape)
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


class HandMask(hk.Module):
  """``hke.ApplyAttentionMask``'s computation with the mask as an argument."""

  def __call__(self, logits: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.where(mask, logits, jnp.asarray(MASKED_OUT, logits.dtype))


class HandAttention(hk.Module):
  """Multi-head self-attention taking the mask as an argument."""

  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    q = _split_heads(hk.Linear(D_MODEL, name="query")(x))
    k = _split_heads(hk.Linear(D_MODEL, name="key")(x))
    v = _split_heads(hk.Linear(D_MODEL, name="value")(x))
    logits = jnp.einsum("bthd,bshd->bhts", q, k) * (q.shape[-1] ** -0.5)
    weights = jax.nn.softmax(HandMask(name="mask")(logits, mask))
    out = jnp.einsum("bhts,bshd->bthd", weights, v)
    return hk.Linear(D_MODEL, name="output")(jnp.reshape(out, x.shape))


class HandBlock(hk.Module):
  """A pre-LN block that returns its output and keeps a counter in state."""

  def __call__(self, x: jax.Array, mask: jax.Array):
    h = HandAttention(name="attention")(_layer_norm("ln_attention")(x), mask)
    x = x + HandDropout(DROPOUT_RATE, name="dropout_attention")(h)
    h = hk.Linear(MLP_HIDDEN, name="mlp_in")(_layer_norm("ln_mlp")(x))
    h = hk.Linear(D_MODEL, name="mlp_out")(_gelu(h))
    x = x + HandDropout(DROPOUT_RATE, name="dropout_mlp")(h)
    count = hk.get_state("count", [], jnp.int32, init=jnp.zeros)
    hk.set_state("count", count + 1)
    return x, x


def hand_threaded_forward(depth: int):
  """The hand-threaded forward function ``(x, mask) -> (out, intermediates)``."""

  def forward(x, mask):
    intermediates = []
    for i in range(depth):
      x, told = HandBlock(name=f"block_{i}")(x, mask)
      intermediates.append(told)
    return _layer_norm("ln_final")(x), intermediates

  return forward


def _hand_version(
    forward: Callable[..., Any], inputs_: tuple[jax.Array, jax.Array]
) -> Version:
  """A hand-threaded forward function ``(x, mask)`` as a ``Version``:
  ``step(params, state, rng, x, mask)``."""
  x, mask = inputs_

  def make_step():
    return hk.transform_with_state(forward).apply

  params, state = _init_haiku(hk.transform_with_state(forward), x, mask)
  return Version(
      "hand-threaded", make_step, (params, state, jax.random.key(2), x, mask)
  )


def hand_threaded(depth: int) -> Version:
  """The hand-threaded version: ``step(params, state, rng, x, mask)``."""
  return _hand_version(hand_threaded_forward(depth), inputs())


# --- hk_effects -------------------------------------------------------------


class EffectfulAttention(hk.Module):
  """Multi-head self-attention whose mask is a side input."""

  def __call__(self, x: jax.Array) -> jax.Array:
    q = _split_heads(hk.Linear(D_MODEL, name="query")(x))
    k = _split_heads(hk.Linear(D_MODEL, name="key")(x))
    v = _split_heads(hk.Linear(D_MODEL, name="value")(x))
    logits = jnp.einsum("bthd,bshd->bhts", q, k) * (q.shape[-1] ** -0.5)
    mask = hke.ApplyAttentionMask(MASK_TAG, MASKED_OUT, name="mask")
    weights = jax.nn.softmax(mask(logits))
    out = jnp.einsum("bhts,bshd->bthd", weights, v)
    return hk.Linear(D_MODEL, name="output")(jnp.reshape(out, x.shape))


class EffectfulBlock(hk.Module):
  """A pre-LN block that tells its output and counts in a local state."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.output = hke.SideOutputRequest(OUTPUT_TAG)
    self.count = hke.InitialLocalStateRequest(_zero_count, category=COUNTER)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = EffectfulAttention(name="attention")(_layer_norm("ln_attention")(x))
    x = x + hke.Dropout(DROPOUT_RATE, name="dropout_attention")(h)
    h = hk.Linear(MLP_HIDDEN, name="mlp_in")(_layer_norm("ln_mlp")(x))
    h = hk.Linear(D_MODEL, name="mlp_out")(_gelu(h))
    x = x + hke.Dropout(DROPOUT_RATE, name="dropout_mlp")(h)
    self.output.tell(x)
    self.count.set(self.count.get() + 1)
    return x


def effectful_forward(depth: int, path_keys: bool = False):
  """The hk_effects forward function, wrapped in its four handlers
  (``path_keys``: the random handler's option of that name)."""

  def model(x):
    for i in range(depth):
      x = EffectfulBlock(name=f"block_{i}")(x)
    return _layer_norm("ln_final")(x)

  handled = hke.handlers.WithSideInputsFromInputTuple.handling(
      model, tags=(MASK_TAG,)
  )
  handled = hke.handlers.CollectingSideOutputs.handling(handled)
  handled = hke.handlers.WithHaikuRandom.handling(handled, path_keys=path_keys)
  return hke.handlers.handle_local_states(handled, category=COUNTER)


def _effectful_version(
    forward: Callable[..., Any],
    inputs_: tuple[jax.Array, jax.Array],
    path_keys: bool,
) -> Version:
  """A handled hk_effects forward function of ``(x, mask)`` as a
  ``Version``: ``step(params, state, rng, x, mask)``."""
  x, mask = inputs_

  def make_step():
    apply = hke.transform_with_state(forward).apply

    def step(params, state, rng, x, mask):
      return apply(params, state, rng, (x, mask))

    return step

  params, state = _init_haiku(hke.transform_with_state(forward), (x, mask))
  name = "hk_effects, path keys" if path_keys else "hk_effects"
  return Version(name, make_step, (params, state, jax.random.key(2), x, mask))


def effectful(depth: int, path_keys: bool = False) -> Version:
  """The hk_effects version: ``step(params, state, rng, x, mask)``."""
  return _effectful_version(
      effectful_forward(depth, path_keys), inputs(), path_keys
  )


# --- The effect-dense block -------------------------------------------------
#
# Where the transformer above spends most of a block's trace in attention and
# MLP, this block has four effects per five ops: Linear, times a side-input
# mask, relu, dropout, a told intermediate and a counter. It shows what the
# effect machinery costs per use rather than per block.

DENSE_WIDTH = 128


def dense_inputs(seed: int = 0) -> tuple[jax.Array, jax.Array]:
  """Activations ``[B, W]`` and a boolean mask of the same shape."""
  x = jax.random.normal(jax.random.key(seed), (BATCH, DENSE_WIDTH))
  mask = jax.random.bernoulli(
      jax.random.key(seed + 1), 0.9, (BATCH, DENSE_WIDTH)
  )
  return x, mask


class HandDenseBlock(hk.Module):
  """The effect-dense block in plain Haiku: mask argument, next_rng_key,
  returned intermediate, counter in ``hk.get_state``."""

  def __call__(self, x: jax.Array, mask: jax.Array):
    h = jax.nn.relu(hk.Linear(DENSE_WIDTH, name="linear")(x) * mask)
    h = HandDropout(DROPOUT_RATE, name="dropout")(h)
    count = hk.get_state("count", [], jnp.int32, init=jnp.zeros)
    hk.set_state("count", count + 1)
    return h, h


def hand_dense_forward(depth: int):
  """``(x, mask) -> (out, intermediates)`` of ``depth`` hand-threaded blocks."""

  def forward(x, mask):
    intermediates = []
    for i in range(depth):
      x, told = HandDenseBlock(name=f"block_{i}")(x, mask)
      intermediates.append(told)
    return x, intermediates

  return forward


def hand_dense(depth: int) -> Version:
  """The hand-threaded dense version: ``step(params, state, rng, x, mask)``."""
  return _hand_version(hand_dense_forward(depth), dense_inputs())


class EffectfulDenseBlock(hk.Module):
  """The effect-dense block with the four requests."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.mask = hke.SideInputRequest(MASK_TAG)
    self.output = hke.SideOutputRequest(OUTPUT_TAG)
    self.count = hke.InitialLocalStateRequest(_zero_count, category=COUNTER)

  def __call__(self, x: jax.Array) -> jax.Array:
    h = jax.nn.relu(hk.Linear(DENSE_WIDTH, name="linear")(x) * self.mask.ask())
    h = hke.Dropout(DROPOUT_RATE, name="dropout")(h)
    self.output.tell(h)
    self.count.set(self.count.get() + 1)
    return h


def effectful_dense_forward(depth: int, path_keys: bool = False):
  """The hk_effects dense forward function in its four handlers."""

  def model(x):
    for i in range(depth):
      x = EffectfulDenseBlock(name=f"block_{i}")(x)
    return x

  handled = hke.handlers.WithSideInputsFromInputTuple.handling(
      model, tags=(MASK_TAG,)
  )
  handled = hke.handlers.CollectingSideOutputs.handling(handled)
  handled = hke.handlers.WithHaikuRandom.handling(handled, path_keys=path_keys)
  return hke.handlers.handle_local_states(handled, category=COUNTER)


def effectful_dense(depth: int, path_keys: bool = False) -> Version:
  """The hk_effects dense version: ``step(params, state, rng, x, mask)``."""
  return _effectful_version(
      effectful_dense_forward(depth, path_keys), dense_inputs(), path_keys
  )


def linen_dense(depth: int) -> Version:
  """Flax linen's dense version: ``step(variables, rng, x, mask)``.

  Written as a linen user would: ``self.sow`` for the intermediate,
  ``self.make_rng`` (inside ``nn.Dropout``) for keys, a ``self.variable``
  counter, the mask as an argument. Raises ImportError without flax (the
  ``bench`` extra).
  """
  from benchmarks import linen_model  # pylint: disable=g-import-not-at-top

  x, mask = dense_inputs()
  variables = materialize(
      jax.eval_shape(
          functools.partial(linen_model.init, linen_model.DenseStack(depth)),
          jax.random.key(1),
          x,
          mask,
      )
  )
  return Version(
      "flax linen",
      lambda: linen_model.make_step(depth),
      (variables, jax.random.key(2), x, mask),
  )


DENSE_BUILDERS: dict[str, Callable[[int], Version]] = {
    "hand-threaded": hand_dense,
    "hk_effects": effectful_dense,
    "hk_effects, path keys": functools.partial(effectful_dense, path_keys=True),
    "flax linen": linen_dense,
}


# --- Penzai v1 --------------------------------------------------------------


def penzai(depth: int) -> Version:
  """The Penzai v1 version: ``step(model, states, key, x, mask)``.

  Raises ImportError when penzai (the ``bench`` extra) is not installed.
  """
  from benchmarks import penzai_model  # pylint: disable=g-import-not-at-top

  x, mask = inputs()
  handled, states = penzai_model.handled_model(depth)
  return Version(
      "penzai v1",
      penzai_model.make_step,
      (handled, states, jax.random.key(2), x, mask),
  )


BUILDERS: dict[str, Callable[[int], Version]] = {
    "hand-threaded": hand_threaded,
    "hk_effects": effectful,
    "hk_effects, path keys": functools.partial(effectful, path_keys=True),
    "penzai v1": penzai,
}
