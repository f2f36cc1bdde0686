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
"""Tests of patching and perturbing side-output sites
(_src/effects/side_output/patching.py and intervention_sites.py), written as
interpretability work on a small transformer-like Haiku model."""

from __future__ import annotations

import functools

from absl.testing import absltest
from absl.testing import parameterized
import conftest  # pylint: disable=unused-import  # hk.next_rng_keys below.
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

H = hke.handlers
Patch = H.PatchingSideOutputs
Perturb = H.PerturbingSideOutputs
Collect = H.CollectingSideOutputs
VOCAB, DIM, BLOCKS = 11, 8, 3
CLEAN = jnp.array([[1, 4, 2, 7, 3]])
CORRUPT = jnp.array([[1, 4, 9, 7, 3]])


class Block(hk.Module):
  """Pre-LN attention + MLP block that tells its residual stream."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.residual = hke.SideOutputRequest("residual")

  def __call__(self, x):
    h = hk.LayerNorm(-1, True, True)(x)
    x = x + hk.MultiHeadAttention(
        num_heads=2,
        key_size=4,
        model_size=DIM,
        w_init=hk.initializers.VarianceScaling(1.0),
    )(h, h, h)
    x = x + hk.nets.MLP([16, DIM])(hk.LayerNorm(-1, True, True)(x))
    return self.residual.tell(x)


def transformer(tokens, edit=None):
  """The model; ``edit(i, x)`` is the hand-threaded change after block i."""
  x = hk.Embed(VOCAB, DIM)(tokens)
  for i in range(BLOCKS):
    x = Block(name=f"block_{i}")(x)
    if edit is not None:
      x = edit(i, x)
  return hk.Linear(VOCAB)(hk.LayerNorm(-1, True, True)(x))


@functools.lru_cache(maxsize=None)  # One init for the whole file.
def _params():
  return hke.transform(transformer).init(jax.random.key(0), CLEAN)


def _apply(forward, params, arg, jit=False):
  f = hke.transform(forward, apply_rng=False)
  apply = jax.jit(f.apply) if jit else f.apply
  return apply(params, arg)


@functools.lru_cache(maxsize=None)
def _clean_residuals():
  _, values = _apply(Collect.handling(transformer), _params(), CLEAN)
  return {v.path: v.value for v in values}


def _threaded(params, tokens, edit):
  return _apply(lambda t: transformer(t, edit), params, tokens)


class ActivationPatchingTest(parameterized.TestCase):

  def test_residuals_are_collected_under_the_paths_patches_use(self):
    self.assertEqual(
        list(_clean_residuals()), [f"block_{i}/residual" for i in range(BLOCKS)]
    )

  @parameterized.parameters(0, 1, 2)
  def test_patching_a_clean_residual_equals_the_hand_edited_model(self, i):
    params = _params()
    clean = _clean_residuals()
    path = f"block_{i}/residual"
    patched = _apply(
        Patch.handling(transformer, {path: clean[path]}),
        params,
        CORRUPT,
        jit=True,
    )
    expected = _threaded(
        params, CORRUPT, lambda j, x: clean[path] if j == i else x
    )
    np.testing.assert_allclose(patched, expected, rtol=1e-5, atol=1e-6)
    # Patching the last block restores the clean prediction exactly; the
    # corrupted run differs from it.
    clean_out = _apply(transformer, params, CLEAN)
    corrupt_out = _apply(transformer, params, CORRUPT)
    self.assertFalse(np.allclose(corrupt_out, clean_out))
    if i == BLOCKS - 1:
      np.testing.assert_allclose(patched, clean_out, rtol=1e-5, atol=1e-6)

  def test_steering_vector_added_by_a_function_patch(self):
    params = _params()
    steer = jnp.linspace(-1.0, 1.0, DIM)[None, None]
    patched = _apply(
        Patch.handling(transformer, {"block_1/residual": lambda r: r + steer}),
        params,
        CLEAN,
    )
    expected = _threaded(params, CLEAN, lambda j, x: x + steer if j == 1 else x)
    np.testing.assert_allclose(patched, expected, rtol=1e-5, atol=1e-6)

  def test_zero_ablation_of_every_block_by_tag(self):
    params = _params()
    patched = _apply(
        Patch.handling(transformer, {"residual": jnp.zeros_like}), params, CLEAN
    )
    expected = _threaded(params, CLEAN, lambda j, x: jnp.zeros_like(x))
    np.testing.assert_allclose(patched, expected, rtol=1e-5, atol=1e-6)

  def test_predicate_selects_sites_by_path_and_tag(self):
    params = _params()
    clean = _clean_residuals()
    chosen = lambda path, tag: tag == "residual" and path.startswith("block_2")
    patched = _apply(
        Patch.handling(transformer, {chosen: clean["block_2/residual"]}),
        params,
        CORRUPT,
    )
    np.testing.assert_allclose(
        patched, _apply(transformer, params, CLEAN), rtol=1e-5, atol=1e-6
    )

  def test_a_collector_around_the_patch_sees_the_patched_values(self):
    params = _params()
    ablated = Patch.handling(transformer, {"block_0/residual": jnp.zeros_like})
    _, values = _apply(Collect.handling(ablated), params, CLEAN)
    np.testing.assert_array_equal(values[0].value, 0.0)
    # By hand: block 0's output zeroed after its tell.
    zero_first = lambda j, x: jnp.zeros_like(x) if j == 0 else x
    _, by_hand = _apply(
        Collect.handling(lambda t: transformer(t, zero_first)), params, CLEAN
    )
    for got, expected in zip(values[1:], by_hand[1:]):
      np.testing.assert_allclose(
          got.value, expected.value, rtol=1e-5, atol=1e-6
      )

  def test_gradient_flows_into_a_replacement(self):
    params = _params()
    clean = _clean_residuals()["block_1/residual"]

    def patched_loss(replacement):
      f = hke.transform(
          Patch.handling(transformer, {"block_1/residual": replacement}),
          apply_rng=False,
      )
      return jnp.sum(f.apply(params, CORRUPT)[..., 3])

    def threaded_loss(replacement):
      return jnp.sum(
          _threaded(params, CORRUPT, lambda j, x: replacement if j == 1 else x)[
              ..., 3
          ]
      )

    np.testing.assert_allclose(
        jax.jit(jax.grad(patched_loss))(clean),
        jax.grad(threaded_loss)(clean),
        rtol=1e-5,
        atol=1e-6,
    )

  def test_patches_built_inside_jax_vmap_patch_each_example(self):
    params = _params()
    replacements = jnp.stack([
        _clean_residuals()["block_1/residual"][0],
        jnp.zeros([CLEAN.shape[1], DIM]),
    ])

    def run(tokens, replacement):
      f = hke.transform(
          Patch.handling(transformer, {"block_1/residual": replacement}),
          apply_rng=False,
      )
      return f.apply(params, tokens)

    batched = jax.jit(jax.vmap(run))(
        jnp.stack([CORRUPT, CORRUPT]), replacements[:, None]
    )
    for b in range(2):
      expected = _threaded(
          params,
          CORRUPT,
          lambda j, x, b=b: (replacements[b][None] if j == 1 else x),
      )
      np.testing.assert_allclose(batched[b], expected, rtol=1e-5, atol=1e-6)


def _stacked_layer(x):
  return Block(name="block")(x)


def _stacked_model(tokens):
  x = hk.Embed(VOCAB, DIM)(tokens)
  x = hk.layer_stack(BLOCKS, name="layers")(_stacked_layer)(x)
  return hk.Linear(VOCAB)(x)


def _per_layer_loop(params, tokens, edit):
  """The stacked model as a Python loop over layer i's slice of params."""
  block = hk.transform(_stacked_layer)
  outer = hk.transform(lambda t: hk.Embed(VOCAB, DIM)(t))
  head = hk.transform(lambda x: hk.Linear(VOCAB)(x))
  x = outer.apply({"embed": params["embed"]}, None, tokens)
  stacked = {
      k[len("layers/") :]: v
      for k, v in params.items()
      if k.startswith("layers/")
  }
  for i in range(BLOCKS):
    x = block.apply(jax.tree.map(lambda p, i=i: p[i], stacked), None, x)
    x = edit(i, x)
  return head.apply({"linear": params["linear"]}, None, x)


