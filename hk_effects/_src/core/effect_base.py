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
"""Base types of the effect system: requests, refs, runtime impls, handlers.

An effect is described by four pieces, all defined with the classes here:

1. a ``typing.Protocol`` naming its methods (``RandomEffect.next_key``);
2. an ``EffectRequest`` subclass that a layer stores as an attribute to say
   "I need that effect";
3. an ``EffectHandler`` subclass that claims requests while it runs and builds
   the runtime implementation (an ``EffectRuntimeImpl``) that serves them;
4. optionally, a ``HandledEffectRef`` subclass: what a claimed request turns
   into. ``HandledEffectRef`` itself serves every effect.

See ``hk_effects/__init__.py`` for a walk-through.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import functools
import hashlib
import inspect
import sys
from typing import Any, Callable, ClassVar

import jax

from hk_effects._src.haiku import raw_transforms

if sys.version_info >= (3, 11):
  from typing import dataclass_transform  # pylint: disable=g-importing-member
else:  # Python 3.10: type checkers read typing_extensions' marker too.
  from typing_extensions import dataclass_transform  # pylint: disable=g-importing-member

# One colour per effect protocol, used by `hke.bindings` renderings.
_PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#b07aa1",
    "#76b7b2",
    "#edc948",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
_EFFECT_COLOURS: dict[type, str] = {}


class UnhandledEffectError(Exception):
  """Raised when an effect is used but no running handler serves it.

  Example:

  >>> import hk_effects as hke
  >>> try:
  ...   hke.RandomRequest().next_key()
  ... except hke.UnhandledEffectError as e:
  ...   print("caught")
  caught
  """


UnhandledEffectError.__module__ = "hk_effects"


def static_field(**kwargs) -> Any:
  """A dataclass field that is PyTree metadata rather than a child.

  Example:

  >>> import dataclasses
  >>> @pytree_dataclass
  ... class Tagged:
  ...   tag: str = static_field()
  >>> Tagged("x").tag
  'x'
  """
  return dataclasses.field(metadata={"static": True}, **kwargs)


# Type checkers then read `SideOutputRequest("tag")` as the dataclass
# constructor it is.
@dataclass_transform(
    frozen_default=True, field_specifiers=(dataclasses.field, static_field)
)
def pytree_dataclass(cls=None, /, *, frozen: bool = True):
  """Makes ``cls`` a frozen dataclass registered as a JAX PyTree node.

  Fields whose ``metadata`` has ``static=True`` are PyTree metadata (hashed,
  compared, never traced); the others are children.

  Example:

  >>> import dataclasses, jax
  >>> @pytree_dataclass
  ... class Pair:
  ...   value: object
  ...   name: str = dataclasses.field(metadata={"static": True})
  >>> jax.tree_util.tree_leaves(Pair(1.0, "a"))
  [1.0]
  """

  def wrap(cls):
    cls = dataclasses.dataclass(frozen=frozen)(cls)
    return jax.tree_util.register_dataclass(cls)

  return wrap if cls is None else wrap(cls)


def effect_colour(protocol: type) -> str:
  """The display colour of an effect protocol (stable per process).

  Example:

  >>> import hk_effects as hke
  >>> effect_colour(hke.RandomEffect).startswith("#")
  True
  """
  colour = _PALETTE[len(_EFFECT_COLOURS) % len(_PALETTE)]
  return _EFFECT_COLOURS.setdefault(protocol, colour)


def protocol_methods(protocol: type) -> frozenset[str]:
  """Names of the methods a ``typing.Protocol`` declares."""
  return frozenset(
      name
      for klass in protocol.__mro__
      if klass is not object and klass.__name__ not in ("Protocol", "Generic")
      for name, value in vars(klass).items()
      if callable(value) and not name.startswith("_")
  )


class EffectRequest:
  """Base class of requests: "this layer needs effect X".

  Subclasses are ``pytree_dataclass`` es and name their protocol, as
  ``class R(EffectRequest, protocol=P)`` or by defining ``effect_protocol()``.
  While no handler serves it, calling a protocol method on a request raises
  ``UnhandledEffectError``; other missing attributes raise ``AttributeError``.

  Example:

  >>> import hk_effects as hke
  >>> isinstance(hke.RandomRequest(), hke.EffectRequest)
  True
  """

  def __init_subclass__(cls, protocol: type | None = None, **kwargs):
    super().__init_subclass__(**kwargs)
    _name_protocol(cls, protocol)

  @classmethod
  def effect_protocol(cls) -> type:
    """The protocol this request asks for."""
    raise _no_protocol(cls, "EffectRequest")

  # A hook: `inspection_stand_in(method, *args)` gives inspection passes
  # (`hke.bindings`, `hke.effect_signature`) the value an unhandled protocol
  # call stands for, so they can go on; None stops the pass there.
  inspection_stand_in: Callable[..., Any] | None = None

  def describe(self) -> str:
    """A short human description (tag, category) used in tables and errors."""
    return repr(self)

  @classmethod
  def suggested_handler(cls) -> str:
    """The handler an "unhandled" error suggests, as code."""
    return f"a handler serving {cls.effect_protocol().__name__}"

  def signature_detail(
      self, calls: list[Any], conditional: list[str], state: Any, site: Any
  ) -> str:
    """The detail column of ``hke.effect_signature`` for this request.

    ``calls`` are the protocol-method calls seen at ``site`` (each with
    ``.method`` and an abstract ``.value``), ``conditional`` the wrappers
    that may skip them, ``state`` what ``init`` would return. Each effect
    overrides this to say what matters for it; by default, the methods
    called and how often.
    """
    del conditional, state, site
    methods = collections.Counter(c.method for c in calls)
    return ", ".join(f"{m} x{n}" for m, n in methods.items())

  @classmethod
  def porting_hint(cls) -> str:
    """A sentence for the error about a request created during a call: how
    the plain-Haiku code that does this on the fly is ported."""
    return ""

  def __getattr__(self, name: str):
    if name.startswith("__") or name not in protocol_methods(
        type(self).effect_protocol()
    ):
      raise no_attribute(self, name)
    from hk_effects._src.core import binding  # pylint: disable=g-import-not-at-top

    if any(_claims_quietly(s.handler, self) for s in binding.active_scopes()):
      raise UnhandledEffectError(
          binding.unbound_use_message(self, name)
          or (
              f"{self!r}.{name}() was called outside a module method, while "
              "a handler that claims it runs. Effects are served only inside "
              "the methods of the module that holds the request: call the "
              "request from a method of that module, not from the forward "
              "function's body."
          )
      )
    raise UnhandledEffectError(
        f"{self!r}.{name}() was called, but no handler serves this "
        f"{type(self).effect_protocol().__name__}. This usually means an "
        "effectful layer ran without an enclosing effect handler, or outside "
        "`hke.transform` (which would also name the module and attribute). "
        "Wrap the forward function in a handler that claims this request, "
        f"e.g. {type(self).suggested_handler()}."
    )


def _name_protocol(cls: type, protocol: type | None) -> None:
  if protocol is not None:
    cls.effect_protocol = classmethod(lambda _: protocol)  # type: ignore


def no_attribute(obj: Any, name: str) -> AttributeError:
  """Python's own error for a missing attribute ``name`` of ``obj``."""
  return AttributeError(
      f"{type(obj).__name__!r} object has no attribute {name!r}"
  )


