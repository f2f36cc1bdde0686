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
"""hke.vmap: one local state (or Haiku state) per member of hk.vmap.

Scenarios of the Haiku issues that asked for it (#786, #788, #790): running
statistics per example, BatchNorm statistics per ensemble member, a KV cache
per prompt while decoding prompts of different lengths; each checked against
running every example alone, under jax.jit, jax.grad, hk.scan, hk.remat and
jax.pmap.
"""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import conftest  # pylint: disable=unused-import  # Key-reuse checker, alone.
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

XS = jnp.array([[1.0, 2.0], [3.0, 5.0], [-1.0, 0.5]])


class RunningMean(hk.Module):
  """Normalises by a running mean of what it saw: BatchNorm-like stats."""

  def __init__(self, decay=0.5, name=None):
    super().__init__(name=name)
    self.decay = decay
    self.mean = hke.InitialLocalStateRequest(lambda: jnp.zeros([2]), "stats")
    self.steps = hke.InitialLocalStateRequest(
        lambda: jnp.zeros([], jnp.int32), "stats"
    )

  def __call__(self, x):
    mean = self.decay * self.mean.get() + (1 - self.decay) * x
    self.mean.set(mean)
    self.steps.set(self.steps.get() + 1)
    return hk.Linear(2, w_init=hk.initializers.Constant(1.0))(x - mean)


