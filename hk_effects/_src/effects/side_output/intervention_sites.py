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
"""Intervention sites: where a handler changes what a ``tell`` returns.

Patching and perturbing handlers rewrite the side-output requests they
intervene on into an ``_IntervenedRequest``, whose ``tell`` applies the
intervention before any outer collector gets the value. A site is addressed
by the path ``CollectingSideOutputs`` reports, which ``hk.layer_stack`` and
nested transforms complete only as values leave them; so a stack of *frames*
(one per traced boundary body) keeps what each adds to the path and, for
loops and ``hk.vmap``, the body's index, to slice stacked values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
from typing import Any

import jax
import jax.numpy as jnp

from hk_effects._src import context
from hk_effects._src.core import binding
from hk_effects._src.core import effect_base
from hk_effects._src.core import tree_util
from hk_effects._src.effects.side_output import side_output
from hk_effects._src.effects.side_output import (
    side_output_transport as transport,
)
from hk_effects._src.haiku import boundaries
from hk_effects._src.haiku import nesting


@dataclasses.dataclass(eq=False)
class _Entered:
  """What a boundary call knew outside, before its body ran."""

  token: Any  # The Haiku transform it was called in.
  lifts_before: int
  outside_prev: str  # Path prefix of `token` seen from the enclosing frame.
  outside_home: dict  # Same, seen from each handler call starting here.


@dataclasses.dataclass(eq=False)
class _Frame:
  """One traced run of a boundary's body."""

  boundary: boundaries.Boundary
  entered: _Entered
  token: Any  # The Haiku transform the body runs in.
  layer_prefix: str  # hk.layer_stack's name, which its body's paths lack.
  index: Any  # Iteration or member index (traced), None where none.


@dataclasses.dataclass(eq=False)
class HandlerCall:
  """One running call of an intervention handler."""

  scope: Any  # binding.HandlerScope.
  start: int  # Frames already open when it started.
  spec: Any  # What the handler intervenes with (its own type).
  seen: dict = dataclasses.field(default_factory=dict)  # path -> tag.
  matched: set = dataclasses.field(default_factory=set)  # Selectors hit.
  # (path, frames) -> tells, for handlers that refuse a path told twice.
  tells: dict = dataclasses.field(default_factory=dict)


class _ThreadState:

  def __init__(self):
    self.frames: list[_Frame] = []
    self.calls: list[HandlerCall] = []
    # Per handler id, the sites' shapes while perturbation_zeros traces.
    self.discovering: list[dict] = []


context.declare("intervention_sites", _ThreadState)
_ctx = context.CONTEXT


def current_call(handler) -> HandlerCall:
  """The innermost running call of ``handler``."""
  for call in reversed(_ctx.intervention_sites.calls):
    if call.scope.handler is handler:
      return call
  raise effect_base.UnhandledEffectError(
      f"{handler!r} rewrote a side output while not running."
  )


class _InterventionsAtBoundaries(boundaries.BoundaryEffect):
  """Keeps the frame stack (see the module docstring)."""

  def active(self) -> bool:
    return bool(_ctx.intervention_sites.calls)

  def wants_index(self, boundary: boundaries.Boundary) -> bool:
    return boundary.is_loop or boundary.kind == "hk.vmap"

  def enter(self, boundary: boundaries.Boundary) -> _Entered:
    frames = _ctx.intervention_sites.frames
    # What transport.deliver() will prefix when the values leave this
    # boundary: the nesting seen from the enclosing target.
    outside_prev = nesting.prefix_from(frames[-1].token) if frames else ""
    outside_home = {
        id(c): nesting.prefix_from(c.scope.token)
        for c in _ctx.intervention_sites.calls
        if c.start == len(frames)
    }
    return _Entered(
        nesting.transform_token(),
        nesting.lifts_done(),
        outside_prev,
        outside_home,
    )

  @contextlib.contextmanager
  def body(self, boundary, body, state: _Entered):
    layer_prefix = ""
    if boundary.relative:
      layer_prefix = nesting.lift_prefix_since(
          state.lifts_before, state.token, running=True
      )
    index = body.index if self.wants_index(boundary) else None
    if index is not None and boundary.reverse and boundary.length is not None:
      # The index counts steps as they run; values stack by position.
      index = boundary.length - 1 - index
    frame = _Frame(
        boundary, state, nesting.transform_token(), layer_prefix, index
    )
    with context.pushed(_ctx.intervention_sites.frames, frame):
      yield


# Registered by hk_effects._src.wiring.
BOUNDARY_EFFECT = _InterventionsAtBoundaries()


def _frames(call: HandlerCall) -> list[_Frame]:
  return _ctx.intervention_sites.frames[call.start :]


def site_path(call: HandlerCall, site: binding.Site) -> str:
  """The path ``CollectingSideOutputs`` would report for ``site`` told now,
  seen from ``call``: the prefixes the transport adds as the value leaves
  each nesting, all at once."""
  prefixes = []
  frames = _frames(call)
  for j, frame in enumerate(frames):
    outside = frame.entered.outside_prev
    if j == 0:
      outside = frame.entered.outside_home.get(id(call), "")
    prefixes += [outside, frame.layer_prefix]
  last = frames[-1].token if frames else call.scope.token
  prefixes.append(nesting.prefix_from(last))
  return transport.reported_path(transport.reported_site(site, *prefixes))


