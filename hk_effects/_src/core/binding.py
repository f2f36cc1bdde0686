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
"""Binding by traversal: how requests meet the handlers that serve them.

While a handler (or ``hke.transform``) runs, a Haiku method interceptor
walks, at every module method call, the module's attributes (and the dicts,
lists, tuples and dataclasses inside them) and its class's attributes that
hold requests. Each request is bound to the innermost running handler that
claims it, becoming that handler's ``HandledEffectRef``; for the duration of
the call the module sees the handler's runtime implementation instead, and
after it holds the refs again.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import types
from typing import Any, Callable, Iterator

import haiku as hk
import jax
import numpy as np

from hk_effects._src import context
from hk_effects._src.core import effect_base
from hk_effects._src.haiku import boundaries
from hk_effects._src.haiku import haiku_internals as hki
from hk_effects._src.haiku import nesting

_EFFECT_NODE_TYPES = (effect_base.EffectRequest, effect_base.HandledEffectRef)
# Values of these exact types hold no effect node, found with one set lookup
# (`isinstance(x, hk.Module)` costs about 10 µs per attribute and call).
_SKIP_EXACT_TYPES: frozenset[type] = frozenset({
    str,
    int,
    float,
    bool,
    type(None),
    bytes,
    complex,
    set,
    frozenset,
    types.FunctionType,
    types.MethodType,
    types.BuiltinFunctionType,
})
# Their subclasses too, and these.
_SKIP_TYPES: tuple[type, ...] = (
    *_SKIP_EXACT_TYPES,
    np.ndarray,
    jax.Array,
    hk.Module,
    type,
)


@dataclasses.dataclass(frozen=True)
class Site:
  """Where a request sits: the module's Haiku name and the attribute path."""

  module_path: str
  attribute_path: str

  def __str__(self) -> str:
    return f"module {self.module_path!r}, attribute {self.attribute_path!r}"


class HandlerScope:
  """One running call of one handler; runtime impls check ``active``.

  ``state`` is what the handler keeps for this call (its own type: the
  values it serves, what was used), given to ``handler_scope``; ``token``
  names the Haiku transform it was entered in (``nesting``).
  """

  def __init__(self, handler, state: Any = None, token: Any = None):
    self.handler = handler
    self.handler_id = handler.handler_id
    self.state = state
    self.active = True
    self.token = token


class BindingObserver:
  """Watches binding for a pass that only looks (``hke.bindings``): all
  the core knows of inspection. An effect scope opened with an observer
  reports each binding to it, lets it wrap the runtime implementation the
  method sees, and lets it stop the pass where an unclaimed request without
  an ``inspection_stand_in`` is used."""

  def bound(self, site: Site, request: Any, handler_id: str) -> None:
    """Called once per binding of ``request`` at ``site``."""

  def runtime(
      self, runtime: Any, site: Site, request: Any, handler_id: str
  ) -> Any:
    """What the method sees in place of ``runtime`` (itself by default)."""
    del site, request, handler_id
    return runtime

  def unhandled_use(self, site: Site, request: Any) -> None:
    """Called before an unclaimed request's protocol method would raise;
    raising here ends the pass."""


@dataclasses.dataclass(eq=False)
class _EffectScope:
  """What ``hke.transform`` (or an inspection pass) adds to a call."""

  stateless: bool = False
  observer: BindingObserver | None = None
  unhandled: list[tuple[Site, Any]] = dataclasses.field(default_factory=list)


class _ThreadState:

  def __init__(self):
    self.scopes: list[HandlerScope] = []
    self.effect_scopes: list[_EffectScope] = []
    # id(module) -> (scope_version, swaps) of its innermost running binding:
    # a nested call rebinds only if handlers were entered or left since.
    self.bound_modules: dict[int, tuple[int, list]] = {}
    self.scope_version = 0
    self.interceptor_depth = 0


context.declare("binding", _ThreadState)
_ctx = context.CONTEXT
_NO_CONTEXT = contextlib.nullcontext()


