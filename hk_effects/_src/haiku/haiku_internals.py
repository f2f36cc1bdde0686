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
"""Every use of Haiku's private modules (``haiku._src``), in one place.

One file to read when Haiku changes, and a version check at import instead
of an ``AttributeError`` at the first ``hk.scan``. ``replace`` installs one
object under every name of a Haiku wrapper (``hk.map`` calls
``haiku._src.stateful.scan``; Haiku's advice ``hk.vmap.require_split_rng =
False`` must reach the one ``hk.vmap``).
"""

from __future__ import annotations

from typing import Any, Callable

import haiku as hk
from haiku._src import base
from haiku._src import layer_stack
from haiku._src import lift
from haiku._src import module
from haiku._src import multi_transform
from haiku._src import recurrent
from haiku._src import stateful
from haiku._src import transform
import jax

# dm-haiku releases this file was written and tested against (inclusive);
# pyproject.toml pins the same range.
SUPPORTED_HAIKU = ((0, 0, 17), (0, 0, 17))
_SUPPORTED_TEXT = "dm-haiku>=0.0.17,<0.0.18"


def _version(text: str) -> tuple[int, ...]:
  parts = []
  for piece in text.split(".")[:3]:
    digits = "".join(c for c in piece if c.isdigit())
    parts.append(int(digits or 0))
  return tuple(parts)


def check_version(version: str = hk.__version__) -> None:
  """Raises ImportError unless ``version`` is a supported dm-haiku.

  Example:

  >>> check_version("0.0.17")
  >>> try:
  ...   check_version("0.0.9")
  ... except ImportError as e:
  ...   print("refused")
  refused
  """
  low, high = SUPPORTED_HAIKU
  if not low <= _version(version) <= high:
    raise ImportError(
        f"hk_effects supports {_SUPPORTED_TEXT}, but dm-haiku {version} is "
        "installed. hk_effects reaches into Haiku's frames and wrappers "
        "(haiku._src), which change between releases: install "
        f"'{_SUPPORTED_TEXT}'."
    )


check_version()

# Frames, state and rng.
StatePair = base.StatePair


def frame_state() -> dict[str, dict[str, Any]]:
  """The running frame's Haiku state: bundle -> name -> ``StatePair``
  (Haiku annotates it as arrays; it holds pairs)."""
  return current_frame().state  # type: ignore[return-value]


JaxTraceLevel = base.JaxTraceLevel
current_frame = base.current_frame
inside_transform = base.inside_transform
frame_stack = base.frame_stack
mapped_axis_size = stateful.get_mapped_axis_size

# Method interception.
interceptor_stack = module.interceptor_stack
transparent = module.transparent

# Classes behind public APIs.
LiftingModule = lift.LiftingModule
LayerStack = layer_stack._LayerStack  # pylint: disable=protected-access
LAYER_STACK_IMPLEMENTATIONS = (
    layer_stack._LayerStackNoPerLayer,  # pylint: disable=protected-access
    layer_stack._LayerStackWithPerLayer,
)  # pylint: disable=protected-access


# Haiku's transforms as they were at import (tools/haiku_suite.py may put
# hk_effects' under Haiku's names), and the checks hke's transforms keep.
transform_with_state = transform.transform_with_state
without_state = transform.without_state
multi_transform_with_state = multi_transform.multi_transform_with_state
multi_without_state = multi_transform.without_state
tie_in_original_fn = transform.tie_in_original_fn
check_not_jax_transformed = transform.check_not_jax_transformed


def frame_trace_level() -> Any:
  """The JAX trace level Haiku expects here: the transform's, or that of
  the innermost Haiku wrapper body (``hk.scan``, ``hk.vmap``, ...)."""
  return base.current_frame().jax_trace_stack.peek()


# Where Haiku's wrappers live (``hk.dynamic_unroll`` calls ``recurrent.hk``'s
# scan): hk_effects replaces each under every one of these names.
_OWNERS = (hk, stateful, recurrent.hk)


def original(name: str) -> Callable[..., Any]:
  """Haiku's own ``name`` (before hk_effects replaced it)."""
  current = getattr(stateful, name)
  return getattr(current, "__hk_effects_original__", current)


def replace(name: str, make: Callable[[Callable[..., Any]], Any]) -> None:
  """Installs ``make(original)`` as Haiku's ``name`` everywhere (once)."""
  if hasattr(getattr(stateful, name), "__hk_effects_original__"):
    return
  orig = getattr(stateful, name)
  replacement = make(orig)
  replacement.__hk_effects_original__ = orig
  for owner in _OWNERS:
    if getattr(owner, name, None) is orig:
      setattr(owner, name, replacement)


