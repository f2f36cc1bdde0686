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
"""Effects across devices: pmap, sharded jit and shard_map (S5, S7)."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import haiku as hk
import jax
from jax import shard_map
import jax.numpy as jnp
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

import hk_effects as hke

N = 8
COUNTERS = "~local_state/counters"


class Noise(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.rng = hke.RandomRequest()

  def __call__(self, x):
    return x + jax.random.normal(self.rng.next_key(), x.shape)


class MeanTracker(hk.Module):
  """Keeps a running total of its inputs' mean in a local state."""

  def __init__(self):
    super().__init__()
    self.total = hke.InitialLocalStateRequest(lambda: jnp.zeros([]), "counters")

  def __call__(self, x):
    self.total.set(self.total.get() + x.mean())
    return x


def _noise_apply(fold_in_axis=None, handler="haiku"):
  forward = lambda x: Noise()(x)  # pylint: disable=unnecessary-lambda-assignment
  if handler == "haiku":
    h = hke.handlers.WithHaikuRandom.handling(
        forward, fold_in_axis=fold_in_axis
    )
    return hke.transform(h).apply
  h = hke.handlers.WithRandomKeyFromArg.handling(
      forward, fold_in_axis=fold_in_axis
  )
  apply = hke.transform(h, apply_rng=False).apply
  return lambda params, key, x: apply(params, (x, key))


def _pmap(fn, fake, **kwargs):
  """jax.pmap over the 8 CPU devices, or chex's fake (vmap-based) pmap."""
  if not fake:
    return jax.pmap(fn, **kwargs)

  def run(*args):
    with chex.fake_pmap():
      return jax.pmap(fn, **kwargs)(*args)

  return run


def _rows_distinct(a):
  a = np.asarray(a).reshape(a.shape[0], -1)
  return len({row.tobytes() for row in a}) == a.shape[0]


class PmapRandomTest(parameterized.TestCase):

  def _pmapped(self, fold, handler, fake):
    apply = _noise_apply("dev" if fold else None, handler)
    return _pmap(apply, fake, axis_name="dev", in_axes=(None, None, 0))

  @parameterized.product(handler=("haiku", "arg"), fake=(False, True))
  def test_same_stream_on_every_device_by_default(self, handler, fake):
    self.assertEqual(jax.device_count(), N)
    f = self._pmapped(False, handler, fake)
    out = f({}, jax.random.key(0), jnp.zeros([N, 4]))
    for row in np.asarray(out)[1:]:
      np.testing.assert_array_equal(row, np.asarray(out)[0])

  @parameterized.product(handler=("haiku", "arg"), fake=(False, True))
  def test_fold_in_axis_gives_each_device_its_stream(self, handler, fake):
    f = self._pmapped(True, handler, fake)
    out = f({}, jax.random.key(0), jnp.zeros([N, 4]))
    self.assertTrue(_rows_distinct(out))

  def test_real_and_fake_pmap_agree(self):
    real = self._pmapped(True, "haiku", False)(
        {}, jax.random.key(3), jnp.zeros([N, 4])
    )
    fake = self._pmapped(True, "haiku", True)(
        {}, jax.random.key(3), jnp.zeros([N, 4])
    )
    chex.assert_trees_all_close(real, fake)

  def test_fold_in_axis_outside_mapped_axis_is_a_clear_error(self):
    apply = _noise_apply("dev")
    with self.assertRaisesRegex(ValueError, "fold_in_axis='dev'.*pmap"):
      apply({}, jax.random.key(0), jnp.zeros([4]))

  def test_fold_in_axis_must_be_a_name(self):
    with self.assertRaisesRegex(TypeError, "fold_in_axis.*3"):
      hke.handlers.WithHaikuRandom.handling(lambda x: x, fold_in_axis=3)


