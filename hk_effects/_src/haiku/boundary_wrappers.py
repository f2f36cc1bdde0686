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
"""Haiku's wrappers made boundaries (``hk_effects._src.haiku.boundaries``).

Each replacement calls Haiku's original unless an effect is active; then it
builds a ``Boundary`` for the call, runs the active effects' hooks around it
and around each traced body, and threads their extra outputs through the
JAX primitive (stacked by loops, batched by ``hk.vmap``, unchanged by
``hk.remat``). ``install()`` runs when hk_effects is imported and puts one
replacement under every name Haiku has for a wrapper
(``haiku_internals.replace``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import operator
import re
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp

from hk_effects._src.haiku import boundaries
from hk_effects._src.haiku import haiku_internals as hki
from hk_effects._src.haiku import nesting
from hk_effects._src.haiku import raw_transforms
from hk_effects._src.haiku.boundaries import Body
from hk_effects._src.haiku.boundaries import Boundary
from hk_effects._src.haiku.boundaries import Carries

_EFFECTS = boundaries._EFFECTS  # pylint: disable=protected-access
# A first trace, and one per nesting of outputs learned from it: a branch
# that learns its plan, a loop whose carry grows once.
_ATTEMPTS = 3


class _Crossing:
  """One wrapper call with the effects active at it."""

  def __init__(self, boundary: Boundary):
    self.boundary = boundary
    self.effects = [e for e in _EFFECTS if e.active()]
    self.wants_index = any(e.wants_index(boundary) for e in self.effects)
    # An effect that overrides `outputs` carries them.
    self.needs_carry = boundary.carries is not None and any(
        type(e).outputs is not boundaries.BoundaryEffect.outputs
        for e in self.effects
    )
    self.states = [e.enter(boundary) for e in self.effects]
    self.attempt = 0

  @contextlib.contextmanager
  def inside(
      self, index: Any, carried: tuple[Any, ...] | None = None
  ) -> Iterator[None]:
    level = hki.JaxTraceLevel.current()
    body = Body(self.boundary, index, level, attempt=self.attempt)
    with boundaries.known_level(), contextlib.ExitStack() as stack:
      for i, (effect, state) in enumerate(zip(self.effects, self.states)):
        if carried is not None:
          body = dataclasses.replace(body, carried=carried[i])
        stack.enter_context(effect.body(self.boundary, body, state))
      yield

  def _each(self, hook: str) -> tuple[Any, ...]:
    return tuple(
        getattr(e, hook)(self.boundary, s)
        for e, s in zip(self.effects, self.states)
    )

  def outputs(self) -> tuple[Any, ...] | None:
    """The body's extra outputs where they are carried (else None)."""
    return self._each("outputs") if self.needs_carry else None

  def initial(self) -> tuple[Any, ...] | None:
    return self._each("initial") if self.needs_carry else None

  def traced(self, attempt: Callable[[], Any]) -> Any:
    """``attempt()``, traced again while an effect learned, from a failed
    attempt, the structure its outputs need (``BoundaryEffect.retrace``)."""
    for _ in range(_ATTEMPTS - 1 if self.needs_carry else 0):
      try:
        return attempt()
      except Exception:  # pylint: disable=broad-except
        # Every effect looks at what it saw (`any` would stop at the first).
        if not any(self._each("retrace")):
          raise
      self.attempt += 1
      hki.clone_frame_keys()
    return attempt()

  def finish(self, out: Any) -> Any:
    """Exits with the extra outputs of ``out`` (``(out, extras)`` where
    outputs are carried); returns the wrapper's own."""
    extras = (None,) * len(self.effects)
    if self.needs_carry:
      out, extras = out
    for effect, state, extra in zip(self.effects, self.states, extras):
      effect.exit(self.boundary, state, extra)
    return out

  def step(self, index: Any, fn: Callable[..., Any], /, *args, **kwargs):
    """A loop step ``fn`` (returning ``(carry, y)``) inside the boundary;
    where outputs are carried, they are stacked alongside ``y``."""
    with self.inside(index):
      carry, y = fn(*args, **kwargs)
      return carry, (y, self.outputs()) if self.needs_carry else y

  def run(self, index: Any, body: Callable[..., Any], /, *args, **kwargs):
    """``body`` inside the boundary (and ``(out, extras)`` where outputs
    are carried)."""
    with self.inside(index):
      out = body(*args, **kwargs)
      return (out, self.outputs()) if self.needs_carry else out


