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
"""The effect-dense block of ``benchmarks/models.py`` in Flax linen.

Linen's own ways to do what the four hk_effects requests do: the mask is an
argument, dropout keys come from ``self.make_rng("dropout")`` (inside
``nn.Dropout``), the intermediate is ``self.sow``-n into the
``intermediates`` collection and the counter is a ``self.variable`` in a
mutable ``counter`` collection.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks import models


class DenseBlock(nn.Module):
  """Linear, times the mask, relu, dropout, sow, count."""

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    h = nn.relu(nn.Dense(models.DENSE_WIDTH, name="linear")(x) * mask)
    h = nn.Dropout(models.DROPOUT_RATE, deterministic=False, name="dropout")(h)
    self.sow("intermediates", models.OUTPUT_TAG, h)
    count = self.variable("counter", "count", lambda: jnp.zeros([], jnp.int32))
    count.value = count.value + 1
    return h


class DenseStack(nn.Module):
  """``depth`` dense blocks."""

  depth: int

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    for i in range(self.depth):
      x = DenseBlock(name=f"block_{i}")(x, mask)
    return x


def init(
    model: DenseStack, key: jax.Array, x: jax.Array, mask: jax.Array
) -> Any:
  """Params and counters (no intermediates: they are outputs)."""
  params_key, dropout_key = jax.random.split(key)
  variables = model.init(
      {"params": params_key, "dropout": dropout_key}, x, mask
  )
  return {k: v for k, v in variables.items() if k != "intermediates"}


def make_step(depth: int):
  """A fresh ``step(variables, rng, x, mask) -> (out, mutated)``."""
  model = DenseStack(depth)

  def step(variables, rng, x, mask):
    return model.apply(
        variables,
        x,
        mask,
        rngs={"dropout": rng},
        mutable=["intermediates", "counter"],
    )

  return step
