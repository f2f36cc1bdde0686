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
"""Interventions on side-output sites: patch and perturb what a model tells.

``tell`` returns its value, so ``x = self.out.tell(x)`` is a site where
``PatchingSideOutputs`` replaces ``x`` (activation patching, steering,
ablation) and ``PerturbingSideOutputs`` adds a perturbation whose gradient is
the gradient with respect to the site's value (Flax's ``perturb``). Sites are
addressed by the paths ``CollectingSideOutputs`` reports, so collected values
patch back in as they are. ``intervention_sites.py`` has the machinery.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from hk_effects._src import context
from hk_effects._src.core import binding
from hk_effects._src.core import effect_base
from hk_effects._src.core import tree_util
from hk_effects._src.effects.side_output import intervention_sites as sites
from hk_effects._src.effects.side_output import side_output

_ctx = context.CONTEXT


def _kind(selector: Any) -> str:
  if callable(selector):
    return "predicate"
  if isinstance(selector, str) and "/" in selector:
    return "path"
  return "tag"


def _describe(selector: Any) -> str:
  if callable(selector):
    return getattr(selector, "__qualname__", repr(selector))
  return repr(selector)


def _matches(selector: Any, kind: str, path: str, tag: Any) -> bool:
  if kind == "path":
    return path == selector
  if kind == "tag":
    return tag == selector
  try:
    return bool(selector(path, tag))
  except Exception as e:
    raise TypeError(
        f"The patch selector {_describe(selector)} raised "
        f"{type(e).__name__}: {e} for the side output at {path!r} (tag "
        f"{tag!r}). A predicate selector is called as fn(path, tag) for every "
        "side output and returns a bool."
    ) from e


class _InterventionHandler(
    effect_base.RewritingHandler, protocol=side_output.SideOutputEffect
):
  """A handler rewriting side-output requests into intervened ones."""

  def _run(self, arg: Any, spec: Any) -> tuple[Any, sites.HandlerCall]:
    with binding.handler_scope(self) as scope:
      frames = len(_ctx.intervention_sites.frames)
      call = sites.HandlerCall(scope, frames, spec)
      with context.pushed(_ctx.intervention_sites.calls, call):
        return self.body(arg), call

  def _site(self, request, site) -> tuple[sites.HandlerCall, str, Any]:
    """The running call, the site's path and the tag first told there."""
    call = sites.current_call(self)
    path = sites.site_path(call, site)
    return call, path, call.seen.setdefault(path, request.tag)


@dataclasses.dataclass(eq=False, repr=False)
class _Patch:
  """Replaces one site's value (``intervened`` calls it at each tell)."""

  call: sites.HandlerCall
  where: str
  replacement: Any

  def __call__(self, value: Any) -> Any:
    value = side_output.as_arrays(value, self.where)
    if not callable(self.replacement):
      axes = sites.loop_axes(self.call)
      return sites.sliced(
          self.replacement, value, axes, self.where, "replacement"
      )
    new = side_output.as_arrays(self.replacement(value), self.where)
    if not tree_util.same_form(new, value):
      raise ValueError(
          f"{self.where}: the patch function returned {tree_util.forms(new)}"
          f" for the value {tree_util.forms(value)} told there. A function"
          " patch must return a value of the told structure, shapes and"
          " dtypes."
      )
    return new

  def __repr__(self) -> str:
    return f"<patch at {self.where}>"