def _no_protocol(cls: type, base: str) -> TypeError:
  return TypeError(
      f"{cls.__name__} names no effect protocol: declare it as `class "
      f"{cls.__name__}({base}, protocol=P)` or define effect_protocol()."
  )


def _claims_quietly(handler: Any, request: Any) -> bool:
  try:
    return bool(handler.claims(request))
  except Exception:  # pylint: disable=broad-except
    return False


@pytree_dataclass
class HandledEffectRef:
  """What a claimed request becomes: it names the handler that serves it.

  The original request is kept (as a child) so that handlers can read its
  tag, category or initial value. Calling a protocol method on a ref whose
  handler is not running raises ``UnhandledEffectError``.

  Example:

  >>> import hk_effects as hke
  >>> ref = hke.HandledEffectRef(hke.RandomRequest(), handler_id="h")
  >>> ref.handler_id
  'h'
  """

  request: EffectRequest
  handler_id: str = static_field()

  def effect_protocol(self) -> type:
    """The protocol of the request this ref stands for."""
    return self.request.effect_protocol()

  def __getattr__(self, name: str):
    if name.startswith("_") or name not in protocol_methods(
        type(self.request).effect_protocol()
    ):
      raise no_attribute(self, name)
    from hk_effects._src.core import binding  # pylint: disable=g-import-not-at-top

    site = self.__dict__.get("_hke_site")
    where = f" at {site}" if site is not None else ""
    if any(s.handler_id == self.handler_id for s in binding.active_scopes()):
      raise UnhandledEffectError(
          binding.unbound_use_message(self, name)
          or (
              f"{self.request!r}{where} was used (.{name}()) outside a "
              f"method of its module, while its handler {self.handler_id!r} "
              "runs. Effects are served only inside the methods of the "
              "module that holds the request, for the duration of the call: "
              "call the request from a method of that module (e.g. add a "
              "method that uses it and call that), not from the forward "
              "function's body."
          )
      )
    raise UnhandledEffectError(
        f"{self.request!r}{where} belongs to handler {self.handler_id!r}, "
        f"which is not running, so .{name}() cannot be served. Effects are "
        "served only inside the methods of the module that holds the "
        "request, while a handler that claims it runs: call the module "
        "inside the handler's body instead of using its request directly."
    )


