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
"""Connects the layers to Haiku, once, from ``import hk_effects``.

Nothing in ``_src`` changes Haiku or registers itself when imported; this
is the one place that does, in this order: Haiku's lifting wrappers
(``hk.scan``, ``hk.vmap``, ...) replaced by ones that open a boundary around
their bodies; the method interceptors (binding, then path keys' call
counter); the effects that take part at boundaries, in the order they enter.

Example:

>>> from hk_effects._src import wiring
>>> wiring.install()  # Done by ``import hk_effects``; a no-op from then on.
"""

from __future__ import annotations

import functools

from hk_effects._src.core import binding
from hk_effects._src.effects.local_state import vmap_state
from hk_effects._src.effects.random import path_key_loops
from hk_effects._src.effects.random import path_keys
from hk_effects._src.effects.side_output import intervention_sites
from hk_effects._src.effects.side_output import side_output_transport
from hk_effects._src.haiku import boundaries
from hk_effects._src.haiku import boundary_wrappers
from hk_effects._src.inspect import signature


@functools.cache
def install() -> None:
  """Installs hk_effects into Haiku (once: later calls return the cache)."""
  boundary_wrappers.install()
  boundary_wrappers.STATE_EXPLAINERS.append(
      vmap_state.explain_per_example_state
  )
  binding.install()
  path_keys.install()
  for effect in (
      path_key_loops.BOUNDARY_EFFECT,
      side_output_transport.BOUNDARY_EFFECT,
      intervention_sites.BOUNDARY_EFFECT,
      signature.BOUNDARY_EFFECT,
  ):
    boundaries.register(effect)