class LoopPatchingTest(parameterized.TestCase):

  def setUp(self):
    super().setUp()
    self.params = hke.transform(_stacked_model).init(jax.random.key(0), CLEAN)

  def _collect(self, tokens):
    _, values = _apply(Collect.handling(_stacked_model), self.params, tokens)
    return values

  def test_stacked_replacement_in_layer_stack_equals_per_layer_loop(self):
    (clean,) = self._collect(CLEAN)
    self.assertEqual(clean.path, "layers/block/residual")
    self.assertEqual(clean.value.shape, (BLOCKS,) + CORRUPT.shape + (DIM,))
    # Clean residuals for layers 0 and 2, the corrupted run's own for 1.
    (corrupt,) = self._collect(CORRUPT)
    mixed = clean.value.at[1].set(corrupt.value[1])
    patched = _apply(
        Patch.handling(_stacked_model, {clean.path: mixed}),
        self.params,
        CORRUPT,
        jit=True,
    )
    expected = _per_layer_loop(self.params, CORRUPT, lambda i, x: mixed[i])
    np.testing.assert_allclose(patched, expected, rtol=1e-5, atol=1e-6)

  def test_function_patch_in_layer_stack_gets_each_layers_value(self):
    seen = []

    def halve(r):
      seen.append(r.shape)
      return r * 0.5

    patched = _apply(
        Patch.handling(_stacked_model, {"residual": halve}), self.params, CLEAN
    )
    expected = _per_layer_loop(self.params, CLEAN, lambda i, x: x * 0.5)
    np.testing.assert_allclose(patched, expected, rtol=1e-5, atol=1e-6)
    self.assertIn(CLEAN.shape + (DIM,), seen)

  def test_unstacked_replacement_is_used_in_every_layer(self):
    steer = jnp.ones([CLEAN.shape[1], DIM])
    patched = _apply(
        Patch.handling(_stacked_model, {"residual": steer[None]}),
        self.params,
        CLEAN,
    )
    expected = _per_layer_loop(self.params, CLEAN, lambda i, x: steer[None])
    np.testing.assert_allclose(patched, expected, rtol=1e-5, atol=1e-6)

  def test_a_stacked_method_site_is_named_as_haiku_names_its_params(self):
    # hk.layer_stack of a method of the holding module: Haiku repeats the
    # module's name inside the stack, in params and in site paths alike.
    class Stack(hk.Module):

      def layer(self, x):
        return hke.TellIntermediate("out", name="layer_out")(hk.Linear(2)(x))

      def __call__(self, x):
        return hk.layer_stack(3)(self.layer)(x)

    def model(x):
      return Stack(name="transformer")(x)

    x = jnp.ones(2)
    params = hke.transform(model).init(jax.random.key(0), x)
    _, (told,) = _apply(Collect.handling(model), params, x)
    (linear,) = params
    self.assertEqual(
        linear,
        "transformer/__layer_stack_no_per_layer/transformer/~layer/linear",
    )
    self.assertEqual(
        told.path,
        "transformer/__layer_stack_no_per_layer/transformer/~layer/layer_out/"
        "intermediate",
    )
    patched = _apply(
        Patch.handling(model, {told.path: jnp.zeros([3, 2])}), params, x
    )
    np.testing.assert_array_equal(patched, [0.0, 0.0])

  @parameterized.parameters(False, True)
  def test_scan_patch_equals_the_hand_unrolled_loop(self, reverse):
    def model(xs, edit=None):
      cell = hk.Linear(2, name="cell")
      probe = hke.TellIntermediate("h", name="probe")

      def step(h, x):
        h = probe(jnp.tanh(cell(h) + x))
        return h, h

      if edit is None:
        return hk.scan(step, jnp.zeros(2), xs, reverse=reverse)[1]
      h, outs = jnp.zeros(2), [None] * len(xs)
      order = range(len(xs))[::-1] if reverse else range(len(xs))
      for i in order:
        h = edit(i, jnp.tanh(cell(h) + xs[i]))
        outs[i] = h
      return jnp.stack(outs)

    xs = jnp.linspace(-1.0, 1.0, 8).reshape(4, 2)
    params = hke.transform(model).init(jax.random.key(0), xs)
    replacement = jnp.arange(8.0).reshape(4, 2) / 8
    patched = _apply(
        Patch.handling(model, {"probe/intermediate": lambda h: h}), params, xs
    )
    np.testing.assert_allclose(
        patched, _apply(model, params, xs), rtol=1e-5, atol=1e-6
    )
    patched = _apply(Patch.handling(model, {"h": replacement}), params, xs)
    np.testing.assert_array_equal(patched, replacement)
    tripled = _apply(
        Patch.handling(model, {"h": lambda h: h * 3.0}), params, xs
    )
    expected = _apply(lambda x: model(x, lambda i, h: h * 3.0), params, xs)
    np.testing.assert_allclose(tripled, expected, rtol=1e-5, atol=1e-6)

  def test_hk_vmap_members_take_their_slice(self):
    def model(x):
      probe = hke.TellIntermediate("member")
      return hk.vmap(lambda r: probe(r * 2.0) + 1.0, split_rng=False)(x)

    x = jnp.arange(6.0).reshape(3, 2)
    _, (told,) = _apply(Collect.handling(model), {}, x)
    replacement = told.value * 10
    patched = _apply(Patch.handling(model, {told.path: replacement}), {}, x)
    np.testing.assert_array_equal(patched, replacement + 1.0)
    # A member-shaped value patches every member.
    patched = _apply(Patch.handling(model, {told.path: jnp.ones(2)}), {}, x)
    np.testing.assert_array_equal(patched, jnp.full([3, 2], 2.0))

  def test_remat_block_is_patched_under_jax_grad(self):
    def model(x):
      return hk.remat(
          lambda v: hke.TellIntermediate("h", name="probe")(
              hk.Linear(3, name="linear")(v)
          )
      )(x)

    x = jnp.array([[1.0, 2.0]])
    params = hke.transform(model).init(jax.random.key(0), x)

    def loss(p, forward):
      return jnp.sum(hke.transform(forward, apply_rng=False).apply(p, x) ** 2)

    doubled = Patch.handling(model, {"probe/intermediate": lambda h: h * 2.0})
    np.testing.assert_allclose(
        loss(params, doubled), 4 * loss(params, model), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        jax.jit(jax.grad(loss), static_argnums=1)(params, doubled)["linear"][
            "w"
        ],
        4 * jax.grad(loss)(params, model)["linear"]["w"],
        rtol=1e-5,
        atol=1e-6,
    )
    # Perturbations inside the remat body: d loss / d h = 2 h.
    perturbed = hke.transform(Perturb.handling(model), apply_rng=False)
    zeros = H.perturbation_zeros(perturbed.apply)(params, (x, None))
    grads = jax.jit(
        jax.grad(lambda d: jnp.sum(perturbed.apply(params, (x, d)) ** 2))
    )(zeros)
    h = hke.transform(model, apply_rng=False).apply(params, x)
    np.testing.assert_allclose(grads["probe/intermediate"], 2 * h, rtol=1e-6)