def active_scopes() -> tuple[HandlerScope, ...]:
  """The running handler scopes, outermost first (for tests and debugging)."""
  return tuple(_ctx.binding.scopes)


def current_effect_scope() -> _EffectScope | None:
  return _ctx.binding.effect_scopes[-1] if _ctx.binding.effect_scopes else None


@contextlib.contextmanager
def _entered(stack: list, scope: Any) -> Iterator[None]:
  """Pushes ``scope`` on ``stack`` with the interceptor installed (by the
  outermost scope only) and the trace level known to boundaries."""
  depth = _ctx.binding.interceptor_depth
  _ctx.binding.interceptor_depth = depth + 1
  try:
    with context.pushed(stack, scope):
      with hk.intercept_methods(_intercept) if not depth else _NO_CONTEXT:
        with boundaries.known_level():
          yield
  finally:
    _ctx.binding.interceptor_depth = depth
    if not depth:
      nesting.clear()


@contextlib.contextmanager
def handler_scope(handler, state: Any = None) -> Iterator[HandlerScope]:
  """Runs a block with ``handler`` active; yields its ``HandlerScope``.

  ``state`` is whatever the handler keeps for this call (the values it
  serves, what was used); its ``runtime_impl`` reads it as ``scope.state``.

  Example (inside a handler's ``__call__``):

  >>> import hk_effects as hke
  >>> h = hke.handlers.WithConstantSideInputs.handling(lambda x: x, {})
  >>> with handler_scope(h, state={"factor": 2.0}) as scope:
  ...   print(scope.handler_id == h.handler_id, scope.state["factor"])
  True 2.0
  """
  token = nesting.transform_token()
  for scope in _ctx.binding.scopes:
    if scope.handler is handler and scope.token is token:
      raise ValueError(
          f"Handler {handler!r} was applied inside its own body (id "
          f"{handler.handler_id!r}): its body calls it again in the same "
          "Haiku transform. Call the body, not the handler, or wrap it in a "
          "second handler with a distinct `handler_id=`."
      )
    if (
        scope.handler_id == handler.handler_id
        and scope.handler is not handler
        and getattr(handler, "explicit_id", False)
    ):
      raise ValueError(
          f"Handler id {handler.handler_id!r} of {handler!r} collides with an "
          "enclosing running handler with the same id. Pass a distinct "
          "`handler_id=` to `.handling(...)` (ids must be unique in a nest)."
      )
  scope = HandlerScope(handler, state, token)
  _ctx.binding.scope_version += 1
  try:
    with _entered(_ctx.binding.scopes, scope):
      yield scope
  finally:
    scope.active = False
    _ctx.binding.scope_version += 1


@contextlib.contextmanager
def effect_scope(
    stateless: bool = False, observer: BindingObserver | None = None
) -> Iterator[_EffectScope]:
  """Installs the binding machinery for a whole transformed function."""
  scope = _EffectScope(stateless=stateless, observer=observer)
  with _entered(_ctx.binding.effect_scopes, scope):
    yield scope


def handler_claims(handler, request, site: Site | None = None) -> bool:
  """``handler.claims(request)``; a predicate that raises is named, with the fix.

  Example:

  >>> import hk_effects as hke
  >>> h = hke.handlers.CollectingSideOutputs.handling(lambda x: x, tag="a")
  >>> handler_claims(h, hke.SideOutputRequest("a"))
  True
  """
  try:
    return bool(handler.claims(request))
  except Exception as e:  # pylint: disable=broad-except
    raise _predicate_error(handler, request, site, e) from e


def _predicate_error(
    handler, request, site: Site | None, e: Exception
) -> TypeError:
  where = "" if site is None else f" at {site}"
  return TypeError(
      f"The predicate of {handler!r} raised {type(e).__name__}: {e} when "
      f"asked whether it claims {request!r}{where}. A handler asks its "
      "predicate about every request of its effect (untagged ones too, and "
      "tags or categories of any type); make it return False for those it "
      "does not want, e.g. `lambda r: getattr(r, 'tag', None) == 'x'`."
  )


