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
"""Refactor-invariant keys: a key as a pure function of where it is drawn.

With ``path_keys=True`` a random handler derives each key from its own key
and the *coordinates* of the draw instead of from a running sequence: the
chain of module calls that leads to the draw, each named by its module's
family (the name without Haiku's ``_<n>`` suffix: ``block_3`` is of family
``block``) and its call index (how many calls of that family its caller
made before it); then the request's attribute path and tag and the number
of earlier draws from it within the call.

A call index counts calls, not modules, so a Python loop over fresh modules
(``block``, ``block_1``, ...) or over one module, ``hk.scan`` and
``hk.layer_stack`` draw the same keys, bit for bit (loops, vmaps and
branches: ``path_key_loops.py``).

Calls are counted by a Haiku method interceptor installed while a path-keyed
handler runs. Where a call index is not well defined (a family called twice
in one loop iteration, a module called directly in two nested loops, a call
after a loop of unknown length that called the same family), a draw raises
``PathKeyCollisionError`` at trace time instead of sharing a key; calls that
draw nothing are never refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import struct
from typing import Any, ContextManager, Iterator

import haiku as hk
import jax
import jax.extend.random as jax_random_ext
import jax.numpy as jnp
import numpy as np

from hk_effects._src import context
from hk_effects._src.haiku import boundaries
from hk_effects._src.haiku import haiku_internals as hki


class PathKeyCollisionError(ValueError):
  """Two draws of a path-keyed random handler would get the same key.

  Example:

  >>> import hk_effects as hke
  >>> issubclass(hke.PathKeyCollisionError, ValueError)
  True
  """


PathKeyCollisionError.__module__ = "hk_effects"


@dataclasses.dataclass(eq=False)
class _Invocation:
  """One traced run of a loop body (or a path-keyed handler's body)."""

  frame: Loop | None
  index: Any  # The loop index (int or traced int); None at the root.
  space: Any
  seq: int
  counts: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Component:
  """One module call on the way to a draw: its family and call index."""

  family: str
  static: int
  index: Any = None  # A loop index added to `static`, or None.
  # Why this call has no well-defined index (raised only if it draws).
  problem: str | None = None


_UNKNOWN = object()  # A count after a loop of unknown length.
# Haiku's instance suffix: module `block_3` is of family `block`.
_SUFFIX = re.compile(r"_\d+$")


@dataclasses.dataclass(eq=False)
class _Call:
  module: Any
  space: Any
  seq: int
  canon: tuple[_Component, ...]  # The coordinates of the call.
  child_counts: dict = dataclasses.field(default_factory=dict)
  draws: dict = dataclasses.field(default_factory=dict)


class _ThreadState:

  def __init__(self):
    self.depth = 0  # Running path-keyed handlers.
    self.invocations: list[_Invocation] = []
    self.calls: list[_Call] = []
    self.members: list[Any] = []
    self.seq = 0


context.declare("path_keys", _ThreadState)
_ctx = context.CONTEXT


def tracking() -> bool:
  """Whether a path-keyed handler runs (the loop wrappers' one check)."""
  return _ctx.path_keys.depth > 0


def _next_seq() -> int:
  _ctx.path_keys.seq += 1
  return _ctx.path_keys.seq


@contextlib.contextmanager
def handler_running() -> Iterator[None]:
  """Counts module calls while a path-keyed handler's body runs."""
  state = _ctx.path_keys
  state.depth += 1
  try:
    if state.depth > 1:
      yield
    else:
      state.invocations.append(_Invocation(None, None, None, _next_seq()))
      with hk.intercept_methods(_intercept):
        yield
  finally:
    state.depth -= 1
    if not state.depth:
      state.invocations.clear()
      state.calls.clear()
      state.members.clear()


def _intercept(next_fun, args, kwargs, context):
  if context.method_name == "__init__":
    return next_fun(*args, **kwargs)
  return _intercept_direct(
      next_fun, context.method_name, context.module, args, kwargs
  )


def _intercept_direct(next_fun, method_name, module, args, kwargs):
  del method_name  # Every method call counts alike.
  calls = _ctx.path_keys.calls  # Read once: this runs on every module call.
  for running in calls:
    if running.module is module:
      return next_fun(*args, **kwargs)
  call = _enter(module)
  calls.append(call)
  try:
    return next_fun(*args, **kwargs)
  finally:
    calls.remove(call)


def install() -> None:
  """Counts module calls for path keys from now on (once, from
  ``hk_effects._src.wiring``)."""
  hki.register_own_interceptor(_intercept, _intercept_direct)


def _innermost_call(space: Any) -> _Call | None:
  for call in reversed(_ctx.path_keys.calls):
    if call.space is space:
      return call
  return None


def _base(space: Any) -> tuple[_Component, ...]:
  """Coordinates of the place a body's outermost calls happen in."""
  call = _innermost_call(space)
  if call is not None:
    return call.canon
  return space.context if isinstance(space, Loop) else ()


def _bump(counts: dict, family: str) -> Any:
  count = counts.get(family, 0)
  counts[family] = count if count is _UNKNOWN else count + 1
  return count


def _enter(module: Any) -> _Call:
  inv = _ctx.path_keys.invocations[-1]
  space = inv.space
  family = _SUFFIX.sub("", module.module_name.rsplit("/", 1)[-1])
  parent = _innermost_call(space)
  if parent is not None and parent.seq > inv.seq:
    component = _counted(
        _bump(parent.child_counts, family),
        family,
        module.module_name,
        "its caller",
    )
  else:
    component = _loop_component(module.module_name, family, parent, inv)
  above = parent.canon if parent is not None else _base(space)
  return _Call(module, space, _next_seq(), above + (component,))


def _counted(count: Any, family: str, path: str, where: str) -> _Component:
  if count is _UNKNOWN:
    return _Component(
        family,
        0,
        problem=(
            f"module {path!r} is called after a loop of unknown length (traced "
            f"bounds or hk.while_loop) that also called {family!r} modules in "
            f"{where}, so its call index is unknown. Call it from a different "
            "module, or give the loop static bounds"
        ),
    )
  return _Component(family, count)


def _loop_component(
    path: str, family: str, parent: _Call | None, inv: _Invocation
) -> _Component:
  """The component of a call made at the top of a loop body (or root)."""
  count = _bump(inv.counts, family)
  frame = inv.frame
  if frame is None:
    return _counted(count, family, path, "the same place")
  loops = [
      v
      for v in _ctx.path_keys.invocations
      if v.space is inv.space
      and v.frame is not None
      and (parent is None or v.seq > parent.seq)
  ]
  if len(loops) > 1:
    kinds = [v.frame.kind for v in loops if v.frame is not None]
    return _Component(
        family,
        0,
        problem=(
            f"module {path!r} is called directly inside two nested loops "
            f"({kinds[0]} and {kinds[-1]}) with no module "
            "call between them, so one call index cannot hold both loop "
            "indices. Call the inner loop from a module's method"
        ),
    )
  if count:
    return _Component(
        family,
        0,
        problem=(
            f"modules of family {family!r} (here {path!r}) are called"
            f" {count + 1} times in one iteration of {frame.kind}; the loop"
            " index is their call index, so iteration i's second call would"
            " share keys with iteration i+1's first. Call them from one module"
            " that the loop body calls once, or, if they are different modules"
            " (unnamed, so Haiku numbered them), give each a name of its own:"
            " the family is the name without its _N suffix, so e.g."
            f" name='attn_{family}' and name='mlp_{family}'"
        ),
    )
  if frame.relative:
    return _Component(family, 0, inv.index)
  # Calls of the family before the loop came first, as in a Python loop.
  enclosing = (
      parent.child_counts
      if parent is not None
      else next(
          v.counts
          for v in reversed(_ctx.path_keys.invocations[:-1])
          if v.space is inv.space
      )
  )
  start = frame.enclosing.setdefault(
      (id(enclosing), family), (enclosing, family, enclosing.get(family, 0))
  )[2]
  component = _counted(start, family, path, "the loop's caller")
  return dataclasses.replace(component, index=inv.index)


class Loop:
  """One call of a loop wrapper (``hk.scan``, ``hk.layer_stack``, ...):
  iteration ``i`` of its body is call ``i`` of the families the body calls.

  ``length`` is None when unknown (traced bounds); ``relative``: the body
  runs in a fresh Haiku frame (``hk.layer_stack``'s lift), so it sees none
  of the calls outside it.

  Example:

  >>> with handler_running():
  ...   scan = Loop("hk.scan", 3)
  ...   with scan.body(0):
  ...     print(_ctx.path_keys.invocations[-1].index)
  ...   scan.finish()
  0
  """

  def __init__(self, kind: str, length: int | None, relative: bool = False):
    self.kind = kind
    self.length = length
    self.relative = relative
    space = _ctx.path_keys.invocations[-1].space
    self.context = _base(space)  # Coordinates of the calling module.
    self.space = self if relative else space
    # Families this loop indexes, by (id(counts), family): the dict counting
    # them outside the loop, the family and its count when the loop started.
    self.enclosing: dict = {}

  def body(self, index: Any) -> ContextManager[Any]:
    """One traced run of the body at loop index ``index``."""
    inv = _Invocation(self, index, self.space, _next_seq())
    return context.pushed(_ctx.path_keys.invocations, inv)

  def finish(self) -> None:
    """After the loop each count it indexes moves on by ``length``, as a
    Python loop's would."""
    for counts, family, start in self.enclosing.values():
      counts[family] = (
          _UNKNOWN
          if self.length is None or start is _UNKNOWN
          else max(counts.get(family, 0), start + self.length)
      )


class Alternatives:
  """Branches of ``hk.cond`` / ``hk.switch``: each starts from the counts
  before the branching, as only one of them runs; after it (``finish``),
  every count is the largest any branch reached."""

  def __init__(self):
    inv = _ctx.path_keys.invocations[-1]
    call = _innermost_call(inv.space)
    if call is None:
      self.tallies = [inv.counts]
    else:
      inside = call.seq > inv.seq  # The branching is in this call's method.
      self.tallies = [call.child_counts if inside else inv.counts, call.draws]
    self.starts = [dict(t) for t in self.tallies]
    self.ends: list[list[dict]] = []

  @contextlib.contextmanager
  def body(self, index: Any) -> Iterator[None]:
    """One traced branch (``index``: its number)."""
    del index
    for tally, start in zip(self.tallies, self.starts):
      tally.clear()
      tally.update(start)
    try:
      yield
    finally:
      self.ends.append([dict(t) for t in self.tallies])

  def finish(self) -> None:
    for i, tally in enumerate(self.tallies):
      merged = dict(self.starts[i])
      for end in self.ends:
        for name, count in end[i].items():
          before = merged.get(name, 0)
          merged[name] = (
              _UNKNOWN if _UNKNOWN in (count, before) else max(count, before)
          )
      tally.clear()
      tally.update(merged)


def member(index: Any) -> ContextManager[Any]:
  """The body of ``hk.vmap(split_rng=True)``: draws fold in ``index``."""
  return context.pushed(_ctx.path_keys.members, index)


# A draw's key is one threefry of its handler's key with a 64-bit message:
# two 32-bit lanes, each a mix of the draw's coordinates. Mixing whole words
# costs a few integer ops, on device only for traced (loop) indices, where a
# fold per coordinate cost a threefry each (+46% HLO on an effect-dense
# model, benchmarks/overhead.py). Each step of a lane is a bijection of the
# lane for a fixed word and of the word for a fixed lane, so two coordinate
# lists of one length that differ in one place never share a message; other
# pairs do with probability about 2**-64. A static index and the same index
# traced (a Python loop and hk.scan) give the same message, bit for bit.
_LANES = ((0x811C9DC5, 0x01000193), (0x9E3779B9, 0x85EBCA6B))
_MASK32 = 0xFFFFFFFF


def _mix(lane: Any, word: Any, multiplier: int) -> Any:
  if isinstance(lane, int) and isinstance(word, int):
    lane = ((lane ^ (word & _MASK32)) * multiplier) & _MASK32
    return lane ^ (lane >> 16)
  lane = (_as_uint32(lane) ^ _as_uint32(word)) * np.uint32(multiplier)
  return lane ^ (lane >> np.uint32(16))


def _as_uint32(value: Any) -> Any:
  if isinstance(value, int):
    return np.uint32(value & _MASK32)
  return jnp.asarray(value).astype(jnp.uint32)


def _message(words: list[Any]) -> tuple[Any, Any]:
  lanes = []
  for offset, multiplier in _LANES:
    lane = _mix(offset, len(words), multiplier)
    for word in words:
      lane = _mix(lane, word, multiplier)
    lanes.append(lane)
  return lanes[0], lanes[1]


def _fold_message(key: jax.Array, message: tuple[Any, Any]) -> jax.Array:
  """``key`` folded with a two-word message: one threefry for a typed
  threefry key (what ``fold_in`` does with one word), two folds otherwise."""
  if (
      jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
      and not key.shape
      and str(jax.random.key_impl(key)) == "threefry2x32"
  ):
    count = jnp.stack([_as_uint32(w) for w in message])
    return jax.random.wrap_key_data(
        jax_random_ext.threefry_2x32(jax.random.key_data(key), count),
        impl="threefry2x32",
    )
  for word in message:
    key = jax.random.fold_in(key, _as_uint32(word))
  return key


def _name_words(text: str) -> list[int]:
  return list(struct.unpack("<2I", hashlib.sha256(text.encode()).digest()[:8]))


def draw(
    root: jax.Array, module_path: str, attribute_path: str, tag: Any
) -> jax.Array:
  """The key of the next draw of request ``(module_path, attribute_path,
  tag)``: a pure function of ``root`` and the draw's coordinates.

  Example:

  >>> import jax
  >>> with handler_running():
  ...   k1 = draw(jax.random.key(0), "noise", "rng", None)
  ...   k2 = draw(jax.random.key(0), "noise", "rng", None)
  >>> bool((jax.random.key_data(k1) != jax.random.key_data(k2)).any())
  True
  """
  boundaries.check_entered(
      f"A path-keyed draw of request {attribute_path!r} of module "
      f"{module_path!r}"
  )
  inv = _ctx.path_keys.invocations[-1]
  call = next(
      (
          c
          for c in reversed(_ctx.path_keys.calls)
          if c.space is inv.space and c.module.module_name == module_path
      ),
      None,
  )
  if call is None:
    # The handler started inside this module's call, which was therefore
    # not counted: number its draws within the current body.
    canon, draws = _base(inv.space), inv.counts
    counter: tuple[Any, ...] = ("draws", module_path, attribute_path, tag)
  else:
    canon, draws, counter = call.canon, call.draws, (attribute_path, tag)
  number = draws.get(counter, 0)
  draws[counter] = number + 1
  for component in canon:
    if component.problem is not None:
      raise PathKeyCollisionError(
          "A path-keyed random handler cannot give request "
          f"{attribute_path!r} of module {module_path!r} a key of its own: "
          f"{component.problem}; or use a random handler without "
          "path_keys=True."
      )
  # The call indices, then a digest of what is static: the families, the
  # request and the number of the draw.
  name = "/".join(c.family for c in canon)
  words = [c.static if c.index is None else c.static + c.index for c in canon]
  words += _name_words(f"{name}|{attribute_path}|{tag!r}|{number}")
  key = _fold_message(jax.random.clone(root), _message(words))
  for index in _ctx.path_keys.members:
    key = jax.random.fold_in(key, index)
  return key
