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
"""The side-input effect: layers read a tagged value with ``ask()``.

A side input (an attention mask, token positions) is a value fixed for one
call of the handler, so it needs no threading: the runtime implementation
returns it, and it may be read anywhere, raw JAX transforms included.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

import jax
import jax.numpy as jnp

from hk_effects._src.core import binding
from hk_effects._src.core import effect_base
from hk_effects._src.core import tree_util


class SideInputEffect(Protocol):
  """Protocol of the side-input effect.

  Example:

  >>> import hk_effects as hke
  >>> mask: hke.SideInputEffect = hke.SideInputRequest("mask")
  >>> mask.tag
  'mask'
  """

  def ask(self) -> Any:
    """Returns the side input's value."""


@effect_base.pytree_dataclass
class SideInputRequest(effect_base.EffectRequest, protocol=SideInputEffect):
  """Requests the side input named ``tag``.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Scale(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.scale = hke.SideInputRequest("scale")
  ...   def __call__(self, x):
  ...     return x * self.scale.ask()
  >>> f = hke.transform(hke.handlers.WithConstantSideInputs.handling(
  ...     lambda x: Scale()(x), {"scale": 3.0}), apply_rng=False)
  >>> print(f.apply({}, jnp.ones(2)))
  [3. 3.]
  """

  tag: Any = effect_base.static_field()

  @classmethod
  def suggested_handler(cls) -> str:
    return "hke.handlers.WithConstantSideInputs.handling(forward, {tag: value})"

  def describe(self) -> str:
    return f"side input {self.tag!r}"

  def signature_detail(self, calls, conditional, state, site):
    del conditional, state, site
    shapes = sorted({tree_util.describe(c.value) for c in calls})
    return f"needs {self.tag!r}: {', '.join(shapes) or '?'}"


@effect_base.pytree_dataclass
class HandledSideInputRef(effect_base.HandledEffectRef):
  """A side-input request claimed by a side-input handler.

  Example:

  >>> import hk_effects as hke
  >>> hke.HandledSideInputRef(hke.SideInputRequest("m"), handler_id="h").request.tag
  'm'
  """


@effect_base.pytree_dataclass
class HoistedTag:
  """Names a side input hoisted out of a ``WithConstantSideInputs`` handler.

  Example:

  >>> HoistedTag(source="WithConstantSideInputs_0", tag="mask").tag
  'mask'
  """

  source: str = effect_base.static_field()
  tag: Any = effect_base.static_field()


class SideInputRuntimeImpl(effect_base.EffectRuntimeImpl):
  """Returns the handler's value for the request's tag."""

  __slots__ = ("value",)

  def __init__(self, scope, site, value):
    super().__init__(scope, site)
    self.value = value

  def ask(self) -> Any:
    return self.value


def _check_tags(tags: Any, handler_name: str) -> tuple[Any, ...]:
  if isinstance(tags, str):
    raise ValueError(
        f"{handler_name}.handling got the string {tags!r} as `tags`; a string "
        f"would be read as {len(tags)} one-letter tags. Pass a sequence: "
        f"tags=({tags!r},)."
    )
  tags = tuple(tags)
  if len(set(tags)) != len(tags):
    raise ValueError(
        f"{handler_name}: duplicate tags in {tags!r}; each tag takes one value,"
        " so list each tag once."
    )
  return tags


def _check_value(tag: Any, value: Any, handler_name: str) -> None:
  for leaf in jax.tree_util.tree_leaves(value):
    if not (
        isinstance(leaf, (int, float, complex, bool, jax.Array))
        or hasattr(leaf, "__jax_array__")
        or hasattr(leaf, "dtype")
    ):
      raise TypeError(
          f"{handler_name}: the side input {tag!r} holds {leaf!r} of type "
          f"{type(leaf).__name__}, which is not an array. Side inputs must be "
          "PyTrees of arrays or scalars; convert it with jnp.asarray, or keep "
          "non-array configuration on the module itself."
      )


