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
"""A user-defined effect: a multiplier that a handler supplies to deep layers.

The effect (protocol, request, runtime implementation, handler) takes 30
lines and uses only public base classes. Run it with::

  python examples/custom_effect.py
"""

from __future__ import annotations

from typing import Any, Protocol

import haiku as hk
import jax
import jax.numpy as jnp

import hk_effects as hke


# --- The effect: 30 lines -------------------------------------------------
class MultiplierEffect(Protocol):
  def scale(self, x: jax.Array) -> jax.Array: ...


@hke.pytree_dataclass
class MultiplierRequest(hke.EffectRequest, protocol=MultiplierEffect):
  tag: str = hke.static_field()


class MultiplierImpl(hke.EffectRuntimeImpl):
  def scale(self, x: jax.Array) -> jax.Array:
    return x * self.scope.state  # The factor this handler call was given.


class WithMultiplier(hke.EffectHandler, protocol=MultiplierEffect):
  """Called as ``h((arg, factor))``; requests tagged ``tag`` scale by it."""

  def __init__(self, body, tag: str, handler_id: str | None = None):
    super().__init__(body, handler_id, config=repr(tag))
    self.tag = tag

  def claims(self, request) -> bool:
    return super().claims(request) and request.tag == self.tag

  def runtime_impl(self, scope, ref, site):
    return MultiplierImpl(scope, site)

  def __call__(self, arg_and_factor: tuple[Any, Any]):
    arg, factor = arg_and_factor
    with hke.handler_scope(self, state=factor):
      return self.body(arg)
# --------------------------------------------------------------------------


class ScaledLinear(hk.Module):
  """A linear layer whose output is scaled by the "gain" multiplier."""

  def __init__(self, size: int, name: str | None = None):
    super().__init__(name=name)
    self.size = size
    self.gain = MultiplierRequest("gain")

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.gain.scale(hk.Linear(self.size)(x))


def main() -> None:
  # Both layers scale by the gain, so the output scales by its square.
  forward = WithMultiplier.handling(
      lambda x: ScaledLinear(2)(ScaledLinear(3)(x)), tag="gain")
  f = hke.transform(forward, apply_rng=False)
  x = jnp.arange(4.0).reshape(1, 4)
  params = f.init(jax.random.key(0), (x, 1.0))
  print(hke.bindings(forward)((x, 1.0)))
  for factor in (1.0, 2.0):
    out = jax.jit(f.apply)(params, (x, factor))
    print(f"gain {factor}: {out}")


if __name__ == "__main__":
  main()
