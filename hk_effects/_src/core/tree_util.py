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
"""Small helpers on values and trees that several effects share."""

from __future__ import annotations

import hashlib
from typing import Any

import jax
import jax.numpy as jnp


def abstract(tree: Any) -> Any:
  """``tree`` with each array or number leaf as its ``ShapeDtypeStruct``;
  other leaves (strings, callables) unchanged.

  Example:

  >>> abstract({"w": jnp.ones([2, 3]), "n": 1.0, "name": "x"})
  {'n': ShapeDtypeStruct(shape=(), dtype=float32), 'name': 'x', 'w': ShapeDtypeStruct(shape=(2, 3), dtype=float32)}
  """

  def one(x):
    if hasattr(x, "shape") and hasattr(x, "dtype"):
      return jax.ShapeDtypeStruct(x.shape, x.dtype)
    if isinstance(x, (bool, int, float, complex)):
      return jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x))
    return x

  return jax.tree_util.tree_map(one, tree)


def hash32(text: str) -> int:
  """A stable 28-bit hash of ``text`` (the same in every process), to fold
  static names into keys.

  Example:

  >>> hash32("block|rng|None") == hash32("block|rng|None"), hash32("a") < 2**28
  (True, True)
  """
  return int(hashlib.sha256(text.encode()).hexdigest()[:7], 16)