def serving_scope(
    request: Any, site: Site
) -> tuple[HandlerScope | None, Any, bool]:
  """Who serves ``request`` at ``site`` now (S1), for binding and
  ``hke.tell``: (the innermost running handler's scope that claims it, or
  None; the request as the rewriting handlers inside it rewrote it; whether
  one did)."""
  rewritten = False
  for candidate in reversed(_ctx.binding.scopes):
    # `handler_claims`, inlined: this runs for every request of every call.
    try:
      claimed = candidate.handler.claims(request)
    except Exception as e:  # pylint: disable=broad-except
      raise _predicate_error(candidate.handler, request, site, e) from e
    if not claimed:
      continue
    if candidate.handler.rewrites:  # Outer handlers may claim the rewrite.
      request = candidate.handler.rewrite(request, site)
      rewritten = True
      continue
    return candidate, request, rewritten
  return None, request, rewritten


def _bind_node(node, site: Site) -> tuple[Any, Any]:
  """Returns (what the module keeps, what it sees during the call).

  A stored ref only caches the last binding: which handler serves the
  request is decided afresh against the handlers running now (S1).
  """
  is_ref = isinstance(node, effect_base.HandledEffectRef)
  scope, request, rewritten = serving_scope(
      node.request if is_ref else node, site
  )
  observer = None
  for effect_scope_ in _ctx.binding.effect_scopes:
    if effect_scope_.observer is not None:
      observer = effect_scope_.observer
      observer.bound(site, request, scope.handler_id if scope else "unhandled")
  if scope is None:
    kept, runtime = node, UnhandledPlaceholder(
        request, site, last_handler=node.handler_id if is_ref else None
    )
  elif rewritten:
    # The module keeps what it had: the rewrite holds only while its
    # handler runs.
    kept, runtime = node, scope.handler.runtime_impl(
        scope, scope.handler.make_ref(request), site
    )
  else:
    if is_ref and node.handler_id == scope.handler_id:
      kept = node
    else:
      kept = scope.handler.make_ref(request)
      # Lets the ref say where it sits if it is used outside a method.
      object.__setattr__(kept, "_hke_site", site)
    runtime = scope.handler.runtime_impl(scope, kept, site)
  if observer is not None:
    if isinstance(kept, effect_base.HandledEffectRef):
      runtime = observer.runtime(runtime, site, kept.request, kept.handler_id)
    else:
      runtime = observer.runtime(runtime, site, kept, "unhandled")
  return kept, runtime


# Containers nested deeper than this are not searched for requests (it also
# stops a container that holds itself).
_MAX_DEPTH = 32


def _bind_tree(
    value: Any, module_path: str, path: str, depth: int = 0
) -> tuple[Any, ...] | None:
  """Binds the effect nodes inside ``value``; None if it holds none.

  Walks dicts, lists, tuples (named ones too) and dataclasses, PyTree nodes
  or not, without ``jax.tree_util``: an attribute JAX cannot flatten (a dict
  with keys of mixed types) must not break a module that has no requests.
  Paths are written as ``jax.tree_util.keystr`` writes them.
  """
  if isinstance(value, _EFFECT_NODE_TYPES):
    return _bind_node(value, Site(module_path, path))
  if type(value) in _SKIP_EXACT_TYPES or depth >= _MAX_DEPTH:
    return None
  children = _children(value, path)
  if children is None:
    return None
  bound = {
      key: (item, _bind_tree(item, module_path, item_path, depth + 1))
      for key, item, item_path in children
  }
  if all(b is None for _, b in bound.values()):
    return None
  kept = {k: item if b is None else b[0] for k, (item, b) in bound.items()}
  seen = {k: item if b is None else b[1] for k, (item, b) in bound.items()}
  return _rebuilt(value, kept), _rebuilt(value, seen)