def _lifted_inner(x):
  return hke.TellIntermediate("acts", name="tells")(hk.Linear(2)(x)) * 2


_INNER = hk.transform(_lifted_inner)


def _scan(x):
  probe = hke.TellIntermediate("acts")
  return hk.scan(lambda c, xi: (probe(c + xi), None), x[0], x)[0]


def _layer_stack(x):
  return hk.layer_stack(3, name="stack")(
      lambda h: hke.TellIntermediate("acts")(hk.Linear(2)(h))
  )(x)


def _nested_layer_stacks(x):
  def layer(h):
    return hk.layer_stack(2, name="inner")(
        lambda h: hke.TellIntermediate("acts")(hk.Linear(2)(h))
    )(h)

  return hk.layer_stack(3, name="outer")(layer)(x)


def _scan_in_vmap(x):
  probe = hke.TellIntermediate("acts")
  return hk.vmap(
      lambda r: hk.scan(lambda c, xi: (probe(c + xi), None), 0.0, r)[0],
      split_rng=False,
  )(x)


def _scan_in_layer_stack(x):
  def layer(h):
    probe = hke.TellIntermediate("acts")
    return hk.scan(
        lambda c, xi: (probe(c * 0.5 + xi), None), h, jnp.ones([4, 3, 2])
    )[0]

  return hk.layer_stack(2, name="stack")(layer)(x)


