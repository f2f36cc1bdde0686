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
"""A typed user program: every request and handler, as an editor sees them.

tests/tooling/typing/typing_test.py type-checks this file with mypy (the
settings in pyproject.toml) and runs it. Requests are dataclass constructors to
a type checker (``pytree_dataclass`` carries ``typing.dataclass_transform``),
and ``assert_type`` fails the check where an annotation is lost to ``Any``. A
new request or handler belongs here.
"""

from __future__ import annotations

from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
from typing_extensions import assert_type

import hk_effects as hke
from hk_effects import handlers

# Requests: one of each, with their keyword arguments.
untagged = hke.RandomRequest()
tagged = hke.TaggedRandomRequest("noise")
side_input = hke.SideInputRequest("mask")
side_output = hke.SideOutputRequest("acts", mode="last")
initial = hke.InitialLocalStateRequest(
    lambda: jnp.zeros([]), "counters", name="n"
)
shared = hke.SharedLocalStateRequest("n", "counters")
frozen = hke.FrozenLocalStateRequest(jnp.ones([]), "counters")
hoisted = hke.HoistedTag(source="WithConstantSideInputs_0", tag="mask")

assert_type(untagged, hke.RandomRequest)
assert_type(side_output.tag, Any)
assert_type(side_output.mode, Any)  # A mode name or an hke.Reduce.
assert_type(initial.name, "str | None")
assert_type(hoisted.tag, Any)


class Block(hk.Module):
  """A layer using every built-in effect through its protocol."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.rng: hke.RandomEffect = hke.RandomRequest()
    self.noise: hke.RandomEffect = hke.TaggedRandomRequest("noise")
    self.mask: hke.SideInputEffect = hke.SideInputRequest("mask")
    self.acts: hke.SideOutputEffect = hke.SideOutputRequest("acts")
    self.count: hke.LocalStateEffect = hke.InitialLocalStateRequest(
        lambda: jnp.zeros([], jnp.int32), "counters"
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    keep = jax.random.bernoulli(self.rng.next_key(), 0.5, x.shape)
    x = jnp.where(keep, x, 0.0) * self.mask.ask()
    x = x + 0.0 * jax.random.normal(self.noise.next_key(), x.shape)
    self.acts.tell(x)
    self.count.set(self.count.get() + 1)
    return hke.TellIntermediate("out")(hke.Dropout(0.1)(x))


def forward(x: jax.Array) -> jax.Array:
  return Block()(x)


# Handlers: each built with its classmethod, nested as a user nests them.
with_noise = handlers.WithFrozenRandomState.handling(
    forward, jax.random.key(1), hole_predicate=handlers.tagged("noise")
)
with_keys = handlers.WithRandomKeyFromArg.handling(with_noise)
with_mask = handlers.WithSideInputsFromInputTuple.handling(
    lambda pair: with_keys(pair), tags=["mask"]
)
collecting = handlers.CollectingSideOutputs.handling(with_mask, tag="acts")
stateful = handlers.handle_local_states(collecting, category="counters")
assert_type(with_noise, handlers.WithFrozenRandomState)
assert_type(with_keys, handlers.WithRandomKeyFromArg)
assert_type(with_mask, handlers.WithSideInputsFromInputTuple)
assert_type(collecting, handlers.CollectingSideOutputs)
assert_type(stateful, handlers.WithFunctionalLocalState)

haiku_random = handlers.WithHaikuRandom.handling(
    handlers.WithConstantSideInputs.handling(forward, {"mask": 1.0}),
    hole_predicate=lambda request: True,
)
stateful_random = handlers.WithStatefulRandomKey.handling(
    forward, initial_key=jax.random.key(2), hole_predicate=lambda request: True
)
constant = handlers.WithConstantSideInputs.handling(
    forward, side_inputs={"mask": 1.0}, keep_unused=True
)
tuple_handler, hoisted_values = handlers.hoist_constant_side_inputs(constant)
assert_type(haiku_random, handlers.WithHaikuRandom)
assert_type(stateful_random, handlers.WithStatefulRandomKey)
assert_type(tuple_handler, handlers.WithSideInputsFromInputTuple)
assert_type(hoisted_values, "dict[hke.HoistedTag, Any]")
patching = handlers.PatchingSideOutputs.handling(
    forward, {"block/acts": jnp.ones([2, 3])}, strict=False
)
perturbing = handlers.PerturbingSideOutputs.handling(forward, tag="acts")
zeros = handlers.perturbation_zeros(perturbing)
peak = hke.SideOutputRequest(
    "peak", mode=hke.Reduce(lambda: jnp.array(-jnp.inf), jnp.maximum)
)
assert_type(patching, handlers.PatchingSideOutputs)
assert_type(perturbing, handlers.PerturbingSideOutputs)
frozen_forward = handlers.freeze_local_states(
    stateful, {"~local_state/counters": {"block:count": 0}}
)
hoisted_forward = handlers.hoist_shared_state_requests(forward, "counters")
embedded_forward = handlers.embed_shared_state_requests(
    hoisted_forward, {"n": initial}
)

# Transforms and inspection.
model = hke.transform_with_state(stateful)
assert_type(model, hk.TransformedWithState)
stateless = hke.transform(haiku_random)
assert_type(stateless, hk.Transformed)
signature = hke.effect_signature(forward)
table = hke.bindings(forward)
free = hke.free_effect_types(forward)


def run() -> tuple[jax.Array, list[hke.SideOutputValue], Any]:
  """Runs the fully handled model once: init, then one apply."""
  init_key, apply_key, dropout_key = jax.random.split(jax.random.key(3), 3)
  arg = ((jnp.ones([2, 3]), dropout_key), jnp.ones([2, 3]))
  params, state = model.init(init_key, arg)
  (out, told), state = model.apply(params, state, apply_key, arg)
  return out, told, state
