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
"""``hke.effect_signature``: what a forward function asks of its handlers.

An abstract pass (``recording.run_abstractly``) records every
protocol-method call with its abstract value, summarised per request by the
request's ``signature_detail``. Requests inside control flow are included,
since ``init`` traces them; calls made in a body that may not run (a branch
of ``hk.cond`` / ``hk.switch``, a loop that may run no iteration) are noted
as conditional.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
from typing import Any, Callable, Iterator

from hk_effects._src import context
from hk_effects._src.core import binding
from hk_effects._src.haiku import boundaries
from hk_effects._src.inspect import recording
from hk_effects._src.inspect import rendering


@dataclasses.dataclass
class SignatureEntry:
  """What one request (module path + attribute) needs and who serves it."""

  module_path: str
  attribute_path: str
  effect: str
  request: Any
  handler_id: str
  detail: str


@dataclasses.dataclass
class EffectSignature:
  """Per-request summary of a forward function's effects; prints as a table.

  Example:

  >>> import hk_effects as hke
  >>> print(hke.EffectSignature([]))
  module | attribute | effect | detail | handler
  """

  entries: list[SignatureEntry]
  stopped_at: str | None = None

  def by_module(self) -> dict[str, list[SignatureEntry]]:
    """Entries grouped by module path, in first-call order."""
    grouped: dict[str, list[SignatureEntry]] = {}
    for entry in self.entries:
      grouped.setdefault(entry.module_path, []).append(entry)
    return grouped

  def unhandled(self) -> list[SignatureEntry]:
    return [e for e in self.entries if e.handler_id == "unhandled"]

  def __str__(self) -> str:
    return rendering.text_table(
        ("module", "attribute", "effect", "detail", "handler"),
        [
            (e.module_path, e.attribute_path, e.effect, e.detail, e.handler_id)
            for e in self.entries
        ],
        self.stopped_at,
    )

  def _repr_html_(self) -> str:
    return rendering.html_table(self.entries, self.stopped_at)


# The recorders of the running signature passes, innermost last.
context.declare("signature", list)
_ctx = context.CONTEXT


class _ConditionalCalls(boundaries.BoundaryEffect):
  """Notes the calls made inside bodies that may not run (branches, loops
  of unknown length), while a signature pass runs."""

  def active(self) -> bool:
    return bool(_ctx.signature)

  def enter(self, boundary) -> list[int]:
    # [first call, end of the last body's calls, attempt of that body]
    start = len(_ctx.signature[-1].calls)
    return [start, start, 0]

  @contextlib.contextmanager
  def _noted(self, boundary, body, state: list[int]) -> Iterator[None]:
    recorder = _ctx.signature[-1]
    first, end, attempt = state
    if body.attempt != attempt:
      # The wrapper is traced again: keep one record of each call.
      del recorder.calls[first:end]
      recorder.conditional = {
          i if i < first else i - (end - first): where
          for i, where in recorder.conditional.items()
          if not first <= i < end
      }
      state[2] = body.attempt
    start = len(recorder.calls)
    try:
      yield
    finally:
      for i in range(start, len(recorder.calls)):
        recorder.conditional.setdefault(i, boundary.describe())
      state[1] = len(recorder.calls)

  def body(self, boundary, body, state):
    if boundary.carries is not None and boundary.carries.agrees:
      return self._noted(boundary, body, state)
    return contextlib.nullcontext()


# Registered by hk_effects._src.wiring.
BOUNDARY_EFFECT = _ConditionalCalls()


def effect_signature(fn: Callable[..., Any]) -> Callable[..., EffectSignature]:
  """Summarises the effects of ``fn`` without running it for real.

  Returns a function taking ``fn``'s arguments and returning an
  ``EffectSignature``: per request, the effect, a detail (keys drawn, state
  shapes, told shapes, side-input shapes) and the serving handler. A local
  state shows the shape ``init`` stores; one kept per member of
  ``hke.vmap`` (or per layer of ``hk.layer_stack``) also shows the slice
  each member sees: ``float32[5,2] stored, float32[2] per member``.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> model = hke.handlers.WithHaikuRandom.handling(
  ...     lambda x: hke.Dropout(0.5)(x), handler_id="rng")
  >>> print(hke.effect_signature(model)(jnp.ones([2, 3])))
  module  | attribute | effect       | detail                      | handler
  --------+-----------+--------------+-----------------------------+--------
  dropout | rng       | RandomEffect | random: 1 next_key() traced | rng
  """

  @functools.wraps(fn)
  def run(*args, **kwargs) -> EffectSignature:
    calls: list[recording.EffectCall] = []
    recorder = recording.Recorder([], calls)
    state, stopped = recording.run_abstractly(
        fn,
        recorder,
        args,
        kwargs,
        also=lambda: context.pushed(_ctx.signature, recorder),
    )
    by_site = collections.defaultdict(list)
    conditional = collections.defaultdict(list)
    for i, call in enumerate(calls):
      site = (call.site.module_path, call.site.attribute_path)
      by_site[site].append(call)
      if i in recorder.conditional:
        conditional[site].append(recorder.conditional[i])
    entries = []
    for row in recorder.rows:
      site = (row.module_path, row.attribute_path)
      detail = row.request.signature_detail(
          by_site[site], conditional[site], state, binding.Site(*site)
      )
      entries.append(
          SignatureEntry(
              *site,
              row.request.effect_protocol().__name__,
              row.request,
              row.handler_id,
              detail,
          )
      )
    return EffectSignature(entries, stopped_at=stopped)

  return run