def replace_method(
    cls: type, name: str, make: Callable[[Callable[..., Any]], Any]
) -> None:
  """Installs ``make(original method)`` as ``cls.name`` (once)."""
  current = cls.__dict__[name]
  if hasattr(current, "__hk_effects_original__"):
    return
  replacement = make(current)
  replacement.__hk_effects_original__ = current
  setattr(cls, name, replacement)


def register_own_interceptor(
    interceptor: Callable[..., Any],
    direct: Callable[[Callable[..., Any], str, Any, tuple, dict], Any],
) -> None:
  """Lets hk_effects' ``interceptor`` skip Haiku's interceptor chain.

  Haiku's chain (a ``MethodContext``, a stack clone and a closure per method
  call, ``__init__`` included) is a large share of what hk_effects adds to
  a trace (``benchmarks/overhead.py``). The replacement below calls the
  ``direct(next, method_name, module, args, kwargs)`` forms registered
  here in the stack's order, skips them for ``__init__`` (they must do
  nothing for it), and gives only users' interceptors a ``MethodContext``.
  """
  _OWN_INTERCEPTORS[interceptor] = direct
  if getattr(module.run_interceptors, "__hk_effects_original__", None):
    return
  original_run = module.run_interceptors
  storage_owner = module.interceptor_stack
  own = _OWN_INTERCEPTORS

  def run_interceptors(
      bound_method, method_name, self, orig_class, *args, **kwargs
  ):
    storage = storage_owner._storage  # pylint: disable=protected-access
    if not storage:
      return original_run(
          bound_method, method_name, self, orig_class, *args, **kwargs
      )
    direct_ = own.get(storage[0]) if len(storage) == 1 else None
    if direct_ is not None:  # The common case, kept short.
      if method_name == "__init__":
        return bound_method(*args, **kwargs)
      return direct_(bound_method, method_name, self, args, kwargs)
    # Ours in their direct form, a user's with Haiku's MethodContext, in the
    # stack's order (what Haiku's chain does, without its stack clone and
    # self-referencing closure per call).
    context = None
    call = bound_method
    for interceptor_ in reversed(storage):
      direct_ = own.get(interceptor_)
      if direct_ is None:
        if context is None:
          context = module.MethodContext(
              module=self,
              method_name=method_name,
              orig_method=bound_method,
              orig_class=orig_class,
          )
        call = _foreign(interceptor_, call, context)
      elif method_name != "__init__":
        call = _chained(direct_, call, method_name, self)
    return call(*args, **kwargs)

  replacement: Any = run_interceptors  # Marked with what it replaces.
  replacement.__hk_effects_original__ = original_run
  module.run_interceptors = replacement


_OWN_INTERCEPTORS: dict[Callable[..., Any], Callable[..., Any]] = {}


def unregister_own_interceptor(interceptor: Callable[..., Any]) -> None:
  """Forgets an interceptor registered for one call (``hke.select_calls``'
  edits register one per call of the edited function)."""
  _OWN_INTERCEPTORS.pop(interceptor, None)


def _foreign(interceptor, next_fun, context):
  return lambda *args, **kwargs: interceptor(next_fun, args, kwargs, context)


def _chained(direct, next_fun, method_name, module_):
  return lambda *args, **kwargs: direct(
      next_fun, method_name, module_, args, kwargs
  )


def clone_frame_keys() -> None:
  """Clones the typed keys of the current frame's state and rng sequence.

  A wrapper traced again after a failed trace passes them to its JAX
  primitive a second time, which ``jax_debug_key_reuse`` (the only case
  where this does anything) would count as reuse.
  """
  if not getattr(jax.config, "jax_debug_key_reuse", False):
    return

  def clone(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(
        x.dtype, jax.dtypes.prng_key
    ):
      return jax.random.clone(x)
    return x

  for bundle in (frame_state() or {}).values():
    for name, pair in bundle.items():
      current = jax.tree_util.tree_map(clone, pair.current)
      initial = (
          current
          if pair.initial is pair.current
          else jax.tree_util.tree_map(clone, pair.initial)
      )
      bundle[name] = StatePair(initial, current)
  rng = current_frame().rng_stack.peek()
  if rng is not None:
    rng.replace_internal_state(
        jax.tree_util.tree_map(clone, rng.internal_state)
    )