class EffectRuntimeImpl:
  """Base class of the objects that implement an effect while a handler runs.

  A runtime implementation is swapped into a module's attribute for the
  duration of one method call and must not outlive its handler's call. Every
  public method a subclass defines (its protocol methods) runs two guards
  before its body, so an effect never calls them itself:

  * ``check_alive()``: ``UnhandledEffectError`` once the handler returned;
  * where the subclass sets ``refuses_raw_transforms`` (its data lives where
    Haiku threads it: rng, state), ``RawTransformError`` under a raw
    ``jax.*`` transform inside the Haiku function.

  Example:

  >>> class Constant(EffectRuntimeImpl):
  ...   def ask(self):
  ...     return 3
  >>> Constant(scope=None, site=None).ask()
  3
  """

  __slots__ = ("scope", "site")
  refuses_raw_transforms: ClassVar[bool] = False

  def __init__(self, scope, site):
    self.scope = scope
    self.site = site

  def __init_subclass__(cls, **kwargs):
    super().__init_subclass__(**kwargs)
    for name, method in list(vars(cls).items()):
      if not name.startswith("_") and inspect.isfunction(method):
        setattr(cls, name, _guarded(method, name, cls.refuses_raw_transforms))

  def __getattr__(self, name: str):
    # Only reached for a missing attribute: a method of another effect.
    if name.startswith("__") or name in EffectRuntimeImpl.__slots__:
      raise AttributeError(name)
    handler = getattr(self.scope, "handler", None)
    if handler is None:
      raise no_attribute(self, name)
    protocol = handler.effect_protocol()
    raise AttributeError(
        f"{type(self).__name__} at {self.site} serves {protocol.__name__} "
        f"(methods {sorted(protocol_methods(protocol))}) for handler "
        f"{handler.handler_id!r}; it has no {name!r}. The attribute holds a "
        "request of that effect: call one of its methods, or give the "
        "module a request of the effect you meant."
    )

  def check_alive(self) -> None:
    """Raises ``UnhandledEffectError`` once the handler has returned."""
    if self.scope is not None and not self.scope.active:
      raise UnhandledEffectError(
          f"The runtime implementation for {self.site} was used after its "
          f"handler {self.scope.handler.handler_id!r} returned. Runtime "
          "implementations live only for one call; do not store them."
      )


