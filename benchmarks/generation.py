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
r"""Greedy decoding with ``hke.KVCachedAttention`` against a hand-threaded
Haiku cache, side by side in one run.

Usage::

  python benchmarks/generation.py          # about 15 seconds on 2 cores

One small decoder LM (token embedding, ``--layers`` pre-LN blocks of causal
self-attention with a KV cache and an MLP, final LayerNorm, logits), written
twice with the same module names, so both take one set of parameters:

* ``hk_effects``: the attention is ``hke.KVCachedAttention`` (its cache and
  position are local states, served by ``handle_local_states``);
* ``hand-threaded``: ``HandCachedAttention`` computes the same thing with the
  cache in ``hk.get_state`` / ``hk.set_state`` (what a Haiku user writes by
  hand), in the same order of operations.

Two ways to decode ``--tokens`` tokens greedily from a one-token prompt:

* ``per-token jit``: one jitted ``apply`` per token, called from a Python
  loop that feeds the argmax back (the state is threaded by the caller);
* ``scan``: the whole loop inside the transformed function, in ``hk.scan``,
  jitted once.

Each round decodes once per version and way, back to back in alternating
order; the ratio that decides is the median over rounds of hand-threaded /
hk_effects *process CPU* time (tokens/s of hk_effects over hand-threaded;
XLA and the dispatch run on several threads of the process, and CPU time
leaves out waiting for a core that other processes hold). It also prints
the optimized HLO instruction counts of one decode step and of the scanned
loop, and checks that both versions decode the same tokens.

The hand-threaded cache does what ``KVCachedAttention`` does and nothing
more, including its run-time bounds check: outputs of a call that would
write past ``max_length`` are NaN (a careful hand-written cache must do
as much to avoid silently wrong values), so the two compare like with like;
the HLO counts printed here show whether they do.
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import time
from typing import Any, Callable, Sequence

if __package__ in (None, ""):
  sys.path.insert(
      0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import haiku as hk  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top,wrong-import-position

from benchmarks import measure  # pylint: disable=g-import-not-at-top,wrong-import-position
import hk_effects as hke  # pylint: disable=g-import-not-at-top,wrong-import-position

TOKENS = flags.DEFINE_integer("tokens", 64, "Tokens decoded per round.")
ROUNDS = flags.DEFINE_integer(
    "rounds", 31, "Paired rounds per way of decoding (at least 3)."
)
LAYERS = flags.DEFINE_integer("layers", 2, "Decoder blocks.")

VOCAB = 256
D_MODEL = 128
NUM_HEADS = 4
KEY_SIZE = 32
BATCH = 4
MAX_LENGTH = 128
CACHE = "kv_cache"
HAND, HKE = "hand-threaded", "hk_effects"
PER_TOKEN, SCAN = "per-token jit", "scan"


class HandCachedAttention(hk.Module):
  """``hke.KVCachedAttention``'s decode step with a hand-threaded cache."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.w_init = hk.initializers.VarianceScaling(1.0)

  def _project(self, x: jax.Array, name: str) -> jax.Array:
    y = hk.Linear(NUM_HEADS * KEY_SIZE, w_init=self.w_init, name=name)(x)
    return y.reshape(x.shape[:-1] + (NUM_HEADS, KEY_SIZE))

  def __call__(self, x: jax.Array) -> jax.Array:
    q = self._project(x, "query")
    k = self._project(x, "key")
    v = self._project(x, "value")
    time_ = x.shape[1]
    shape = (x.shape[0], MAX_LENGTH, NUM_HEADS, KEY_SIZE)
    index = hk.get_state("index", [], jnp.int32, init=jnp.zeros)
    k_all = jax.lax.dynamic_update_slice_in_dim(
        hk.get_state("k", shape, jnp.float32, init=jnp.zeros),
        k.astype(jnp.float32),
        index,
        axis=1,
    )
    v_all = jax.lax.dynamic_update_slice_in_dim(
        hk.get_state("v", shape, jnp.float32, init=jnp.zeros),
        v.astype(jnp.float32),
        index,
        axis=1,
    )
    hk.set_state("k", k_all)
    hk.set_state("v", v_all)
    hk.set_state("index", index + time_)
    query_pos = index + jnp.arange(time_)
    key_pos = jnp.arange(MAX_LENGTH)
    mask = (key_pos[None, :] <= query_pos[:, None])[None, None]
    k, v = k_all.astype(k.dtype), v_all.astype(v.dtype)
    logits = jnp.einsum("bthd,bThd->bhtT", q, k) / jnp.sqrt(
        jnp.asarray(KEY_SIZE, q.dtype)
    )
    logits = jnp.where(mask, logits, jnp.asarray(-1e30, logits.dtype))
    weights = jax.nn.softmax(logits)
    attended = jnp.einsum("bhtT,bThd->bthd", weights, v)
    attended = attended.reshape(attended.shape[:2] + (-1,))
    out = hk.Linear(x.shape[-1], w_init=self.w_init, name="output")(attended)
    # As KVCachedAttention: never a plausible value past the cache's end.
    overflow = index + time_ > MAX_LENGTH
    return jnp.where(overflow, jnp.asarray(jnp.nan, out.dtype), out)


