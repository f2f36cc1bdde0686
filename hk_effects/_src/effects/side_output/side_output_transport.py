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
or ``hk.layer_stack`` is a tracer of the body's trace, which a Python list
would leak. So it goes to the innermost *target* on a thread-local stack: the
collector's home, or a *transport* pushed inside a boundary's body. A
transport's values leave as extra outputs of the body (JAX stacks or batches
them like the body's own) and are told again after the wrapper ("sum" and
"last" reduced over the stacked axis).

Bodies that must return one structure (``hk.cond`` / ``hk.switch`` branches;
``hk.while_loop`` and traced-bound ``hk.fori_loop``, carrying "last" and
"sum" sites in the loop state) return one *plan* of entries, learned from a
first trace and retraced when bodies differ (``BoundaryEffect.retrace``): a
site some body did not tell is zeros there, with a ``present`` flag (static
``True`` where told unconditionally).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from hk_effects._src import context
from hk_effects._src.core import binding
from hk_effects._src.core import effect_base
from hk_effects._src.core import tree_util
from hk_effects._src.effects.side_output.side_output_reduce import Reduce
from hk_effects._src.haiku import boundaries
from hk_effects._src.haiku import haiku_internals as hki
from hk_effects._src.haiku import nesting
from hk_effects._src.haiku import raw_transforms

# The `present` of a value told unconditionally: static, nothing is traced.
ALWAYS = np.True_


def _last_over_axis(stacked: Any, present: Any, reverse: bool) -> Any:
  n = stacked.shape[0]
  if present is ALWAYS:
    # The last iteration to run is index 0 of a reversed loop.
    return None if n == 0 else stacked[0 if reverse else -1]
  if n == 0:
    return jnp.zeros(stacked.shape[1:], stacked.dtype)
  position = jnp.arange(n).reshape((n,) + (1,) * (present.ndim - 1))
  if reverse:
    chosen = jnp.min(jnp.where(present, position, n - 1), axis=0)
  else:
    chosen = jnp.max(jnp.where(present, position, 0), axis=0)
  index = jnp.broadcast_to(
      _trailing(chosen[None], stacked.ndim), (1,) + stacked.shape[1:]
  )
  # Where no iteration told, `chosen` picks a zero-padded one.
  return jnp.take_along_axis(stacked, index, axis=0)[0]


# How "last" and "sum" fold a site's values, leaf by leaf: combine(earlier,
# later) two tells; over_axis(stacked, present, reverse) a loop's values
# stacked on axis 0 in the order its iterations ran (None: nothing was told).
REDUCTIONS: dict[str, tuple[Callable, Callable]] = {
    "last": (lambda earlier, later: later, _last_over_axis),
    "sum": (
        jnp.add,
        lambda v, present, reverse: jnp.sum(v, axis=0, dtype=v.dtype),
    ),
}
MODES = ("append", *REDUCTIONS)


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
  reduced: bool = False  # A Reduce value that is a (loop's) accumulator.

  @property
  def path(self) -> str:
    return reported_path(self.site)

  def under(self, prefix: str) -> "Told":
    """This value seen from outside a nesting that adds ``prefix``."""
    return dataclasses.replace(self, site=reported_site(self.site, prefix))


def reported_site(site: binding.Site, *prefixes: str) -> binding.Site:
  """``site`` as reported from outside nestings (a nested transform,
  ``hk.layer_stack``) adding path ``prefixes``, outermost first."""
  module_path = "/".join(p for p in (*prefixes, site.module_path) if p)
  return binding.Site(module_path, site.attribute_path)


def reported_path(site: binding.Site) -> str:
  """``SideOutputValue.path`` of a (reported) site."""
  return f"{site.module_path}/{site.attribute_path}"


