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
"""How told values reach their collector through Haiku's wrappers.

A value told inside ``hk.scan``, ``hk.vmap``, ``hk.remat``, ``hk.fori_loop``
or ``hk.layer_stack`` is a tracer of the body's trace; kept in a Python list
it would leak, and Haiku state keeps only the last iteration (and is refused
by the stateless ``hk.transform``). So side outputs take part at Haiku's
boundaries (``hk_effects.boundaries``) and ride out as *extra outputs* of
the wrapped body:

1. each told value goes to the innermost *target* on a thread-local stack:
   the collector's home (its own trace level) or a *transport* pushed inside
   a boundary's body;
2. when the body returns, the transport's values are the body's extra
   outputs, so JAX stacks them (loops), batches them (``hk.vmap``) or passes
   them through (``hk.remat``) exactly like the body's own outputs;
3. after the wrapper they are told again at its level ("sum" and "last"
   reduced over the stacked axis), where the next target (an enclosing
   transport, or the collector) takes them. Only static metadata (site, tag,
   mode) stays on the Python side.

A value is accepted only where the current JAX trace is the target's own,
so no tracer can leak: under a raw JAX transform the tell raises
``RawTransformError``, inside a Haiku wrapper hk_effects did not see
``BoundaryBypassError``, and inside a boundary that cannot carry outputs
(``hk.cond``, ``hk.switch``, ``hk.while_loop``, ``hk.fori_loop`` with traced
bounds, ``hk.grad``, ``hk.eval_shape``) ``SideOutputPlacementError`` saying
what to do instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from typing import Any, Callable, Iterator

import haiku as hk
import jax
import jax.numpy as jnp

from hk_effects import binding
from hk_effects import boundaries
from hk_effects import haiku_internals as hki
from hk_effects import nesting
from hk_effects import raw_transforms
from hk_effects.handlers.side_output_reduce import Reduce

MODES = ("append", "last", "sum")


class SideOutputPlacementError(ValueError):
  """A side output was told where it cannot be carried out.

  Example:

  >>> import hk_effects as hke
  >>> issubclass(hke.SideOutputPlacementError, ValueError)
  True
  """

SideOutputPlacementError.__module__ = "hk_effects"


@dataclasses.dataclass(frozen=True)
class Told:
  """Static description of one told value: who collects it and how."""
  scope: Any  # The collecting handler's binding.HandlerScope.
  site: binding.Site
  tag: Any
  mode: Any  # One of MODES, or a Reduce.
  # A Reduce-mode value that is already a partial accumulator (a loop's).
  reduced: bool = False

  @property
  def path(self) -> str:
    return f"{self.site.module_path}/{self.site.attribute_path}"


class Accumulator:
  """Told values in call order; "sum" and "last" keep one entry per site."""

  def __init__(self):
    self.told: list[Told] = []
    self.values: list[Any] = []
    self._index: dict[tuple[Any, ...], int] = {}

  def add(self, told: Told, value: Any) -> None:
    if told.mode == "append":
      self.told.append(told)
      self.values.append(value)
      return
    key = (id(told.scope), told.site, told.tag, told.mode)
    i = self._index.get(key)
    if isinstance(told.mode, Reduce):
      where = f"Side output {told.tag!r} ({told.mode}) at {told.site}"
      if told.reduced and i is not None:
        value = told.mode.merge(where, self.values[i], value)
      elif not told.reduced:
        value = (told.mode.first(where, value) if i is None
                 else told.mode.fold(where, self.values[i], value))
    elif i is not None and told.mode == "sum":
      value = _add(told, self.values[i], value)
    if i is None:
      self._index[key] = len(self.values)
      self.told.append(
          dataclasses.replace(told, reduced=False) if told.reduced else told)
      self.values.append(value)
    else:
      self.values[i] = value


def _add(told: Told, a: Any, b: Any) -> Any:
  shapes = lambda t: jax.tree_util.tree_map(
      lambda x: (x.shape, x.dtype), t)
  if (jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b)  # type: ignore[operator]
      or shapes(a) != shapes(b)):
    raise ValueError(
        f"Side output {told.tag!r} (mode='sum') at {told.site} was told "
        f"values of different structure or shape: {shapes(a)} and "
        f"{shapes(b)}. 'sum' adds every value told at one site, so they must "
        "match; tell values of one shape, or use mode='append'.")
  return jax.tree_util.tree_map(jnp.add, a, b)


@dataclasses.dataclass(eq=False)
class _Target:
  kind: str  # "home", "transport" or "barrier".
  name: str
  level: Any
  scope: Any = None
  accumulator: Accumulator | None = None
  # The Haiku transform the target lives in (hk_effects.nesting), and
  # whether it runs init.
  token: Any = None
  init: bool = False


class _ThreadState(threading.local):

  def __init__(self):
    self.targets: list[_Target] = []
    self.collectors = 0


_state = _ThreadState()


@contextlib.contextmanager
def _pushed(target: _Target) -> Iterator[_Target]:
  _state.targets.append(target)
  try:
    yield target
  finally:
    _state.targets.remove(target)


@contextlib.contextmanager
def collecting(scope) -> Iterator[Accumulator]:
  """Makes ``scope`` a collector whose home is the current trace level."""
  accumulator = Accumulator()
  target = _Target("home", "collector", hki.JaxTraceLevel.current(),
                   scope=scope, accumulator=accumulator,
                   token=nesting.transform_token(),
                   init=hki.inside_transform() and hk.running_init())
  _state.collectors += 1
  try:
    with _pushed(target):
      yield accumulator
  finally:
    _state.collectors -= 1


def deliver(told: Told, value: Any) -> None:
  """Gives ``value`` to the innermost target between here and its collector."""
  target = None
  for candidate in reversed(_state.targets):
    if candidate.kind != "home" or candidate.scope is told.scope:
      target = candidate
      break
  if target is None:
    raise SideOutputPlacementError(
        f"Side output {told.tag!r} at {told.site} was told after its "
        f"collector {told.scope.handler_id!r} returned. Call the module "
        "inside the collector's body.")
  if target.kind == "barrier":
    raise SideOutputPlacementError(
        f"Side output {told.tag!r} at {told.site} was told inside "
        f"{target.name}, whose body cannot return extra outputs (branches, "
        "while loops, loops with traced bounds, hk.grad and hk.eval_shape "
        "have no statically known place for them), so the value cannot "
        "reach the collector. Return the value from the body and tell it "
        f"after {target.name} (hke.tell(tag, value) works outside modules), "
        "or use hk.scan / hk.fori_loop with Python int bounds, which carry "
        "side outputs.")
  if hki.JaxTraceLevel.current() != target.level:
    if target.init and nesting.transform_token() is not target.token:
      # A nested transform's init under a raw JAX transform (hk.lift of a
      # jax.vmap'ed init: an ensemble). init returns parameters and states
      # only, so what is told during it never reaches the user anyway.
      return
    where = f"Side output {told.tag!r} at {told.site}"
    if hki.inside_transform():
      raw_transforms.check_no_raw_transform(told.site, "SideOutputEffect", "tell")
      boundaries.check_entered(where)
    raise SideOutputPlacementError(
        f"{where} was told under a JAX trace that {target.name} does not "
        "carry out (a model nested under a raw JAX transform, such as "
        "jax.vmap(inner.apply)), so the value would leak a tracer. Return "
        "it from there and tell it outside, or use hk.vmap / hk.scan / "
        "hk.remat / hk.layer_stack.")
  if nesting.transform_token() is not target.token:
    # Told in a model nested in the target's (hk.lift, a re-entrant apply):
    # its module names get the path of the nesting.
    prefix = nesting.prefix_from(target.token)
    if prefix:
      told = dataclasses.replace(told, site=binding.Site(
          f"{prefix}/{told.site.module_path}", told.site.attribute_path))
  # Only barriers lack an accumulator, and they raised above.
  assert target.accumulator is not None
  target.accumulator.add(told, value)


def _stacked(reverse: bool) -> Callable[[Told, Any], Any]:
  """Reduces values stacked by a loop according to their mode."""
  def reduce(told: Told, value: Any) -> Any:
    mode = told.mode
    if mode == "append":
      return value
    if isinstance(mode, Reduce):
      return mode.merge_stacked(
          f"Side output {told.tag!r} ({mode}) at {told.site}", value, reverse)
    if mode == "sum":
      return jax.tree_util.tree_map(
          lambda v: jnp.sum(v, axis=0, dtype=v.dtype), value)
    if any(v.shape[0] == 0 for v in jax.tree_util.tree_leaves(value)):
      return None  # No iteration ran, so nothing was told.
    # The last iteration to run is index 0 of a reversed loop.
    return jax.tree_util.tree_map(lambda v: v[0 if reverse else -1], value)
  return reduce


def _unchanged(told: Told, value: Any) -> Any:
  del told
  return value


@dataclasses.dataclass(eq=False)
class _Carry:
  """One boundary call: the target of its current body, what it told."""
  target: _Target | None = None
  told: tuple[Told, ...] = ()


class _SideOutputsAtBoundaries(boundaries.BoundaryEffect):
  """Side outputs at Haiku's boundaries (see the module docstring)."""

  def active(self) -> bool:
    return _state.collectors > 0

  def needs_carry(self, boundary: boundaries.Boundary) -> bool:
    return boundary.carries is not None

  def enter(self, boundary: boundaries.Boundary) -> _Carry:
    return _Carry()

  def body(self, boundary, body, state: _Carry):
    if boundary.carries is None:
      return _pushed(_Target("barrier", boundary.describe(), None))
    state.target = _Target("transport", boundary.kind, body.level,
                           accumulator=Accumulator(),
                           token=nesting.transform_token(),
                           init=hk.running_init())
    return _pushed(state.target)

  def outputs(self, boundary, state: _Carry) -> Any:
    if boundary.carries is None:
      return None
    # Static metadata only; the values leave as outputs of the trace.
    accumulator = state.target.accumulator if state.target else None
    assert accumulator is not None  # Set by body() for a carrying boundary.
    state.told = tuple(accumulator.told)
    return tuple(accumulator.values)

  def exit(self, boundary, state: _Carry, outputs: Any) -> None:
    if outputs is None:
      return
    reduce = (_stacked(boundary.reverse) if boundary.carries == "stacked"
              else _unchanged)
    for told, value in zip(state.told, outputs):
      value = reduce(told, value)
      if value is None:
        continue
      if isinstance(told.mode, Reduce):
        told = dataclasses.replace(told, reduced=True)
      if boundary.prefix:
        told = dataclasses.replace(told, site=binding.Site(
            f"{boundary.prefix}/{told.site.module_path}",
            told.site.attribute_path))
      deliver(told, value)


boundaries.register(_SideOutputsAtBoundaries())
