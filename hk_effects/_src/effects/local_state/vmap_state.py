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
"""``hke.vmap``: ``hk.vmap`` with per-member local state (and Haiku state).

``hk.vmap`` shares Haiku state across members, so a state set to a
per-example value inside it (a KV cache, per-member statistics) cannot be
kept. The mapped states travel as extra mapped inputs and outputs of one
``hk.vmap`` call; ``init`` creates them inside it, one per member, each
initializer with a key per member derived from Haiku's rng without advancing
it (so params are those ``hk.vmap`` gives). Everything else (shared params,
``split_rng``) is ``hk.vmap``'s.
"""

from __future__ import annotations

import functools
import itertools
from typing import Any, Callable, Mapping

import haiku as hk
import jax

from hk_effects._src.effects.local_state import local_state
from hk_effects._src.haiku import haiku_internals as hki

Axes = int | Mapping[Any, int] | None

_AXIS_NAMES = itertools.count()


def _per_member_key(next_creator, shape, dtype, init, context):
  """A Haiku state creator: a per-member state's initializer draws a key
  of its own per member (as local states' do)."""
  bundle, _, name = context.full_name.rpartition("/")
  with local_state.member_rng(bundle, name):
    return next_creator(shape, dtype, init)


def _check_axes(name: str, axes: Axes) -> None:
  values = axes.values() if isinstance(axes, Mapping) else [axes]
  if axes is not None and (
      isinstance(axes, bool) or not all(isinstance(a, int) for a in values)
  ):
    raise TypeError(
        f"hke.vmap's {name} must be an int (every category), a mapping from "
        f"category to an int axis, or None; got {axes!r}."
    )


def _axis_values(axes: Axes) -> list[int]:
  return [axes] if isinstance(axes, int) else list((axes or {}).values())


def _names(key: Any, bundle: str) -> bool:
  """Whether a key of ``local_state_axes`` (a category) or ``state_axes`` (a
  module, covering its submodules) names Haiku state bundle ``bundle``."""
  if bundle.startswith(local_state.BUNDLE_PREFIX):
    return bundle == local_state.bundle_name(key)
  return bundle == key or bundle.startswith(f"{key}/")


def _axis_of(
    bundle: str, local_state_axes: Axes, state_axes: Axes
) -> int | None:
  """The axis of the states of Haiku state bundle ``bundle``, if mapped."""
  if bundle.startswith(local_state.BUNDLE_PREFIX):
    axes = local_state_axes
  else:
    axes = state_axes
  if isinstance(axes, int):
    return axes
  return next((a for k, a in (axes or {}).items() if _names(k, bundle)), None)


def _check_keys_matched(
    local_state_axes: Axes, state_axes: Axes, bundles: list[str]
) -> None:
  """Raises for keys naming no state of the call while states of their kind
  are left unmapped: a misspelt key would leave its state shared, and JAX's
  "mapped output ... but out_axes is None" would name neither."""
  prefix = local_state.BUNDLE_PREFIX
  problems = []
  for is_local, axes in ((True, local_state_axes), (False, state_axes)):
    own = [b for b in bundles if b.startswith(prefix) == is_local]
    if not isinstance(axes, Mapping) or all(
        _axis_of(b, local_state_axes, state_axes) is not None for b in own
    ):
      continue
    missing = [k for k in axes if not any(_names(k, b) for b in own)]
    if missing and is_local:
      problems.append(
          f"local_state_axes names categories {missing} that no local state "
          "of this call has; the categories that exist: "
          f"{sorted(b[len(prefix) :] for b in own)}."
      )
    elif missing:
      problems.append(
          f"state_axes names modules {missing} that hold no Haiku state in "
          f"this call; the state bundles that exist: {sorted(own)}."
      )
  if problems:
    raise ValueError(
        "hke.vmap: "
        + " ".join(problems)
        + " Fix the spelling of the key (a category is the `category=` of a "
        "local-state request; a module is the start of a Haiku state "
        "bundle's name, e.g. 'batch_norm' for 'batch_norm/~/mean_ema')."
    )


def _per_argument(in_axes: Any, args: tuple[Any, ...]) -> tuple[Any, ...]:
  if isinstance(in_axes, (list, tuple)):
    return tuple(in_axes)
  return (in_axes,) * len(args)