@dataclasses.dataclass
class _SideInputCall:
  """One call of a side-input handler: the values it serves, tags asked."""

  values: dict[Any, Any]
  # (tag, site) of each request bound, to name them if a shape error follows.
  asked: list[tuple[Any, Any]] = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def _naming_served_values(handler: Any, call: _SideInputCall) -> Iterator[None]:
  """A shape or dtype error raised while side inputs were served is most
  often a side input of the wrong shape; JAX's message names neither tag
  nor module, so the values served and who asked get added to it."""
  try:
    yield
  except (TypeError, ValueError) as e:
    text = str(e)
    if type(e) not in (TypeError, ValueError) or not call.asked:
      raise
    if not any(w in text.lower() for w in ("shape", "broadcast", "dtype")):
      raise
    served = []
    for tag, site in dict.fromkeys((t, str(s)) for t, s in call.asked):
      value = jax.tree_util.tree_map(jnp.asarray, call.values[tag])
      served.append(f"{tag!r} = {tree_util.describe(value)} for {site}")
    raise type(e)(
        f"{text}\n(While {handler!r} served side inputs: {'; '.join(served)}."
        " If the error is about one of them, the value given for its tag has"
        " the wrong shape or dtype for the module that asked.)"
    ) from e


class _SideInputHandler(effect_base.EffectHandler, protocol=SideInputEffect):
  tags: tuple[Any, ...]

  def claims(self, request):
    return isinstance(request, SideInputRequest) and request.tag in self.tags

  def make_ref(self, request):
    return HandledSideInputRef(request, handler_id=self.handler_id)

  def runtime_impl(self, scope, ref, site):
    scope.state.asked.append((ref.request.tag, site))
    return SideInputRuntimeImpl(
        scope, site, scope.state.values[ref.request.tag]
    )


class WithSideInputsFromInputTuple(_SideInputHandler):
  """Serves side inputs passed beside the argument.

  Called as ``h((arg, v_1, ..., v_n))``: ``ask()`` on tag ``tags[i]`` gives
  ``v_i``, and ``body(arg)`` runs.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Shift(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.by = hke.SideInputRequest("by")
  ...   def __call__(self, x):
  ...     return x + self.by.ask()
  >>> h = hke.handlers.WithSideInputsFromInputTuple.handling(
  ...     lambda x: Shift()(x), tags=("by",))
  >>> f = hke.transform(h, apply_rng=False)
  >>> print(f.apply({}, (jnp.zeros(2), 5.0)))
  [5. 5.]
  """

  def __init__(self, body, tags, handler_id):
    self.tags = _check_tags(tags, type(self).__name__)
    super().__init__(body, handler_id, config=repr(self.tags))

  @classmethod
  def handling(
      cls,
      body: Callable[[Any], Any],
      tags: Sequence[Any],
      handler_id: str | None = None,
  ) -> "WithSideInputsFromInputTuple":
    return cls(body, tags, handler_id)

  def __call__(self, arg_tuple):
    expected = 1 + len(self.tags)
    if not isinstance(arg_tuple, tuple) or len(arg_tuple) != expected:
      got = (
          f"a tuple of {len(arg_tuple)}"
          if isinstance(arg_tuple, tuple)
          else f"a {type(arg_tuple).__name__}"
      )
      raise ValueError(
          f"{self!r} expects (arg, "
          + ", ".join(f"<{t!r}>" for t in self.tags)
          + f") ({expected} items) but got "
          f"{got}. Pass one value per tag, in the order of `tags`."
      )
    arg, *values = arg_tuple
    for tag, value in zip(self.tags, values):
      _check_value(tag, value, type(self).__name__)
    call = _SideInputCall(dict(zip(self.tags, values)))
    with binding.handler_scope(self, call), _naming_served_values(self, call):
      return self.body(arg)


