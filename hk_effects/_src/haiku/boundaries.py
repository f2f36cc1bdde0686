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
"""Haiku's wrappers as boundaries that effects cross.

Every Haiku wrapper that traces a body (``hk.scan``, ``hk.map``,
``hk.fori_loop``, ``hk.while_loop``, ``hk.vmap``, ``hk.remat``, ``hk.cond``,
``hk.switch``, ``hk.layer_stack``, ``hk.dynamic_unroll``, ``hk.grad``,
``hk.value_and_grad``, ``hk.eval_shape``) threads exactly three things
through its JAX primitive: params, Haiku state and the rng sequence
(docs/design.md, section 10). An effect whose data lives elsewhere (told
values on their way to a collector, the loop indices path keys fold in, or a
user-defined effect's own data) must do something at each such call: that
call is a *boundary*, and an effect takes part by subclassing
``BoundaryEffect`` (each hook says when it runs) and calling ``register``.
An effect is consulted only while ``active()`` is true, so a model that uses
none of them runs Haiku's original wrapper and its program is unchanged.
``boundary_wrappers.py`` holds the replacements that drive the hooks.

Bodies entered here are *known*: ``check_entered`` raises
``BoundaryBypassError`` when the innermost Haiku wrapper body running is one
hk_effects never saw entered (a reference to Haiku's original taken before
``import hk_effects``, e.g. ``from haiku import scan``), instead of
repeating a key or dropping a value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from typing import Any, ContextManager

from hk_effects._src import context
from hk_effects._src.haiku import haiku_internals as hki


class BoundaryBypassError(ValueError):
  """An effect ran inside a Haiku wrapper that hk_effects did not see.

  Example:

  >>> import hk_effects as hke
  >>> issubclass(hke.BoundaryBypassError, ValueError)
  True
  """


BoundaryBypassError.__module__ = "hk_effects"


class Carries(str, enum.Enum):
  """How a wrapper brings extra body outputs back out (``Boundary.carries``).

  A ``str`` enum: ``Carries.STACKED == "stacked"``, so code that compares
  with the strings keeps working.

  Example:

  >>> import hk_effects as hke
  >>> hke.boundaries.Carries("stacked") is hke.boundaries.Carries.STACKED
  True
  >>> [c.value for c in hke.boundaries.Carries]
  ['stacked', 'batched', 'unchanged', 'selected', 'carried']
  """

  STACKED = "stacked"  # hk.scan, static-bound hk.fori_loop, hk.layer_stack
  BATCHED = "batched"  # hk.vmap
  UNCHANGED = "unchanged"  # hk.remat
  SELECTED = "selected"  # hk.cond, hk.switch: the taken branch's
  CARRIED = "carried"  # hk.while_loop, traced-bound hk.fori_loop

  @property
  def agrees(self) -> bool:
    """Whether every body (branch, iteration) must give outputs of one
    structure, because only one of them (or the last) comes out."""
    return self in (Carries.SELECTED, Carries.CARRIED)


_LOOP_KINDS = ("hk.scan", "hk.fori_loop", "hk.while_loop", "hk.layer_stack")
_BRANCH_KINDS = ("hk.cond", "hk.switch")


@dataclasses.dataclass(eq=False)
class Boundary:
  """One call of a Haiku wrapper.

  ``kind`` names it (``"hk.scan"``); ``carries`` says how extra body outputs
  come back (a ``Carries``, or None where they cannot: ``hk.grad``,
  ``hk.eval_shape``); ``length`` is the number of iterations, members or
  branches (None if unknown);
  ``relative``: the body runs in a fresh Haiku frame (``hk.layer_stack``);
  ``prefix``: the module path the body's module names lack
  (``hk.layer_stack``'s lifted name, known once the wrapper returned).

  Example:

  >>> import hk_effects as hke
  >>> scan = hke.boundaries.Boundary("hk.scan", "stacked", length=3)
  >>> scan.carries, scan.is_loop, scan.describe()
  (<Carries.STACKED: 'stacked'>, True, 'hk.scan')
  """

  kind: str
  carries: Carries | None
  length: int | None = None
  reverse: bool = False
  split_rng: bool = False
  relative: bool = False
  prefix: str = ""

  def __post_init__(self):
    if self.carries is not None and not isinstance(self.carries, Carries):
      try:
        self.carries = Carries(self.carries)
      except ValueError:
        raise ValueError(
            f"Boundary {self.kind!r}: carries={self.carries!r} is not one of "
            f"{[c.value for c in Carries]} (or None where extra outputs "
            "cannot come back); use hke.boundaries.Carries."
        ) from None

  @property
  def is_loop(self) -> bool:
    return self.kind in _LOOP_KINDS

  @property
  def is_branch(self) -> bool:
    return self.kind in _BRANCH_KINDS

  def describe(self) -> str:
    """The wrapper as an error message names it."""
    if self.kind == "hk.fori_loop" and self.carries is Carries.CARRIED:
      return "hk.fori_loop with traced bounds"
    return self.kind


@dataclasses.dataclass(eq=False)
class Body:
  """One traced run of a boundary's body (see ``BoundaryEffect.body``).

  ``index`` is the iteration, member or branch number where the effect
  asked for it (branches always get theirs), ``level`` the JAX trace level
  the body runs at.

  Example (the branches ``hk.switch`` traces, by number):

  >>> import contextlib, haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class NoteBranches(hke.boundaries.BoundaryEffect):
  ...   def __init__(self):
  ...     self.numbers = []
  ...   def active(self):
  ...     return True
  ...   def body(self, boundary, body, state):
  ...     self.numbers.append(body.index)
  ...     return contextlib.nullcontext()
  >>> notes = hke.boundaries.register(NoteBranches())
  >>> f = hk.transform(lambda i: hk.switch(i, [lambda: 0.0, lambda: 1.0]))
  >>> float(f.apply({}, None, jnp.array(1)))
  1.0
  >>> hke.boundaries.unregister(notes)
  >>> notes.numbers
  [0, 1]
  """

  boundary: Boundary
  index: Any
  level: Any
  carried: Any = None  # This effect's outputs carried into the iteration.
  attempt: int = 0  # Which trace of the wrapper (see ``retrace``).


# Hooks of the earlier protocol, with what replaces them.
_REMOVED_HOOKS = {
    "wants_member": (
        "wants_index, which now also asks for the member index under hk.vmap"
    ),
    "needs_carry": (
        "overriding outputs (an effect that does carries its outputs "
        "wherever boundary.carries is not None; return None where it has "
        "none)"
    ),
    "retracing": (
        "Body.attempt, which goes up by one for the bodies of each new "
        "trace of the wrapper"
    ),
}


class BoundaryEffect:
  """What an effect does at Haiku's wrappers; subclass and ``register``.

  Every hook's default does nothing: override ``active`` and what you need
  (each hook's docstring says when it runs).

  Example (an effect noting the bodies it crossed, while switched on):

  >>> import contextlib, haiku as hk, jax.numpy as jnp
  >>> class NoteBodies(BoundaryEffect):
  ...   def __init__(self):
  ...     self.on, self.kinds = False, []
  ...   def active(self):
  ...     return self.on
  ...   def body(self, boundary, body, state):
  ...     self.kinds.append(boundary.kind)
  ...     return contextlib.nullcontext()
  >>> notes = register(NoteBodies())
  >>> f = hk.transform(lambda x: hk.scan(
  ...     lambda c, _: (c + 1, None), x, None, length=3)[0])
  >>> notes.on = True
  >>> print(f.apply({}, None, jnp.zeros([])))
  3.0
  >>> unregister(notes)
  >>> notes.kinds
  ['hk.scan']
  """

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    for hook, replacement in _REMOVED_HOOKS.items():
      if hasattr(cls, hook):
        raise TypeError(
            f"{cls.__qualname__} defines {hook}(), a hook BoundaryEffect no "
            f"longer has; use {replacement}. See CHANGELOG.md."
        )

  def active(self) -> bool:
    """Whether to take part at the boundaries met now (kept cheap)."""
    return False

  def wants_index(self, boundary: Boundary) -> bool:
    """Whether bodies need ``body.index``: the iteration of a loop, the
    member of ``hk.vmap`` (branches always get their number)."""
    del boundary
    return False

  def enter(self, boundary: Boundary) -> Any:
    """Runs outside, before the wrapper; returns a state for this call."""
    del boundary
    return None

  def body(self, boundary: Boundary, body: Body, state: Any) -> ContextManager:
    """A context manager around each traced run of the body."""
    del boundary, body, state
    return contextlib.nullcontext()

  def outputs(self, boundary: Boundary, state: Any) -> Any:
    """Extra outputs (a PyTree of arrays, or None) of the body just run;
    an effect that overrides this carries them wherever ``boundary.carries``
    is not None, and ``exit`` gets them back as ``carries`` says."""
    del boundary, state
    return None

  def initial(self, boundary: Boundary, state: Any) -> Any:
    """Outputs carried into the first iteration (``"carried"`` only); each
    body gets those carried into it as ``body.carried``."""
    del boundary, state
    return None

  def retrace(self, boundary: Boundary, state: Any) -> bool:
    """After a failed attempt: whether to trace the wrapper again, having
    learned the one structure that branches or a carry need. Each new
    attempt's bodies run with ``body.attempt`` one higher. A wrapper that
    Haiku makes mutate its frame before the JAX primitive fails
    (``hk.fori_loop``'s first step at init) is never retraced: there the
    outputs settle in that first step."""
    del boundary, state
    return False

  def exit(self, boundary: Boundary, state: Any, outputs: Any) -> None:
    """Runs after the wrapper, with the outputs it carried (or None)."""
    del boundary, state, outputs


_EFFECTS: list[BoundaryEffect] = []


def register(effect: BoundaryEffect) -> BoundaryEffect:
  """Makes ``effect`` take part at every boundary (idempotent).

  Example:

  >>> import hk_effects as hke
  >>> class Quiet(hke.boundaries.BoundaryEffect):
  ...   pass
  >>> quiet = hke.boundaries.register(Quiet())
  >>> hke.boundaries.register(quiet) is quiet
  True
  >>> hke.boundaries.unregister(quiet)
  """
  if not isinstance(effect, BoundaryEffect):
    raise TypeError(
        f"register expects a BoundaryEffect instance; got {effect!r}. "
        "Subclass hke.boundaries.BoundaryEffect."
    )
  if effect not in _EFFECTS:
    _EFFECTS.append(effect)
  return effect


def unregister(effect: BoundaryEffect) -> None:
  """Stops ``effect`` taking part at boundaries (no-op if it did not).

  Example:

  >>> import hk_effects as hke
  >>> quiet = hke.boundaries.register(hke.boundaries.BoundaryEffect())
  >>> hke.boundaries.unregister(quiet)
  >>> hke.boundaries.unregister(quiet)  # Already gone: nothing happens.
  """
  if effect in _EFFECTS:
    _EFFECTS.remove(effect)


class _ThreadState:

  def __init__(self):
    self.known: list[Any] = []  # JAX trace levels hk_effects saw entered.


context.declare("boundaries", _ThreadState)
_ctx = context.CONTEXT


def known_level() -> ContextManager[Any]:
  """Marks the current JAX trace level as one hk_effects saw entered (a
  handler's body, a boundary's body), for ``check_entered``.

  Example (what a handler running its body does):

  >>> import hk_effects as hke
  >>> with hke.boundaries.known_level():
  ...   hke.boundaries.check_entered("a use in the body")
  """
  return context.pushed(_ctx.boundaries.known, hki.JaxTraceLevel.current())


def check_entered(what: str) -> None:
  """Raises ``BoundaryBypassError`` if the innermost Haiku wrapper body
  running is one no boundary of hk_effects entered.

  ``what`` names the effect use (module, attribute, method) for the message.

  Example (a use inside ``hk.scan``, whose body hk_effects enters):

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> def count(x):
  ...   def step(c, _):
  ...     hke.boundaries.check_entered("a counter's add")
  ...     return c + 1, None
  ...   return hk.scan(step, x, None, length=2)[0]
  >>> float(hk.transform(count).apply({}, None, jnp.zeros([])))
  2.0
  """
  if not _ctx.boundaries.known or not hki.inside_transform():
    return
  trace_stack = hki.current_frame().jax_trace_stack
  # A transform's own frame (one entry) is no wrapper body: nested models
  # (hk.lift, a layer_stack's layers) need no hook of ours.
  if len(trace_stack) == 1 or trace_stack.peek() == _ctx.boundaries.known[-1]:
    return
  raise BoundaryBypassError(
      f"{what} ran inside a Haiku wrapper body that hk_effects did not see "
      "entered, so it cannot index its iterations, carry its values out or "
      "split its members: the wrapper was most likely called through a "
      "reference to Haiku's original taken before `import hk_effects` (e.g. "
      "`from haiku import scan` or a library holding `haiku.vmap`). Import "
      "hk_effects before such code, or call the wrapper as `hk.scan` / "
      "`hk.vmap` / ... at call time."
  )