def _children(value: Any, path: str) -> list[tuple[Any, Any, str]] | None:
  """(key, item, item's path) of a container ``_bind_tree`` walks."""
  if isinstance(value, dict):
    return [(k, v, f"{path}[{k!r}]") for k, v in value.items()]
  if isinstance(value, (list, tuple)):
    fields = getattr(value, "_fields", None)
    if fields is not None:  # A namedtuple.
      return [
          (i, v, f"{path}.{f}") for i, (f, v) in enumerate(zip(fields, value))
      ]
    return [(i, v, f"{path}[{i}]") for i, v in enumerate(value)]
  if dataclasses.is_dataclass(value) and not isinstance(value, _SKIP_TYPES):
    # (A dataclass module binds its requests in its own calls.)
    return [
        (f.name, getattr(value, f.name, None), f"{path}.{f.name}")
        for f in dataclasses.fields(value)
    ]
  return None


def _rebuilt(original: Any, items: dict) -> Any:
  """``original`` with its children replaced by ``items`` (key -> value)."""
  kind = type(original)
  if isinstance(original, dict):
    if kind is dict:
      return items
    new = copy.copy(original)  # Keeps a defaultdict's factory, an OrderedDict.
    new.clear()
    new.update(items)
    return new
  if isinstance(original, (list, tuple)):
    if hasattr(original, "_fields"):  # A namedtuple.
      return kind(*items.values())
    return kind(items.values())
  # A dataclass: a copy with the changed fields set directly, so that no
  # __init__ / __post_init__ runs and frozen classes work too.
  new = copy.copy(original)
  for name, value in items.items():
    if getattr(original, name, None) is not value:
      object.__setattr__(new, name, value)
  return new


# What a value of a given type can hold, decided once per type for the same
# reason; `_SKIPPED_TYPES` (those holding nothing) is tested without a call.
_SKIP, _NODE, _TREE = 0, 1, 2
_KIND_OF_TYPE: dict[type, int] = {kind: _SKIP for kind in _SKIP_EXACT_TYPES}
_SKIPPED_TYPES: set[type] = set(_SKIP_EXACT_TYPES)


def _kind_of_type(kind: type) -> int:
  if issubclass(kind, _EFFECT_NODE_TYPES):
    found = _NODE
  elif issubclass(kind, (list, tuple, dict)):
    found = _TREE
  elif dataclasses.is_dataclass(kind) and not issubclass(kind, _SKIP_TYPES):
    found = _TREE
  else:
    found = _SKIP
    _SKIPPED_TYPES.add(kind)
  _KIND_OF_TYPE[kind] = found
  return found


def _bind_attribute(swaps: list, module_path: str, name: str, value) -> None:
  """Appends (name, kept, runtime) to ``swaps`` if ``value`` holds effects."""
  kind = type(value)
  found = _KIND_OF_TYPE.get(kind)
  if found is None:
    found = _kind_of_type(kind)
  if found == _SKIP:
    return
  if found == _NODE:
    swaps.append((name, *_bind_node(value, Site(module_path, name))))
    return
  if kind is tuple or kind is list or kind is dict:
    # A look at the items first: most such attributes hold plain values
    # (LayerNorm's `axis` tuple, on every call).
    items = value.values() if kind is dict else value
    for item in items:
      if type(item) not in _SKIP_EXACT_TYPES:
        break
    else:
      return
  bound = _bind_tree(value, module_path, name)
  if bound is not None:
    swaps.append((name, *bound))


def _intercept(next_fun: Callable, args, kwargs, context):
  # Haiku's chain form; `hki.register_own_interceptor` normally calls
  # `_intercept_direct` instead.
  if context.method_name == "__init__":
    # Requests are created in __init__; they bind when a method runs.
    return next_fun(*args, **kwargs)
  return _intercept_direct(
      next_fun, context.method_name, context.module, args, kwargs
  )


def _intercept_direct(
    next_fun: Callable, method_name: str, module, args, kwargs
):
  """``_intercept`` for a method other than ``__init__``, without Haiku's
  chain (``hki.register_own_interceptor``)."""
  del method_name  # Every method binds alike.
  if not nesting.is_lifting_module(module):
    return _bind_and_call(next_fun, args, kwargs, module)
  # Values told in the lifted transform are named after the lifting module.
  nesting.lift_call_started(module)
  result = None
  try:
    result = next_fun(*args, **kwargs)
    return result
  finally:
    nesting.lift_call_ended(module, result)