def _any_active() -> bool:
  return any(e.active() for e in _EFFECTS)


def _step_indices(length: int, reverse: bool) -> jax.Array:
  # Steps in the order they run: a reverse scan's first is the last position.
  indices = jnp.arange(length)
  return indices[::-1] if reverse else indices


# ------------------------------------------------------------------ wrappers


def _run_scan(orig_scan, crossing: _Crossing, f, init, xs, *scan_args):
  """``orig_scan(f, init, xs, *scan_args)`` crossing the boundary."""
  if crossing.wants_index:
    # hk.scan knows its length (given, or from xs) before it runs.
    boundary = crossing.boundary
    assert boundary.length is not None
    xs = (xs, _step_indices(boundary.length, boundary.reverse))

  def body(carry, x):
    index = None
    if crossing.wants_index:
      x, index = x
    return crossing.step(index, f, carry, x)

  carry, ys = orig_scan(body, init, xs, *scan_args)
  return carry, crossing.finish(ys)


def _make_scan(orig):
  @functools.wraps(orig)
  def scan(f, init, xs, length=None, reverse=False, unroll=1):
    if not _any_active():
      return orig(f, init, xs, length, reverse, unroll)
    steps = length
    if steps is None:
      steps = jax.tree_util.tree_leaves(xs)[0].shape[0]
    crossing = _Crossing(Boundary("hk.scan", Carries.STACKED, steps, reverse))
    return _run_scan(orig, crossing, f, init, xs, length, reverse, unroll)

  return scan


def _make_fori_loop(orig):
  @functools.wraps(orig)
  def fori_loop(lower, upper, body_fun, init_val):
    if not _any_active():
      return orig(lower, upper, body_fun, init_val)
    length: int | None
    try:
      lower_i, upper_i = operator.index(lower), operator.index(upper)
      length = max(0, upper_i - lower_i)
    except (TypeError, jax.errors.ConcretizationTypeError):
      length = None
    static = length is not None
    carries = Carries.STACKED if static else Carries.CARRIED
    crossing = _Crossing(Boundary("hk.fori_loop", carries, length))
    if crossing.needs_carry and static:
      # With static bounds the loop is a scan (as jax.lax.fori_loop lowers
      # it), which can stack what its body returns.
      step = lambda val, i: (body_fun(i, val), None)
      xs = jnp.arange(lower_i, upper_i)
      return _run_scan(hki.original("scan"), crossing, step, init_val, xs)[0]

    # The loop value also carries the effects' outputs (None where not).
    def attempt():
      def carrying(i, val_and_carried):
        val, carried = val_and_carried
        index = i - lower if crossing.wants_index else None
        with crossing.inside(index, carried):
          return body_fun(i, val), crossing.outputs()

      val, out = orig(lower, upper, carrying, (init_val, crossing.initial()))
      return (val, out) if crossing.needs_carry else val

    return crossing.finish(crossing.traced(attempt))

  return fori_loop


def _effect_free_cond(cond_fun):
  """``cond_fun`` whose effects are refused as what they are: JAX runs it
  only to decide whether to go on, so nothing it tells, draws or sets can
  come out of the loop (the raw-transform check would otherwise name a
  wrapper the user already uses)."""

  @functools.wraps(cond_fun)
  def cond(val):
    try:
      return cond_fun(val)
    except raw_transforms.RawTransformError as e:
      use = str(e).partition(" ran under a raw JAX transform")[0]
      raise raw_transforms.RawTransformError(
          f"{use} ran in hk.while_loop's cond_fun, which cannot carry side "
          "outputs, random keys or state: JAX runs it only to decide whether "
          "to go on, and nothing it does comes out of the loop. Move the "
          "effect into body_fun (e.g. tell the value there, or compute the "
          "condition's input in body_fun and carry it in the loop value)."
      ) from e

  return cond


