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
"""Local states agree with Haiku state, entry for entry (issue 15, S7).

Hypothesis draws small programs: a few counter-like modules with float or
int states of random shapes, some used only in ``apply`` (skipped at init
under ``hk.running_init()``), some skipped by an evaluation forward, some
called inside ``hk.scan``, some only read, some whose initializer draws
``hk.next_rng_key()``. Each program is written twice:
with local states (``hke.InitialLocalStateRequest`` under
``handle_local_states``) and with ``hk.get_state`` / ``hk.set_state``. Both
are initialised with the training forward and applied twice, each apply a
training or an evaluation forward over the state the previous step returned.
After init and after each apply the two state dicts hold the same entries
(local state ``"<module>:count"`` in bundle ``"~local_state/<category>"``
is Haiku's ``"<module>"`` / ``"count"``) with the same values, shapes and
dtypes, the forwards return the same outputs, and the initializers ran
the same number of times (each once, where its state is created).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl.testing import absltest
import conftest  # pylint: disable=unused-import  # Profiles, when run alone.
import haiku as hk
import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

CATEGORIES = ("c", "d")


@dataclasses.dataclass(frozen=True)
class Spec:
  """One counter-like module of a generated program."""

  dtype: str  # "float32" or "int32".
  shape: tuple[int, ...]
  start: int  # The initial value of every element.
  step: int  # What one call adds (a float state is halved first).
  category: str
  writes: bool  # False: the module only reads its state.
  apply_only: bool  # Skipped at init under hk.running_init().
  train_only: bool  # Skipped by the evaluation forward.
  scan_length: int  # 0: called once; n: called in an hk.scan of length n.
  draws: bool = False  # The initializer adds a number drawn from a key.


@st.composite
def specs(draw) -> Spec:
  scan_length = draw(st.sampled_from((0, 0, 1, 3)))
  return Spec(
      dtype=draw(st.sampled_from(("float32", "int32"))),
      shape=tuple(draw(st.lists(st.integers(1, 3), max_size=2))),
      start=draw(st.integers(-3, 3)),
      step=draw(st.integers(-2, 2)),
      category=draw(st.sampled_from(CATEGORIES)),
      writes=draw(st.sampled_from((True, True, True, False))),
      # Haiku cannot create a state inside hk.scan in apply (its carry would
      # change structure), so a state skipped at init is used outside one.
      apply_only=not scan_length and draw(st.booleans()),
      train_only=draw(st.booleans()),
      scan_length=scan_length,
      draws=draw(st.booleans()),
  )


def programs():
  """Module specs, and the forward (training or evaluation) of each apply."""
  return st.tuples(
      st.lists(specs(), min_size=1, max_size=4),
      st.lists(st.booleans(), min_size=2, max_size=2),
  )


def _initial(spec: Spec, calls: list[str], name: str) -> jnp.ndarray:
  calls.append(name)
  value = jnp.full(spec.shape, spec.start, spec.dtype)
  if spec.draws:
    value = value + jax.random.randint(
        hk.next_rng_key(), spec.shape, 0, 5, jnp.int32
    ).astype(spec.dtype)
  return value


def _update(spec: Spec, value: jnp.ndarray) -> jnp.ndarray:
  if spec.dtype == "float32":
    return value * 0.5 + spec.step
  return value + jnp.asarray(spec.step, jnp.int32)


class LocalCounter(hk.Module):
  """The spec's module written with a local state."""

  def __init__(self, spec: Spec, name: str, calls: list[str]):
    super().__init__(name=name)
    self.spec = spec
    self.count = hke.InitialLocalStateRequest(
        lambda: _initial(spec, calls, name), spec.category
    )

  def __call__(self) -> jnp.ndarray:
    value = self.count.get()
    if self.spec.writes:
      value = _update(self.spec, value)
      self.count.set(value)
    return jnp.sum(value.astype(jnp.float32))


