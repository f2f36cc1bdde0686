"""Tests of hke.transform / transform_with_state (rules S3 and S8)."""

from __future__ import annotations

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

_MASK = jnp.array([True, False, True, True])


def _effectful(x):
  """Linear, attention mask (side input) and dropout (random effect)."""
  x = hk.Linear(4, name="linear")(x)
  x = hke.ApplyAttentionMask("mask", masked_out_value=0.0)(x)
  return hke.Dropout(0.5)(x)


def _hand_threaded(x):
  """The same model written with plain Haiku: mask and key passed by hand."""
  x = hk.Linear(4, name="linear")(x)
  x = jnp.where(_MASK, x, 0.0)
  keep = jax.random.bernoulli(hk.next_rng_key(), 0.5, x.shape)
  return jnp.where(keep, x / 0.5, jnp.zeros_like(x))


def _handled_model():
  return hke.transform(hke.handlers.WithHaikuRandom.handling(
      hke.handlers.WithConstantSideInputs.handling(_effectful,
                                                   {"mask": _MASK})))


def _plain(x):
  return jax.nn.relu(hk.nets.MLP([5, 3], name="mlp")(x)).sum()


_RANDOM_HANDLERS = (
    dict(testcase_name="haiku_random",
         handled=lambda body: hke.handlers.WithHaikuRandom.handling(body),
         arg=lambda x: x),
    dict(testcase_name="key_from_arg",
         handled=lambda body: hke.handlers.WithRandomKeyFromArg.handling(body),
         arg=lambda x: (x, jax.random.key(3))),
    dict(testcase_name="frozen",
         handled=lambda body: hke.handlers.WithFrozenRandomState.handling(
             body, jax.random.key(3)),
         arg=lambda x: x),
)


# These tests compare two runs fed the same key value; each run gets its own
# copy (`rng()`), as JAX's key-reuse checker marks a key once it is used.


class PurityTest(parameterized.TestCase):

  @parameterized.named_parameters(*_RANDOM_HANDLERS)
  def test_jit_equals_no_jit_bit_for_bit(self, handled, arg):
    f = hke.transform(handled(hke.handlers.WithConstantSideInputs.handling(
        _effectful, {"mask": _MASK})))
    x = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
    rng = functools.partial(jax.random.key, 1)
    params = f.init(rng(), arg(x))
    eager = f.apply(params, rng(), arg(x))
    jitted = jax.jit(f.apply)(params, rng(), arg(x))
    np.testing.assert_array_equal(eager, jitted)
    jitted_params = jax.jit(f.init)(rng(), arg(x))
    chex.assert_trees_all_equal(params, jitted_params)

  def test_effectful_model_equals_the_hand_threaded_one(self):
    x = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
    rng = functools.partial(jax.random.key, 2)
    params = _handled_model().init(rng(), x)
    plain = hk.transform(_hand_threaded)
    chex.assert_trees_all_equal(params, plain.init(rng(), x))
    np.testing.assert_array_equal(_handled_model().apply(params, rng(), x),
                                  plain.apply(params, rng(), x))

  def test_grad_through_dropout_and_mask(self):
    f, plain = _handled_model(), hk.transform(_hand_threaded)
    x = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
    rng = functools.partial(jax.random.key, 2)
    params = f.init(rng(), x)

    def loss(apply, p):
      return jnp.sum(apply(p, rng(), x) ** 2)
    grads = jax.grad(loss, argnums=1)(f.apply, params)
    expected = jax.grad(loss, argnums=1)(plain.apply, params)
    chex.assert_trees_all_close(grads, expected)
    # Masked-out column 1 gets no gradient; the others do.
    w_grad = grads["linear"]["w"]
    np.testing.assert_array_equal(w_grad[:, 1], 0.0)
    self.assertGreater(float(jnp.abs(w_grad).sum()), 0.0)

  def test_no_python_state_survives_a_call(self):
    f = _handled_model()
    x = jnp.ones([2, 3])
    params = f.init(jax.random.key(0), x)
    jax.jit(f.apply)(params, jax.random.key(0), x)
    from hk_effects import binding  # pylint: disable=g-import-not-at-top
    self.assertEqual(binding.active_scopes(), ())
    self.assertIsNone(binding.current_effect_scope())


class OptInTest(absltest.TestCase):
  """S8: a model with no requests behaves exactly as under hk.transform."""

  def test_params_and_outputs_equal_hk_transform(self):
    x = jnp.linspace(-2.0, 2.0, 8).reshape(2, 4)
    rng = functools.partial(jax.random.key, 0)
    ours, theirs = hke.transform(_plain), hk.transform(_plain)
    params = ours.init(rng(), x)
    chex.assert_trees_all_equal(params, theirs.init(rng(), x))
    np.testing.assert_array_equal(ours.apply(params, rng(), x),
                                  theirs.apply(params, rng(), x))

  def test_with_state_equals_hk_transform_with_state(self):
    def forward(x):
      counter = hk.get_state("count", [], init=jnp.zeros)
      hk.set_state("count", counter + 1.0)
      return _plain(x)
    x = jnp.ones([2, 4])
    rng = functools.partial(jax.random.key, 0)
    ours = hke.transform_with_state(forward)
    theirs = hk.transform_with_state(forward)
    params, state = ours.init(rng(), x)
    chex.assert_trees_all_equal((params, state), theirs.init(rng(), x))
    chex.assert_trees_all_equal(ours.apply(params, state, rng(), x),
                                theirs.apply(params, state, rng(), x))

  def test_jaxpr_equals_hk_transform(self):
    x = jnp.ones([2, 4])
    params = hk.transform(_plain).init(jax.random.key(0), x)
    ours = jax.make_jaxpr(hke.transform(_plain).apply)(params, None, x)
    theirs = jax.make_jaxpr(hk.transform(_plain).apply)(params, None, x)
    self.assertEqual(str(ours), str(theirs))

  def test_unused_handlers_change_nothing(self):
    x = jnp.ones([2, 4])
    rng = functools.partial(jax.random.key, 0)
    handled = hke.transform(hke.handlers.WithHaikuRandom.handling(_plain))
    params = handled.init(rng(), x)
    chex.assert_trees_all_equal(params, hk.transform(_plain).init(rng(), x))
    np.testing.assert_array_equal(handled.apply(params, rng(), x),
                                  hk.transform(_plain).apply(params, rng(), x))

  def test_apply_rng_false_drops_the_rng_argument(self):
    f = hke.transform(_plain, apply_rng=False)
    x = jnp.ones([2, 4])
    params = f.init(jax.random.key(0), x)
    np.testing.assert_array_equal(
        f.apply(params, x), hk.transform(_plain).apply(params, None, x))


if __name__ == "__main__":
  absltest.main()