def _lifted(x):
  params = hk.lift(_INNER.init, name="inner")(hk.next_rng_key(), x)
  return hke.TellIntermediate("acts", name="outer")(
      _INNER.apply(params, None, x)
  )


def _lifted_ensemble(x):
  init = jax.vmap(_INNER.init, in_axes=(0, None))
  keys = hk.next_rng_keys(3) if hk.running_init() else None
  params = hk.lift(init, name="ensemble")(keys, x)
  return hk.vmap(lambda p: _INNER.apply(p, None, x), split_rng=False)(params)


def _lifted_in_scan(x):
  params = hk.lift(_INNER.init, name="inner")(hk.next_rng_key(), x[0])
  return hk.scan(
      lambda c, xi: (_INNER.apply(params, None, c + xi), None), x[0], x
  )[0]


def _remat(x):
  return hk.remat(lambda v: hke.TellIntermediate("acts")(hk.Linear(2)(v)))(x)


_PLACEMENTS = (
    ("scan", _scan),
    ("layer_stack", _layer_stack),
    ("nested_layer_stacks", _nested_layer_stacks),
    ("scan_in_vmap", _scan_in_vmap),
    ("scan_in_layer_stack", _scan_in_layer_stack),
    ("lift", _lifted),
    ("lifted_ensemble", _lifted_ensemble),
    ("lift_in_scan", _lifted_in_scan),
    ("remat", _remat),
)