class Decoder(hk.Module):
  """The decoder LM; ``attention`` builds each block's cached attention."""

  def __init__(
      self,
      num_layers: int,
      attention: Callable[[], Callable[[jax.Array], jax.Array]],
      name: str = "decoder",
  ):
    super().__init__(name=name)
    self.embed = hk.Embed(VOCAB, D_MODEL, name="embed")
    self.blocks = []
    for i in range(num_layers):
      with hk.experimental.name_scope(f"layer_{i}"):
        self.blocks.append((
            hk.LayerNorm(-1, True, True, name="ln_attention"),
            attention(),
            hk.LayerNorm(-1, True, True, name="ln_mlp"),
            hk.Linear(4 * D_MODEL, name="mlp_in"),
            hk.Linear(D_MODEL, name="mlp_out"),
        ))
    self.ln_final = hk.LayerNorm(-1, True, True, name="ln_final")
    self.logits = hk.Linear(VOCAB, name="logits")

  def __call__(self, tokens: jax.Array) -> jax.Array:
    h = self.embed(tokens)
    for ln_attention, attention, ln_mlp, mlp_in, mlp_out in self.blocks:
      h = h + attention(ln_attention(h))
      h = h + mlp_out(jax.nn.gelu(mlp_in(ln_mlp(h))))
    return self.logits(self.ln_final(h))


def _hke_attention() -> Callable[[jax.Array], jax.Array]:
  attention = hke.KVCachedAttention(
      num_heads=NUM_HEADS,
      key_size=KEY_SIZE,
      max_length=MAX_LENGTH,
      batch_size=BATCH,
      cache_category=CACHE,
      name="attention",
  )
  return lambda x: attention(x, decode=True)


def _hand_attention() -> Callable[[jax.Array], jax.Array]:
  return HandCachedAttention(name="attention")


def _decoder(version: str, num_layers: int) -> Decoder:
  return Decoder(
      num_layers, _hke_attention if version == HKE else _hand_attention
  )


def _transformed(version: str, body: Callable[..., Any]) -> Any:
  if version == HKE:
    return hke.transform_with_state(
        hke.handlers.handle_local_states(body, category=CACHE)
    )
  return hk.transform_with_state(body)


def step_fn(version: str, num_layers: int) -> Any:
  """``(params, state, None, tokens [B, 1]) -> (logits [B, 1, V], state)``."""
  return _transformed(version, lambda t: _decoder(version, num_layers)(t))


def loop_fn(version: str, num_layers: int, tokens: int) -> Any:
  """``(params, state, None, first [B, 1]) -> (decoded [tokens, B], state)``:
  greedy decoding in ``hk.scan``."""

  def decode(first):
    # Built outside the scan body, as Haiku requires of modules with state.
    decoder = _decoder(version, num_layers)

    def body(token, _):
      nxt = jnp.argmax(decoder(token)[:, -1], axis=-1)[:, None]
      return nxt, nxt[:, 0]

    return hk.scan(body, first, None, length=tokens)[1]

  return _transformed(version, decode)


def prompt() -> jax.Array:
  return jax.random.randint(jax.random.key(0), (BATCH, 1), 0, VOCAB)


def init(num_layers: int) -> tuple[Any, dict[str, Any]]:
  """Shared parameters, and each version's initial state."""
  first = prompt()
  params, hke_state = jax.jit(step_fn(HKE, num_layers).init)(
      jax.random.key(1), first
  )
  # Same module names: the hand-threaded decoder's parameters are these
  # (tests/tooling/benchmark_structure_test.py checks it).
  _, hand_state = jax.jit(step_fn(HAND, num_layers).init)(
      jax.random.key(1), first
  )
  return params, {HKE: hke_state, HAND: hand_state}


def decode_per_token(
    step: Callable[..., Any], params: Any, state: Any, tokens: int
) -> jax.Array:
  """``tokens`` greedy steps of a jitted ``step``; the decoded ``[tokens,
  B]``."""
  token = prompt()
  out = []
  for _ in range(tokens):
    logits, state = step(params, state, None, token)
    token = jnp.argmax(logits[:, -1], axis=-1)[:, None]
    out.append(token[:, 0])
  return jax.block_until_ready(jnp.stack(out))


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
  wall, cpu = time.perf_counter(), time.process_time()
  out = fn()
  return time.perf_counter() - wall, time.process_time() - cpu, out


