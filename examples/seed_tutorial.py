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
"""Penzai's data-effects tutorial, walked through for Haiku with hk_effects.

Each section builds a small model, runs it, and prints what it shows:

1. capturing intermediates (``hke.select_calls`` + ``hke.TellIntermediate``);
2. side inputs (an attention-style mask read with ``ask()``);
3. side outputs told from deep inside a model (an auxiliary loss);
4. random handlers (``WithRandomKeyFromArg``, ``WithFrozenRandomState``,
   ``WithHaikuRandom``);
5. local states (a call counter that ``apply`` updates);
6. shared states (two layers, one named state);
7. freezing states (``freeze_local_states``: run a model at a saved state).

Run: ``python examples/seed_tutorial.py``.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

if __package__ in (None, ""):
  # Run as a script: make `hk_effects` importable from a checkout.
  sys.path.insert(
      0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

# pylint: enable=g-import-not-at-top,wrong-import-position

_X = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)


def _section(title: str) -> None:
  print(f"\n=== {title} ===")


def mlp(x: jax.Array) -> jax.Array:
  """A plain Haiku MLP with no effects at all."""
  x = jax.nn.relu(hk.Linear(4, name="hidden")(x))
  return hk.Linear(2, name="output")(x)


def capturing_intermediates() -> list[str]:
  """Collects the output of every ``hk.Linear`` without touching ``mlp``."""
  _section("1. Capturing intermediates")
  tapped = (
      hke.select_calls(mlp)
      .at_instances_of(hk.Linear)
      .insert_after(lambda: hke.TellIntermediate("linear_out"))
  )
  f = hke.transform(
      hke.handlers.CollectingSideOutputs.handling(tapped), apply_rng=False
  )
  params = f.init(jax.random.key(0), _X)
  out, told = f.apply(params, _X)
  for value in told:
    print(f"  {value.path:45s} shape {value.value.shape}")
  print(
      "  final output equals the last intermediate: "
      f"{bool(jnp.all(out == told[-1].value))}"
  )
  return [v.path for v in told]


class MaskedScores(hk.Module):
  """Scores every pair of positions and masks them by a side input."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.mask = hke.SideInputRequest("mask")

  def __call__(self, x: jax.Array) -> jax.Array:
    scores = x @ x.T
    return jnp.where(self.mask.ask(), scores, -jnp.inf)


def side_inputs() -> np.ndarray:
  """The same layer served by a tuple argument and by a constant."""
  _section("2. Side inputs")
  causal = jnp.tril(jnp.ones([2, 2], bool))
  from_tuple = hke.transform(
      hke.handlers.WithSideInputsFromInputTuple.handling(
          lambda x: MaskedScores()(x), tags=("mask",)
      ),
      apply_rng=False,
  )
  scores = from_tuple.apply({}, (_X, causal))
  print("  from the input tuple:\n", np.asarray(scores))
  constant = hke.handlers.WithConstantSideInputs.handling(
      lambda x: MaskedScores()(x), {"mask": causal}
  )
  same = hke.transform(constant, apply_rng=False).apply({}, _X)
  print(f"  from a constant handler, equal: {bool(jnp.all(scores == same))}")
  hoisted_fn, hoisted = hke.handlers.hoist_constant_side_inputs(constant)
  again = hke.transform(hoisted_fn, apply_rng=False).apply(
      {}, (_X, *hoisted.values())
  )
  print(
      f"  hoisted into arguments ({list(hoisted)}), equal: "
      f"{bool(jnp.all(scores == again))}"
  )
  return np.asarray(scores)


class SparseLinear(hk.Module):
  """A linear layer that reports an L1 penalty on its weights."""

  def __init__(self, size: int, name: str | None = None):
    super().__init__(name=name)
    self.size = size
    self.penalty = hke.SideOutputRequest("l1")

  def __call__(self, x: jax.Array) -> jax.Array:
    linear = hk.Linear(self.size)
    y = linear(x)
    self.penalty.tell(
        jnp.sum(jnp.abs(linear.params_dict()[f"{linear.module_name}/w"]))
    )
    return y


def side_outputs() -> float:
  """Auxiliary losses told by layers, summed by the caller."""
  _section("3. Side outputs")

  def forward(x):
    return SparseLinear(2, name="second")(SparseLinear(4, name="first")(x))

  f = hke.transform(
      hke.handlers.CollectingSideOutputs.handling(forward, tag="l1"),
      apply_rng=False,
  )
  params = f.init(jax.random.key(0), _X)
  _, told = f.apply(params, _X)
  for value in told:
    print(f"  {value.path:20s} l1 = {float(value.value):.3f}")
  total = float(sum(v.value for v in told))
  print(f"  total auxiliary loss {total:.3f}")
  plain = hke.transform(forward, apply_rng=False)
  print(
      "  without a collector, tell() is a no-op: output shape "
      f"{plain.apply(params, _X).shape}"
  )
  return total


def dropout_model(x: jax.Array) -> jax.Array:
  """An MLP with dropout keyed by the random effect."""
  return hke.Dropout(0.5)(mlp(hke.Dropout(0.5)(x)))