class Accumulator:
  """Told values in call order; reducing modes keep one entry per site.

  ``presents[i]`` is ``ALWAYS`` or a boolean array: whether entry ``i``
  was told (False where only an untaken branch told it).
  """

  def __init__(self):
    self.told: list[Told] = []
    self.values: list[Any] = []
    self.presents: list[Any] = []
    self._index: dict[tuple[Any, ...], int] = {}

  def add(self, told: Told, value: Any, present: Any = ALWAYS) -> None:
    key = (id(told.scope), told.site, told.tag, told.mode)
    i = None if told.mode == "append" else self._index.get(key)
    # A told Reduce value becomes an accumulator: reduce_fn(init_fn(), value).
    fresh = isinstance(told.mode, Reduce) and not told.reduced
    if i is not None:
      alone = None
      if fresh and self.presents[i] is not ALWAYS:
        alone = told.mode.first(_where(told), value)
      self.values[i], self.presents[i] = _combine(
          told, self.values[i], self.presents[i], value, present, alone=alone
      )
      return
    if told.mode != "append":
      self._index[key] = len(self.values)
    if fresh:
      value = told.mode.first(_where(told), value)
    self.told.append(
        dataclasses.replace(told, reduced=False) if told.reduced else told
    )
    self.values.append(value)
    self.presents.append(present)

  def keys(self) -> list[tuple[Told, int]]:
    """One key per entry: the site and, for "append", which of its tells."""
    counts: dict[Told, int] = {}
    keys = []
    for told in self.told:
      keys.append((told, counts.get(told, 0)))
      counts[told] = keys[-1][1] + 1
    return keys


def _shapes(tree: Any) -> Any:
  return jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), tree)


def _check_alike(told: Told, a: Any, b: Any) -> None:
  if told.mode == "sum":
    why = "'sum' adds every value told at one site,"
  else:
    why = (
        "A value told conditionally keeps the earlier one where it was not"
        " told,"
    )
  if not tree_util.same_form(a, b):
    raise ValueError(
        f"Side output {told.tag!r} (mode={told.mode!r}) at {told.site} was "
        f"told values of different structure or shape: {_shapes(a)} and "
        f"{_shapes(b)}. {why} so they must match; tell values of one shape, "
        "or use mode='append'."
    )


def _trailing(x: Any, ndim: int) -> Any:
  """``x`` with trailing unit axes up to ``ndim``: a flag of a value's
  leading (stacked, batched) axes, broadcast against the value."""
  return jnp.reshape(x, jnp.shape(x) + (1,) * (ndim - jnp.ndim(x)))


def _where(told: Told) -> str:
  return f"Side output {told.tag!r} ({told.mode}) at {told.site}"


def _select(present: Any, told: Any, untold: Any) -> Any:
  """``told`` where ``present``, else ``untold``."""
  if present is ALWAYS:
    return told
  return jax.tree_util.tree_map(
      lambda c, x: jnp.where(_trailing(present, c.ndim), c, x), told, untold
  )


def _combine(
    told: Told, a: Any, pa: Any, b: Any, pb: Any, alone: Any = None
) -> tuple[Any, Any]:
  """Folds the later tell ``b`` into ``a`` as straight-line code would; an
  untold side (present False) leaves the other as it is (``alone``: what
  ``b`` is without ``a``, where that is not ``b`` itself)."""
  if isinstance(told.mode, Reduce):
    # A partial accumulator (a loop's, a branch's) is merged, a value folded.
    combined = told.mode.fold(_where(told), a, b, partial=told.reduced)
  else:
    if told.mode == "sum" or pa is not ALWAYS or pb is not ALWAYS:
      _check_alike(told, a, b)
    combined = jax.tree_util.tree_map(REDUCTIONS[told.mode][0], a, b)
  # Adding zeros changes nothing, so an untold "sum" value needs no select.
  if told.mode != "sum":
    combined = _select(pb, combined, a)
    combined = _select(pa, combined, b if alone is None else alone)
  if pa is ALWAYS or pb is ALWAYS:
    return combined, ALWAYS
  ndim = max(jnp.ndim(pa), jnp.ndim(pb))
  return combined, jnp.logical_or(_trailing(pa, ndim), _trailing(pb, ndim))


@dataclasses.dataclass(eq=False)
class _Target:
  kind: str  # "home", "transport" or "barrier".
  name: str
  level: Any
  scope: Any = None
  accumulator: Accumulator = dataclasses.field(default_factory=Accumulator)
  # The Haiku transform the target lives in (hk_effects._src.haiku.nesting), and
  # whether it runs init.
  token: Any = None
  init: bool = False
  # A while loop's body: its values are carried from iteration to iteration.
  carried: bool = False


@dataclasses.dataclass
class _ThreadState:
  targets: list[_Target] = dataclasses.field(default_factory=list)
  collectors: int = 0


context.declare("side_output_transport", _ThreadState)
_ctx = context.CONTEXT


@contextlib.contextmanager
def collecting(scope) -> Iterator[Accumulator]:
  """Makes ``scope`` a collector whose home is the current trace level."""
  accumulator = Accumulator()
  target = _Target(
      "home",
      "collector",
      hki.JaxTraceLevel.current(),
      scope=scope,
      accumulator=accumulator,
      token=nesting.transform_token(),
      init=hki.inside_transform() and hk.running_init(),
  )
  _ctx.side_output_transport.collectors += 1
  try:
    with context.pushed(_ctx.side_output_transport.targets, target):
      yield accumulator
  finally:
    _ctx.side_output_transport.collectors -= 1