def install() -> None:
  """Binds requests at every module method call from now on (once, from
  ``hk_effects._src.wiring``)."""
  hki.register_own_interceptor(_intercept, _intercept_direct)


# Per module class: the names of its class attributes holding effect nodes
# (``rng = hke.RandomRequest()`` in the class body). Each instance binds them
# as its own attributes, so after its first call it holds its own refs.
_CLASS_NODES: dict[type, tuple[str, ...]] = {}


def _class_nodes(cls: type) -> tuple[str, ...]:
  names: dict[str, bool] = {}
  for klass in cls.__mro__:
    if klass is hk.Module or klass is object:
      continue
    for name, value in vars(klass).items():
      if name in names or name.startswith("__"):
        continue
      holds = isinstance(value, _EFFECT_NODE_TYPES)
      if not holds and type(value) in (list, tuple, dict):
        items = value.values() if type(value) is dict else value
        holds = any(isinstance(v, _EFFECT_NODE_TYPES) for v in items)
      names[name] = holds
  found = tuple(name for name, holds in names.items() if holds)
  _CLASS_NODES[cls] = found
  return found


def _bind_and_call(next_fun: Callable, args, kwargs, module):
  key = id(module)
  outer = _ctx.binding.bound_modules.get(key)
  if outer is not None and outer[0] == _ctx.binding.scope_version:
    # A nested call under the same handlers: already bound.
    return next_fun(*args, **kwargs)
  swaps: list[tuple[str, Any, Any]] = []
  if outer is None:
    skipped = _SKIPPED_TYPES
    for name, value in vars(module).items():
      if type(value) not in skipped:  # Most are skipped here, without a call.
        _bind_attribute(swaps, module.module_name, name, value)
    cls = type(module)
    class_nodes = _CLASS_NODES.get(cls)
    if class_nodes is None:
      class_nodes = _class_nodes(cls)
    for name in class_nodes:
      if name not in module.__dict__:
        _bind_attribute(swaps, module.module_name, name, getattr(cls, name))
  else:
    # A nested call under other handlers (one the outer call entered, or a
    # method run inside a handler of its own): rebind what the module keeps.
    for name, kept, _ in outer[1]:
      _bind_attribute(swaps, module.module_name, name, kept)
  if not swaps:
    return next_fun(*args, **kwargs)
  for name, _, runtime in swaps:
    object.__setattr__(module, name, runtime)
  _ctx.binding.bound_modules[key] = (_ctx.binding.scope_version, swaps)
  try:
    return next_fun(*args, **kwargs)
  finally:
    if outer is None:
      del _ctx.binding.bound_modules[key]
      for name, kept, _ in swaps:
        object.__setattr__(module, name, kept)
    else:
      _ctx.binding.bound_modules[key] = outer
      for name, _, runtime in outer[1]:
        object.__setattr__(module, name, runtime)


def _find_holder(node: Any, modules: list) -> tuple[Any, str] | None:
  """The module (searched from ``modules`` down through submodules) and
  attribute path holding ``node`` by identity, if any."""
  seen: set[int] = set()
  todo = list(modules)
  while todo and len(seen) < 10_000:
    module = todo.pop(0)
    if id(module) in seen:
      continue
    seen.add(id(module))
    for name, value in vars(module).items():
      items = [(name, value)]
      if isinstance(value, (list, tuple)):
        items += [(f"{name}[{i}]", v) for i, v in enumerate(value)]
      elif isinstance(value, dict):
        items += [(f"{name}[{k!r}]", v) for k, v in value.items()]
      for path, item in items:
        if item is node:
          return module, path
        if isinstance(item, hk.Module):
          todo.append(item)
  return None


