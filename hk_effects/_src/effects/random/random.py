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
"""The random effect: layers draw fresh keys with ``next_key()``.

Keys come from Haiku's rng sequence, which Haiku threads through its loops,
vmaps and branches, so no stream position lives in a Python object that a
loop would repeat. A handler that owns a key pushes a sequence seeded by it
for its body, except during ``init`` (parameters depend on ``init``'s rng
alone, docs/design.md S5). An outer handler's request served inside such a
body draws from that sequence, folded with the outer handler's id and with a
key the inner handler drew from the enclosing sequence on entry, so the
outer stream depends on its own key too.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, Protocol

import haiku as hk
import jax
import jax.numpy as jnp

from hk_effects._src.core import binding
from hk_effects._src.core import effect_base
from hk_effects._src.core import tree_util
from hk_effects._src.effects.local_state import local_state
from hk_effects._src.effects.random import path_keys as path_keys_lib
from hk_effects._src.haiku import haiku_internals as hki


class RandomEffect(Protocol):
  """Protocol of the random effect.

  Example:

  >>> import haiku as hk, jax, jax.numpy as jnp, hk_effects as hke
  >>> class Noise(hk.Module):
  ...   def __init__(self, name=None):
  ...     super().__init__(name=name)
  ...     self.rng = hke.RandomRequest()  # served as a RandomEffect
  ...   def __call__(self, x):
  ...     return x + jax.random.normal(self.rng.next_key(), x.shape)
  >>> f = hke.transform(
  ...     hke.handlers.WithHaikuRandom.handling(lambda x: Noise()(x)))
  >>> f.apply({}, jax.random.key(0), jnp.zeros([3])).shape
  (3,)
  """

  def next_key(self) -> jax.Array:
    """Returns a fresh PRNG key, distinct from every other in this call."""


class _KeyRequest(effect_base.EffectRequest, protocol=RandomEffect):
  """What the two random requests share."""

  def signature_detail(self, calls, conditional, state, site) -> str:
    del conditional, state, site
    # Counted at trace time: a body Haiku traces twice (hk.scan at init)
    # counts twice; inside loops each draw is once per iteration.
    return f"{self.describe()}: {len(calls)} next_key() traced"

  def inspection_stand_in(self, method: str, *args) -> jax.Array:
    """A key standing in for an unhandled draw during ``hke.bindings``."""
    del method, args
    return jax.random.key(0)


@effect_base.pytree_dataclass
class RandomRequest(_KeyRequest):
  """Requests untagged random keys (claimed by random handlers by default).

  Example:

  >>> import haiku as hk, jax, hk_effects as hke
  >>> class Noise(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.rng = hke.RandomRequest()
  ...   def __call__(self, x):
  ...     return x + jax.random.normal(self.rng.next_key(), x.shape)
  >>> f = hke.transform(hke.handlers.WithHaikuRandom.handling(
  ...     lambda x: Noise()(x)))
  >>> f.apply({}, jax.random.key(0), jax.numpy.zeros(2)).shape
  (2,)
  """

  def describe(self) -> str:
    return "random"

  @classmethod
  def suggested_handler(cls) -> str:
    return "hke.handlers.WithHaikuRandom.handling(forward)"


@effect_base.pytree_dataclass
class TaggedRandomRequest(_KeyRequest):
  """Requests keys from a named stream, served only by handlers that claim it.

  Example:

  >>> import hk_effects as hke
  >>> req = hke.TaggedRandomRequest("noise")
  >>> h = hke.handlers.WithHaikuRandom.handling(
  ...     lambda x: x, hole_predicate=hke.handlers.tagged("noise"))
  >>> h.claims(req), h.claims(hke.RandomRequest())
  (True, False)
  """

  tag: Any = effect_base.static_field()

  def describe(self) -> str:
    return f"random[{self.tag!r}]"

  @classmethod
  def suggested_handler(cls) -> str:
    return (
        "hke.handlers.WithHaikuRandom.handling(forward, "
        "hole_predicate=hke.handlers.tagged(tag))"
    )


@effect_base.pytree_dataclass
class HandledRandomRef(effect_base.HandledEffectRef):
  """A random request claimed by a random handler.

  Example:

  >>> import hk_effects as hke
  >>> hke.HandledRandomRef(hke.RandomRequest(), handler_id="h").handler_id
  'h'
  """


def untagged_only(request: effect_base.EffectRequest) -> bool:
  """Default ``hole_predicate``: claims ``RandomRequest`` but no tagged one.

  Example:

  >>> import hk_effects as hke
  >>> untagged_only(hke.RandomRequest()), untagged_only(
  ...     hke.TaggedRandomRequest("a"))
  (True, False)
  """
  return isinstance(request, RandomRequest)


def tagged(*tags: Any) -> Callable[[effect_base.EffectRequest], bool]:
  """A ``hole_predicate`` claiming tagged requests with one of ``tags``.

  Example:

  >>> import hk_effects as hke
  >>> tagged("a", "b")(hke.TaggedRandomRequest("b"))
  True
  """
  wanted = frozenset(tags)

  def predicate(request):
    return isinstance(request, TaggedRandomRequest) and request.tag in wanted

  predicate.__qualname__ = f"tagged{tuple(sorted(map(repr, wanted)))}"
  return predicate


class RandomRuntimeImpl(effect_base.EffectRuntimeImpl):
  """Serves ``next_key()`` from Haiku's innermost rng sequence or, for a
  handler built with ``path_keys=True``, as a pure function of where the
  draw happens (``path_keys.py``)."""

  __slots__ = ("tag",)
  refuses_raw_transforms = True

  def __init__(self, scope, site, tag):
    super().__init__(scope, site)
    self.tag = tag

  def next_key(self) -> jax.Array:
    if self.scope.handler.path_keys:
      return path_keys_lib.draw(
          self.scope.state.root,
          self.site.module_path,
          self.site.attribute_path,
          self.tag,
      )
    key = hk.maybe_next_rng_key()
    if key is None:
      raise ValueError(
          f"{self.scope.handler!r} serves a random request at {self.site}, but "
          "no rng is available: pass a key as `rng` to `init`/`apply` (for "
          "WithHaikuRandom), or use WithRandomKeyFromArg / "
          "WithFrozenRandomState to supply one explicitly."
      )
    scopes = binding.active_scopes()
    inside = scopes[scopes.index(self.scope) + 1 :]
    owner = next((s for s in inside if _pushes_rng(s)), None)
    if owner is not None:
      # The key came from an inner handler's sequence (module docstring).
      key = jax.random.fold_in(key, tree_util.hash32(self.scope.handler_id))
      if owner.state.entry_key is not None:
        key = jax.random.fold_in(owner.state.entry_key, jax.random.bits(key))
    return key


def _pushes_rng(scope: binding.HandlerScope) -> bool:
  return isinstance(scope.state, _RandomCall) and scope.state.pushes_rng


@dataclasses.dataclass
class _RandomCall:
  """What a random handler keeps for one call.

  ``pushes_rng``: its key is on Haiku's rng sequence (non-path handlers that
  own a key, at apply); ``entry_key``: a key drawn from the enclosing
  sequence on entry (folded into enclosing handlers' draws made inside);
  ``root``: the key path keys derive from.
  """

  pushes_rng: bool = False
  entry_key: Any = None
  root: Any = None


def check_key(key: Any, handler: Any) -> jax.Array:
  """Raises a clear ``TypeError`` unless ``key`` is a JAX PRNG key."""
  if isinstance(key, jax.Array) or hasattr(key, "dtype"):
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
      return key
    if key.dtype == jnp.uint32 and key.shape == (2,):
      return key
  raise TypeError(
      f"{type(handler).__name__} needs a PRNG key, got {key!r}. Make one with "
      "`jax.random.key(seed)` (or `jax.random.PRNGKey(seed)`)."
  )


class _RandomHandler(effect_base.EffectHandler, protocol=RandomEffect):
  """Shared parts of the random handlers (each ``handling`` builds one)."""

  def __init__(
      self, body, hole_predicate, handler_id, fold_in_axis, path_keys, config=""
  ):
    if not isinstance(path_keys, bool):
      raise TypeError(f"path_keys must be True or False; got {path_keys!r}.")
    if path_keys:
      config = f"{config}|path_keys"
    if fold_in_axis is not None and not isinstance(fold_in_axis, str):
      raise TypeError(
          "fold_in_axis must be the name of a mapped axis (a str) or None; "
          f"got {fold_in_axis!r}."
      )
    if fold_in_axis is not None:
      config = f"{config}|fold_in_axis={fold_in_axis}"
    if not callable(hole_predicate):
      raise TypeError(
          "hole_predicate must be a callable taking a request; got "
          f"{hole_predicate!r}. Use hke.handlers.tagged('name') for a tag."
      )
    predicate_name = getattr(
        hole_predicate, "__qualname__", type(hole_predicate).__name__
    )
    super().__init__(body, handler_id, config=f"{predicate_name}|{config}")
    self.hole_predicate = hole_predicate
    self.fold_in_axis = fold_in_axis
    self.path_keys = path_keys

  def claims(self, request):
    return request.effect_protocol() is RandomEffect and bool(
        self.hole_predicate(request)
    )

  def make_ref(self, request):
    return HandledRandomRef(request, handler_id=self.handler_id)

  def runtime_impl(self, scope, ref, site):
    return RandomRuntimeImpl(scope, site, getattr(ref.request, "tag", None))

  def _device_key(self, key: jax.Array) -> jax.Array:
    """Folds the index along ``fold_in_axis`` into ``key``, if asked to."""
    if self.fold_in_axis is None:
      return key
    try:
      index = jax.lax.axis_index(self.fold_in_axis)
    except NameError:
      raise ValueError(
          f"{self!r} was built with fold_in_axis={self.fold_in_axis!r}, but "
          "no mapped axis of that name is active. Call the transformed "
          "function inside jax.pmap(..., axis_name=...) or shard_map over a "
          "mesh axis of that name, or pass fold_in_axis=None to give every "
          "device the same stream (and note that under sharded jax.jit the "
          "values never depend on the sharding)."
      ) from None
    return jax.random.fold_in(key, index)

  def _run_with_key(self, arg, key):
    """Runs the body serving keys from ``key``. During ``init`` nothing is
    pushed (Haiku initialises parameters from the top of its rng sequence)
    and no device index is folded in (``init`` usually runs outside pmap)."""
    if not hki.inside_transform():
      raise ValueError(
          f"{self!r} was called outside a Haiku transform, but it serves keys "
          "through Haiku's rng sequence. Call it inside hke.transform(...) (or "
          "hke.transform_with_state) init / apply."
      )
    init = hk.running_init()
    if not init:
      key = self._device_key(key)
    if self.path_keys:
      # Keys derive from `key` and the draw's coordinates alone, so nothing
      # is pushed on Haiku's rng sequence.
      with binding.handler_scope(self, _RandomCall(root=key)):
        with path_keys_lib.handler_running():
          return self.body(arg)
    if not init:
      return self._run_pushed(arg, key)
    if hki.current_frame().rng_stack.peek() is not None:
      return self._run_plain(arg)
    # init got no rng: requests draw from this handler's key, but Haiku's
    # initialisers still see no rng, exactly as without the handler.
    with hk.custom_creator(_without_handler_rng, params=True, state=True):
      return self._run_pushed(arg, key)

  def _run_plain(self, arg):
    with binding.handler_scope(self, _RandomCall()):
      return self.body(arg)

  def _run_pushed(self, arg, key):
    # Without this key, an enclosing random handler's requests served in this
    # body would depend only on `key`, not on the enclosing handler's own key.
    encloses = any(
        isinstance(s.handler, _RandomHandler) for s in binding.active_scopes()
    )
    entry_key = hk.maybe_next_rng_key() if encloses else None
    with hk.with_rng(key):
      with binding.handler_scope(
          self, _RandomCall(pushes_rng=True, entry_key=entry_key)
      ):
        return self.body(arg)


def _without_handler_rng(next_creator, shape, dtype, init, context):
  """A Haiku creator running an initialiser with the rng a random handler
  pushed hidden (Haiku then raises its own error if the initialiser draws)."""
  del context
  if not any(_pushes_rng(s) for s in binding.active_scopes()):
    return next_creator(shape, dtype, init)
  with hki.current_frame().rng_stack(None):
    return next_creator(shape, dtype, init)


class WithRandomKeyFromArg(_RandomHandler):
  """Serves random requests from a key passed with the argument.

  Called as ``h((arg, key))``; runs ``body(arg)``.

  Example:

  >>> import haiku as hk, jax, hk_effects as hke
  >>> class Draw(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.rng = hke.RandomRequest()
  ...   def __call__(self, x):
  ...     return jax.random.uniform(self.rng.next_key(), x.shape)
  >>> f = hke.transform(hke.handlers.WithRandomKeyFromArg.handling(
  ...     lambda x: Draw()(x)), apply_rng=False)
  >>> a = f.apply({}, (jax.numpy.zeros(3), jax.random.key(1)))
  >>> b = f.apply({}, (jax.numpy.zeros(3), jax.random.key(1)))
  >>> bool((a == b).all())
  True
  """

  @classmethod
  def handling(
      cls,
      body: Callable[[Any], Any],
      hole_predicate=untagged_only,
      handler_id: str | None = None,
      fold_in_axis: str | None = None,
      path_keys: bool = False,
  ) -> "WithRandomKeyFromArg":
    """Builds the handler (``fold_in_axis``, ``path_keys``: see
    ``WithHaikuRandom``)."""
    return cls(body, hole_predicate, handler_id, fold_in_axis, path_keys)

  def __call__(self, arg_and_key):
    if not (isinstance(arg_and_key, tuple) and len(arg_and_key) == 2):
      raise ValueError(
          f"{self!r} must be called with a pair (arg, key); got "
          f"{type(arg_and_key).__name__} {arg_and_key!r:.200}."
      )
    arg, key = arg_and_key
    return self._run_with_key(arg, check_key(key, self))


class WithFrozenRandomState(_RandomHandler):
  """Serves random requests from a fixed key: ``body`` becomes deterministic.

  Keys are drawn from ``fold_in(random_key, starting_offset)``; the same
  offset gives the same keys on every call.

  Example:

  >>> import haiku as hk, jax, hk_effects as hke
  >>> class Draw(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.rng = hke.RandomRequest()
  ...   def __call__(self, x):
  ...     return jax.random.uniform(self.rng.next_key(), x.shape)
  >>> f = hke.transform(hke.handlers.WithFrozenRandomState.handling(
  ...     lambda x: Draw()(x), jax.random.key(3)), apply_rng=False)
  >>> bool((f.apply({}, jax.numpy.zeros(2)) == f.apply(
  ...     {}, jax.numpy.zeros(2))).all())
  True
  """

  random_key: jax.Array
  starting_offset: int

  @classmethod
  def handling(
      cls,
      body: Callable[[Any], Any],
      random_key: jax.Array,
      starting_offset: int = 0,
      hole_predicate=untagged_only,
      handler_id: str | None = None,
      fold_in_axis: str | None = None,
      path_keys: bool = False,
  ) -> "WithFrozenRandomState":
    """Builds the handler (``fold_in_axis``, ``path_keys``: see
    ``WithHaikuRandom``)."""
    handler = cls(
        body,
        hole_predicate,
        handler_id,
        fold_in_axis,
        path_keys,
        config=f"offset={starting_offset}",
    )
    handler.random_key = check_key(random_key, handler)
    if not isinstance(starting_offset, int) or starting_offset < 0:
      raise ValueError(
          "starting_offset must be a non-negative int; got"
          f" {starting_offset!r}."
      )
    handler.starting_offset = starting_offset
    return handler

  def __call__(self, arg):
    # Reusing the frozen key on every call is the point of this handler;
    # cloning says so to JAX's key-reuse checker.
    key = jax.random.fold_in(
        jax.random.clone(self.random_key), self.starting_offset
    )
    return self._run_with_key(arg, key)


class WithHaikuRandom(_RandomHandler):
  """Serves random requests from Haiku's own ``hk.next_rng_key()``.

  Keys come from the ``rng`` given to ``apply``, exactly as if each layer
  called ``hk.next_rng_key()``: after ``jax.jit`` the program is the one a
  hand-written Haiku model compiles to.

  Example:

  >>> import haiku as hk, jax, hk_effects as hke
  >>> class Draw(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.rng = hke.RandomRequest()
  ...   def __call__(self, x):
  ...     return jax.random.uniform(self.rng.next_key(), x.shape)
  >>> f = hke.transform(hke.handlers.WithHaikuRandom.handling(
  ...     lambda x: Draw()(x)))
  >>> f.apply({}, jax.random.key(0), jax.numpy.zeros(2)).shape
  (2,)
  """

  @classmethod
  def handling(
      cls,
      body: Callable[[Any], Any],
      hole_predicate=untagged_only,
      handler_id: str | None = None,
      fold_in_axis: str | None = None,
      path_keys: bool = False,
  ) -> "WithHaikuRandom":
    """Builds the handler.

    Args:
      body: the one-argument forward function.
      hole_predicate: which random requests to claim (default: untagged).
      handler_id: an explicit id; inferred when None.
      fold_in_axis: the name of a mapped axis (``jax.pmap``'s ``axis_name``
        or a ``shard_map`` mesh axis). When given, the index along it is
        folded into the stream, so each device draws differently; when None
        (the default) every device draws the same stream. Using it outside
        such an axis is a ``ValueError``.
      path_keys: when True, each key is a pure function of the handler's key
        (here one ``hk.next_rng_key()`` drawn on entry), the module path, the
        request's attribute and tag, the module's call index and the loop
        indices, so a Python loop, ``hk.scan`` and ``hk.layer_stack``
        versions of a model draw identical keys (``hk_effects._src.effects.random.path_keys``).
        When False (the default) keys come from Haiku's rng sequence.

    Returns:
      The handler.
    """
    return cls(body, hole_predicate, handler_id, fold_in_axis, path_keys)

  def __call__(self, arg):
    # At init no device index is folded in: parameters are the same on
    # every device.
    if self.path_keys or (
        self.fold_in_axis is not None and not hk.running_init()
    ):
      key = hk.maybe_next_rng_key()
      if key is None:
        raise ValueError(
            f"{self!r} needs an rng to fold the device index into: pass a key "
            "as `rng` to `init`/`apply`."
        )
      return self._run_with_key(arg, key)
    return self._run_plain(arg)


class _KeyState(hk.Module):
  """Holds a stateful handler's key as a local state and advances it.

  Each call of the handler makes one of these; the first at the top level
  keeps ``initial_key``, the others (a second call, or calls under other
  name scopes) fold their module path into it, so no two calls of one
  handler object hand out the same keys.
  """

  def __init__(self, initial_key, category, name):
    super().__init__(name=name)
    self.key = local_state.InitialLocalStateRequest(
        self._initial_key, category=category
    )
    self._key = initial_key
    self._first = self.module_name == name

  def _initial_key(self) -> jax.Array:
    if self._first:
      return self._key
    return jax.random.fold_in(
        jax.random.clone(self._key), tree_util.hash32(self.module_name)
    )

  def __call__(self) -> jax.Array:
    key = self.key.get()
    if hk.running_init():
      # init returns this very key as the initial state, so the split made
      # during init must not consume it (JAX's key-reuse checker would see
      # the first apply reuse it).
      key = jax.random.clone(key)
    new_key, use_key = jax.random.split(key)
    self.key.set(new_key)
    return use_key


def _module_name_for(handler_id: str) -> str:
  """A valid Haiku module name for any handler id (``"train-rng"``)."""
  name = re.sub(r"\W", "_", handler_id.lower())
  return name if name[:1].isalpha() else f"key_{name}"


class WithStatefulRandomKey(_RandomHandler):
  """Serves random requests from a key kept in a local state.

  The key lives in a local state of category ``state_category`` (served by
  an enclosing ``handle_local_states``), keyed ``"<handler id>:key"``. Every
  call splits it: one half serves this call, the other is stored, so
  successive ``apply`` calls draw fresh keys without a key argument.

  Example:

  >>> import haiku as hk, jax, hk_effects as hke
  >>> class Draw(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.rng = hke.RandomRequest()
  ...   def __call__(self, x):
  ...     return jax.random.uniform(self.rng.next_key(), x.shape)
  >>> f = hke.transform_with_state(hke.handlers.handle_local_states(
  ...     hke.handlers.WithStatefulRandomKey.handling(
  ...         lambda x: Draw()(x), jax.random.key(0))))
  >>> params, state = f.init(None, jax.numpy.zeros(2))
  >>> a, state = f.apply(params, state, None, jax.numpy.zeros(2))
  >>> b, state = f.apply(params, state, None, jax.numpy.zeros(2))
  >>> bool((a != b).all())
  True
  """

  initial_key: jax.Array
  state_category: Any

  @classmethod
  def handling(
      cls,
      body: Callable[[Any], Any],
      initial_key: jax.Array,
      hole_predicate=untagged_only,
      state_category: Any = "random",
      handler_id: str | None = None,
      fold_in_axis: str | None = None,
      path_keys: bool = False,
  ) -> "WithStatefulRandomKey":
    """Builds the handler (``fold_in_axis``, ``path_keys``: see
    ``WithHaikuRandom``)."""
    handler = cls(
        body,
        hole_predicate,
        handler_id,
        fold_in_axis,
        path_keys,
        config=f"category={state_category!r}",
    )
    handler.initial_key = check_key(initial_key, handler)
    handler.state_category = state_category
    return handler

  def __call__(self, arg):
    key = _KeyState(
        self.initial_key,
        self.state_category,
        name=_module_name_for(self.handler_id),
    )()
    return self._run_with_key(arg, key)
