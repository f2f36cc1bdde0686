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
"""What inspection passes record while a forward function runs abstractly.

``run_abstractly`` runs it with a ``Recorder`` observing binding (binding
never imports this module): one ``Row`` per request and serving handler,
for ``hke.effect_signature`` every protocol-method call (``EffectCall``),
and a stop (``StopInspection``) at an unhandled effect with no stand-in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Any, Callable

import haiku as hk
import jax

from hk_effects._src.core import binding
from hk_effects._src.core import effect_base
from hk_effects._src.core import tree_util


@dataclasses.dataclass
class Row:
  """One row of ``hke.bindings``: a request and what serves it."""

  module_path: str
  attribute_path: str
  request: Any
  handler_id: str

  @property
  def handled(self) -> bool:
    return self.handler_id != "unhandled"

  def __treescope_repr__(self, path, subtree_renderer):
    """Renders in treescope, coloured by the request's effect protocol."""
    from treescope import repr_lib  # pylint: disable=g-import-not-at-top

    return repr_lib.render_object_constructor(
        type(self),
        {f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
        path,
        subtree_renderer,
        color=effect_base.effect_colour(self.request.effect_protocol()),
    )


@dataclasses.dataclass
class EffectCall:
  """One protocol-method call seen by an inspection pass."""

  site: binding.Site
  request: Any
  handler_id: str
  method: str
  value: Any  # Abstract (ShapeDtypeStruct) argument or result, or None.


class _RecordingProxy:
  """Forwards to a runtime implementation and records protocol calls."""

  def __init__(self, runtime, site, request, handler_id, calls):
    self._runtime = runtime
    self._methods = effect_base.protocol_methods(request.effect_protocol())
    self._call = functools.partial(EffectCall, site, request, handler_id)
    self._calls = calls

  def __getattr__(self, name: str):
    target = getattr(self._runtime, name)
    if name not in self._methods:
      return target

    def recorded(*args, **kwargs):
      result = target(*args, **kwargs)
      value = args[0] if args else result
      self._calls.append(self._call(name, tree_util.abstract(value)))
      return result

    return recorded


class StopInspection(Exception):
  """Raised by inspection passes when an unhandled effect blocks the run."""

  def __init__(self, site: binding.Site, request):
    super().__init__(f"{site}: {request!r}")
    self.site = site
    self.request = request


class Recorder(binding.BindingObserver):
  """Records a pass's rows (one per site and handler) and, given ``calls``,
  every protocol-method call; stops the pass at an unclaimed request.
  ``conditional`` maps the index of a call made in a body that may not run
  to the wrapper's description (kept by ``signature.py``)."""

  def __init__(self, rows: list[Row], calls: list[EffectCall] | None = None):
    self.rows = rows
    self.calls = calls
    self.conditional: dict[int, str] = {}
    self._recorded: set[tuple[str, str, str]] = set()

  def bound(self, site, request, handler_id: str) -> None:
    key = (site.module_path, site.attribute_path, handler_id)
    if key not in self._recorded:
      self._recorded.add(key)
      self.rows.append(
          Row(site.module_path, site.attribute_path, request, handler_id)
      )

  def runtime(self, runtime, site, request, handler_id: str):
    if self.calls is None:
      return runtime
    return _RecordingProxy(runtime, site, request, handler_id, self.calls)

  def unhandled_use(self, site, request) -> None:
    raise StopInspection(site, request)


def run_abstractly(
    fn: Callable[..., Any],
    recorder: Recorder,
    args,
    kwargs,
    also: Callable[[], Any] = contextlib.nullcontext,
) -> tuple[Any, str | None]:
  """Runs ``fn`` (inside ``also()``) under ``jax.eval_shape`` of Haiku's
  ``init``, observed by ``recorder``; returns the state and where an
  unhandled effect stopped the pass (or None)."""

  def forward(*a, **k):
    with binding.effect_scope(observer=recorder), also():
      return fn(*a, **k)

  init = hk.transform_with_state(forward).init
  try:
    _, state = jax.eval_shape(
        functools.partial(init, jax.random.key(0)), *args, **kwargs
    )
  except StopInspection as stop:
    return None, str(stop)
  return state, None
