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
"""Which Haiku transform a call runs in, and what a nested one is called.

A model may run inside another (``hk.lift(inner.init)``, or a teacher model
applied inside a student's module). An outer collector serves what the
inner model tells, but the inner module names know nothing of the outer
model (its ``linear/out`` would merge with the outer one), so values told in
a nested transform get the path of the nesting as a prefix: the lifting
module's name (``hk.lift(..., name="inner")``) while the inner transform
runs the lift's ``init`` or applies the parameters lift returned; else the
module whose method runs in the outer transform when the inner one starts;
else ``~nested_<k>``, the k-th nested transform met there (k from 0).

A transform is identified by the bottom entry of its frame's JAX-trace
stack: Haiku's wrappers copy that stack, ``hk.transform`` starts a new one.
"""

from __future__ import annotations

from typing import Any

import jax

from hk_effects._src import context
from hk_effects._src.haiku import haiku_internals as hki


def transform_token() -> Any:
  """An object identifying the running Haiku transform (None outside one).

  Example:

  >>> transform_token() is None
  True
  """
  if not hki.inside_transform():
    return None
  return hki.current_frame().jax_trace_stack.peek(0)


class _ThreadState:

  def __init__(self):
    # Lifting-module calls running now: (outer token, prefix).
    self.running_lifts: list[tuple[Any, str]] = []
    # Lifting-module calls that returned (apply): (outer token, prefix, the
    # parameter leaves they returned).
    self.done_lifts: list[tuple[Any, str, tuple[Any, ...]]] = []
    # id(token) -> (token, parent token, prefix), per nested transform met.
    self.parents: dict[int, tuple[Any, Any, str]] = {}
    self.nested_counts: dict[int, int] = {}


context.declare("nesting", _ThreadState)
_ctx = context.CONTEXT


def is_lifting_module(module: Any) -> bool:
  # By type, cached: `isinstance` against a Haiku module class goes through
  # the ABC machinery, and every module method call asks.
  kind = type(module)
  found = _LIFTING_TYPES.get(kind)
  if found is None:
    found = _LIFTING_TYPES[kind] = issubclass(kind, hki.LiftingModule)
  return found


_LIFTING_TYPES: dict[type, bool] = {}


def lift_call_started(module: Any) -> None:
  _ctx.nesting.running_lifts.append((transform_token(), module.prefix_name))


def lift_call_ended(module: Any, result: Any) -> None:
  token, prefix = _ctx.nesting.running_lifts.pop()
  del module
  if result is None:
    return
  leaves = tuple(jax.tree_util.tree_leaves(result))
  _ctx.nesting.done_lifts.append((token, prefix, leaves))


def lifts_done() -> int:
  """How many lifting-module calls returned so far (a position for
  ``lift_prefix_since``)."""
  return len(_ctx.nesting.done_lifts)


def lift_prefix_since(
    position: int, token: Any = None, running: bool = False
) -> str:
  """The prefix of the first lift in transform ``token`` (default: the
  current one) that returned after ``position`` ("" if none):
  ``hk.layer_stack``'s own lift. With ``running``, else the innermost lift
  still running there (``init`` traces the layers inside the lift)."""
  token = transform_token() if token is None else token
  for lift_token, prefix, _ in _ctx.nesting.done_lifts[position:]:
    if lift_token is token:
      return prefix
  for lift_token, prefix in reversed(
      _ctx.nesting.running_lifts if running else ()
  ):
    if lift_token is token:
      return prefix
  return ""


def clear() -> None:
  """Forgets everything (when the outermost hk_effects scope exits)."""
  for records in vars(_ctx.nesting).values():
    records.clear()


def _unwrapped(leaf: Any) -> Any:
  # A parameter mapped by hk.vmap arrives as a batch tracer of the value
  # lift returned. (A jit tracer's `val` is its jaxpr variable: no value.)
  for _ in range(4):
    inner = getattr(leaf, "val", None)
    if not isinstance(inner, (jax.Array, jax.core.Tracer)):
      return leaf
    leaf = inner
  return leaf


def _frames_of(token: Any):
  """(innermost frame of transform ``token``, innermost frame of its parent
  transform or None)."""
  own = None
  for frame in hki.frame_stack:  # Innermost first.
    if frame.jax_trace_stack.peek(0) is token:
      own = frame
    elif own is not None:
      return own, frame
  return own, None


def _name_nested(token: Any) -> tuple[Any, str]:
  """(parent token, prefix) of the nested transform ``token``."""
  own, frame = _frames_of(token)
  if frame is None:
    return None, ""
  parent = frame.jax_trace_stack.peek(0)
  for lift_token, prefix in reversed(_ctx.nesting.running_lifts):
    if lift_token is parent:
      return parent, prefix
  mine = {
      id(_unwrapped(leaf))
      for leaf in jax.tree_util.tree_leaves(dict(own.params))
  }
  candidates = [
      (prefix, leaves)
      for lift_token, prefix, leaves in _ctx.nesting.done_lifts
      if lift_token is parent
  ]
  for prefix, leaves in reversed(candidates):
    # A model without parameters matches the latest lift that returned none.
    if (mine <= {id(leaf) for leaf in leaves}) and (mine or not leaves):
      return parent, prefix
  if frame.module_stack:
    return parent, frame.module_stack.peek().module.module_name
  count = _ctx.nesting.nested_counts.get(id(parent), 0)
  _ctx.nesting.nested_counts[id(parent)] = count + 1
  return parent, f"~nested_{count}"


def prefix_from(home: Any) -> str:
  """The path prefix of the current transform as seen from transform
  ``home`` ("" when they are the same).

  Example:

  >>> prefix_from(None)
  ''
  """
  token = transform_token()
  parts = []
  while token is not None and token is not home:
    known = _ctx.nesting.parents.get(id(token))
    if known is None or known[0] is not token:
      parent, prefix = _name_nested(token)
      known = _ctx.nesting.parents[id(token)] = (token, parent, prefix)
    _, token, prefix = known
    if prefix:
      parts.append(prefix)
  return "/".join(reversed(parts))