class HaikuCounter(hk.Module):
  """The spec's module written with hk.get_state / hk.set_state."""

  def __init__(self, spec: Spec, name: str, calls: list[str]):
    super().__init__(name=name)
    self.spec = spec
    self.calls = calls

  def __call__(self) -> jnp.ndarray:
    spec = self.spec
    value = hk.get_state(
        "count",
        spec.shape,
        spec.dtype,
        init=lambda shape, dtype: _initial(spec, self.calls, self.name),
    )
    if spec.writes:
      value = _update(spec, value)
      hk.set_state("count", value)
    return jnp.sum(value.astype(jnp.float32))


def _forward(module_cls, program: list[Spec], train: bool, calls):
  def forward(x):
    total = x
    for i, spec in enumerate(program):
      module = module_cls(spec, f"m{i}", calls)
      if (spec.apply_only and hk.running_init()) or (
          spec.train_only and not train
      ):
        continue
      if spec.scan_length:
        total, _ = hk.scan(
            lambda c, _, m=module: (c + m(), None),
            total,
            None,
            length=spec.scan_length,
        )
      else:
        total = total + module()
    return total

  return forward


def _local(
    program: list[Spec], train: bool, calls: list[str]
) -> hk.TransformedWithState:
  return hke.transform_with_state(
      hke.handlers.handle_local_states(
          _forward(LocalCounter, program, train, calls)
      )
  )


def _haiku(
    program: list[Spec], train: bool, calls: list[str]
) -> hk.TransformedWithState:
  return hk.transform_with_state(_forward(HaikuCounter, program, train, calls))


def _as_haiku_names(state: Any) -> dict[tuple[str, str], np.ndarray]:
  """Local-state entries keyed as Haiku's (module, state name)."""
  entries = {}
  for bundle, values in state.items():
    assert bundle.startswith("~local_state/"), bundle
    for key, value in values.items():
      module, attribute = key.split(":")
      entries[(module, attribute)] = np.asarray(value)
  return entries


def _haiku_entries(state: Any) -> dict[tuple[str, str], np.ndarray]:
  return {
      (module, name): np.asarray(value)
      for module, values in state.items()
      for name, value in values.items()
  }


class HaikuParityTest(absltest.TestCase):

  def assert_same_states(self, local_state: Any, haiku_state: Any, when: str):
    local, haiku = _as_haiku_names(local_state), _haiku_entries(haiku_state)
    self.assertEqual(sorted(local), sorted(haiku), when)
    for name, value in haiku.items():
      self.assertEqual(
          (local[name].dtype, local[name].shape),
          (value.dtype, value.shape),
          f"{when}: {name}",
      )
      np.testing.assert_array_equal(
          local[name], value, err_msg=f"{when}: {name}"
      )

  @hypothesis.given(programs())
  @hypothesis.example((
      [
          Spec("int32", (2,), 1, 1, "c", True, True, False, 0, draws=True),
          Spec("float32", (), 2, -1, "d", True, False, True, 3, draws=True),
      ],
      [True, False],
  ))
  def test_local_states_equal_haiku_states(self, program_and_applies):
    program, trains = program_and_applies
    x = jnp.float32(0.0)
    local_calls, haiku_calls = [], []
    rng = lambda seed: jax.random.key(seed)
    local_params, local_state = _local(program, True, local_calls).init(
        rng(0), x
    )
    haiku_params, haiku_state = _haiku(program, True, haiku_calls).init(
        rng(0), x
    )
    self.assertEqual(local_params, {})
    self.assertEqual(haiku_params, {})
    self.assert_same_states(local_state, haiku_state, "after init")
    self.assertEqual(local_calls, haiku_calls, "initializer calls at init")
    for step, train in enumerate(trains):
      local_out, local_state = _local(program, train, local_calls).apply(
          {}, local_state, rng(step + 1), x
      )
      haiku_out, haiku_state = _haiku(program, train, haiku_calls).apply(
          {}, haiku_state, rng(step + 1), x
      )
      when = f"after apply {step + 1} (train={train})"
      np.testing.assert_array_equal(local_out, haiku_out, err_msg=when)
      self.assert_same_states(local_state, haiku_state, when)
      self.assertEqual(local_calls, haiku_calls, f"initializer calls {when}")


if __name__ == "__main__":
  absltest.main()
