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
"""The local-state effect: layers keep state with ``get()`` / ``set(value)``.

Local states live in Haiku state, which Haiku threads through its control
flow and transforms, so a ``set`` anywhere comes out of ``apply`` under
``hke.transform_with_state``. As with ``hk.get_state``, a state missing from
``apply``'s state is created there, and only then does its initializer run.

Naming: the states of category ``c`` are the entries of the Haiku state
bundle ``"~local_state/c"``, keyed by name, or for an unnamed state by
module name and attribute path (``"transformer/~/block_3/attention:cache"``).

``state_sharing`` (Penzai's three levels) decides what two requests with one
explicit name mean: ``"forbidden"`` is an error; ``"allowed"`` shares one value
when both have the same initializer object (or one is a
``SharedLocalStateRequest``); ``"unsafe"`` always shares, and the initial value
of the request bound last wins.

``local_state_rewriting.py`` freezes states and hoists shared ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Protocol

import haiku as hk
import jax

from hk_effects._src import context
from hk_effects._src.core import binding
from hk_effects._src.core import effect_base
from hk_effects._src.core import tree_util
from hk_effects._src.haiku import haiku_internals as hki
from hk_effects._src.haiku import nesting

BUNDLE_PREFIX = "~local_state/"
_SHARING_LEVELS = ("forbidden", "allowed", "unsafe")


class LocalStateEffect(Protocol):
  """Protocol of the local-state effect.

  Example:

  >>> import jax.numpy as jnp, hk_effects as hke
  >>> count: hke.LocalStateEffect = hke.FrozenLocalStateRequest(
  ...     jnp.zeros([]), category="c")
  >>> print(count.get())
  0.0
  """

  def get(self) -> Any:
    """Returns the current value of the state."""

  def set(self, value: Any) -> None:
    """Replaces the value of the state (same structure, shapes, dtypes)."""


class _LocalStateRequest(effect_base.EffectRequest, protocol=LocalStateEffect):
  """What the three local-state requests share."""

  _kind = "local state"

  @classmethod
  def suggested_handler(cls) -> str:
    return "hke.handlers.handle_local_states(forward)"

  def describe(self) -> str:
    named = f" {self.name!r}" if self.name else ""
    return f"{self._kind}{named} [{self.category}]"

  def signature_detail(self, calls, conditional, state, site):
    del conditional
    name = repr(self.name) if self.name else "unnamed"
    head = f"state {name} [{self.category}]"
    shapes = sorted({tree_util.describe(c.value) for c in calls})
    seen = ", ".join(shapes) or "?"
    bundle, key = bundle_name(self.category), state_key(self, site)
    for stored_in, entries in (state or {}).items():
      if f"/{stored_in}".endswith(f"/{bundle}") and key in entries:
        stored = tree_util.describe(entries[key])
        if [stored] == shapes:
          break
        # Per member of hke.vmap (or per layer): the module sees one slice.
        per = "layer" if stored_in.startswith("__layer_stack") else "member"
        return f"{head}: {stored} stored, {seen} per {per}"
    return f"{head}: {seen}"


@effect_base.pytree_dataclass
class InitialLocalStateRequest(_LocalStateRequest):
  """Requests a local state whose initial value ``state_initializer()`` makes.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Counter(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.count = hke.InitialLocalStateRequest(
  ...         lambda: jnp.zeros([], jnp.int32), category="counters")
  ...   def __call__(self, x):
  ...     self.count.set(self.count.get() + 1)
  ...     return x
  >>> f = hke.transform_with_state(
  ...     hke.handlers.handle_local_states(lambda x: Counter()(x)))
  >>> params, state = f.init(None, 0.0)
  >>> _, state = f.apply(params, state, None, 0.0)
  >>> print(state["~local_state/counters"]["counter:count"])
  1
  """

  state_initializer: Callable[[], Any] = effect_base.static_field()
  category: Any = effect_base.static_field()
  name: str | None = effect_base.static_field(default=None)

  @classmethod
  def porting_hint(cls) -> str:
    return (
        " The port of hk.get_state(name, shape, init) is self.x = "
        "hke.InitialLocalStateRequest(lambda: init(shape, dtype)) in "
        "__init__, read with self.x.get() and written with self.x.set(v) in "
        "__call__."
    )

  def initial_value(self) -> Any:
    return self.state_initializer()

  def inspection_stand_in(self, method: str, *args) -> Any:
    return self.initial_value() if method == "get" else None


@effect_base.pytree_dataclass
class FrozenLocalStateRequest(_LocalStateRequest):
  """A local state with a fixed value: ``get()`` works even when unhandled.

  Under ``handle_local_states`` it becomes a mutable state starting at
  ``state``; unhandled, ``get()`` returns ``state`` and ``set`` is an error.

  Example:

  >>> import jax.numpy as jnp, hk_effects as hke
  >>> req = hke.FrozenLocalStateRequest(jnp.ones(2), category="c")
  >>> print(req.get())
  [1. 1.]
  """

  state: Any
  category: Any = effect_base.static_field()
  name: str | None = effect_base.static_field(default=None)
  _kind = "frozen local state"

  def initial_value(self) -> Any:
    return self.state

  def inspection_stand_in(self, method: str, *args) -> Any:
    return self.state if method == "get" else None

  def get(self) -> Any:
    return self.state

  def set(self, value: Any) -> None:
    raise effect_base.UnhandledEffectError(
        f"set() was called on {self.describe()}, which no handler serves: a "
        "frozen state without a handler is read-only. Wrap the forward "
        "function in hke.handlers.handle_local_states(...) to make it mutable."
    )


@effect_base.pytree_dataclass
class SharedLocalStateRequest(_LocalStateRequest):
  """Refers to the local state another request created under ``name``.

  Example:

  >>> import hk_effects as hke
  >>> hke.SharedLocalStateRequest("cache", category="c").name
  'cache'
  """

  name: str = effect_base.static_field()
  category: Any = effect_base.static_field()
  _kind = "shared local state"


@effect_base.pytree_dataclass
class HandledLocalStateRef(effect_base.HandledEffectRef):
  """A local-state request claimed by a local-state handler.

  Example:

  >>> import hk_effects as hke
  >>> ref = hke.HandledLocalStateRef(
  ...     hke.SharedLocalStateRequest("s", "c"), handler_id="h")
  >>> ref.handler_id
  'h'
  """


def state_key(request: effect_base.EffectRequest, site: binding.Site) -> str:
  """The key of a request's state in its bundle: its name, or
  ``"<module path>:<attribute path>"``."""
  name = getattr(request, "name", None)
  return name if name else f"{site.module_path}:{site.attribute_path}"


def bundle_name(category: Any) -> str:
  """The Haiku state bundle holding the local states of ``category``."""
  return f"{BUNDLE_PREFIX}{category}"


def _same_leaves(expected: Any, value: Any) -> bool:
  """Whether both trees have one structure, shapes and dtypes (False for a
  Python scalar leaf)."""
  expected_leaves, expected_def = jax.tree_util.tree_flatten(expected)
  value_leaves, value_def = jax.tree_util.tree_flatten(value)
  if expected_def != value_def:  # type: ignore[operator]  # (jaxlib stubs)
    return False
  try:
    return all(
        a.shape == b.shape and a.dtype == b.dtype
        for a, b in zip(expected_leaves, value_leaves)
    )
  except AttributeError:  # A Python scalar.
    return False


def _check_like(what: str, expected: Any, value: Any, fix: str) -> None:
  # Most values match as they are: ShapeDtypeStructs are built only if not.
  if not _same_leaves(expected, value):
    expected, value = tree_util.abstract(expected), tree_util.abstract(value)
    if not _same_leaves(expected, value):
      raise ValueError(
          f"{what} has the wrong structure, shape or dtype: expected "
          f"{expected}, got {value}. {fix}"
      )


class LocalStateRuntimeImpl(effect_base.EffectRuntimeImpl):
  """Reads and writes one local state in the current Haiku frame's state."""

  __slots__ = ("bundle", "key", "request")
  refuses_raw_transforms = True

  def __init__(self, scope, site, bundle, key, request):
    super().__init__(scope, site)
    self.bundle = bundle
    self.key = key
    self.request = request

  def _entry(self):
    effect_scope = binding.current_effect_scope()
    if effect_scope is not None and effect_scope.stateless:
      raise ValueError(
          f"Local state {self.key!r} at {self.site} was used under "
          "hke.transform, which has no state. Use hke.transform_with_state: "
          "its init returns the local states and its apply updates them."
      )
    # Any: Haiku annotates frame state as arrays, local states keep pairs.
    frame_state: Any = hki.frame_state()
    bundle = frame_state[self.bundle]
    pair = bundle.get(self.key)
    if pair is None:
      pair = self._create(bundle)
    elif (
        isinstance(self.request, FrozenLocalStateRequest)
        and (self.bundle, self.key) not in self.scope.state.checked
    ):
      # A frozen value is known without running user code, so a state given
      # to apply is checked against it (once per handler call). An
      # initializer is never run for that: it may draw keys or count calls.
      self.scope.state.checked.add((self.bundle, self.key))
      _check_like(
          f"Local state {self.key!r} (bundle {self.bundle!r}) given to apply",
          self.request.state,
          pair.current,
          "Pass the state returned by init (or one of the same "
          "structure, shapes and dtypes).",
      )
    return bundle, pair

  def _create(self, bundle):
    """Creates a missing state, at init or (as ``hk.get_state`` does) in
    apply: the only place an initializer runs."""
    if isinstance(self.request, SharedLocalStateRequest):
      given = (
          ""
          if hk.running_init()
          else "it is not in the state given to apply, and "
      )
      raise ValueError(
          f"SharedLocalStateRequest {self.key!r} at {self.site} found no "
          f"state named {self.key!r} in category {self.request.category!r} "
          f"(bundle {self.bundle!r}): {given}no module created it before "
          "this one ran. A shared request refers to a state that an "
          f"InitialLocalStateRequest(..., name={self.key!r}) creates: make "
          "sure that module runs first, pass apply the state returned by "
          "init (which holds it), or use an InitialLocalStateRequest."
      )
    with member_rng(self.bundle, self.key):
      value = self.request.initial_value()
    bundle[self.key] = hki.StatePair(value, value)
    self.scope.state.created.add((self.bundle, self.key))
    return bundle[self.key]

  def get(self) -> Any:
    return self._entry()[1].current

  def set(self, value: Any) -> None:
    bundle, pair = self._entry()
    _check_like(
        f"The value set into local state {self.key!r} at {self.site}",
        pair.current,
        value,
        "A local state keeps its structure, shapes and dtypes: cast "
        "or reshape the new value (or, if the state given to apply "
        "is wrong, pass the state returned by init).",
    )
    bundle[self.key] = hki.StatePair(pair.initial, value)


# (which bundles are per member, the member index) of the hke.vmap bodies
# running, innermost last.
context.declare("local_state_members", list)
_ctx = context.CONTEXT


def per_member(mapped: Callable[[str], bool], index: Any) -> Any:
  """Inside ``hke.vmap``'s body: states of the bundles ``mapped`` accepts
  are one per member, ``index`` the member's (``member_rng``)."""
  return context.pushed(_ctx.local_state_members, (mapped, index))


def member_rng(bundle: str, key: str) -> Any:
  """Where a state's initializer runs: inside ``hke.vmap``, for a per-member
  state, under an rng of its own per member, read from Haiku's rng without
  drawing from it (so params are made from the keys they would get without
  hke.vmap)."""
  for mapped, index in reversed(_ctx.local_state_members):
    if mapped(bundle):
      rng = hki.current_frame().rng_stack.peek()
      if rng is None:
        break
      # The clone keeps JAX's key-reuse checker content: Haiku splits the
      # key itself later.
      base = jax.random.clone(rng.internal_state[0])
      base = jax.random.fold_in(base, tree_util.hash32(f"{bundle}|{key}"))
      return hk.with_rng(jax.random.fold_in(base, index))
  return contextlib.nullcontext()


@dataclasses.dataclass
class _LocalStateCall:
  """One call of a local-state handler: per Haiku transform, the first
  request met for each explicit name (``named``, for ``state_sharing``), the
  states it ``created`` and the frozen states whose given value it ``checked``.
  """

  named: dict[int, Any] = dataclasses.field(default_factory=dict)
  created: set[tuple[str, str]] = dataclasses.field(default_factory=set)
  checked: set[tuple[str, str]] = dataclasses.field(default_factory=set)


class WithFunctionalLocalState(
    effect_base.EffectHandler, protocol=LocalStateEffect
):
  """Serves local states from Haiku state (see ``handle_local_states``).

  Example:

  >>> import hk_effects as hke
  >>> h = hke.handlers.handle_local_states(lambda x: x, category="c")
  >>> isinstance(h, hke.handlers.WithFunctionalLocalState)
  True
  """

  def __init__(
      self, body, category, category_predicate, state_sharing, handler_id
  ):
    if state_sharing not in _SHARING_LEVELS:
      raise ValueError(
          f"state_sharing must be one of {_SHARING_LEVELS}; got "
          f"{state_sharing!r}."
      )
    if category is not None and category_predicate is not None:
      raise ValueError(
          "Pass either category or category_predicate to handle_local_states, "
          f"not both (got {category!r} and {category_predicate!r})."
      )
    if category_predicate is not None and not callable(category_predicate):
      raise TypeError(
          f"category_predicate must be callable; got {category_predicate!r}."
      )
    self.category = category
    self.category_predicate = category_predicate
    self.state_sharing = state_sharing
    predicate_name = getattr(category_predicate, "__qualname__", None)
    config = f"{category!r}|{predicate_name}|{state_sharing}"
    super().__init__(body, handler_id, config=config)

  def claims(self, request):
    if request.effect_protocol() is not LocalStateEffect:
      return False
    if self.category_predicate is not None:
      return bool(self.category_predicate(request.category))
    return self.category is None or request.category == self.category

  def make_ref(self, request):
    return HandledLocalStateRef(request, handler_id=self.handler_id)

  def runtime_impl(self, scope, ref, site):
    request = ref.request
    key = state_key(request, site)
    bundle = bundle_name(request.category)
    # A shared request refers to the state and never conflicts; recording it
    # would hide a duplicate name met after it.
    if getattr(request, "name", None) and not isinstance(
        request, SharedLocalStateRequest
    ):
      self._check_sharing(scope, (bundle, key), site, request)
    return LocalStateRuntimeImpl(scope, site, bundle, key, request)

  def _check_sharing(self, scope, full_key, site, request):
    # Names are per Haiku transform: a model nested in another (hk.lift,
    # lift_with_state) keeps its states in its own state dict.
    token = nesting.transform_token()
    entry = scope.state.named.get(id(token))
    if entry is None or entry[0] is not token:
      entry = scope.state.named[id(token)] = (token, {})
    claims = entry[1]
    first_site, first = claims.get(full_key, (site, None))
    if first is None or first_site == site:
      claims[full_key] = (site, request)
      return
    if self.state_sharing == "forbidden":
      raise ValueError(
          f"Two local states are named {full_key[1]!r}: at {first_site} and "
          f"at {site}, and state_sharing='forbidden'. Give them distinct "
          "names, or pass state_sharing='allowed' (same initializer object) "
          "or 'unsafe' to share one value, or use SharedLocalStateRequest."
      )
    if self.state_sharing == "allowed" and (
        getattr(first, "state_initializer", None)
        is not getattr(request, "state_initializer", None)
    ):
      raise ValueError(
          f"Local states named {full_key[1]!r} at {first_site} and {site} "
          "have different initializers, so state_sharing='allowed' cannot "
          "share them. Use the same initializer object, a "
          "SharedLocalStateRequest, or state_sharing='unsafe'."
      )
    if self.state_sharing == "unsafe" and full_key in scope.state.created:
      # "Last one wins": the later request's initial value replaces the
      # earlier one while no module has set it yet (at init, or in the apply
      # that creates the state; a state given to apply is kept).
      bundle = hki.frame_state()[full_key[0]]
      pair = bundle.get(full_key[1])
      if pair is not None and pair.initial is pair.current:
        value = request.initial_value()
        bundle[full_key[1]] = hki.StatePair(value, value)
    claims[full_key] = (site, request)

  def __call__(self, arg):
    if not hki.inside_transform():
      raise ValueError(
          f"{self!r} was called outside a Haiku transform, but local states "
          "live in Haiku state. Call it inside hke.transform_with_state(...) "
          "init / apply."
      )
    # Entries the body does not touch stay in Haiku's state as they are.
    with binding.handler_scope(self, _LocalStateCall()):
      return self.body(arg)


def handle_local_states(
    body: Callable[[Any], Any],
    category: Any = None,
    category_predicate: Callable[[Any], bool] | None = None,
    state_sharing: str = "forbidden",
    handler_id: str | None = None,
) -> WithFunctionalLocalState:
  """Serves the local states of ``body`` from Haiku state.

  Args:
    body: the one-argument forward function.
    category: claim only requests of this category (default: all).
    category_predicate: alternatively, claim categories for which this
      returns True.
    state_sharing: ``"forbidden"``, ``"allowed"`` or ``"unsafe"`` (see the
      module docstring).
    handler_id: an explicit id; inferred when None.

  Returns:
    A ``WithFunctionalLocalState`` handler, to be used inside
    ``hke.transform_with_state``: ``init`` returns the initial states and
    ``apply`` the updated ones.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Total(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.total = hke.InitialLocalStateRequest(
  ...         lambda: jnp.zeros([]), category="sums")
  ...   def __call__(self, x):
  ...     self.total.set(self.total.get() + x)
  ...     return x
  >>> f = hke.transform_with_state(hke.handlers.handle_local_states(
  ...     lambda x: Total()(x), category="sums"))
  >>> params, state = f.init(None, 2.0)
  >>> _, state = f.apply(params, state, None, 2.0)
  >>> _, state = f.apply(params, state, None, 3.0)
  >>> print(state["~local_state/sums"]["total:total"])
  5.0
  """
  return WithFunctionalLocalState(
      body, category, category_predicate, state_sharing, handler_id
  )