class PatchingSideOutputs(_InterventionHandler):
  """Replaces what matching side-output sites tell (and return).

  ``patches`` maps a *selector* to a *replacement*. A selector is a path as
  ``SideOutputValue.path`` prints it (a string with ``/``), a tag (anything
  else), or a predicate ``fn(path, tag) -> bool``. A replacement is a PyTree
  of arrays of the told value's structure and dtype, or a function
  ``old -> new``. Inside ``hk.scan`` / ``hk.layer_stack`` / ``hk.fori_loop``
  (static bounds) and ``hk.vmap`` a value of the told shape is used in every
  iteration / member, and one stacked over them as ``CollectingSideOutputs``
  returns it (leading axes, outermost wrapper first) is sliced to the one
  running; a function gets each iteration's / member's value. Every tell at
  a matching path is replaced; a site matched by two selectors is an error.

  Outer handlers (a collector) get the replaced values; a side output that
  a handler *inside* this one claims never reaches it.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> def forward(x):
  ...   x = hke.TellIntermediate("act", name="probe")(x + 1)
  ...   return 2 * x
  >>> patched = hke.handlers.PatchingSideOutputs.handling(
  ...     forward, {"probe/intermediate": jnp.array([10.0, 20.0])})
  >>> print(hke.transform(patched, apply_rng=False).apply({}, jnp.zeros(2)))
  [20. 40.]
  """

  def __init__(self, body, patches, strict, handler_id):
    if not isinstance(patches, Mapping):
      raise TypeError(
          "PatchingSideOutputs.handling expects `patches` to be a mapping "
          "from site selectors (a path, a tag, or fn(path, tag)) to "
          f"replacements (values or functions old -> new); got {patches!r}."
      )
    self.patches = [(s, _kind(s), r) for s, r in patches.items()]
    self.strict = strict
    config = "|".join(_describe(s) for s in patches) + f"|{strict}"
    super().__init__(body, handler_id, config=config)

  @classmethod
  def handling(
      cls,
      body: Callable[[Any], Any],
      patches: Mapping[Any, Any],
      strict: bool = True,
      handler_id: str | None = None,
  ) -> "PatchingSideOutputs":
    """Builds the patching handler around ``body``.

    Args:
      body: one-argument forward function.
      patches: selector -> replacement value or function (see the class).
      strict: a selector that matches no side output of the call raises a
        ``ValueError`` naming it and the closest paths; False skips it.
      handler_id: explicit id (inferred if None).

    Returns:
      The handler; calling it returns ``body(arg)`` with the sites patched.
    """
    return cls(body, patches, strict, handler_id)

  def claims(self, request):
    return isinstance(request, side_output.SideOutputRequest)

  def rewrite(self, request, site):
    call, path, _ = self._site(request, site)
    hits = [
        i
        for i, (s, kind, _) in enumerate(self.patches)
        if _matches(s, kind, path, request.tag)
    ]
    if not hits:
      return request
    if len(hits) > 1:
      raise ValueError(
          f"Side output {path!r} (tag {request.tag!r}) is matched by "
          f"{len(hits)} patch selectors: "
          f"{[_describe(self.patches[i][0]) for i in hits]}. A site takes "
          "one patch: make the selectors disjoint, or give one function that "
          "does both."
      )
    selector, _, replacement = self.patches[hits[0]]
    call.matched.add(hits[0])
    where = (
        f"Patch {_describe(selector)} at side output {path!r} (tag "
        f"{request.tag!r})"
    )
    return sites.intervened(request, _Patch(call, where, replacement))

  def __call__(self, arg):
    out, call = self._run(arg, None)
    if self.strict:
      for i, (selector, kind, _) in enumerate(self.patches):
        if i not in call.matched:
          raise ValueError(
              f"PatchingSideOutputs: the {kind} selector "
              f"{_describe(selector)} matched no side output told in this "
              f"call; {sites.closest(selector, call.seen)}. Selectors are "
              "paths as CollectingSideOutputs reports them, tags, or "
              "fn(path, tag); pass strict=False to allow selectors that "
              "match nothing."
          )
    return out


@dataclasses.dataclass(eq=False, repr=False)
class _Perturb:
  """Adds one site's perturbation (or records its shape, for
  ``perturbation_zeros``)."""

  call: sites.HandlerCall
  path: str
  where: str
  delta: Any
  found: dict | None = None

  def __call__(self, value: Any) -> Any:
    value = side_output.as_arrays(value, self.where)
    if sites.count_tell(self.call, self.path) > 1:
      raise ValueError(
          f"{self.where} was told more than once in one call (a module "
          "called twice outside loops), so one perturbation cannot tell its "
          "values apart. Give each call its own module, or loop with hk.scan "
          "/ hk.layer_stack, whose sites take stacked perturbations."
      )
    axes = sites.loop_axes(self.call)
    if self.found is None:
      delta = sites.sliced(self.delta, value, axes, self.where, "perturbation")
      return jax.tree_util.tree_map(jnp.add, value, delta)
    self._record(value, axes, self.found)
    return value

  def _record(self, value: Any, axes, found: dict) -> None:
    unknown = [kind for kind, length, _ in axes if length is None]
    if unknown:
      raise ValueError(
          f"{self.where} is told inside {unknown[0]}"
          + sites.unknown_length_fix(unknown[0], "a stacked perturbation")
      )
    lengths = tuple(length for _, length, _ in axes)
    shapes = jax.tree_util.tree_map(
        lambda v: jax.ShapeDtypeStruct(lengths + v.shape, v.dtype), value
    )
    known = found.setdefault(self.path, shapes)
    if known != shapes:
      raise ValueError(
          f"{self.where} was told values of different shapes, "
          f"{tree_util.forms(known)} and {tree_util.forms(shapes)}, so no one "
          "perturbation fits it."
      )

  def __repr__(self) -> str:
    return f"<perturbation at {self.where}>"