def unbound_use_message(node: Any, method: str) -> str | None:
  """Why ``node`` (a request or ref) was unbound at ``.method()`` inside a
  module method with a claiming handler running (None outside one): it was
  reached through an ``@hk.transparent`` method, which Haiku does not
  intercept, or made (or put on the module) during the call."""
  if not hki.inside_transform():
    return None
  stack = list(hki.current_frame().module_stack)
  if not stack:
    return None
  running = [s.module for s in stack]
  where = f"{stack[0].module.module_name!r}.{stack[0].method_name}"
  found = _find_holder(node, running)
  if found is not None and not any(found[0] is m for m in running):
    holder, path = found
    return (
        f"{node!r} at {Site(holder.module_name, path)} was used (.{method}()) "
        f"while no method of {holder.module_name!r} that Haiku intercepts "
        f"runs (the running one is {where}): it was reached through a "
        "method Haiku does not intercept, an @hk.transparent method, and "
        "requests are bound when an intercepted method of their module "
        "starts. Remove @hk.transparent from that method, or use the "
        f"request in a plain method of {holder.module_name!r} (e.g. its "
        "__call__) and pass the value to the transparent method."
    )
  return (
      f"{node!r} was used (.{method}()) in {where}, but it was created "
      "during the call (or put on the module during it), and requests are "
      "bound when a method of the module holding them starts, so it never "
      "was. Create the request in __init__ (self.x = ...Request(...)) and "
      f"use it in the method.{type(node).porting_hint()} (A request reached "
      "through an @hk.transparent method of another module gets this "
      f"message too when that module cannot be found from {where}.)"
  )


class UnhandledPlaceholder:
  """Stands in for an unclaimed request during a call.

  Protocol methods raise ``UnhandledEffectError`` naming the module path and
  attribute, except where the request defines an unhandled behaviour
  (``SideOutputRequest.tell`` is a no-op, ``FrozenLocalStateRequest.get``
  returns its value). Inspection passes (``hke.bindings``) get stand-in
  values instead, so that they can go on.
  """

  def __init__(self, request, site: Site, last_handler: str | None = None):
    self._request = request
    self._site = site
    self._last_handler = last_handler
    effect_scope_ = current_effect_scope()
    if effect_scope_ is not None:
      effect_scope_.unhandled.append((site, request))

  def __getattr__(self, name: str):
    request = self.__dict__["_request"]
    is_protocol_method = name in effect_base.protocol_methods(
        request.effect_protocol()
    )
    effect_scope_ = current_effect_scope()
    observer = None if effect_scope_ is None else effect_scope_.observer
    if is_protocol_method and observer is not None:
      # Inspection passes never fail on what the request would do unhandled
      # (a frozen state's set() raises): they use stand-in values.
      stand_in = request.inspection_stand_in
      if stand_in is not None:
        return lambda *a, **k: stand_in(name, *a, **k)
    if getattr(type(request), name, None) is not None:
      return getattr(request, name)  # The request's unhandled behaviour.
    if not is_protocol_method:
      raise effect_base.no_attribute(request, name)
    if observer is not None:
      observer.unhandled_use(self._site, request)
    unhandled = effect_scope_.unhandled if effect_scope_ else []
    others = [f"  - {s}: {r!r}" for s, r in unhandled if s != self._site]
    text = (
        f"Unhandled {request.effect_protocol().__name__}: {self._site} holds "
        f"{request!r}, and its .{name}() was called, but no running handler "
        "claims it. Wrap the forward function in a handler that claims it, "
        f"e.g. {request.suggested_handler()}, or check that the handler's "
        "tag / predicate / category matches this request."
    )
    if self._last_handler is not None:
      text += (
          f" It was served by handler {self._last_handler!r} in an earlier "
          "call, and that handler is not running now: the module was called "
          "after the handler returned; call the module inside the handler's "
          "body."
      )
    if others:
      text += "\nOther unhandled requests met so far:\n" + "\n".join(others)
    raise effect_base.UnhandledEffectError(text)

  def __repr__(self) -> str:
    return f"UnhandledPlaceholder({self._request!r} at {self._site})"
