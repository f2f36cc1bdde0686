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


def describe(value: Any) -> str:
  """``value``'s leaves as ``dtype[shape]`` (a type name for non-arrays);
  one leaf alone, several in parentheses.

  Example:

  >>> describe((jnp.ones([2, 3]), jax.ShapeDtypeStruct((), jnp.int32), "x"))
  '(float32[2,3], int32[], str)'
  """
  parts = []
  for leaf in jax.tree_util.tree_leaves(value):
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
      dims = ",".join(str(d) for d in leaf.shape)
      dtype = str(leaf.dtype)
      if not dtype.startswith("key"):
        dtype = jnp.dtype(leaf.dtype).name
      parts.append(f"{dtype}[{dims}]")
    else:
      parts.append(type(leaf).__name__)
  return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"


def forms(tree: Any) -> Any:
  """``tree`` with each array leaf as its ``dtype[shape]`` string, for
  messages about what a function was given or returned.

  Example:

  >>> forms({"w": jnp.ones([2, 3])})
  {'w': 'float32[2, 3]'}
  """
  return jax.tree_util.tree_map(
      lambda x: f"{jnp.dtype(x.dtype).name}{list(x.shape)}", tree
  )


def same_form(a: Any, b: Any) -> bool:
  """Whether two PyTrees of arrays have one structure, shapes and dtypes.

  Example:

  >>> same_form(jnp.ones([2]), jnp.zeros([2])), same_form(jnp.ones(3), jnp.ones(2))
  (True, False)
  """
  structure = jax.tree_util.tree_structure
  same_structure = structure(a) == structure(b)  # type: ignore[operator]
  return same_structure and forms(a) == forms(b)
