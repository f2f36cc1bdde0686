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
"""For authors of effects that cross Haiku's lifting wrappers.

A user-defined effect whose requests must be carried across ``hk.scan``,
``hk.vmap``, ``hk.remat`` and friends subclasses ``BoundaryEffect`` and
registers an instance; its runtime methods call ``check_entered`` so that
a use from inside a raw JAX transform fails loudly.
``examples/boundary_effect.py`` is a complete one.

Example:

>>> import hk_effects as hke
>>> class Nothing(hke.boundaries.BoundaryEffect):
...   pass
>>> effect = hke.boundaries.register(Nothing())
>>> hke.boundaries.unregister(effect)
"""

from hk_effects._src.haiku.boundaries import Body
from hk_effects._src.haiku.boundaries import Boundary
from hk_effects._src.haiku.boundaries import BoundaryBypassError
from hk_effects._src.haiku.boundaries import BoundaryEffect
from hk_effects._src.haiku.boundaries import Carries
from hk_effects._src.haiku.boundaries import check_entered
from hk_effects._src.haiku.boundaries import known_level
from hk_effects._src.haiku.boundaries import register
from hk_effects._src.haiku.boundaries import unregister

__all__ = (
    "Body",
    "Boundary",
    "BoundaryBypassError",
    "BoundaryEffect",
    "Carries",
    "check_entered",
    "known_level",
    "register",
    "unregister",
)
