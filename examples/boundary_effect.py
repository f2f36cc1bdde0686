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
"""A user-defined effect whose data changes inside Haiku's loops.

Layers add values to named totals with ``self.total.add(value)`` (an
auxiliary loss, a count of active units); the handler returns the totals.
The running totals change inside ``hk.scan``, ``hk.vmap``, ``hk.remat`` and
``hk.layer_stack``, where a Python-side sum of traced values would leak, so
the effect takes part at Haiku's boundaries (``hke.boundaries``): each body
sums into a fresh frame, returns it as an extra output, and after the
wrapper the stacked (or batched) sums are added into the enclosing frame.
Run it with::

  python examples/boundary_effect.py
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import haiku as hk
import jax
import jax.numpy as jnp

import hk_effects as hke


# --- The effect -------------------------------------------------------------
class TotalEffect(Protocol):

  def add(self, value: jax.Array) -> None:
    ...


@hke.pytree_dataclass
class TotalRequest(hke.EffectRequest, protocol=TotalEffect):
  name: str = hke.static_field()


_FRAMES: list[dict[str, jax.Array]] = []  # Innermost last: sums of a body.


class TotalImpl(hke.EffectRuntimeImpl):
  __slots__ = ("name",)

  def __init__(self, scope, site, name):
    super().__init__(scope, site)
    self.name = name

  def add(self, value: jax.Array) -> None:
    # Fails loudly under a wrapper whose body we never saw entered.
    hke.boundaries.check_entered(f"TotalRequest {self.name!r} at {self.site}")
    frame = _FRAMES[-1]
    frame[self.name] = frame.get(self.name, 0.0) + jnp.sum(value)


class SummingTotals(hke.EffectHandler, protocol=TotalEffect):
  """``h(arg)`` returns ``(body(arg), {name: total})``."""

  def runtime_impl(self, scope, ref, site):
    return TotalImpl(scope, site, ref.request.name)

  def __call__(self, arg):
    _FRAMES.append({})
    try:
      with hke.handler_scope(self):
        out = self.body(arg)
      return out, dict(_FRAMES[-1])
    finally:
      _FRAMES.pop()


# Loops stack the sums, hk.vmap batches them, hk.remat leaves them: adding
# them up is right for all three. (Branches and while loops would need every
# body to return one structure: see side_output_transport.py.)
_SUMMED = ("stacked", "batched", "unchanged")


class _TotalsAtBoundaries(hke.BoundaryEffect):
  """Sums of a body leave it as extra outputs, then join the outer sums."""

  def active(self) -> bool:
    return bool(_FRAMES)

  def body(self, boundary, body, state):
    if boundary.carries not in _SUMMED:
      raise ValueError(
          f"TotalRequest.add inside {boundary.describe()}: its body cannot "
          "return extra outputs; add the value after it."
      )
    return _fresh_frame()

  def outputs(self, boundary, state) -> Any:
    return dict(_FRAMES[-1])

  def exit(self, boundary, state, outputs) -> None:
    if not outputs:
      return
    frame = _FRAMES[-1]
    for name, value in outputs.items():
      # Stacked by loops, batched by hk.vmap: either way, add them all up.
      total = value if boundary.carries == "unchanged" else jnp.sum(value)
      frame[name] = frame.get(name, 0.0) + total


@contextlib.contextmanager
def _fresh_frame():
  _FRAMES.append({})
  try:
    yield
  finally:
    _FRAMES.pop()


hke.boundaries.register(_TotalsAtBoundaries())
# ----------------------------------------------------------------------------


class ActiveUnits(hk.Module):
  """A ReLU layer that adds the number of its active units to a total."""

  def __init__(self, size: int, name: str | None = None):
    super().__init__(name=name)
    self.size = size
    self.active = TotalRequest("active_units")

  def __call__(self, x: jax.Array) -> jax.Array:
    y = jax.nn.relu(hk.Linear(self.size)(x))
    self.active.add((y > 0).astype(jnp.float32))
    return y


def forward(x: jax.Array) -> jax.Array:
  layer = ActiveUnits(4)
  # The same layer applied three times by hk.scan, then once more.
  y, _ = hk.scan(lambda h, _: (layer(h), None), x, None, length=3)
  return layer(y)


def main() -> None:
  f = hke.transform(SummingTotals.handling(forward), apply_rng=False)
  x = jnp.linspace(-1.0, 1.0, 8).reshape(2, 4)
  params = f.init(jax.random.key(0), x)
  out, totals = jax.jit(f.apply)(params, x)
  print(
      f"output {out.shape}, active units over 4 calls: "
      f"{int(totals['active_units'])} of {4 * out.size}"
  )


if __name__ == "__main__":
  main()