def deliver(told: Told, value: Any, present: Any = ALWAYS) -> None:
  """Gives ``value`` to the innermost target between here and its collector."""
  target = None
  for candidate in reversed(_ctx.side_output_transport.targets):
    if candidate.kind != "home" or candidate.scope is told.scope:
      target = candidate
      break
  if target is None:
    raise SideOutputPlacementError(
        f"Side output {told.tag!r} at {told.site} was told after its "
        f"collector {told.scope.handler_id!r} returned. Call the module "
        "inside the collector's body."
    )
  if target.kind == "barrier":
    raise SideOutputPlacementError(
        f"Side output {told.tag!r} at {told.site} was told inside "
        f"{target.name}, whose body cannot return extra outputs (hk.grad "
        "and hk.eval_shape have no place for them), so the value cannot "
        "reach the collector. Return the value from the body and tell it "
        f"after {target.name} (hke.tell(tag, value) works outside modules)."
    )
  if target.carried and told.mode == "append":
    raise SideOutputPlacementError(
        f"Side output {told.tag!r} (mode='append') at {told.site} was told "
        f"inside {target.name}, which runs an unknown number of iterations, "
        "so its values have no fixed shape to come back in. Use "
        "mode='last' or mode='sum' (carried in the loop state), or a loop "
        "with a static length (hk.scan, hk.fori_loop with Python int "
        "bounds), which stacks appended values."
    )
  if hki.JaxTraceLevel.current() != target.level:
    if target.init and nesting.transform_token() is not target.token:
      # A nested transform's init under a raw JAX transform (hk.lift of a
      # jax.vmap'ed init: an ensemble). init returns parameters and states
      # only, so what is told during it never reaches the user anyway.
      return
    where = f"Side output {told.tag!r} at {told.site}"
    if hki.inside_transform():
      raw_transforms.check_no_raw_transform(
          told.site, "SideOutputEffect", "tell"
      )
      boundaries.check_entered(where)
    raise SideOutputPlacementError(
        f"{where} was told under a JAX trace that {target.name} does not "
        "carry out (a model nested under a raw JAX transform, such as "
        "jax.vmap(inner.apply)), so the value would leak a tracer. Return "
        "it from there and tell it outside, or use hk.vmap / hk.scan / "
        "hk.remat / hk.layer_stack."
    )
  if nesting.transform_token() is not target.token:
    # Told in a model nested in the target's (hk.lift, a re-entrant apply):
    # its module names get the path of the nesting.
    told = told.under(nesting.prefix_from(target.token))
  target.accumulator.add(told, value, present)


def _reduce_stacked(
    told: Told, value: Any, present: Any, reverse: bool
) -> tuple[Any, Any] | None:
  """A loop's stacked values of one entry, reduced by its mode (None:
  nothing was told)."""
  if told.mode == "append":
    return value, present
  if isinstance(told.mode, Reduce):
    return _merge_stacked(told, value, present, reverse)
  _, over_axis = REDUCTIONS[told.mode]
  reduced = jax.tree_util.tree_map(
      lambda v: over_axis(v, present, reverse), value
  )
  if present is not ALWAYS:
    return reduced, jnp.any(present, axis=0)
  leaves = jax.tree_util.tree_leaves(reduced, is_leaf=lambda v: v is None)
  if any(v is None for v in leaves):
    return None
  return reduced, ALWAYS


def _merge_stacked(
    told: Told, stacked: Any, present: Any, reverse: bool
) -> tuple[Any, Any] | None:
  """A loop's partial accumulators merged in the order its iterations ran,
  skipping those that told nothing (None: no iteration ran)."""
  tree_map = jax.tree_util.tree_map
  leaves = jax.tree_util.tree_leaves(stacked)
  if present is ALWAYS and (not leaves or leaves[0].shape[0] == 0):
    return None
  if present is not ALWAYS and present.shape[0] == 0:
    return (
        tree_map(lambda v: jnp.zeros(v.shape[1:], v.dtype), stacked),
        jnp.zeros(present.shape[1:], bool),
    )
  if reverse:  # Position 0 of a reversed loop ran last.
    stacked = tree_map(lambda v: v[::-1], stacked)
    present = present if present is ALWAYS else present[::-1]
  told = dataclasses.replace(told, reduced=True)
  first = tree_map(lambda v: v[0], stacked)
  rest = tree_map(lambda v: v[1:], stacked)
  if present is ALWAYS:
    step = lambda acc, x: (_combine(told, acc, ALWAYS, x, ALWAYS)[0], None)
    return jax.lax.scan(step, first, rest)[0], ALWAYS
  step = lambda carry, x: (_combine(told, *carry, *x), None)
  return jax.lax.scan(step, (first, present[0]), (rest, present[1:]))[0]