def run(num_layers: int, tokens: int, rounds: int) -> dict[str, Any]:
  """All measurements: seconds per round and HLO counts, per way and
  version."""
  params, states = init(num_layers)
  steps = {v: jax.jit(step_fn(v, num_layers).apply) for v in (HAND, HKE)}
  loops = {
      v: jax.jit(loop_fn(v, num_layers, tokens).apply) for v in (HAND, HKE)
  }
  first = prompt()
  hlo = {
      PER_TOKEN: {
          v: measure.hlo_instruction_count(
              steps[v].lower(params, states[v], None, first).compile()
          )
          for v in steps
      },
      SCAN: {
          v: measure.hlo_instruction_count(
              loops[v].lower(params, states[v], None, first).compile()
          )
          for v in loops
      },
  }
  decoders = {
      PER_TOKEN: lambda v: decode_per_token(
          steps[v], params, states[v], tokens
      ),
      SCAN: lambda v: jax.block_until_ready(
          loops[v](params, states[v], None, first)[0]
      ),
  }
  results: dict[str, Any] = {
      "hlo": hlo,
      "wall_s": {w: {v: [] for v in steps} for w in decoders},
      "cpu_s": {w: {v: [] for v in steps} for w in decoders},
      "tokens": {},
  }
  for way, decode in decoders.items():
    for version in (HAND, HKE):  # Warm up; the decoded tokens are compared.
      results["tokens"].setdefault(way, {})[version] = decode(version)
  with measure.no_gc():
    for rnd in range(rounds):
      for way, decode in decoders.items():
        order = (HAND, HKE) if rnd % 2 else (HKE, HAND)
        for version in order:
          wall, cpu, _ = _timed(functools.partial(decode, version))
          results["wall_s"][way][version].append(wall)
          results["cpu_s"][way][version].append(cpu)
  return results


def render(results: dict[str, Any], tokens: int) -> str:
  """The table and the targets."""
  per_round = BATCH * tokens
  lines = [
      "| decoding | metric | hand-threaded | hk_effects | hke / hand |",
      "|---|---|---|---|---|",
  ]
  targets = []
  for way in (PER_TOKEN, SCAN):
    wall, cpu = results["wall_s"][way], results["cpu_s"][way]
    rates = {v: per_round / statistics.median(cpu[v]) for v in cpu}
    paired = [h / e for h, e in zip(cpu[HAND], cpu[HKE])]
    ratio = statistics.median(paired)
    lines += [
        (
            f"| {way} | tokens/s, process CPU (median) | {rates[HAND]:.0f} | "
            f"{rates[HKE]:.0f} | {rates[HKE] / rates[HAND]:.3f} |"
        ),
        (
            f"| {way} | tokens/s, wall (median) | "
            f"{per_round / statistics.median(wall[HAND]):.0f} | "
            f"{per_round / statistics.median(wall[HKE]):.0f} | "
            f"{statistics.median(wall[HAND]) / statistics.median(wall[HKE]):.3f}"
            " |"
        ),
        (
            f"| {way} | tokens/s ratio per round [decides] | - | - | "
            f"{ratio:.3f} [{min(paired):.3f}-{max(paired):.3f}] |"
        ),
        (
            f"| {way} | HLO instructions | {results['hlo'][way][HAND]} | "
            f"{results['hlo'][way][HKE]} | "
            f"{results['hlo'][way][HKE] / results['hlo'][way][HAND]:.3f} |"
        ),
    ]
    targets.append((
        (
            f"{way}: tokens/s {ratio:.3f} of hand-threaded >= 0.98 (median of "
            f"{len(paired)} rounds' process-CPU ratios)"
        ),
        ratio >= 0.98,
    ))
    targets.append((
        (
            f"{way}: HLO instructions equal ({results['hlo'][way][HKE]} and "
            f"{results['hlo'][way][HAND]})"
        ),
        results["hlo"][way][HKE] == results["hlo"][way][HAND],
    ))
    same = bool(
        jnp.array_equal(
            results["tokens"][way][HKE], results["tokens"][way][HAND]
        )
    )
    targets.append((f"{way}: both decode the same tokens", same))
  lines += [
      "",
      (
          f"{BATCH} sequences x {tokens} tokens per round. Machine: "
          f"{os.cpu_count()} CPUs, jax {jax.__version__}; load average "
          f"{os.getloadavg()[0]:.1f} at the end."
      ),
      "",
      "Targets:",
  ]
  lines += [f"  [{'met' if ok else 'MISSED'}] {text}" for text, ok in targets]
  return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
  del argv
  if ROUNDS.value < 3:
    raise app.UsageError(f"--rounds={ROUNDS.value}: pass 3 or more.")
  if not 1 <= TOKENS.value < MAX_LENGTH:
    raise app.UsageError(
        f"--tokens={TOKENS.value}: the cache holds {MAX_LENGTH} positions "
        f"and the prompt one; pass 1 to {MAX_LENGTH - 1}."
    )
  print(f"load average {os.getloadavg()[0]:.1f} at the start", flush=True)
  results = run(LAYERS.value, TOKENS.value, ROUNDS.value)
  print(render(results, TOKENS.value))


if __name__ == "__main__":
  app.run(main)
