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
"""Custom reductions of side outputs: ``mode=hke.Reduce(init_fn, reduce_fn)``.

A ``Reduce`` site keeps one value, ``acc = reduce_fn(acc, value)`` folded
over every value told there from ``init_fn()`` (Flax's ``sow(..., init_fn=,
reduce_fn=)``). A loop body is traced once, so each iteration folds its own
tells into a partial accumulator, merged after the loop in the order the
iterations ran with ``merge_fn`` (default ``reduce_fn``: right where
accumulator and values share one shape and ``reduce_fn`` is associative).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from hk_effects._src.core import tree_util


def _name(fn: Any) -> str:
  return getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))


@dataclasses.dataclass(frozen=True)
class Reduce:
  """A side-output mode folding every told value with ``reduce_fn``.

  Args:
    init_fn: ``() -> acc``, the accumulator before anything was told.
    reduce_fn: ``(acc, value) -> acc``; must keep the accumulator's
      structure, shapes and dtypes.
    merge_fn: ``(acc, acc) -> acc``, merging the partial accumulators of
      loop iterations in the order they ran; defaults to ``reduce_fn`` (see
      the module docstring).

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> peak = hke.Reduce(lambda: jnp.array(-jnp.inf), jnp.maximum)
  >>> def forward(xs):
  ...   probe = hke.TellIntermediate("peak", mode=peak)
  ...   return hk.scan(lambda c, x: (c + probe(x), None), 0.0, xs)[0]
  >>> f = hke.transform(hke.handlers.CollectingSideOutputs.handling(forward),
  ...                   apply_rng=False)
  >>> total, values = f.apply({}, jnp.array([1.0, 5.0, 2.0]))
  >>> print(float(total), float(values[0].value))
  8.0 5.0
  """

  init_fn: Callable[[], Any]
  reduce_fn: Callable[[Any, Any], Any]
  merge_fn: Callable[[Any, Any], Any] | None = None

  def __post_init__(self):
    for field in ("init_fn", "reduce_fn", "merge_fn"):
      fn = getattr(self, field)
      if not callable(fn) and not (fn is None and field == "merge_fn"):
        raise TypeError(
            f"hke.Reduce({field}=...) must be a callable; got {fn!r}. "
            "Reduce(init_fn, reduce_fn) takes `init_fn() -> acc` and "
            "`reduce_fn(acc, value) -> acc`, e.g. "
            "Reduce(lambda: jnp.array(-jnp.inf), jnp.maximum)."
        )

  def __str__(self) -> str:
    return f"Reduce({_name(self.reduce_fn)})"

  def first(self, where: str, value: Any) -> Any:
    """``reduce_fn(init_fn(), value)``, checked."""
    try:
      acc = self.init_fn()
    except Exception as e:
      raise TypeError(
          f"{where}: init_fn {_name(self.init_fn)} of {self} raised "
          f"{type(e).__name__}: {e}. init_fn takes no argument and returns "
          "the initial accumulator (a PyTree of arrays)."
      ) from e
    return self.fold(where, _as_arrays(where, "init_fn", acc), value)

  def fold(self, where: str, acc: Any, value: Any, partial: bool = False):
    """``reduce_fn(acc, value)`` (``merge_fn`` where ``value`` is a later
    ``partial`` accumulator), checked to keep the accumulator's form."""
    if partial and self.merge_fn is not None:
      return _checked(where, self.merge_fn, "merge_fn", acc, value)
    return _checked(where, self.reduce_fn, "reduce_fn", acc, value)


def _as_arrays(where: str, what: str, tree: Any) -> Any:
  try:
    return jax.tree_util.tree_map(jnp.asarray, tree)
  except TypeError as e:
    raise TypeError(
        f"{where}: {what} returned {tree!r}, which is not a PyTree of arrays."
    ) from e


def _checked(where: str, fn: Callable, what: str, acc: Any, value: Any) -> Any:
  try:
    new = fn(acc, value)
  except Exception as e:
    raise TypeError(
        f"{where}: {what} {_name(fn)} raised {type(e).__name__}: {e} when given"
        f" the accumulator {tree_util.forms(acc)} and {tree_util.forms(value)}."
        " It is called as fn(acc, value) and returns the new accumulator."
    ) from e
  new = _as_arrays(where, what, new)
  if not tree_util.same_form(new, acc):
    raise ValueError(
        f"{where}: {what} {_name(fn)} turned the accumulator"
        f" {tree_util.forms(acc)} into {tree_util.forms(new)}. A reduction must"
        " keep the accumulator's structure, shapes and dtypes (loops carry"
        " it), e.g. init_fn returning jnp.zeros(shape, dtype) of the told"
        " values' shape."
    )
  return new