class PerturbingSideOutputs(_InterventionHandler):
  """Adds perturbations to what side-output sites tell, for gradients.

  Called as ``h((arg, perturbations))``, it returns ``body(arg)`` where each
  claimed site (all side outputs, or those with ``tag`` / accepted by
  ``tag_predicate``) tells and returns ``value + perturbations[path]``.
  With zero perturbations the model is unchanged, and ``jax.grad`` of the
  loss with respect to ``perturbations`` gives, per path, the gradient with
  respect to that site's value (stacked over the iterations of enclosing
  loops, as ``CollectingSideOutputs`` stacks values). ``perturbation_zeros``
  builds the zero tree; ``perturbations=None`` runs unperturbed (for
  ``init``). Shapes follow ``PatchingSideOutputs``: the told shape (the same
  perturbation in every iteration) or stacked.

  Example:

  >>> import jax, jax.numpy as jnp, hk_effects as hke
  >>> def forward(x):
  ...   h = hke.TellIntermediate("act", name="probe")(x * 2)
  ...   return jnp.sum(h ** 2)
  >>> f = hke.transform(hke.handlers.PerturbingSideOutputs.handling(forward),
  ...                   apply_rng=False)
  >>> x = jnp.array([1.0, 3.0])
  >>> zeros = hke.handlers.perturbation_zeros(f.apply)({}, (x, None))
  >>> grads = jax.grad(lambda p: f.apply({}, (x, p)))(zeros)
  >>> print(grads["probe/intermediate"])  # d sum(h**2) / dh = 2h
  [ 4. 12.]
  """

  def __init__(self, body, tag, tag_predicate, strict, handler_id):
    config = side_output.select_tags(
        self, "PerturbingSideOutputs", tag, tag_predicate, "or neither"
    )
    self.strict = strict
    super().__init__(body, handler_id, config=f"{config}|{strict}")

  @classmethod
  def handling(
      cls,
      body: Callable[[Any], Any],
      tag: Any = None,
      tag_predicate: Callable[[Any], bool] | None = None,
      strict: bool = True,
      handler_id: str | None = None,
  ) -> "PerturbingSideOutputs":
    """Builds the perturbing handler around ``body``.

    Args:
      body: one-argument forward function.
      tag: perturb only side outputs with this tag (None: all).
      tag_predicate: perturb the side outputs whose tag it accepts.
      strict: a claimed site without an entry, or an entry no site told,
        raises a ``ValueError``; False leaves such sites unperturbed.
      handler_id: explicit id (inferred if None).

    Returns:
      The handler; ``h((arg, perturbations))`` returns ``body(arg)``.
    """
    return cls(body, tag, tag_predicate, strict, handler_id)

  claims = side_output.claims_by_tag

  def rewrite(self, request, site):
    call, path, first_tag = self._site(request, site)
    where = f"Perturbed side output {path!r} (tag {request.tag!r})"
    if first_tag != request.tag:
      raise ValueError(
          f"{where}: the path also tells tag {first_tag!r}, so one "
          "perturbation entry cannot tell the sites apart (functional "
          "hke.tell calls in one module share the path '<module>/tell'). "
          "Tell from a module with its own SideOutputRequest, or perturb "
          "one tag per handler (tag=...)."
      )
    discovering = _ctx.intervention_sites.discovering
    if discovering:
      found = discovering[-1].setdefault(self.handler_id, {})
      return sites.intervened(
          request, _Perturb(call, path, where, None, found=found)
      )
    perturbations = call.spec
    if perturbations is None:
      return request
    if path not in perturbations:
      if not self.strict:
        return request
      raise ValueError(
          f"{where} has no entry in the perturbations given "
          f"({sorted(perturbations)[:8]}). Build them with "
          "hke.handlers.perturbation_zeros(apply_fn)(*args), or pass "
          "strict=False to leave sites without an entry unperturbed."
      )
    call.matched.add(path)
    return sites.intervened(
        request, _Perturb(call, path, where, perturbations[path])
    )

  def __call__(self, arg_and_perturbations):
    if (
        not isinstance(arg_and_perturbations, tuple)
        or len(arg_and_perturbations) != 2
    ):
      raise TypeError(
          "PerturbingSideOutputs is called as h((arg, perturbations)), with "
          "perturbations a dict {path: array} (or None); got "
          f"{type(arg_and_perturbations).__name__} "
          f"{repr(arg_and_perturbations)[:80]}."
      )
    arg, perturbations = arg_and_perturbations
    if perturbations is not None and not isinstance(perturbations, Mapping):
      raise TypeError(
          "PerturbingSideOutputs expects perturbations as a dict {path: "
          "array} (from perturbation_zeros) or None; got "
          f"{perturbations!r}."
      )
    out, call = self._run(arg, perturbations)
    if self.strict and not _ctx.intervention_sites.discovering:
      for path in perturbations or ():
        if path not in call.matched:
          raise ValueError(
              f"PerturbingSideOutputs: the perturbation for {path!r} matched "
              "no side output told in this call; "
              f"{sites.closest(path, call.seen)}. Build the tree with "
              "hke.handlers.perturbation_zeros, or pass strict=False."
          )
    return out


