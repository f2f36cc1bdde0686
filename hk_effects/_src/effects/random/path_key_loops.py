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
"""Path keys at Haiku's boundaries: loop indices, members and branches.

A path-keyed random handler (``path_keys.py``) folds each draw's loop
indices into its key, so it takes part at every boundary
(``hk_effects._src.haiku.boundaries``) while it runs:

* ``hk.scan``, ``hk.fori_loop``, ``hk.while_loop`` and ``hk.layer_stack``
  index their bodies: iteration ``i`` counts as call ``i`` of the families
  the body calls (``path_keys.loop`` and ``path_keys.body``); a loop with
  traced bounds has no known length, so calls after it are refused if they
  would need it;
* ``hk.vmap(split_rng=True)`` folds in the member index;
* the branches of ``hk.cond`` / ``hk.switch`` count from one start, as only
  one of them runs (``path_keys.Alternatives``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

from hk_effects._src.effects.random import path_keys
from hk_effects._src.haiku import boundaries


@dataclasses.dataclass(eq=False)
class _Call:
  loop: Any = None  # The path_keys.loop context and its frame.
  frame: Any = None
  alternatives: path_keys.Alternatives | None = None


def _splits_members(boundary: boundaries.Boundary) -> bool:
  return boundary.kind == "hk.vmap" and boundary.split_rng


class _PathKeysAtBoundaries(boundaries.BoundaryEffect):
  """See the module docstring."""

  def active(self) -> bool:
    return path_keys.tracking()

  def wants_index(self, boundary: boundaries.Boundary) -> bool:
    return boundary.is_loop or _splits_members(boundary)

  def enter(self, boundary: boundaries.Boundary) -> _Call:
    call = _Call()
    if boundary.is_loop:
      call.loop = path_keys.loop(
          boundary.kind, boundary.length, relative=boundary.relative
      )
      call.frame = call.loop.__enter__()  # pylint: disable=unnecessary-dunder-call
    elif boundary.is_branch:
      call.alternatives = path_keys.Alternatives()
    return call

  def body(self, boundary, body, state: _Call):
    if state.frame is not None:
      return path_keys.body(state.frame, body.index)
    if state.alternatives is not None:
      return state.alternatives.branch()
    if _splits_members(boundary):
      return path_keys.member(body.index)
    return contextlib.nullcontext()

  def exit(self, boundary, state: _Call, outputs: Any) -> None:
    del outputs
    if state.loop is not None:
      state.loop.__exit__(None, None, None)
    elif state.alternatives is not None:
      state.alternatives.finish()


# Registered by hk_effects._src.wiring.
BOUNDARY_EFFECT = _PathKeysAtBoundaries()