def random_handlers() -> dict[str, bool]:
  """Three ways to serve the same dropout layers."""
  _section("4. Random handlers")
  params = hke.transform(mlp).init(jax.random.key(0), _X)
  from_arg = hke.transform(
      hke.handlers.WithRandomKeyFromArg.handling(dropout_model), apply_rng=False
  )
  a = from_arg.apply(params, (_X, jax.random.key(1)))
  b = from_arg.apply(params, (_X, jax.random.key(1)))
  c = from_arg.apply(params, (_X, jax.random.key(2)))
  frozen = hke.transform(
      hke.handlers.WithFrozenRandomState.handling(
          dropout_model, jax.random.key(3)
      ),
      apply_rng=False,
  )
  haiku_rng = hke.transform(
      hke.handlers.WithHaikuRandom.handling(dropout_model)
  )
  results = {
      "same key, same output": bool(jnp.all(a == b)),
      "other key, other output": not bool(jnp.all(a == c)),
      "frozen state repeats": bool(
          jnp.all(frozen.apply(params, _X) == frozen.apply(params, _X))
      ),
      "Haiku rng serves it": bool(
          jnp.all(
              haiku_rng.apply(params, jax.random.key(1), _X)
              == haiku_rng.apply(params, jax.random.key(1), _X)
          )
      ),
  }
  for what, ok in results.items():
    print(f"  {what}: {ok}")
  return results


class Counter(hk.Module):
  """Counts its calls in a local state."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.count = hke.InitialLocalStateRequest(
        lambda: jnp.zeros([], jnp.int32), category="counters"
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    self.count.set(self.count.get() + 1)
    return x


def counted_mlp(x: jax.Array) -> jax.Array:
  return Counter(name="after")(mlp(Counter(name="before")(x)))


def local_states() -> dict[str, int]:
  """``init`` returns the initial states, each ``apply`` the updated ones."""
  _section("5. Local states")
  f = hke.transform_with_state(hke.handlers.handle_local_states(counted_mlp))
  params, state = f.init(jax.random.key(0), _X)
  print(f"  after init:   {jax.tree.map(int, state['~local_state/counters'])}")
  for _ in range(3):
    _, state = f.apply(params, state, None, _X)
  counts = jax.tree.map(int, state["~local_state/counters"])
  print(f"  after 3 runs: {counts}")
  return counts


_ZERO = lambda: jnp.zeros([], jnp.float32)  # One initializer object, shared.


class Accumulate(hk.Module):
  """Adds the sum of its input to the state named ``total``."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.total = hke.InitialLocalStateRequest(
        _ZERO, category="totals", name="total"
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    self.total.set(self.total.get() + jnp.sum(x))
    return x


def shared_states() -> float:
  """Two layers naming one state share a single value."""
  _section("6. Shared states")

  def forward(x):
    return Accumulate(name="second")(Accumulate(name="first")(x))

  f = hke.transform_with_state(
      hke.handlers.handle_local_states(forward, state_sharing="allowed")
  )
  params, state = f.init(None, jnp.ones(3))
  _, state = f.apply(params, state, None, jnp.ones(3))
  total = float(state["~local_state/totals"]["total"])
  print(f"  one state for both layers: {state['~local_state/totals']}")
  try:
    hke.transform_with_state(hke.handlers.handle_local_states(forward)).init(
        None, jnp.ones(3)
    )
  except ValueError as e:
    print(
        "  with the default state_sharing='forbidden': "
        f"{type(e).__name__}: {str(e)[:70]}..."
    )
  return total


def freezing_states() -> float:
  """Turns a model's states into values it carries, then back into states."""
  _section("7. Freezing states")
  handler = hke.handlers.handle_local_states(counted_mlp)
  f = hke.transform_with_state(handler)
  params, state = f.init(jax.random.key(0), _X)
  for _ in range(2):
    _, state = f.apply(params, state, None, _X)
  frozen = hke.transform(
      hke.handlers.freeze_local_states(handler, state), apply_rng=False
  )
  try:
    frozen.apply(params, _X)
  except hke.UnhandledEffectError as e:
    print(
        "  frozen states are read-only; the counter's set() says: "
        f"{str(e)[:60]}..."
    )
  print(f"  the frozen values: {jax.tree.map(int, state)}")
  unfrozen = hke.transform_with_state(
      hke.handlers.handle_local_states(
          hke.handlers.freeze_local_states(handler, state)
      )
  )
  params2, resumed = unfrozen.init(jax.random.key(0), _X)
  del params2
  _, resumed = unfrozen.apply(params, resumed, None, _X)
  counts = jax.tree.map(int, jax.tree.leaves(resumed))
  print(f"  made mutable again, counting goes on from 2: {counts}")
  return float(max(counts))


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  capturing_intermediates()
  side_inputs()
  side_outputs()
  random_handlers()
  local_states()
  shared_states()
  freezing_states()


if __name__ == "__main__":
  app.run(main)
