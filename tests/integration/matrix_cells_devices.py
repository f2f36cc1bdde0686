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
"""The matrix cells of the multi-device rows: pmap, sharded jit, shard_map.

The registry, probes and harnesses are ``matrix_cells``'s; see its
docstring. Every check runs on the 8 simulated CPU devices that
tests/conftest.py sets up.
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import jax
from jax import shard_map
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from matrix_cells import assert_draws
from matrix_cells import assert_rows_distinct
from matrix_cells import assert_rows_equal
from matrix_cells import assert_told
from matrix_cells import cell
from matrix_cells import Counter
from matrix_cells import key
from matrix_cells import local_state_fn
from matrix_cells import Noise
from matrix_cells import random_fn
from matrix_cells import Report
from matrix_cells import Scale
from matrix_cells import side_input_fn
from matrix_cells import side_output_fn
import numpy as np
from test_utils import clone_keys

N = 8
PER_DEVICE = jnp.arange(1.0, N + 1.0)  # One element per device.
WIDE = jnp.arange(1.0, 2.0 * N + 1.0)  # Two elements per device.
# Random probes get zeros: their outputs are the draws, bit for bit.

PMAP = "`jax.pmap` (and `chex.fake_pmap`)"
SHARDED_JIT = "`jax.jit` with `NamedSharding` inputs"
SHARD_MAP = "`shard_map`"


def _mesh() -> Mesh:
  if jax.device_count() != N:
    raise RuntimeError(
        f"The device rows need {N} devices, found {jax.device_count()}: run "
        "with XLA_FLAGS=--xla_force_host_platform_device_count=8 (pytest "
        "sets it in tests/conftest.py)."
    )
  return Mesh(np.array(jax.devices()), ("data",))


def both_pmaps(fn: Callable[..., Any], *args, **pmap_kwargs):
  """``fn`` under the real 8-device pmap and chex's fake pmap; checks they
  agree and returns the real result."""
  copies = clone_keys(args)  # The real run marks its keys used.
  real = jax.pmap(fn, **pmap_kwargs)(*args)
  with chex.fake_pmap():
    fake = jax.pmap(fn, **pmap_kwargs)(*copies)
  chex.assert_trees_all_close(real, fake)
  return real


def _sharded(x: jax.Array) -> jax.Array:
  return jax.device_put(x, NamedSharding(_mesh(), P("data")))


def _on_all_devices(t, array: jax.Array) -> None:
  t.assertLen(array.sharding.device_set, N)


def _shard_mapped(fn, in_specs, out_specs):
  # Jitted: shard_map outside jit runs op by op, many times slower.
  return jax.jit(
      shard_map(fn, mesh=_mesh(), in_specs=in_specs, out_specs=out_specs)
  )


# --------------------------------------------------------------- jax.pmap ---


@cell(PMAP, "random")
def _(t, wrap):
  del t, wrap
  zeros = jnp.zeros([N, 2])
  same = both_pmaps(
      random_fn(lambda x: Noise()(x)),
      key(),
      zeros,
      in_axes=(None, 0),
      axis_name="dev",
  )
  assert_draws(same)
  assert_rows_equal(same)  # One stream unless asked (S5).
  folded = both_pmaps(
      random_fn(lambda x: Noise()(x), fold_in_axis="dev"),
      key(),
      zeros,
      in_axes=(None, 0),
      axis_name="dev",
  )
  assert_rows_distinct(folded)


@cell(PMAP, "side input")
def _(t, wrap):
  del t, wrap
  scales = jnp.arange(N, dtype=jnp.float32)
  out = both_pmaps(side_input_fn(lambda x: Scale()(x)), PER_DEVICE, scales)
  np.testing.assert_array_equal(out, PER_DEVICE * scales)


@cell(PMAP, "side output")
def _(t, wrap):
  del t, wrap
  out, told = both_pmaps(side_output_fn(lambda x: Report()(x)), PER_DEVICE)
  np.testing.assert_array_equal(out, PER_DEVICE)
  assert_told(told, 2 * PER_DEVICE)  # One value per device.


@cell(PMAP, "local state")
def _(t, wrap):
  del t, wrap
  apply, _ = local_state_fn(lambda x: Counter()(x), 0.0)
  _, counts = both_pmaps(apply, PER_DEVICE)
  np.testing.assert_array_equal(counts, PER_DEVICE)  # Per-device states.


# ----------------------------------------------------------- sharded jit ---


@cell(SHARDED_JIT, "random")
def _(t, wrap):
  del wrap
  apply = jax.jit(random_fn(lambda x: Noise()(x)))
  zeros = jnp.zeros_like(WIDE)
  sharded = apply(key(), _sharded(zeros))
  _on_all_devices(t, sharded)
  # Partitionable threefry: the draws do not depend on the sharding.
  np.testing.assert_array_equal(sharded, apply(key(), zeros))
  assert_draws(sharded)
  assert_rows_distinct(sharded)


@cell(SHARDED_JIT, "side input")
def _(t, wrap):
  del wrap
  out = jax.jit(side_input_fn(lambda x: Scale()(x)))(_sharded(WIDE), 3.0)
  _on_all_devices(t, out)
  np.testing.assert_array_equal(out, WIDE * 3.0)


@cell(SHARDED_JIT, "side output")
def _(t, wrap):
  del wrap
  out, told = jax.jit(side_output_fn(lambda x: Report()(x)))(_sharded(WIDE))
  _on_all_devices(t, told[0].value)
  np.testing.assert_array_equal(out, WIDE)
  assert_told(told, 2 * WIDE)


@cell(SHARDED_JIT, "local state")
def _(t, wrap):
  del wrap
  apply, _ = local_state_fn(lambda x: Counter(x.shape)(x), WIDE)
  row_sharding = NamedSharding(_mesh(), P("data"))
  _, count = jax.jit(apply, out_shardings=row_sharding)(_sharded(WIDE))
  t.assertEqual(count.sharding, row_sharding)  # As the user asked.
  np.testing.assert_array_equal(count, WIDE)


# ------------------------------------------------------------- shard_map ---


@cell(SHARD_MAP, "random")
def _(t, wrap):
  del t, wrap

  def draws(fold_in_axis):
    apply = random_fn(lambda x: Noise()(x), fold_in_axis=fold_in_axis)
    sharded = _shard_mapped(apply, (P(), P("data")), P("data"))
    return sharded(key(), jnp.zeros_like(WIDE)).reshape(N, 2)

  same, folded = draws(None), draws("data")
  assert_draws(same)
  assert_rows_equal(same)
  assert_rows_distinct(folded)


@cell(SHARD_MAP, "side input")
def _(t, wrap):
  del t, wrap
  scales = jnp.arange(N, dtype=jnp.float32)
  apply = _shard_mapped(
      side_input_fn(lambda x: Scale()(x)), (P("data"), P("data")), P("data")
  )
  np.testing.assert_array_equal(
      apply(WIDE, scales), WIDE * jnp.repeat(scales, 2)
  )


@cell(SHARD_MAP, "side output")
def _(t, wrap):
  del t, wrap
  apply = _shard_mapped(
      side_output_fn(lambda x: Report()(x)), P("data"), P("data")
  )
  out, told = apply(WIDE)
  np.testing.assert_array_equal(out, WIDE)
  assert_told(told, 2 * WIDE)


@cell(SHARD_MAP, "local state")
def _(t, wrap):
  del t, wrap
  apply, _ = local_state_fn(lambda x: Counter(x.shape)(x), WIDE[:2])
  _, count = _shard_mapped(apply, P("data"), P("data"))(WIDE)
  np.testing.assert_array_equal(count, WIDE)  # One state per shard.