def _make_while_loop(orig):
  @functools.wraps(orig)
  def while_loop(cond_fun, body_fun, init_val):
    cond_fun = _effect_free_cond(cond_fun)
    if not _any_active():
      return orig(cond_fun, body_fun, init_val)
    crossing = _Crossing(Boundary("hk.while_loop", Carries.CARRIED))

    # The loop state also carries the iteration count (to index the body)
    # and the effects' outputs (None where not wanted).
    def attempt():
      def step(state):
        val, index, carried = state
        with crossing.inside(index, carried):
          val = body_fun(val)
          out = crossing.outputs()
        return val, None if index is None else index + 1, out

      index = jnp.zeros((), jnp.int32) if crossing.wants_index else None
      val, _, out = orig(
          lambda state: cond_fun(state[0]),
          step,
          (init_val, index, crossing.initial()),
      )
      return (val, out) if crossing.needs_carry else val

    return crossing.finish(crossing.traced(attempt))

  return while_loop


_MEMBER_AXES = itertools.count()


def _make_vmap(orig):
  @functools.wraps(orig)
  def vmap(
      fun, in_axes=0, out_axes=0, axis_name=None, axis_size=None, **kwargs
  ):
    # Haiku's own checks (split_rng required) read its wrapper's flag.
    orig.require_split_rng = vmap.require_split_rng  # type: ignore[attr-defined]
    plain = orig(fun, in_axes, out_axes, axis_name, axis_size, **kwargs)

    @functools.wraps(fun)
    def mapped(*args):
      try:
        return _mapped(*args)
      except ValueError as e:
        explained = _per_example_state_error(e)
        if explained is None:
          raise
        raise explained from e

    def _mapped(*args):
      if not _any_active():
        return plain(*args)
      split_rng = bool(kwargs.get("split_rng", False))
      crossing = _Crossing(
          Boundary("hk.vmap", Carries.BATCHED, axis_size, split_rng=split_rng)
      )
      name = axis_name
      if crossing.wants_index and name is None:
        name = f"hk_effects_member_{next(_MEMBER_AXES)}"

      def body(*a):
        index = None
        if crossing.wants_index:
          index = jax.lax.axis_index(name)
          # Members are counted here when the call did not say.
          crossing.boundary.length = jax.lax.axis_size(name)
        return crossing.run(index, fun, *a)

      axes = (out_axes, 0) if crossing.needs_carry else out_axes
      return crossing.finish(
          orig(body, in_axes, axes, name, axis_size, **kwargs)(*args)
      )

    return mapped

  vmap.require_split_rng = getattr(orig, "require_split_rng", True)  # type: ignore[attr-defined]
  return vmap


_BATCHED_STATE = re.compile(
    r"out_axes\[1\]\.state\['([^']*)'\]\['([^']*)'\].*got axis spec None "
    r"but output was batched"
)

# (state bundle, key) -> an error saying what a state set to a per-example
# value inside hk.vmap means and how to fix it, or None; the effect that
# knows the fix registers it (hk_effects._src.wiring: hke.vmap's).
STATE_EXPLAINERS: list[Callable[[str, str], ValueError | None]] = []


def _per_example_state_error(error: ValueError) -> ValueError | None:
  """JAX's error for a state that ``hk.vmap`` cannot return (set to a
  per-example value), said as what it means and how to fix it."""
  found = _BATCHED_STATE.search(str(error))
  if found is None:
    return None
  for explain in STATE_EXPLAINERS:
    explained = explain(*found.groups())
    if explained is not None:
      return explained
  return None


def _make_function_wrapper(orig, kind: str, carries: Carries | None):
  """``hk.remat``, ``hk.grad``, ``hk.value_and_grad``: the function they
  wrap is the body, where an effect is active when it is called."""

  @functools.wraps(orig)
  def wrapper(fun, *args, **kwargs):
    plain = orig(fun, *args, **kwargs)

    @functools.wraps(fun)
    def call(*a, **k):
      if not _any_active():
        return plain(*a, **k)
      crossing = _Crossing(Boundary(kind, carries))
      body = functools.partial(crossing.run, None, fun)
      return crossing.finish(orig(body, *args, **kwargs)(*a, **k))

    return call

  return wrapper


