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
  the body calls (``path_keys.Loop``); a loop with
  traced bounds has no known length, so calls after it are refused if they
  would need it;
* ``hk.vmap(split_rng=True)`` folds in the member index;
* the branches of ``hk.cond`` / ``hk.switch`` count from one start, as only
  one of them runs (``path_keys.Alternatives``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from hk_effects._src.effects.random import path_keys
from hk_effects._src.haiku import boundaries


def _splits_members(boundary: boundaries.Boundary) -> bool:
  return boundary.kind == "hk.vmap" and boundary.split_rng


class _PathKeysAtBoundaries(boundaries.BoundaryEffect):
  """See the module docstring."""

  def active(self) -> bool:
    return path_keys.tracking()

  def wants_index(self, boundary: boundaries.Boundary) -> bool:
    return boundary.is_loop or _splits_members(boundary)

  def enter(self, boundary: boundaries.Boundary) -> Any:
    if boundary.is_loop:
      return path_keys.Loop(boundary.kind, boundary.length, boundary.relative)
    if boundary.is_branch:
      return path_keys.Alternatives()
    return None

  def body(self, boundary, body, state):
    if state is not None:  # A Loop or Alternatives.
      return state.body(body.index)
    if _splits_members(boundary):
      return path_keys.member(body.index)
    return contextlib.nullcontext()

  def exit(self, boundary, state, outputs: Any) -> None:
    del boundary, outputs
    if state is not None:
      state.finish()


# Registered by hk_effects._src.wiring.
BOUNDARY_EFFECT = _PathKeysAtBoundaries()