def _guarded(method: Callable[..., Any], name: str, refuses_raw: bool):
  """``method`` after the runtime guards (trace time: kept to a test each)."""

  @functools.wraps(method)
  def guarded(self, *args, **kwargs):
    scope = self.scope
    if scope is not None and not scope.active:
      EffectRuntimeImpl.check_alive(self)
    if refuses_raw and raw_transforms.under_raw_transform():
      effect = scope.handler.effect_protocol() if scope else type(self)
      raw_transforms.check_no_raw_transform(self.site, effect.__name__, name)
    return method(self, *args, **kwargs)

  return guarded


def _describe_callable(fn: Any, depth: int = 0) -> str:
  if isinstance(fn, HandlerBase):
    return fn.handler_id
  inner = getattr(fn, "func", None)  # functools.partial
  if inner is not None:
    return f"partial({_describe_callable(inner, depth + 1)})"
  module = getattr(fn, "__module__", None) or ""
  qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
  code = getattr(fn, "__code__", None)
  if code is not None:  # Two lambdas of one line get distinct ids.
    qualname += f"@{code.co_firstlineno}:{_first_column(code)}"
  # Closures of one function (a helper wrapping its argument in a handler,
  # applied twice) differ only in the callables they close over.
  closed_over = []
  for cell in (getattr(fn, "__closure__", None) or ()) if depth < 4 else ():
    try:
      value = cell.cell_contents
    except ValueError:  # An empty cell.
      continue
    if callable(value) and not isinstance(value, type):
      closed_over.append(_describe_callable(value, depth + 1))
  suffix = f"({','.join(closed_over)})" if closed_over else ""
  return f"{module}.{qualname}{suffix}"


def _first_column(code: Any) -> int:
  # The first instruction (RESUME) sits at column 0; the body's come after.
  for _, _, column, end in getattr(code, "co_positions", lambda: ())():
    if column is not None and (column, end) != (0, 0):
      return column
  return 0


def infer_handler_id(kind: str, body: Callable, config: str = "") -> str:
  """A handler id stable from run to run: kind plus a hash of body/config.

  Example:

  >>> def f(x): return x
  >>> infer_handler_id("WithHaikuRandom", f) == infer_handler_id(
  ...     "WithHaikuRandom", f)
  True
  """
  digest = hashlib.sha256(
      f"{_describe_callable(body)}|{config}".encode()
  ).hexdigest()[:8]
  return f"{kind}_{digest}"