class WithConstantSideInputs(_SideInputHandler):
  """Serves side inputs with values fixed when the handler is built.

  As in Penzai, a side input that no module asks for during a call is simply
  unused (``keep_unused=False``, the default, drops it; ``keep_unused=True``
  keeps it), so an inner handler may provide a tag an outer one provides too
  (the inner one wins, S1), and a forward whose modules ask only on some
  paths (train vs eval) works. To catch a misspelt tag, look at
  ``hke.bindings`` / ``hke.effect_signature``, or pass ``strict=True``: then
  a side input nobody asked for during the call is a ``ValueError``.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Shift(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.by = hke.SideInputRequest("by")
  ...   def __call__(self, x):
  ...     return x + self.by.ask()
  >>> f = hke.transform(hke.handlers.WithConstantSideInputs.handling(
  ...     lambda x: Shift()(x), {"by": 1.0, "unused": 2.0}), apply_rng=False)
  >>> print(f.apply({}, jnp.zeros(2)))
  [1. 1.]
  """

  def __init__(self, body, side_inputs, keep_unused, handler_id, strict=False):
    if not isinstance(side_inputs, Mapping):
      raise TypeError(
          "WithConstantSideInputs.handling expects a dict {tag: value} for "
          f"side_inputs; got {side_inputs!r:.200}."
      )
    for tag, value in side_inputs.items():
      _check_value(tag, value, "WithConstantSideInputs")
    if not isinstance(strict, bool):
      raise TypeError(f"strict must be True or False; got {strict!r}.")
    self.side_inputs = dict(side_inputs)
    self.tags = tuple(self.side_inputs)
    self.keep_unused = keep_unused
    self.strict = strict
    config = f"{self.tags!r}|keep_unused={keep_unused}|strict={strict}"
    super().__init__(body, handler_id, config=config)

  @classmethod
  def handling(
      cls,
      body: Callable[[Any], Any],
      side_inputs: Mapping[Any, Any],
      keep_unused: bool = False,
      handler_id: str | None = None,
      strict: bool = False,
  ) -> "WithConstantSideInputs":
    """Builds the handler (``keep_unused``, ``strict``: see the class)."""
    return cls(body, side_inputs, keep_unused, handler_id, strict=strict)

  def __call__(self, arg):
    call = _SideInputCall(self.side_inputs)
    with binding.handler_scope(self, call), _naming_served_values(self, call):
      out = self.body(arg)
    asked = {tag for tag, _ in call.asked}
    unused = [t for t in self.tags if t not in asked]
    if unused and self.strict:
      raise ValueError(
          f"{self!r} was given side inputs {unused!r} that no module asked "
          "for during the call (a misspelt tag?), and strict=True. Remove "
          "them, fix the tag, or drop strict=True to allow unused side "
          "inputs."
      )
    return out


def hoist_constant_side_inputs(
    handler: WithConstantSideInputs,
) -> tuple[WithSideInputsFromInputTuple, dict[HoistedTag, Any]]:
  """Turns constant side inputs into arguments of the handled function.

  Returns a ``WithSideInputsFromInputTuple`` handler over the same body and
  the hoisted values keyed by ``HoistedTag``, so that
  ``new((arg, *hoisted.values()))`` equals ``handler(arg)``. This moves
  constants baked into a function into its arguments (for example to pass a
  mask as a traced argument to a jitted step instead of a constant).

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Shift(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.by = hke.SideInputRequest("by")
  ...   def __call__(self, x):
  ...     return x + self.by.ask()
  >>> h = hke.handlers.WithConstantSideInputs.handling(
  ...     lambda x: Shift()(x), {"by": 2.0})
  >>> new, hoisted = hke.handlers.hoist_constant_side_inputs(h)
  >>> f = hke.transform(new, apply_rng=False)
  >>> print(f.apply({}, (jnp.zeros(1), *hoisted.values())))
  [2.]
  """
  if not isinstance(handler, WithConstantSideInputs):
    raise TypeError(
        "hoist_constant_side_inputs expects a WithConstantSideInputs handler; "
        f"got {handler!r}."
    )
  hoisted = {
      HoistedTag(handler.handler_id, tag): value
      for tag, value in handler.side_inputs.items()
  }
  new = WithSideInputsFromInputTuple.handling(
      handler.body,
      tags=handler.tags,
      handler_id=f"{handler.handler_id}_hoisted",
  )
  return new, hoisted
