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
"""Effects refuse to run under a raw JAX transform inside a Haiku function
(``RawTransformError``, naming the Haiku wrapper to use instead)."""

from __future__ import annotations

from typing import Any

from hk_effects._src.haiku import haiku_internals as hki


class RawTransformError(ValueError):
  """An effect was used under a raw JAX transform inside a Haiku function.

  Haiku threads its state, parameters and rng through its own wrappers
  (``hk.scan``, ``hk.vmap``, ``hk.cond``, ``hk.fori_loop``, ``hk.remat``),
  and hk_effects keeps effect data in the same places. Under the raw
  ``jax.*`` equivalent the data would leak a tracer or repeat itself, so the
  effect refuses to run.

  Example:

  >>> import hk_effects as hke
  >>> issubclass(hke.RawTransformError, ValueError)
  True
  """


RawTransformError.__module__ = "hk_effects"


def _trace_kind() -> tuple[str, str]:
  """The raw transform running, and the Haiku wrapper to use instead."""
  from jax._src import core as jax_core  # pylint: disable=g-import-not-at-top

  name = type(jax_core.trace_ctx.trace).__name__
  if "Batch" in name:
    return "jax.vmap", "hk.vmap"
  if "JVP" in name or "Linearize" in name:
    return "jax.grad / jax.jvp", "hk.grad / hk.value_and_grad"
  kind = (
      "jax.lax.scan / jax.lax.cond / jax.lax.fori_loop / jax.checkpoint /"
      " jax.jit"
  )
  return kind, (
      "hk.scan / hk.cond / hk.fori_loop / hk.remat (or jit the whole "
      "apply function)"
  )


def under_raw_transform() -> bool:
  """Whether a raw JAX transform sits between Haiku and the caller: the
  trace level is not the one Haiku recorded at its transform or wrapper."""
  return hki.JaxTraceLevel.current() != hki.frame_trace_level()


def check_no_raw_transform(site: Any, effect: str, method: str) -> None:
  """Raises ``RawTransformError`` if a raw JAX transform is active."""
  if not under_raw_transform():
    return
  kind, wrapper = _trace_kind()
  raise RawTransformError(
      f"{effect}.{method}() at {site} ran under a raw JAX transform ({kind}) "
      "inside a Haiku function. The effect's data lives where Haiku threads "
      "it, which raw transforms do not, so it would leak a tracer, reuse a "
      f"key or lose an update. Use the Haiku wrapper instead: {wrapper}."
  )