class OnePathTest(parameterized.TestCase):
  """The paths a collector reports address the same sites for patching and
  perturbing, wherever the site sits."""

  @parameterized.named_parameters(*_PLACEMENTS)
  def test_collected_paths_patch_and_perturb_their_sites(self, forward):
    x = jnp.arange(6.0).reshape(3, 2) / 10
    f = hke.transform(Collect.handling(forward))
    params = f.init(jax.random.key(0), x)
    _, told = jax.jit(f.apply)(params, jax.random.key(1), x)
    self.assertNotEmpty(told)
    for i, value in enumerate(told):
      replacement = value.value * 0 + jnp.arange(value.value.size).reshape(
          value.value.shape
      )
      g = hke.transform(
          Collect.handling(Patch.handling(forward, {value.path: replacement}))
      )
      _, patched = jax.jit(g.apply)(params, jax.random.key(2 + i), x)
      (got,) = [v for v in patched if v.path == value.path]
      np.testing.assert_array_equal(got.value, replacement)

    p = hke.transform(Perturb.handling(forward))
    zeros = H.perturbation_zeros(p.apply)(params, jax.random.key(7), (x, None))
    self.assertEqual(
        {k: z.shape for k, z in zeros.items()},
        {v.path: v.value.shape for v in told},
    )
    # Zero perturbations leave every told value as it was.
    perturbed = hke.transform(Collect.handling(Perturb.handling(forward)))
    _, unchanged = jax.jit(perturbed.apply)(
        params, jax.random.key(8), (x, zeros)
    )
    for a, b in zip(told, unchanged):
      np.testing.assert_allclose(a.value, b.value, rtol=1e-5, atol=1e-6)