def perturbation_zeros(
    fn: Callable[..., Any], handler_id: str | None = None
) -> Callable[..., dict[str, Any]]:
  """The zero perturbations of the ``PerturbingSideOutputs`` that ``fn`` runs.

  Returns a function taking ``fn``'s arguments (e.g. ``model.apply`` with
  ``params``, ``rng`` and ``(x, None)``, or ``model.init``) that evaluates
  ``fn`` abstractly (``jax.eval_shape``, no real computation) and returns
  ``{path: zeros}`` for every site the handler claims, stacked over the
  enclosing loops and ``hk.vmap`` s. ``handler_id`` picks the handler where
  ``fn`` runs several. It may be called once per example (it traces ``fn``
  afresh each call); pass ``fn`` before ``jax.jit``, since a jitted function
  reuses its cached trace without running the model.

  Example:

  >>> import haiku as hk, jax, jax.numpy as jnp, hk_effects as hke
  >>> def forward(x):
  ...   probe = hke.TellIntermediate("act")
  ...   return hk.scan(lambda c, xi: (probe(c + xi), None), 0.0, x)[0]
  >>> f = hke.transform(hke.handlers.PerturbingSideOutputs.handling(forward),
  ...                   apply_rng=False)
  >>> zeros = hke.handlers.perturbation_zeros(f.apply)({}, (jnp.ones(3), None))
  >>> {path: z.shape for path, z in zeros.items()}
  {'tell_intermediate/intermediate': (3,)}
  """

  def run(*args, **kwargs) -> dict[str, Any]:
    # JAX caches eval_shape's trace by function identity and argument
    # shapes, and a cached trace does not run the model, so nothing would be
    # discovered on the second call: a fresh function each call misses it.
    def fresh(*args, **kwargs):
      return fn(*args, **kwargs)

    with context.pushed(_ctx.intervention_sites.discovering, {}) as found:
      jax.eval_shape(fresh, *args, **kwargs)
    if handler_id is not None and handler_id not in found:
      raise ValueError(
          "perturbation_zeros: no PerturbingSideOutputs with id "
          f"{handler_id!r} told anything; handlers that did: "
          f"{sorted(found)}."
      )
    if handler_id is None and len(found) > 1:
      raise ValueError(
          "perturbation_zeros: several PerturbingSideOutputs ran "
          f"({sorted(found)}); pass handler_id= to pick one."
      )
    if not found:
      jitted = ""
      if hasattr(fn, "lower") and hasattr(fn, "trace"):
        jitted = (
            " It is jax.jit-compiled: JAX reuses its cached trace without "
            "running the model; pass the function before jax.jit "
            "(model.apply, not jax.jit(model.apply))."
        )
      raise ValueError(
          f"perturbation_zeros: no PerturbingSideOutputs in {fn!r} claimed a "
          "side output. Pass the function that runs the handler (e.g. "
          "model.apply), with the handler's argument as (arg, None)."
          + jitted
      )
    shapes = found[next(iter(found)) if handler_id is None else handler_id]
    return {
        path: jax.tree_util.tree_map(
            lambda s: jnp.zeros(s.shape, s.dtype), tree
        )
        for path, tree in shapes.items()
    }

  return run