class HandlerBase(abc.ABC):
  """What every handler is: a one-argument body, an id, a claim predicate.

  Two kinds derive from it: ``EffectHandler`` serves the requests it
  claims; ``RewritingHandler`` turns them into other requests for the
  handlers outside it. Binding tells them apart by ``rewrites``. Both claim
  every request of their protocol and run ``body`` inside
  ``hke.handler_scope`` unless they override ``claims`` / ``__call__``.
  """

  body: Callable[[Any], Any]
  handler_id: str
  rewrites: ClassVar[bool] = False

  def __init_subclass__(cls, protocol: type | None = None, **kwargs):
    super().__init_subclass__(**kwargs)
    _name_protocol(cls, protocol)

  def __init__(
      self,
      body: Callable[[Any], Any],
      handler_id: str | None = None,
      config: str = "",
  ):
    if not callable(body):
      raise TypeError(
          f"{type(self).__name__}.handling expects a callable body taking one "
          f"argument; got {body!r}."
      )
    if handler_id is not None and not isinstance(handler_id, str):
      raise TypeError(
          f"handler_id must be a string or None; got {handler_id!r}."
      )
    self.body = body
    # Only ids the user chose must be unique in a nest: an inferred id met
    # twice is one model applied inside itself (a re-entrant apply).
    self.explicit_id = handler_id is not None
    self.handler_id = handler_id or infer_handler_id(
        type(self).__name__, body, config
    )

  @classmethod
  def handling(cls, body: Callable[[Any], Any], *args, **kwargs):
    """The handler running ``body``: ``cls(body, *args, **kwargs)``."""
    return cls(body, *args, **kwargs)

  @classmethod
  def effect_protocol(cls) -> type:
    """The protocol of the effect this handler serves or rewrites."""
    raise _no_protocol(cls, "EffectHandler")

  def claims(self, request: EffectRequest) -> bool:
    """Whether this handler takes ``request``: by default, every request of
    its protocol."""
    return request.effect_protocol() is self.effect_protocol()

  def __call__(self, arg):
    """Runs the body with this handler active (override to pass
    ``hke.handler_scope`` a ``state``)."""
    from hk_effects._src.core import binding  # pylint: disable=g-import-not-at-top

    with binding.handler_scope(self):
      return self.body(arg)

  def __repr__(self) -> str:
    return f"{type(self).__name__}(handler_id={self.handler_id!r})"


class RewritingHandler(HandlerBase):
  """A handler that serves nothing itself: each request it claims becomes
  ``rewrite(request, site)``, which the handlers outside it may claim
  (``freeze_local_states``, ``PatchingSideOutputs``). The module keeps its
  own request; the rewrite holds only while the handler runs.

  Example: a handler that serves tag ``"old"`` under the name ``"new"``.

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Rename(hke.RewritingHandler, protocol=hke.SideInputEffect):
  ...   def claims(self, request):
  ...     return request.tag == "old"
  ...   def rewrite(self, request, site):
  ...     return hke.SideInputRequest("new")
  >>> class Scale(hk.Module):
  ...   def __init__(self, name=None):
  ...     super().__init__(name=name)
  ...     self.s = hke.SideInputRequest("old")
  ...   def __call__(self, x):
  ...     return x * self.s.ask()
  >>> renamed = Rename(lambda x: Scale()(x), handler_id="rename")
  >>> f = hke.transform(
  ...     hke.handlers.WithConstantSideInputs.handling(renamed, {"new": 2.0}))
  >>> f.apply({}, None, jnp.ones([2]))
  Array([2., 2.], dtype=float32)
  """

  rewrites: ClassVar[bool] = True

  @abc.abstractmethod
  def rewrite(self, request: EffectRequest, site: Any) -> EffectRequest:
    """What a claimed request becomes at ``site``."""


class EffectHandler(HandlerBase):
  """Base class of handlers: wrap a one-argument function, serve requests.

  A handler is built with ``Handler.handling(body, ...)`` and called with one
  argument. While it runs, every module method call binds the requests this
  handler ``claims`` (unless an inner handler claimed them) and serves them
  with the runtime implementation from ``runtime_impl``.

  Subclasses name their protocol (``class H(EffectHandler, protocol=P)``)
  and define ``runtime_impl``; ``claims`` and ``__call__`` have defaults
  (``HandlerBase``).

  Example:

  >>> import hk_effects as hke
  >>> h = hke.handlers.WithConstantSideInputs.handling(
  ...     lambda x: x, {"scale": 2.0})
  >>> h.effect_protocol().__name__
  'SideInputEffect'
  """

  def make_ref(self, request: EffectRequest) -> HandledEffectRef:
    """The ref a claimed request becomes (override for a dedicated class)."""
    return HandledEffectRef(request, handler_id=self.handler_id)

  @abc.abstractmethod
  def runtime_impl(self, scope, ref: HandledEffectRef, site) -> Any:
    """The object serving ``ref`` at ``site`` during this call."""