class SaliencyTest(parameterized.TestCase):

  def test_perturbation_gradients_equal_grads_of_the_hand_threaded_model(self):
    params = _params()
    model = hke.transform(
        Perturb.handling(transformer, tag="residual"), apply_rng=False
    )
    zeros = H.perturbation_zeros(model.apply)(params, (CLEAN, None))
    self.assertEqual(
        sorted(zeros), [f"block_{i}/residual" for i in range(BLOCKS)]
    )

    def loss(perturbations):
      logits = model.apply(params, (CLEAN, perturbations))
      return jax.nn.log_softmax(logits)[0, -1, 5]

    def threaded_loss(deltas):
      logits = _threaded(params, CLEAN, lambda i, x: x + deltas[i])
      return jax.nn.log_softmax(logits)[0, -1, 5]

    grads = jax.jit(jax.grad(loss))(zeros)
    expected = jax.grad(threaded_loss)(
        [zeros[f"block_{i}/residual"] for i in range(BLOCKS)]
    )
    for i in range(BLOCKS):
      np.testing.assert_allclose(
          grads[f"block_{i}/residual"], expected[i], rtol=1e-5, atol=1e-7
      )
    self.assertGreater(float(jnp.abs(expected[0]).sum()), 0.0)
    np.testing.assert_allclose(loss(zeros), loss(None), rtol=1e-5, atol=1e-6)

  def test_attribution_over_a_dataset_calls_perturbation_zeros_per_example(
      self,
  ):
    # One call per example with the same shapes: JAX's trace cache must not
    # make the second call find no sites.
    params = _params()
    model = hke.transform(
        Perturb.handling(transformer, tag="residual"), apply_rng=False
    )
    zeros_fn = H.perturbation_zeros(model.apply)
    saliency = []
    for tokens in (CLEAN, CORRUPT, CLEAN):
      zeros = zeros_fn(params, (tokens, None))
      self.assertEqual(
          sorted(zeros), [f"block_{i}/residual" for i in range(BLOCKS)]
      )
      grads = jax.grad(
          lambda p, t=tokens: jnp.sum(model.apply(params, (t, p))[0, -1])
      )(zeros)
      saliency.append(float(jnp.abs(grads["block_0/residual"]).sum()))
    self.assertEqual(saliency[0], saliency[2])
    self.assertNotEqual(saliency[0], saliency[1])

  def test_perturbation_zeros_of_a_jitted_apply_says_to_pass_it_unjitted(self):
    model = hke.transform(
        Perturb.handling(transformer, tag="residual"), apply_rng=False
    )
    jitted = jax.jit(model.apply)
    jitted(_params(), (CLEAN, None))  # Its trace is now in JAX's cache.
    with self.assertRaisesRegex(
        ValueError,
        r"It is jax\.jit-compiled.*pass the function before jax\.jit "
        r"\(model\.apply, not jax\.jit\(model\.apply\)\)",
    ):
      H.perturbation_zeros(jitted)(_params(), (CLEAN, None))
    self.assertEqual(
        len(H.perturbation_zeros(model.apply)(_params(), (CLEAN, None))),
        BLOCKS,
    )

  def test_stacked_perturbations_in_layer_stack_equal_per_layer_grads(self):
    params = hke.transform(_stacked_model).init(jax.random.key(0), CLEAN)
    model = hke.transform(Perturb.handling(_stacked_model), apply_rng=False)
    zeros = H.perturbation_zeros(model.init)(jax.random.key(0), (CLEAN, None))
    self.assertEqual(
        {k: v.shape for k, v in zeros.items()},
        {"layers/block/residual": (BLOCKS,) + CLEAN.shape + (DIM,)},
    )

    def loss(p):
      return jnp.sum(jnp.sin(model.apply(params, (CLEAN, p))))

    def looped(deltas):
      return jnp.sum(
          jnp.sin(_per_layer_loop(params, CLEAN, lambda i, x: x + deltas[i]))
      )

    grads = jax.jit(jax.grad(loss))(zeros)["layers/block/residual"]
    expected = jax.grad(looped)(zeros["layers/block/residual"])
    np.testing.assert_allclose(grads, expected, rtol=1e-4, atol=1e-6)

  def test_perturbations_inside_hk_vmap_give_per_member_grads(self):
    def model(x):
      probe = hke.TellIntermediate("m")
      return jnp.sum(hk.vmap(lambda r: probe(r) ** 3, split_rng=False)(x))

    f = hke.transform(Perturb.handling(model), apply_rng=False)
    x = jnp.arange(6.0).reshape(3, 2)
    zeros = H.perturbation_zeros(f.apply)({}, (x, None))
    grads = jax.grad(lambda p: f.apply({}, (x, p)))(zeros)
    np.testing.assert_allclose(
        grads["tell_intermediate/intermediate"], 3 * x**2
    )