@effect_base.pytree_dataclass
class _Entries:
  """Extra outputs of bodies that must agree (branches, carried loops): a
  static ``layout`` makes bodies with different entries different PyTrees,
  which JAX refuses to join rather than mix two sites' values."""

  layout: tuple[Any, ...] = effect_base.static_field()
  values: tuple[Any, ...]


@dataclasses.dataclass(frozen=True)
class _Slot:
  """One entry of a plan: its key, its abstract value, and the shape of its
  ``present`` flag (None: told unconditionally in every body)."""

  key: tuple[Told, int]
  value: Any
  present_shape: tuple[int, ...] | None

  def same(self, other: "_Slot") -> bool:
    return (
        self.key == other.key
        and self.present_shape == other.present_shape
        and tree_util.same_form(self.value, other.value)
    )


def _structure(tree: Any) -> str:
  described = jax.tree_util.tree_map(
      lambda a: f"{a.dtype}[{','.join(map(str, a.shape))}]", tree
  )
  return str(described).replace("'", "")


def _branch(boundary, number: int) -> str:
  # A carried loop's plan is checked against the plan so far, then against
  # an iteration.
  if boundary.carries is boundaries.Carries.CARRIED:
    return ("the values carried in", "an iteration")[number]
  if boundary.kind == "hk.cond":
    return ("true_fun", "false_fun")[number]
  return f"branch {number}"


def _plan(boundary, bodies: list[tuple[_Slot, ...]]) -> tuple[_Slot, ...]:
  """The entries every body returns: all bodies' entries in order of first
  appearance; conditional where some body lacks one (all, in a carried
  loop)."""
  carried = boundary.carries is boundaries.Carries.CARRIED
  slots: dict[Any, _Slot] = {}
  first: dict[Any, int] = {}
  for number, body in enumerate(bodies):
    for slot in body:
      seen = slots.get(slot.key)
      if seen is None:
        slots[slot.key], first[slot.key] = slot, number
      elif not tree_util.same_form(seen.value, slot.value):
        told = slot.key[0]
        raise SideOutputPlacementError(
            f"Side output {told.tag!r} (mode={told.mode!r}) at {told.site} was"
            " told with different structures in the"
            f" {'iterations' if carried else 'branches'}"
            f" of {boundary.describe()}: {_branch(boundary, first[slot.key])}"
            f" told {_structure(seen.value)}, {_branch(boundary, number)} told"
            f" {_structure(slot.value)}. The value after {boundary.describe()}"
            " is the one its body left, so every body that tells it must tell"
            " one structure, shape and dtype; give the other a tag of its own."
        )
      elif slot.present_shape is not None and (
          seen.present_shape is None
          or len(slot.present_shape) > len(seen.present_shape)
      ):
        slots[slot.key] = dataclasses.replace(
            seen, present_shape=slot.present_shape
        )
  plan = []
  for key, slot in slots.items():
    everywhere = all(any(s.key == key for s in body) for body in bodies)
    if slot.present_shape is None and (carried or not everywhere):
      slot = dataclasses.replace(slot, present_shape=())
    plan.append(slot)
  return tuple(plan)


def _fit(plan: tuple[_Slot, ...], keys, values, presents) -> tuple[Any, ...]:
  """One body's entries in ``plan``'s layout: zeros and ``present`` False
  for what it did not tell."""
  by_key = dict(zip(keys, zip(values, presents)))
  fitted = []
  for slot in plan:
    value, present = by_key.get(slot.key, (None, False))
    if value is None:
      value = jax.tree_util.tree_map(jnp.zeros_like, slot.value)
    if slot.present_shape is None:
      fitted.append(value)
      continue
    present = jnp.broadcast_to(
        _trailing(jnp.asarray(present), len(slot.present_shape)),
        slot.present_shape,
    )
    fitted.append((value, present))
  return tuple(fitted)


