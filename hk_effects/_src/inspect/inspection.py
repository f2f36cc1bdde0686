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
"""Inspection: which requests a forward function holds and who serves them.

Both functions run the forward function abstractly (``jax.eval_shape`` of
Haiku's ``init``): no real computation happens.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterator

from hk_effects._src.inspect import recording
from hk_effects._src.inspect import rendering


@dataclasses.dataclass
class BindingTable:
  """Rows of ``hke.bindings``; prints as an aligned table.

  ``stopped_at`` is set when an unhandled effect without a stand-in value
  (a side input) stopped the pass early: rows after it are missing.

  Example:

  >>> import hk_effects as hke
  >>> print(hke.BindingTable([]))
  module | attribute | request | handler
  """

  rows: list[recording.Row]
  stopped_at: str | None = None

  def __iter__(self) -> Iterator[recording.Row]:
    """The rows, in the order the requests were met.

    Example:

    >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
    >>> class Scale(hk.Module):
    ...   def __init__(self):
    ...     super().__init__()
    ...     self.s = hke.SideInputRequest("s")
    ...   def __call__(self, x):
    ...     return x * self.s.ask()
    >>> table = hke.bindings(hke.handlers.WithConstantSideInputs.handling(
    ...     lambda x: Scale()(x), {"s": 2.0}, handler_id="consts"))(1.0)
    >>> len(table), [(r.module_path, r.handler_id) for r in table]
    (1, [('scale', 'consts')])
    """
    return iter(self.rows)

  def __len__(self) -> int:
    return len(self.rows)

  def __getitem__(self, index: int) -> recording.Row:
    return self.rows[index]

  def unhandled(self) -> list[recording.Row]:
    """The rows no handler serves."""
    return [r for r in self.rows if not r.handled]

  def __str__(self) -> str:
    rows = [rendering.cells(r) for r in self.rows]
    return rendering.text_table(rendering.HEADER, rows, self.stopped_at)

  def _repr_html_(self) -> str:
    return rendering.html_table(self.rows, self.stopped_at)


def bindings(fn: Callable[..., Any]) -> Callable[..., BindingTable]:
  """Lists every request ``fn`` meets and the handler that serves it.

  Returns a function taking ``fn``'s arguments and returning a
  ``BindingTable`` with one row per request: module path, attribute path,
  request, handler id or ``"unhandled"``.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Scale(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.s = hke.SideInputRequest("s")
  ...   def __call__(self, x):
  ...     return x * self.s.ask()
  >>> h = hke.handlers.WithConstantSideInputs.handling(
  ...     lambda x: Scale()(x), {"s": 2.0}, handler_id="consts")
  >>> print(hke.bindings(h)(jnp.ones(2)))
  module | attribute | request        | handler
  -------+-----------+----------------+--------
  scale  | s         | side input 's' | consts
  """

  @functools.wraps(fn)
  def run(*args, **kwargs) -> BindingTable:
    rows: list[recording.Row] = []
    recorder = recording.Recorder(rows)
    _, stopped = recording.run_abstractly(fn, recorder, args, kwargs)
    return BindingTable(rows, stopped_at=stopped)

  return run


def free_effect_types(fn: Callable[..., Any]) -> Callable[..., list[type]]:
  """Returns the protocols of requests ``fn`` leaves unhandled.

  Example:

  >>> import haiku as hk, jax, hk_effects as hke
  >>> class Draw(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.rng = hke.RandomRequest()
  ...   def __call__(self, x):
  ...     return jax.random.uniform(self.rng.next_key(), x.shape)
  >>> [p.__name__ for p in hke.free_effect_types(lambda x: Draw()(x))(
  ...     jax.numpy.ones(2))]
  ['RandomEffect']
  """

  @functools.wraps(fn)
  def run(*args, **kwargs) -> list[type]:
    table = bindings(fn)(*args, **kwargs)
    unhandled = (row.request.effect_protocol() for row in table.unhandled())
    return list(dict.fromkeys(unhandled))

  return run