class ErrorTest(parameterized.TestCase):

  def _run(self, forward, arg=CLEAN, params=None):
    params = _params() if params is None else params
    return hke.transform(forward, apply_rng=False).apply(params, arg)

  def test_unknown_selector_names_the_closest_paths(self):
    with self.assertRaisesRegex(
        ValueError,
        r"'block_1/residul' matched no side output.*closest "
        r"paths: \['block_1/residual'",
    ):
      self._run(Patch.handling(transformer, {"block_1/residul": jnp.zeros}))

  def test_unknown_tag_names_the_tags_seen(self):
    with self.assertRaisesRegex(
        ValueError, r"'resid' matched no.*" r"tags: \[\"'residual'\"\]"
    ):
      self._run(Patch.handling(transformer, {"resid": jnp.zeros}))

  def test_not_strict_ignores_selectors_that_match_nothing(self):
    out = self._run(
        Patch.handling(transformer, {"nothing/here": 0.0}, strict=False)
    )
    np.testing.assert_allclose(
        out, self._run(transformer), rtol=1e-5, atol=1e-6
    )

  def test_wrong_shape_names_the_site_and_the_shapes(self):
    with self.assertRaisesRegex(
        ValueError,
        r"'block_0/residual'.*shape \[3\], but the value told "
        r"there has shape \[1, 5, 8\]",
    ):
      self._run(Patch.handling(transformer, {"block_0/residual": jnp.ones(3)}))

  def test_wrong_stacked_length_names_the_loop(self):
    params = hke.transform(_stacked_model).init(jax.random.key(0), CLEAN)
    with self.assertRaisesRegex(
        ValueError, r"shape \[2, 1, 5, 8\].*\[3, 1, 5, 8\].*" r"hk.layer_stack"
    ):
      self._run(
          Patch.handling(
              _stacked_model,
              {"layers/block/residual": jnp.zeros([2, 1, 5, DIM])},
          ),
          params=params,
      )

  def test_wrong_dtype_names_the_site(self):
    with self.assertRaisesRegex(
        ValueError, r"'block_0/residual'.*dtype int32.*float32"
    ):
      self._run(
          Patch.handling(
              transformer,
              {"block_0/residual": jnp.zeros([1, 5, DIM], jnp.int32)},
          )
      )

  def test_function_patch_changing_the_shape_is_an_error(self):
    with self.assertRaisesRegex(
        ValueError, r"patch function returned float32\[1, 5\]"
    ):
      self._run(
          Patch.handling(transformer, {"block_0/residual": lambda r: r.sum(-1)})
      )

  def test_function_patch_returning_no_array_is_named(self):
    with self.assertRaisesRegex(
        TypeError,
        r"Patch 'block_0/residual' .* was told 'x' of type str, which is not "
        r"an array\. Tell PyTrees of arrays",
    ):
      self._run(
          Patch.handling(transformer, {"block_0/residual": lambda r: "x"})
      )

  def test_two_selectors_for_one_site_are_an_error(self):
    with self.assertRaisesRegex(ValueError, r"matched by 2 patch selectors"):
      self._run(
          Patch.handling(
              transformer,
              {"block_0/residual": jnp.zeros_like, "residual": jnp.ones_like},
          )
      )

  def test_predicate_that_raises_is_named(self):
    with self.assertRaisesRegex(TypeError, r"patch selector .*raised"):
      self._run(Patch.handling(transformer, {lambda path, tag: tag + 1: 0.0}))

  def test_patches_must_be_a_mapping(self):
    with self.assertRaisesRegex(TypeError, "mapping from site selectors"):
      Patch.handling(transformer, [("block_0/residual", 0.0)])

  def test_a_collector_inside_the_patch_hides_its_sites(self):
    with self.assertRaisesRegex(
        ValueError, "put intervention handlers innermost"
    ):
      self._run(
          Patch.handling(
              Collect.handling(transformer), {"residual": jnp.zeros_like}
          )
      )

  def test_missing_and_unused_perturbations_are_errors(self):
    f = hke.transform(Perturb.handling(transformer), apply_rng=False)
    params = _params()
    zeros = H.perturbation_zeros(f.apply)(params, (CLEAN, None))
    partial = dict(zeros)
    del partial["block_2/residual"]
    with self.assertRaisesRegex(
        ValueError, r"'block_2/residual'.*has no " "entry.*perturbation_zeros"
    ):
      f.apply(params, (CLEAN, partial))
    with self.assertRaisesRegex(ValueError, r"'block_9/residual' matched no"):
      f.apply(params, (CLEAN, {**zeros, "block_9/residual": 0.0}))
    with self.assertRaisesRegex(TypeError, r"h\(\(arg, perturbations\)\)"):
      f.apply(params, CLEAN)

  def test_perturbing_a_module_told_twice_is_an_error(self):
    def twice(x):
      probe = hke.TellIntermediate("t")
      return probe(probe(x) * 2)

    f = hke.transform(Perturb.handling(twice), apply_rng=False)
    with self.assertRaisesRegex(ValueError, "told more than once"):
      H.perturbation_zeros(f.apply)({}, (jnp.ones(2), None))

  def test_stacked_perturbation_in_a_loop_of_traced_length_is_an_error(self):
    def model(n):
      probe = hke.TellIntermediate("t")
      return hk.fori_loop(0, n, lambda i, c: probe(c + 1.0), jnp.zeros(2))

    f = hke.transform(
        Patch.handling(model, {"t": jnp.zeros([3, 2])}), apply_rng=False
    )
    with self.assertRaisesRegex(ValueError, "hk.fori_loop.*not known"):
      jax.jit(f.apply)({}, 3)
    patched = hke.transform(
        Patch.handling(model, {"t": jnp.full([2], 5.0)}), apply_rng=False
    )
    np.testing.assert_array_equal(jax.jit(patched.apply)({}, 3), [5.0, 5.0])

  def test_perturbing_inside_a_while_loop_suggests_a_static_fori_loop(self):
    def model(x):
      probe = hke.TellIntermediate("t")
      return hk.while_loop(lambda c: c[0] < 3.0, lambda c: probe(c + 1.0), x)

    f = hke.transform(Perturb.handling(model), apply_rng=False)
    with self.assertRaisesRegex(
        ValueError,
        r"'tell_intermediate/intermediate' \(tag 't'\) is told inside "
        r"hk\.while_loop, whose number of iterations is not known until it "
        r"runs.*Loop with hk\.fori_loop with static \(Python int\) bounds, "
        r"or hk\.scan",
    ):
      H.perturbation_zeros(f.apply)({}, (jnp.zeros(2), None))

    def fori(x):
      probe = hke.TellIntermediate("t")
      return hk.fori_loop(0, 3, lambda i, c: probe(c + 1.0), x)

    g = hke.transform(Perturb.handling(fori), apply_rng=False)
    zeros = H.perturbation_zeros(g.apply)({}, (jnp.zeros(2), None))
    self.assertEqual(zeros["tell_intermediate/intermediate"].shape, (3, 2))


if __name__ == "__main__":
  absltest.main()