class ShardMapRandomTest(absltest.TestCase):

  def test_fold_in_axis_under_shard_map(self):
    mesh = Mesh(np.array(jax.devices()), ("data",))
    apply = _noise_apply("data")

    @functools.partial(
        shard_map, mesh=mesh, in_specs=(P(), P("data")), out_specs=P("data")
    )
    def sharded(key, x):
      return apply({}, key, x)

    out = sharded(jax.random.key(0), jnp.zeros([N, 4]))
    self.assertTrue(_rows_distinct(out))

    same = shard_map(
        lambda k, x: _noise_apply(None)({}, k, x),
        mesh=mesh,
        in_specs=(P(), P("data")),
        out_specs=P("data"),
    )(jax.random.key(0), jnp.zeros([N, 4]))
    for row in np.asarray(same)[1:]:
      np.testing.assert_array_equal(row, np.asarray(same)[0])


class ShardedJitTest(absltest.TestCase):

  def test_draws_do_not_depend_on_sharding(self):
    mesh = Mesh(np.array(jax.devices()), ("data",))
    apply = jax.jit(_noise_apply(None))
    x = jnp.zeros([N * 2, 16])
    one_device = apply({}, jax.random.key(7), x)
    sharded_x = jax.device_put(x, NamedSharding(mesh, P("data")))
    sharded = apply({}, jax.random.key(7), sharded_x)
    self.assertEqual(len(sharded.sharding.device_set), N)
    np.testing.assert_array_equal(np.asarray(sharded), np.asarray(one_device))

  def test_local_states_keep_the_sharding_the_user_asked_for(self):
    class RowTotals(hk.Module):

      def __init__(self):
        super().__init__()
        self.totals = hke.InitialLocalStateRequest(
            lambda: jnp.zeros([N * 2]), "counters"
        )

      def __call__(self, x):
        self.totals.set(self.totals.get() + x.sum(axis=1))
        return x

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: RowTotals()(x))
    )
    mesh = Mesh(np.array(jax.devices()), ("data",))
    row_sharding = NamedSharding(mesh, P("data"))
    x = jnp.ones([N * 2, 3])
    params, state = f.init(None, x)
    state_sharding = jax.tree_util.tree_map(lambda _: row_sharding, state)
    apply = jax.jit(f.apply, out_shardings=(row_sharding, state_sharding))
    _, state = apply(params, state, None, jax.device_put(x, row_sharding))
    totals = state[COUNTERS]["row_totals:totals"]
    self.assertEqual(totals.sharding, row_sharding)
    np.testing.assert_array_equal(totals, np.full([N * 2], 3.0))


class PmapLocalStateTest(parameterized.TestCase):

  @parameterized.parameters(False, True)
  def test_per_device_updates_then_replicated_after_pmean(self, fake):
    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: MeanTracker()(x))
    )
    params, state = f.init(None, jnp.zeros([4]))

    def step(params, state, x):
      _, state = f.apply(params, state, None, x)
      return state, jax.lax.pmean(state, "dev")

    replicate = lambda t: jax.tree_util.tree_map(  # pylint: disable=unnecessary-lambda-assignment
        lambda a: jnp.broadcast_to(a, (N,) + a.shape), t
    )
    xs = jnp.arange(N, dtype=jnp.float32)[:, None] * jnp.ones([N, 4])
    per_device, averaged = _pmap(step, fake, axis_name="dev")(
        replicate(params), replicate(state), xs
    )
    np.testing.assert_array_equal(
        per_device[COUNTERS]["mean_tracker:total"],
        np.arange(N, dtype=np.float32),
    )
    np.testing.assert_array_equal(
        averaged[COUNTERS]["mean_tracker:total"],
        np.full([N], (N - 1) / 2, np.float32),
    )


class PmapSideInputTest(absltest.TestCase):

  def test_per_device_side_inputs(self):
    class Scale(hk.Module):

      def __init__(self):
        super().__init__()
        self.scale = hke.SideInputRequest("scale")

      def __call__(self, x):
        return x * self.scale.ask()

    h = hke.handlers.WithSideInputsFromInputTuple.handling(
        lambda x: Scale()(x), tags=("scale",)
    )
    apply = hke.transform(h, apply_rng=False).apply
    out = jax.pmap(lambda x, s: apply({}, (x, s)))(
        jnp.ones([N, 2]), jnp.arange(N, dtype=jnp.float32)
    )
    np.testing.assert_array_equal(
        out, np.arange(N, dtype=np.float32)[:, None] * np.ones([N, 2])
    )


if __name__ == "__main__":
  absltest.main()