def loop_axes(call: HandlerCall) -> list[tuple[str, Any, Any]]:
  """(wrapper kind, length, traced index) of the loops and ``hk.vmap`` s
  between ``call``'s handler and the tell, outermost first."""
  return [
      (f.boundary.kind, f.boundary.length, f.index)
      for f in _frames(call)
      if f.index is not None
  ]


def count_tell(call: HandlerCall, path: str) -> int:
  """Counts a tell at ``path`` in the running body; returns the count."""
  key = (path, tuple(_frames(call)))
  call.tells[key] = call.tells.get(key, 0) + 1
  return call.tells[key]


@effect_base.pytree_dataclass
class _IntervenedRequest(side_output.SideOutputRequest):
  """A side-output request whose ``tell`` applies ``interventions`` (innermost
  handler first) to the value before any collector gets it."""

  interventions: tuple = effect_base.static_field(default=())

  def tell(self, value: Any) -> Any:
    for intervention in self.interventions:
      value = intervention(value)
    return value


def intervened(
    request: side_output.SideOutputRequest, intervention: Any
) -> side_output.SideOutputRequest:
  """``request`` with ``intervention`` (called with the told value) added."""
  earlier = getattr(request, "interventions", ())
  return _IntervenedRequest(
      request.tag, request.mode, interventions=earlier + (intervention,)
  )


def unknown_length_fix(kind: str, what: str) -> str:
  """Why a loop of unknown length cannot take a stacked value, and the fix
  (the words end a sentence that names the site and the loop)."""
  if kind == "hk.while_loop":
    return (
        f", whose number of iterations is not known until it runs, so {what} "
        "cannot be built or sliced for it. Loop with hk.fori_loop with static "
        "(Python int) bounds, or hk.scan, where the number is known."
    )
  return (
      " with traced bounds, whose length is not known when it is traced, so "
      f"{what} cannot be built or sliced for it. Give {kind} static (Python "
      "int) bounds."
  )


def sliced(replacement: Any, value: Any, axes, where: str, what: str) -> Any:
  """``replacement`` for one told ``value``: as given where it has the
  value's shape, else sliced to the running iteration / member where it is
  stacked over the enclosing loops and ``hk.vmap`` s (``axes``, outermost
  first), as ``CollectingSideOutputs`` returns the values of such a site."""
  lengths = [length for _, length, _ in axes]
  given = jax.tree_util.tree_structure(replacement)
  told = jax.tree_util.tree_structure(value)
  if given != told:  # type: ignore[operator]
    raise ValueError(
        f"{where}: the {what} has structure {given}, but the value told there"
        f" has {told} ({tree_util.forms(value)}). Give a {what} of the told"
        " value's structure."
    )

  def one(r, v):
    r = jnp.asarray(r)
    stacked = tuple(lengths) + tuple(v.shape)
    if r.dtype != v.dtype:
      raise ValueError(
          f"{where}: the {what} has dtype {r.dtype}, but the value told there "
          f"has dtype {v.dtype} (shape {list(v.shape)}). Cast it, e.g. "
          f"`.astype(jnp.{v.dtype})`."
      )
    if r.shape == v.shape:
      return r
    accepted = f"{list(v.shape)}"
    if axes:
      kinds = ", ".join(kind for kind, _, _ in axes)
      accepted += (
          f" (every iteration) or {list(stacked)} (one slice per "
          f"iteration / member of the enclosing {kinds}, as "
          "CollectingSideOutputs stacks them)"
      )
    mismatch = ValueError(
        f"{where}: the {what} has shape {list(r.shape)}, but the value told "
        f"there has shape {list(v.shape)}; give shape {accepted}."
    )
    if r.ndim != len(stacked) or r.shape[len(lengths) :] != v.shape:
      raise mismatch
    for (kind, length, _), n in zip(axes, r.shape):
      if length is None:
        raise ValueError(
            f"{where}: the {what} of shape {list(r.shape)} is stacked over "
            f"{kind}"
            + unknown_length_fix(kind, f"the {what}")
            + f" Or give a value of the told shape {list(v.shape)}, used in "
            "every iteration."
        )
      if n != length:
        raise mismatch
    for _, _, index in axes:
      r = r[index]
    return r

  return jax.tree_util.tree_map(one, replacement, value)


def closest(selector: Any, seen: dict) -> str:
  """The paths (and tags) in ``seen`` nearest to ``selector``, for
  messages."""
  if not seen:
    return (
        "no side output reached this handler (a handler inside it, such "
        "as a CollectingSideOutputs it wraps, claims what it tells "
        "first: put intervention handlers innermost)"
    )
  paths = list(seen)
  if isinstance(selector, str):
    near = difflib.get_close_matches(selector, paths, n=3, cutoff=0.3)
    tags = sorted({repr(t) for t in seen.values()})
    near_tags = difflib.get_close_matches(repr(selector), tags, n=2, cutoff=0.3)
    text = f"closest paths: {near or paths[:5]}"
    return text + (f"; tags: {near_tags}" if near_tags else "")
  return f"paths seen: {paths[:8]}" + (" ..." if len(paths) > 8 else "")
