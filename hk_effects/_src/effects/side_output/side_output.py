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
"""The side-output effect: layers report a value with ``tell(value)``.

``CollectingSideOutputs`` returns ``(out, [SideOutputValue, ...])`` in call
order; an unhandled ``tell`` does nothing. A request's ``mode`` says how
repeated tells at its site combine: ``"append"`` keeps each (stacked on a
leading axis by ``hk.scan``, ``hk.map``, ``hk.fori_loop``,
``hk.layer_stack``); ``"last"``, ``"sum"`` and ``hke.Reduce`` keep one value
per site. ``hk.vmap`` batches the result; a site told in only some branches
of ``hk.cond`` / ``hk.switch`` is zeros where not taken, with
``SideOutputValue.present`` False; ``hk.while_loop`` carries ``"last"`` and
``"sum"`` sites. ``side_output_transport.py`` explains how values leave
these wrappers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import haiku as hk
import jax
import jax.numpy as jnp

from hk_effects._src.core import binding
from hk_effects._src.core import effect_base
from hk_effects._src.core import tree_util
from hk_effects._src.effects.side_output import (
    side_output_transport as transport,
)
from hk_effects._src.effects.side_output.side_output_reduce import Reduce
from hk_effects._src.haiku import haiku_internals as hki


class SideOutputEffect(Protocol):
  """Protocol of the side-output effect.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Square(hk.Module):
  ...   def __init__(self, name=None):
  ...     super().__init__(name=name)
  ...     self.out = hke.SideOutputRequest("sq")  # a SideOutputEffect
  ...   def __call__(self, x):
  ...     return self.out.tell(x * x)
  >>> f = hke.transform(hke.handlers.CollectingSideOutputs.handling(
  ...     lambda x: Square()(x), tag="sq"))
  >>> out, told = f.apply({}, None, jnp.arange(3.0))
  >>> [(t.path, t.value.tolist()) for t in told]
  [('square/out', [0.0, 1.0, 4.0])]
  """

  def tell(self, value: Any) -> Any:
    """Reports ``value`` (a PyTree of arrays) to the collecting handler and
    returns it, so ``x = self.out.tell(x)`` marks an intervention site."""


@effect_base.pytree_dataclass
class SideOutputRequest(effect_base.EffectRequest, protocol=SideOutputEffect):
  """Requests to report values under ``tag``; ``tell`` is a no-op if unhandled.

  Args:
    tag: the name collectors select by.
    mode: how repeated tells at this site combine: ``"append"`` (default),
      ``"last"``, ``"sum"`` or a ``hke.Reduce`` (see the module docstring).

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Double(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.report = hke.SideOutputRequest("half")
  ...   def __call__(self, x):
  ...     self.report.tell(x)
  ...     return 2 * x
  >>> f = hke.transform(lambda x: Double()(x), apply_rng=False)
  >>> print(f.apply({}, jnp.ones(2)))  # Unhandled: tell does nothing.
  [2. 2.]
  """

  tag: Any = effect_base.static_field()
  mode: Any = effect_base.static_field(default="append")

  def __post_init__(self):
    if not isinstance(self.mode, Reduce) and self.mode not in transport.MODES:
      raise ValueError(
          f"Unknown side-output mode {self.mode!r}; use one of "
          f"{transport.MODES!r} ('append' keeps every value, 'last' the last "
          "one, 'sum' adds them) or hke.Reduce(init_fn, reduce_fn)."
      )

  @classmethod
  def suggested_handler(cls) -> str:
    return "hke.handlers.CollectingSideOutputs.handling(forward)"

  def describe(self) -> str:
    suffix = "" if self.mode == "append" else f", {self.mode}"
    return f"side output {self.tag!r}{suffix}"

  def signature_detail(self, calls, conditional, state, site) -> str:
    del state, site
    told = {tree_util.describe(c.value) for c in calls if c.method == "tell"}
    where = ""
    if conditional:
      where = f", conditional ({', '.join(sorted(set(conditional)))})"
    shapes = ", ".join(sorted(told)) or "?"
    return f"tells {self.tag!r} x{len(calls)}: {shapes}{where}"

  def tell(self, value: Any) -> Any:
    """Returns ``value``: an unhandled side output is dropped by design
    (S4). (Rewritten requests of patching handlers return a replacement.)"""
    return value


@effect_base.pytree_dataclass
class HandledSideOutputRef(effect_base.HandledEffectRef):
  """A side-output request claimed by a collector.

  Example:

  >>> import hk_effects as hke
  >>> hke.HandledSideOutputRef(hke.SideOutputRequest("a"),
  ...                          handler_id="h").request.tag
  'a'
  """


@dataclasses.dataclass(frozen=True)
class SideOutputValue:
  """One collected value with where it came from.

  ``path`` is the telling module's Haiku name and the request's attribute
  path, joined by ``/`` (``"mlp/~/linear_1/tell_intermediate/intermediate"``);
  ``hke.tell`` outside a module gives ``"~/tell"``. ``present`` says whether
  the value was told: a boolean array where it was told inside a branch of
  ``hk.cond`` / ``hk.switch`` (or a loop with traced bounds), False where
  that branch was not taken (``value`` is zeros there), stacked and batched
  with ``value`` by enclosing loops and ``hk.vmap``; ``numpy.True_`` where
  it was told unconditionally. ``path`` and ``tag`` are static PyTree
  metadata, ``value`` a child, and ``present`` a child unless it is that
  static ``True`` (so the PyTree of an unconditional value is unchanged).

  Example:

  >>> import jax
  >>> v = SideOutputValue(path="block/probe", tag="act", value=1.0)
  >>> jax.tree_util.tree_leaves(v), bool(v.present)
  ([1.0], True)
  """

  path: str
  tag: Any
  value: Any
  present: Any = transport.ALWAYS


def _flatten_value(v: SideOutputValue):
  children = [(jax.tree_util.GetAttrKey("value"), v.value)]
  conditional = v.present is not transport.ALWAYS
  if conditional:
    children.append((jax.tree_util.GetAttrKey("present"), v.present))
  return tuple(children), (v.path, v.tag, conditional)


def _unflatten_value(aux, children):
  path, tag, _ = aux
  return SideOutputValue(path, tag, *children)


# Not jax.tree_util.register_dataclass: whether `present` is a child depends
# on the value (static True adds no leaf, so no output to a jitted apply).
jax.tree_util.register_pytree_with_keys(
    SideOutputValue, _flatten_value, _unflatten_value
)


def as_arrays(value: Any, where: str) -> Any:
  """``value`` (told ``where``) with each leaf an array."""

  def convert(leaf):
    try:
      return jnp.asarray(leaf)
    except TypeError as e:
      raise TypeError(
          f"{where} was told {leaf!r} of type {type(leaf).__name__}, which "
          "is not an array. Tell PyTrees of arrays or numbers (convert with "
          "jnp.asarray)."
      ) from e

  return jax.tree_util.tree_map(convert, value)


def _tell(scope, site: binding.Site, request: SideOutputRequest, value: Any):
  """Tells ``value`` to ``scope``'s collector (None: to no one); returns it,
  or what a patching / perturbing handler's rewritten request makes of it."""
  value = request.tell(value)
  if scope is not None:
    where = f"Side output {request.tag!r} at {site}"
    told = transport.Told(scope, site, request.tag, request.mode)
    transport.deliver(told, as_arrays(value, where))
  return value


class SideOutputRuntimeImpl(effect_base.EffectRuntimeImpl):
  """Hands told values to the collector (through any Haiku wrapper between)."""

  __slots__ = ("request",)

  def __init__(self, scope, site, request: SideOutputRequest):
    super().__init__(scope, site)
    self.request = request

  def tell(self, value: Any) -> Any:
    return _tell(self.scope, self.site, self.request, value)


def select_tags(
    handler, name: str, tag: Any, tag_predicate: Any, neither: str
) -> str:
  """Sets ``handler.tag`` / ``.tag_predicate`` (not both); returns config."""
  if tag is not None and tag_predicate is not None:
    raise ValueError(
        f"{name}.handling got both tag={tag!r} and "
        f"tag_predicate={tag_predicate!r}; pass one of them ({neither})."
    )
  handler.tag, handler.tag_predicate = tag, tag_predicate
  predicate_name = getattr(tag_predicate, "__qualname__", repr(tag_predicate))
  return f"{tag!r}|{predicate_name}"


def claims_by_tag(handler, request) -> bool:
  """Claims by ``handler.tag`` or ``.tag_predicate`` (all where both None)."""
  if not isinstance(request, SideOutputRequest):
    return False
  if handler.tag is not None:
    return request.tag == handler.tag
  if handler.tag_predicate is not None:
    return bool(handler.tag_predicate(request.tag))
  return True


class CollectingSideOutputs(
    effect_base.EffectHandler, protocol=SideOutputEffect
):
  """Collects side outputs: ``h(arg)`` returns ``(body(arg), values)``.

  ``values`` is a list of ``SideOutputValue`` in call order. With neither
  ``tag`` nor ``tag_predicate`` every side output is collected.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> def forward(x):
  ...   x = hke.TellIntermediate("act", name="probe")(x + 1)
  ...   return 2 * x
  >>> f = hke.transform(hke.handlers.CollectingSideOutputs.handling(forward),
  ...                   apply_rng=False)
  >>> out, values = f.apply({}, jnp.zeros(2))
  >>> print(out, values[0].path, values[0].tag, values[0].value)
  [2. 2.] probe/intermediate act [1. 1.]
  """

  def __init__(self, body, tag, tag_predicate, handler_id):
    neither = "or neither, to collect every tag"
    config = select_tags(
        self, "CollectingSideOutputs", tag, tag_predicate, neither
    )
    if tag_predicate is not None and not callable(tag_predicate):
      raise TypeError(
          "tag_predicate must be a callable taking a tag and returning a "
          f"bool; got {tag_predicate!r}."
      )
    super().__init__(body, handler_id, config=config)

  @classmethod
  def handling(
      cls,
      body: Callable[[Any], Any],
      tag: Any = None,
      tag_predicate: Callable[[Any], bool] | None = None,
      handler_id: str | None = None,
  ) -> "CollectingSideOutputs":
    """Builds the collector around ``body``.

    Args:
      body: one-argument forward function.
      tag: collect only side outputs with this tag.
      tag_predicate: collect the side outputs whose tag it accepts.
      handler_id: explicit id (inferred if None).

    Returns:
      The handler; calling it returns ``(body(arg), [SideOutputValue, ...])``.
    """
    return cls(body, tag, tag_predicate, handler_id)

  claims = claims_by_tag

  def make_ref(self, request):
    return HandledSideOutputRef(request, handler_id=self.handler_id)

  def runtime_impl(self, scope, ref, site):
    return SideOutputRuntimeImpl(scope, site, ref.request)

  def __call__(self, arg):
    with binding.handler_scope(self) as scope:
      with transport.collecting(scope) as collected:
        out = self.body(arg)
    told = zip(collected.told, collected.values, collected.presents)
    return out, [SideOutputValue(t.path, t.tag, v, p) for t, v, p in told]


def tell(tag: Any, value: Any, mode: str = "append") -> Any:
  """Tells ``value`` under ``tag`` from anywhere inside a forward function.

  The functional form of ``SideOutputRequest(tag, mode).tell(value)``, for
  code outside modules (or between Haiku wrappers): the innermost running
  collector that claims the tag gets it, with path ``<current module>/tell``
  (``~/tell`` outside modules). With no collector it does nothing. Returns
  ``value``, or what a ``PatchingSideOutputs`` / ``PerturbingSideOutputs``
  around it makes of it.

  Example:

  >>> import jax.numpy as jnp, hk_effects as hke
  >>> def forward(x):
  ...   hke.tell("input_norm", jnp.linalg.norm(x))
  ...   return x
  >>> f = hke.transform(hke.handlers.CollectingSideOutputs.handling(forward),
  ...                   apply_rng=False)
  >>> _, values = f.apply({}, jnp.array([3.0, 4.0]))
  >>> print(values[0].path, float(values[0].value))
  ~/tell 5.0
  """
  request = SideOutputRequest(tag, mode)
  if not binding.active_scopes():
    return request.tell(value)
  module_path = (
      hk.experimental.current_name() if hki.inside_transform() else "~"
  )
  site = binding.Site(module_path, "tell")
  # Patching / perturbing handlers inside the collector rewrite the request.
  scope, request, _ = binding.serving_scope(request, site)
  return _tell(scope, site, request, value)


def is_collected(tag: Any) -> bool:
  """Whether a side output told under ``tag`` here would reach any handler.

  True while a running handler claims a side output of this tag (a
  collector, or a patching / perturbing handler that rewrites it). An
  unclaimed ``tell`` costs nothing, but the expression computing its value
  runs all the same and leaves its equations in the jaxpr (XLA removes them
  after ``jax.jit``, tracing and ``jax.make_jaxpr`` still pay). Guard values
  that exist only to be told::

    if hke.is_collected("activation_norm"):
      self.norm.tell(jnp.linalg.norm(x, axis=-1))

  It answers for the point of the call, as ``hke.tell`` looks its collector
  up: ask it inside the module method that tells. A tell skipped this way is
  absent from ``hke.bindings`` and ``hke.effect_signature`` run without a
  collector.

  Example:

  >>> import jax, jax.numpy as jnp, hk_effects as hke
  >>> def forward(x):
  ...   if hke.is_collected("norm"):
  ...     hke.tell("norm", jnp.linalg.norm(x))
  ...   return 2 * x
  >>> plain = hke.transform(forward, apply_rng=False)
  >>> len(jax.make_jaxpr(plain.apply)({}, jnp.ones(3)).eqns)
  1
  >>> collected = hke.transform(
  ...     hke.handlers.CollectingSideOutputs.handling(forward), apply_rng=False)
  >>> _, values = collected.apply({}, jnp.array([3.0, 4.0]))
  >>> float(values[0].value)
  5.0
  """
  request = SideOutputRequest(tag)
  return any(
      binding.handler_claims(scope.handler, request)
      for scope in binding.active_scopes()
  )