class CountOther(hk.Module):
  """Sums what it saw in local-state category "other"."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.seen = hke.InitialLocalStateRequest(lambda: jnp.zeros([2]), "other")

  def __call__(self, x):
    self.seen.set(self.seen.get() + x)
    return x


def _stateful(forward):
  return hke.transform_with_state(hke.handlers.handle_local_states(forward))


def _per_example(x):
  return hke.vmap(
      RunningMean(), split_rng=False, local_state_axes={"stats": 0}
  )(x)


class PerExampleStateTest(parameterized.TestCase):

  def test_running_stats_per_example_match_each_example_alone(self):
    f = _stateful(_per_example)
    alone = _stateful(lambda x: RunningMean()(x))
    params, state = f.init(None, XS)
    states = [alone.init(None, x)[1] for x in XS]
    apply = jax.jit(f.apply)
    for step in range(3):
      batch = XS * (step + 1)
      out, state = apply(params, state, None, batch)
      for i, x in enumerate(batch):
        want, states[i] = alone.apply(params, states[i], None, x)
        np.testing.assert_allclose(out[i], want, rtol=1e-6)
    stats = state["~local_state/stats"]
    np.testing.assert_array_equal(stats["running_mean:steps"], [3, 3, 3])
    np.testing.assert_allclose(
        stats["running_mean:mean"],
        np.stack(
            [s["~local_state/stats"]["running_mean:mean"] for s in states]
        ),
        rtol=1e-6,
    )

  def test_init_creates_one_state_per_member_with_its_own_key(self):
    class Noisy(hk.Module):

      def __init__(self, name=None):
        super().__init__(name=name)
        self.offset = hke.InitialLocalStateRequest(
            lambda: jax.random.normal(hk.next_rng_key(), [2]), "noise"
        )

      def __call__(self, x):
        return hk.Linear(2)(x) + self.offset.get()

    f = _stateful(
        lambda x: hke.vmap(Noisy(), split_rng=False, local_state_axes=0)(x)
    )
    params, state = f.init(jax.random.key(0), XS)
    offsets = state["~local_state/noise"]["noisy:offset"]
    self.assertEqual(offsets.shape, (3, 2))
    self.assertLen({tuple(np.asarray(o)) for o in offsets}, 3)
    # Params are those hk.vmap makes: the keys were read, not drawn.
    plain = hk.transform(
        lambda x: hk.vmap(hk.Linear(2, name="noisy_linear"), split_rng=False)(x)
    )
    want = plain.init(jax.random.key(0), XS)["noisy_linear"]
    got = params["noisy/linear"]
    np.testing.assert_array_equal(got["w"], want["w"])
    out, _ = f.apply(params, state, None, XS)
    np.testing.assert_allclose(
        out, XS @ got["w"] + got["b"][None] + offsets, rtol=1e-6
    )

  def test_a_counter_per_example_under_jit_and_grad(self):
    f = _stateful(_per_example)
    params, state = f.init(None, XS)

    def loss(params, state, x):
      out, state = f.apply(params, state, None, x)
      return jnp.sum(out**2), state

    step = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (value, state), grads = step(params, state, XS)
    (_, state), _ = step(params, state, XS)
    np.testing.assert_array_equal(
        state["~local_state/stats"]["running_mean:steps"], [2, 2, 2]
    )
    # The gradient of the per-example model equals the sum of each alone.
    alone = _stateful(lambda x: RunningMean()(x))
    want = jax.tree_util.tree_map(jnp.zeros_like, params)
    for x in XS:
      g = jax.grad(
          lambda p, x=x: jnp.sum(
              alone.apply(p, alone.init(None, x)[1], None, x)[0] ** 2
          )
      )(params)
      want = jax.tree_util.tree_map(jnp.add, want, g)
    chex_close = np.testing.assert_allclose
    chex_close(
        grads["running_mean/linear"]["w"],
        want["running_mean/linear"]["w"],
        rtol=1e-5,
    )
    self.assertGreater(float(value), 0.0)

  def test_composes_with_scan_and_remat(self):
    def forward(xs):  # Steps on the leading axis, examples on the next.
      layer = hk.remat(RunningMean())
      mapped = hke.vmap(layer, split_rng=False, local_state_axes={"stats": 0})
      if hk.running_init():
        mapped(xs[0])  # Haiku creates state before a scan, not inside it.
      return hk.scan(lambda c, x: (c, mapped(x)), 0.0, xs)[1]

    f = _stateful(forward)
    steps = jnp.stack([XS, 2 * XS])
    params, state = f.init(None, steps)
    out, state = jax.jit(f.apply)(params, state, None, steps)
    alone = _stateful(lambda x: RunningMean()(x))
    for i in range(3):
      s = alone.init(None, XS[i])[1]
      for t in range(2):
        want, s = alone.apply(params, s, None, steps[t, i])
        np.testing.assert_allclose(out[t, i], want, rtol=1e-6)
    np.testing.assert_array_equal(
        state["~local_state/stats"]["running_mean:steps"], [2, 2, 2]
    )

  def test_pmap_over_apply_keeps_each_device_states(self):
    f = _stateful(_per_example)
    params, state = f.init(None, XS)
    states = jax.tree_util.tree_map(lambda s: jnp.stack([s, s]), state)
    batches = jnp.stack([XS, -XS])
    _, new = jax.pmap(f.apply, in_axes=(None, 0, None, 0))(
        params, states, None, batches
    )
    for d in range(2):
      _, want = f.apply(params, state, None, batches[d])
      np.testing.assert_allclose(
          new["~local_state/stats"]["running_mean:mean"][d],
          want["~local_state/stats"]["running_mean:mean"],
          rtol=1e-6,
      )

  def test_unnamed_categories_stay_shared(self):
    class Both(hk.Module):

      def __init__(self, name=None):
        super().__init__(name=name)
        self.calls = hke.InitialLocalStateRequest(
            lambda: jnp.zeros([]), "shared"
        )
        self.total = hke.InitialLocalStateRequest(lambda: jnp.zeros([]), "mine")

      def __call__(self, x):
        self.calls.set(self.calls.get() + 1)  # The same for every member.
        self.total.set(self.total.get() + jnp.sum(x))
        return x

    forward = lambda x: hke.vmap(
        Both(),
        split_rng=False,  # pylint: disable=g-long-lambda
        local_state_axes={"mine": 0},
    )(x)
    f = _stateful(forward)
    params, state = f.init(None, XS)
    _, state = f.apply(params, state, None, XS)
    self.assertEqual(state["~local_state/shared"]["both:calls"].shape, ())
    np.testing.assert_array_equal(
        state["~local_state/shared"]["both:calls"], 1.0
    )
    np.testing.assert_array_equal(
        state["~local_state/mine"]["both:total"], XS.sum(axis=1)
    )


class HaikuStateTest(absltest.TestCase):

  def test_batch_norm_statistics_per_ensemble_member(self):
    members = jnp.arange(24.0).reshape(3, 4, 2)  # Member, batch, feature.

    def forward(x):
      bn = hk.BatchNorm(True, True, decay_rate=0.9)
      return hke.vmap(
          lambda m: bn(m, is_training=True),
          split_rng=False,
          state_axes={"batch_norm": 0},
      )(x)

    f = hk.transform_with_state(forward)
    params, state = f.init(None, members)
    out, state = jax.jit(f.apply)(params, state, None, members)
    alone = hk.transform_with_state(
        lambda m: hk.BatchNorm(True, True, decay_rate=0.9)(m, is_training=True)
    )
    for i, m in enumerate(members):
      _, s = alone.init(None, m)
      want, s = alone.apply(params, s, None, m)
      np.testing.assert_allclose(out[i], want, rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(
          state["batch_norm/~/mean_ema"]["average"][i],
          s["batch_norm/~/mean_ema"]["average"],
          rtol=1e-6,
      )

  def test_haiku_state_initializers_draw_a_key_per_member(self):
    def forward(x):
      def member(m):
        noise = hk.get_state(
            "noise",
            [2],
            init=lambda shape, dtype: jax.random.normal(
                hk.next_rng_key(), shape
            ),
        )
        hk.set_state("noise", noise + m)
        return m

      return hke.vmap(member, split_rng=False, state_axes=0)(x)

    f = hk.transform_with_state(forward)
    _, state = f.init(jax.random.key(0), XS)
    noise = state["~"]["noise"]
    self.assertEqual(noise.shape, (3, 2))
    self.assertLen({tuple(np.asarray(n)) for n in noise}, 3)
    _, new = f.apply({}, state, None, XS)
    np.testing.assert_allclose(new["~"]["noise"], noise + XS, rtol=1e-6)


class KVCacheTest(absltest.TestCase):

  def test_decoding_prompts_of_different_lengths_matches_each_alone(self):
    model, lengths, steps = 8, (2, 4), 6
    prompts = jax.random.normal(jax.random.key(1), (2, max(lengths), model))

    def attention():
      return hke.KVCachedAttention(
          num_heads=2, key_size=4, max_length=8, batch_size=1
      )

    def batched(x):  # x: [prompt, 1, 1, model]: one token of each prompt.
      attn = attention()
      return hke.vmap(
          lambda t: attn(t, decode=True),
          split_rng=False,
          local_state_axes={"kv_cache": 0},
      )(x)

    f = _stateful(batched)
    alone = _stateful(lambda t: attention()(t, decode=True))
    params, state = f.init(jax.random.key(0), jnp.zeros([2, 1, 1, model]))
    states = [
        alone.init(jax.random.key(0), jnp.zeros([1, 1, model]))[1]
        for _ in lengths
    ]
    self.assertEqual(
        state["~local_state/kv_cache"]["kv_cached_attention:cache['k']"].shape,
        (2, 1, 8, 2, 4),
    )
    apply, apply_alone = jax.jit(f.apply), jax.jit(alone.apply)
    previous = [None, None]
    for t in range(steps):
      # Each prompt is fed until it ends, then its own outputs are.
      tokens = jnp.stack([
          prompts[i, t] if t < n else previous[i] for i, n in enumerate(lengths)
      ])
      out, state = apply(params, state, None, tokens[:, None, None])
      for i in range(len(lengths)):
        want, states[i] = apply_alone(
            params, states[i], None, tokens[i][None, None]
        )
        np.testing.assert_allclose(out[i], want, rtol=1e-5, atol=1e-6)
      previous = [out[i, 0, 0] for i in range(len(lengths))]
    np.testing.assert_array_equal(
        state["~local_state/kv_cache"]["kv_cached_attention:cache['index']"],
        [steps, steps],
    )


class ErrorTest(absltest.TestCase):

  def test_a_per_example_set_under_hk_vmap_names_local_state_axes(self):
    f = _stateful(lambda x: hk.vmap(RunningMean(), split_rng=False)(x))
    with self.assertRaisesRegex(
        ValueError,
        r"'running_mean:mean' \(category 'stats'\).*per-example value inside "
        r"hk.vmap.*hke.vmap\(\.\.\., local_state_axes=\{'stats': 0\}\)",
    ):
      f.init(None, XS)

  def test_a_state_without_the_member_axis_is_refused(self):
    f = _stateful(_per_example)
    params, state = f.init(None, XS)
    with self.assertRaisesRegex(
        ValueError,
        r"'running_mean:mean' of bundle '~local_state/stats' has "
        r"shape \(3, 2\), not 2 members along axis 0.*pass apply the state "
        "that init returned",
    ):
      f.apply(params, state, None, XS[:2])

  def test_a_misspelt_category_names_it_and_the_categories_that_exist(self):
    f = _stateful(
        lambda x: hke.vmap(
            RunningMean(), split_rng=False, local_state_axes={"stat": 0}
        )(x)
    )
    with self.assertRaisesRegex(
        ValueError,
        r"local_state_axes names categories \['stat'\] that no local state "
        r"of this call has; the categories that exist: \['stats'\]",
    ):
      f.init(None, XS)

  def test_a_misspelt_module_names_it_and_the_state_bundles_that_exist(self):
    def forward(x):
      bn = hk.BatchNorm(True, True, decay_rate=0.9)
      return hke.vmap(
          lambda m: bn(m, is_training=True),
          split_rng=False,
          state_axes={"batchnorm": 0},
      )(x)

    with self.assertRaisesRegex(
        ValueError,
        r"state_axes names modules \['batchnorm'\] that hold no Haiku state "
        r"in this call; the state bundles that exist: "
        r"\['batch_norm/~/mean_ema', 'batch_norm/~/var_ema'\]",
    ):
      hk.transform_with_state(forward).init(None, jnp.ones([3, 4, 2]))

  def test_a_key_naming_nothing_is_harmless_when_every_state_is_mapped(self):
    # One wrapper for several models: "cache" exists in none of this one.
    f = _stateful(
        lambda x: hke.vmap(
            RunningMean(),
            split_rng=False,
            local_state_axes={"stats": 0, "cache": 0},
        )(x)
    )
    params, state = f.init(None, XS)
    _, state = f.apply(params, state, None, XS)
    np.testing.assert_allclose(
        state["~local_state/stats"]["running_mean:mean"], 0.5 * XS
    )

  def test_an_unmapped_category_set_per_member_is_named(self):
    def forward(x):
      def member(m):
        counts = CountOther()
        return counts(RunningMean()(m))

      return hke.vmap(member, split_rng=False, local_state_axes={"stats": 0})(x)

    with self.assertRaisesRegex(
        ValueError,
        r"not per member was set to a per-member value.*"
        r"\[\('~local_state/other', 'count_other:seen'\)\].*"
        r"which now are \{'stats': 0\} and None",
    ):
      _stateful(forward).init(None, XS)

  def test_axes_of_the_wrong_type(self):
    with self.assertRaisesRegex(TypeError, "local_state_axes must be an int"):
      hke.vmap(lambda x: x, split_rng=False, local_state_axes="stats")


if __name__ == "__main__":
  absltest.main()