def _make_eval_shape(orig):
  @functools.wraps(orig)
  def eval_shape(fun, *args, **kwargs):
    if not _any_active():
      return orig(fun, *args, **kwargs)
    crossing = _Crossing(Boundary("hk.eval_shape", None))
    body = functools.partial(crossing.run, None, fun)
    return crossing.finish(orig(body, *args, **kwargs))

  return eval_shape


def _make_branching(orig, kind: str):
  """``hk.cond`` / ``hk.switch``: each branch a body, numbered."""

  @functools.wraps(orig)
  def branching(*args, **kwargs):
    if not _any_active():
      return orig(*args, **kwargs)
    crossing = _Crossing(Boundary(kind, Carries.SELECTED))
    numbers = itertools.count()

    def branch(fun):
      number = next(numbers)
      return functools.wraps(fun)(functools.partial(crossing.run, number, fun))

    if kind == "hk.switch":
      index, branches, *operands = args
      args = (index, [branch(f) for f in branches], *operands)
    else:  # Haiku's cond takes its branches in two positional layouts.
      args = tuple(branch(a) if callable(a) else a for a in args)
      kwargs = {k: branch(v) if callable(v) else v for k, v in kwargs.items()}
    crossing.boundary.length = next(numbers)
    return crossing.finish(crossing.traced(lambda: orig(*args, **kwargs)))

  return branching


def _make_layer_stack_call(orig):
  @functools.wraps(orig)
  def __call__(self, x, *args_ys, reverse=False):  # pylint: disable=invalid-name
    if not _any_active():
      return orig(self, x, *args_ys, reverse=reverse)
    count = self._count  # pylint: disable=protected-access
    crossing = _Crossing(
        Boundary(
            "hk.layer_stack", Carries.STACKED, count, reverse, relative=True
        )
    )
    if crossing.wants_index:
      # Layer i's index rides along as one more per-layer input, which
      # _call_wrapped takes off again.
      args_ys = (*args_ys, _step_indices(count, reverse))
    self._hke_crossing = crossing  # pylint: disable=protected-access
    before = nesting.lifts_done()
    try:
      out, zs = orig(self, x, *args_ys, reverse=reverse)
    finally:
      del self._hke_crossing
    # Layers run in a nested transform whose module names lack the stack's
    # prefix: the name of the lift it ran its layers' init in.
    crossing.boundary.prefix = nesting.lift_prefix_since(before)
    return out, crossing.finish(zs)

  return __call__


def _make_layer_call(orig):
  # Runs inside layer_stack's per-layer transform: the layer's output `z` is
  # what jax.lax.scan stacks, so extra outputs ride along with it.
  @functools.wraps(orig)
  def _call_wrapped(self, *args, **kwargs):
    crossing = getattr(self, "_hke_crossing", None)
    if crossing is None:
      return orig(self, *args, **kwargs)
    index = None
    if crossing.wants_index:
      *rest, index = args
      args = tuple(rest)
    return crossing.step(index, orig, self, *args, **kwargs)

  return hki.transparent(_call_wrapped)


def install() -> None:
  """Makes Haiku's wrappers boundaries (idempotent; done at import)."""
  hki.replace("scan", _make_scan)
  hki.replace("fori_loop", _make_fori_loop)
  hki.replace("while_loop", _make_while_loop)
  hki.replace("vmap", _make_vmap)
  hki.replace("cond", functools.partial(_make_branching, kind="hk.cond"))
  hki.replace("switch", functools.partial(_make_branching, kind="hk.switch"))
  for name, carries in (
      ("remat", Carries.UNCHANGED),
      ("grad", None),
      ("value_and_grad", None),
  ):
    make = functools.partial(_make_function_wrapper, kind=f"hk.{name}")
    hki.replace(name, functools.partial(make, carries=carries))
  hki.replace("eval_shape", _make_eval_shape)
  hki.replace_method(hki.LayerStack, "__call__", _make_layer_stack_call)
  for cls in hki.LAYER_STACK_IMPLEMENTATIONS:
    hki.replace_method(cls, "_call_wrapped", _make_layer_call)