def _check_members(
    states: dict[int, dict[str, dict[str, Any]]], size: int
) -> None:
  for axis, bundles in states.items():
    for bundle, entries in bundles.items():
      for key, value in entries.items():
        for leaf in jax.tree_util.tree_leaves(value):
          shape = jax.numpy.shape(leaf)
          if len(shape) <= axis or shape[axis] != size:
            raise ValueError(
                f"State {key!r} of bundle {bundle!r} has shape {shape}, not "
                f"{size} members along axis {axis}, so hke.vmap cannot give "
                "each member its own. Every state of a category named in "
                "local_state_axes (or a module named in state_axes) holds one "
                "value per member, stacked on its axis, as init creates them "
                "inside hke.vmap: pass apply the state that init returned, "
                "and give states used outside the vmap another category."
            )


def vmap(
    fun: Callable[..., Any],
    in_axes: Any = 0,
    out_axes: Any = 0,
    axis_name: str | None = None,
    axis_size: int | None = None,
    *,
    split_rng: bool,
    local_state_axes: Axes = None,
    state_axes: Axes = None,
) -> Callable[..., Any]:
  """``hk.vmap`` that keeps one local state per member where asked.

  Args:
    fun: the function to map, called inside a Haiku transform.
    in_axes: as ``hk.vmap``.
    out_axes: as ``hk.vmap``.
    axis_name: as ``hk.vmap``.
    axis_size: as ``hk.vmap``.
    split_rng: as ``hk.vmap`` (required).
    local_state_axes: local-state categories whose states are per member:
      a mapping from category to the axis the states are stacked on, or an
      int (every category, on that axis). None: ``hk.vmap`` exactly.
    state_axes: the same for Haiku's own state (``hk.get_state``), by
      module name (a name maps the module's state and its submodules'), or
      an int for all of it: e.g. ``hk.BatchNorm`` statistics per member.
      A key of either mapping that names no state of the call while some
      state is left unmapped is reported as a likely typo, with the
      categories / state bundles that exist.

  Returns:
    The mapped function. Mapped states come out of ``init`` stacked on
    their axis and are threaded per member through ``apply``.

  Example:

  >>> import haiku as hk, jax, jax.numpy as jnp, hk_effects as hke
  >>> class Count(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.seen = hke.InitialLocalStateRequest(
  ...         lambda: jnp.zeros([]), category="stats")
  ...   def __call__(self, x):
  ...     self.seen.set(self.seen.get() + x)  # Per example.
  ...     return x
  >>> def forward(xs):
  ...   return hke.vmap(Count(), split_rng=False,
  ...                   local_state_axes={"stats": 0})(xs)
  >>> f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
  >>> params, state = f.init(None, jnp.zeros([3]))
  >>> _, state = f.apply(params, state, None, jnp.array([1.0, 2.0, 3.0]))
  >>> print(state["~local_state/stats"]["count:seen"])
  [1. 2. 3.]
  """
  _check_axes("local_state_axes", local_state_axes)
  _check_axes("state_axes", state_axes)
  if local_state_axes is None and state_axes is None:
    return hk.vmap(
        fun, in_axes, out_axes, axis_name, axis_size, split_rng=split_rng
    )
  axes = sorted(set(_axis_values(local_state_axes) + _axis_values(state_axes)))
  axis_of = functools.partial(
      _axis_of, local_state_axes=local_state_axes, state_axes=state_axes
  )

  @functools.wraps(fun)
  def mapped(*args):
    outer_state = hki.frame_state()
    # The mapped states, grouped by axis: the groups are known before the
    # call, so they can be vmap's in_axes and out_axes prefixes, while the
    # states in each are found as they are made.
    states: dict[Any, dict[str, Any]] = {axis: {} for axis in axes}
    for bundle, entries in outer_state.items():
      axis = axis_of(bundle)
      if axis is not None and entries:
        states[axis][bundle] = {k: pair.current for k, pair in entries.items()}
    size = axis_size
    if size is None:
      size = hki.mapped_axis_size(args, _per_argument(in_axes, args))
    _check_members(states, size)
    name = axis_name or f"hk_effects_vmap_{next(_AXIS_NAMES)}"

    def member(member_states, *member_args):
      inner_state = hki.frame_state()
      given = {
          b: v for group in member_states.values() for b, v in group.items()
      }
      # Haiku returns the state that changed in here unmapped, so the
      # mapped bundles are swapped for the member's own while `fun` runs,
      # and swapped back after.
      originals = {
          b: inner_state[b] for b in list(inner_state) if axis_of(b) is not None
      }
      for bundle in set(originals) | set(given):
        inner_state[bundle] = {
            k: hki.StatePair(v, v) for k, v in given.get(bundle, {}).items()
        }
      before = {
          (b, k): pair.current
          for b, entries in inner_state.items()
          if axis_of(b) is None
          for k, pair in entries.items()
      }
      with (
          local_state.per_member(
              lambda b: axis_of(b) is not None, jax.lax.axis_index(name)
          ),
          hk.custom_creator(_per_member_key, params=False, state=True),
      ):
        out = fun(*member_args)
      _check_keys_matched(local_state_axes, state_axes, list(inner_state))
      # Unmapped states set in here: the candidates when JAX refuses a
      # per-member value it cannot return unmapped.
      set_unmapped.extend(
          (b, k)
          for b, entries in inner_state.items()
          if axis_of(b) is None
          for k, pair in entries.items()
          if before.get((b, k)) is not pair.current
      )
      new: dict[Any, dict[str, Any]] = {axis: {} for axis in axes}
      for bundle in [b for b in inner_state if axis_of(b) is not None]:
        old = given.get(bundle, {})
        # A state made here also has its initial value (init returns it).
        new[axis_of(bundle)][bundle] = {
            k: (None if k in old else pair.initial, pair.current)
            for k, pair in inner_state[bundle].items()
        }
        if bundle in originals:
          inner_state[bundle] = originals[bundle]
        else:
          del inner_state[bundle]
      return out, new

    # An empty group maps nothing (Haiku's size check needs arrays).
    given_axes = {axis: axis if states[axis] else None for axis in axes}
    set_unmapped: list[tuple[str, str]] = []
    try:
      out, new = hk.vmap(
          member,
          (given_axes, *_per_argument(in_axes, args)),
          (out_axes, {axis: axis for axis in axes}),
          name,
          axis_size,
          split_rng=split_rng,
      )(states, *args)
    except ValueError as e:
      if "but out_axes is None" not in str(e) or not set_unmapped:
        raise
      raise ValueError(
          "hke.vmap: a state that is not per member was set to a "
          "per-member value, which cannot be kept. The unmapped states set "
          f"in the call (bundle, key): {sorted(set(set_unmapped))}. Name "
          "its category in local_state_axes (or its module in state_axes), "
          f"which now are {local_state_axes!r} and {state_axes!r}, or make "
          "the update the same for every member."
      ) from e
    for group in new.values():
      for bundle, entries in group.items():
        target = outer_state[bundle]
        for key, (initial, current) in entries.items():
          if key in target:
            initial = target[key].initial
          target[key] = hki.StatePair(initial, current)
    return out

  return mapped


def explain_per_example_state(bundle: str, key: str) -> ValueError:
  """The error for a state ``hk.vmap`` cannot return because it was set to
  a per-example value, with the ``hke.vmap`` argument that keeps it."""
  if bundle.startswith(local_state.BUNDLE_PREFIX):
    category = bundle[len(local_state.BUNDLE_PREFIX) :]
    what = f"Local state {key!r} (category {category!r})"
    fix = (
        f"hke.vmap(..., local_state_axes={{{category!r}: 0}}) to keep "
        "one state per member (created per member at init, stacked on "
        "axis 0)"
    )
  else:
    what = f"Haiku state {key!r} of module {bundle!r}"
    fix = (
        f"hke.vmap(..., state_axes={{{bundle!r}: 0}}) to keep one state "
        "per member"
    )
  return ValueError(
      f"{what} was set to a per-example value inside hk.vmap, which shares "
      "Haiku state (and local states) across members, so the update cannot "
      f"be kept. Use {fix}, or make the update the same for every example "
      "(e.g. a mean over the batch)."
  )