@dataclasses.dataclass(eq=False)
class _Carry:
  """One boundary call. ``layout``: the last body's extra outputs, one
  ``(Told, conditional)`` each; ``seen``: each body's entries since the last
  attempt."""

  accumulator: Accumulator | None = None  # The current body's.
  layout: tuple[Any, ...] = ()
  plan: tuple[_Slot, ...] | None = None
  seen: list[tuple[_Slot, ...]] = dataclasses.field(default_factory=list)


def _as_partial(told: Told) -> Told:
  """What leaves a body for a ``Reduce`` site is an accumulator already."""
  if isinstance(told.mode, Reduce):
    return dataclasses.replace(told, reduced=True)
  return told


class _SideOutputsAtBoundaries(boundaries.BoundaryEffect):
  """Side outputs at Haiku's boundaries (see the module docstring)."""

  def active(self) -> bool:
    return _ctx.side_output_transport.collectors > 0

  def enter(self, boundary: boundaries.Boundary) -> _Carry:
    return _Carry()

  def initial(self, boundary, state: _Carry) -> Any:
    # Nothing carried into the first iteration: zeros, not told.
    plan = state.plan or ()
    return _Entries(tuple(s.key for s in plan), _fit(plan, (), (), ()))

  def body(self, boundary, body, state: _Carry):
    if boundary.carries is None:
      barrier = _Target("barrier", boundary.describe(), None)
      return context.pushed(_ctx.side_output_transport.targets, barrier)
    state.accumulator = accumulator = Accumulator()
    target = _Target(
        "transport",
        boundary.describe(),
        body.level,
        accumulator=accumulator,
        token=nesting.transform_token(),
        init=hk.running_init(),
        carried=boundary.carries is boundaries.Carries.CARRIED,
    )
    if target.carried:
      # Each iteration goes on from the values carried into it.
      for key, (value, present) in zip(
          body.carried.layout, body.carried.values
      ):
        accumulator.add(_as_partial(key[0]), value, present)
    return context.pushed(_ctx.side_output_transport.targets, target)

  def outputs(self, boundary, state: _Carry) -> Any:
    accumulator = state.accumulator
    assert accumulator is not None  # body() made it.
    values, presents = accumulator.values, accumulator.presents
    if not (boundary.carries and boundary.carries.agrees):
      # Static metadata only; the values leave as outputs of the trace.
      state.layout = tuple(
          (told, p is not ALWAYS) for told, p in zip(accumulator.told, presents)
      )
      return tuple(
          v if p is ALWAYS else (v, p) for v, p in zip(values, presents)
      )
    keys = accumulator.keys()
    carried = boundary.carries is boundaries.Carries.CARRIED
    mine = tuple(
        _Slot(
            key,
            tree_util.abstract(v),
            jnp.shape(p) if p is not ALWAYS else (() if carried else None),
        )
        for key, v, p in zip(keys, values, presents)
    )
    state.seen.append(mine)
    plan = state.plan
    if plan is None or not set(keys) <= {s.key for s in plan}:
      plan = mine  # Its own entries; a new plan is made after the attempt.
    state.layout = tuple((s.key[0], s.present_shape is not None) for s in plan)
    return _Entries(
        tuple(s.key for s in plan), _fit(plan, keys, values, presents)
    )

  def retrace(self, boundary, state: _Carry) -> bool:
    seen, state.seen = state.seen, []
    if boundary.carries is boundaries.Carries.SELECTED:
      if len(seen) != boundary.length or all(
          len(body) == len(seen[0]) and all(map(_Slot.same, body, seen[0]))
          for body in seen
      ):
        return False  # Not all branches traced, or they agreed.
    elif boundary.carries is boundaries.Carries.CARRIED and seen:
      seen = [state.plan or (), seen[-1]]
    else:
      return False
    # An unchanged plan means the failure is not ours.
    plan, state.plan = state.plan, _plan(boundary, seen)
    return plan != state.plan

  def exit(self, boundary, state: _Carry, outputs: Any) -> None:
    if outputs is None:
      return
    if isinstance(outputs, _Entries):
      outputs = outputs.values
    for (told, conditional), out in zip(state.layout, outputs):
      value, present = out if conditional else (out, ALWAYS)
      if boundary.carries is boundaries.Carries.STACKED:
        reduced = _reduce_stacked(told, value, present, boundary.reverse)
        if reduced is None:
          continue
        value, present = reduced
      deliver(_as_partial(told).under(boundary.prefix), value, present)


# Registered by hk_effects._src.wiring.
BOUNDARY_EFFECT = _SideOutputsAtBoundaries()
