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
"""Tests of hke.transform / transform_with_state (rules S3 and S8)."""

from __future__ import annotations

import functools
from unittest import mock

from absl.testing import absltest
from absl.testing import parameterized
import chex
import conftest  # pylint: disable=unused-import  # Key-reuse rules, alone.
import haiku as hk
from haiku._src import base as hk_base
from haiku._src import transform as hk_transform
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
  return hke.transform(
      hke.handlers.WithHaikuRandom.handling(
          hke.handlers.WithConstantSideInputs.handling(
              _effectful, {"mask": _MASK}
          )
      )
  )


def _plain(x):
  return jax.nn.relu(hk.nets.MLP([5, 3], name="mlp")(x)).sum()


_RANDOM_HANDLERS = (
    dict(
        testcase_name="haiku_random",
        handled=lambda body: hke.handlers.WithHaikuRandom.handling(body),
        arg=lambda x: x,
    ),
    dict(
        testcase_name="key_from_arg",
        handled=lambda body: hke.handlers.WithRandomKeyFromArg.handling(body),
        arg=lambda x: (x, jax.random.key(3)),
    ),
    dict(
        testcase_name="frozen",
        handled=lambda body: hke.handlers.WithFrozenRandomState.handling(
            body, jax.random.key(3)
        ),
        arg=lambda x: x,
    ),
)


# These tests compare two runs fed the same key value; each run gets its own
# copy (`rng()`), as JAX's key-reuse checker marks a key once it is used.


class PurityTest(parameterized.TestCase):

  @parameterized.named_parameters(*_RANDOM_HANDLERS)
  def test_jit_equals_no_jit_bit_for_bit(self, handled, arg):
    f = hke.transform(
        handled(
            hke.handlers.WithConstantSideInputs.handling(
                _effectful, {"mask": _MASK}
            )
        )
    )
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
    np.testing.assert_array_equal(
        _handled_model().apply(params, rng(), x), plain.apply(params, rng(), x)
    )

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
    from hk_effects._src.core import binding  # pylint: disable=g-import-not-at-top

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
    np.testing.assert_array_equal(
        ours.apply(params, rng(), x), theirs.apply(params, rng(), x)
    )

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
    chex.assert_trees_all_equal(
        ours.apply(params, state, rng(), x),
        theirs.apply(params, state, rng(), x),
    )

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
    np.testing.assert_array_equal(
        handled.apply(params, rng(), x),
        hk.transform(_plain).apply(params, rng(), x),
    )

  def test_apply_rng_false_drops_the_rng_argument(self):
    f = hke.transform(_plain, apply_rng=False)
    x = jnp.ones([2, 4])
    params = f.init(jax.random.key(0), x)
    np.testing.assert_array_equal(
        f.apply(params, x), hk.transform(_plain).apply(params, None, x)
    )


def _summary_model():
  """A handled model with two named user modules (and an effect)."""

  def forward(x):
    x = hk.Linear(4, name="encoder")(x)
    return hke.Dropout(0.5, name="noise")(x)

  return hke.handlers.WithHaikuRandom.handling(forward)


class _Noisy(hk.Module):
  """Linear plus Gaussian noise; the multi_transform test shares one."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.rng = hke.RandomRequest()

  def __call__(self, x):
    x = hk.Linear(3, name="proj")(x)
    return x + jax.random.normal(self.rng.next_key(), x.shape)


class HaikuContractsTest(parameterized.TestCase):
  """What hke.transform* returns is treated as Haiku's own objects are."""

  @parameterized.named_parameters(
      ("transform", lambda f: hke.transform(f)),
      ("transform_no_apply_rng", lambda f: hke.transform(f, apply_rng=False)),
      ("transform_with_state", hke.transform_with_state),
      (
          "hk_without_apply_rng",
          lambda f: hk.without_apply_rng(hke.transform(f)),
      ),
      (
          "hk_without_apply_rng_with_state",
          lambda f: hk.without_apply_rng(hke.transform_with_state(f)),
      ),
  )
  def test_get_original_fn_is_the_users_function(self, make):
    model = _summary_model()
    f = make(model)
    self.assertIs(hk_transform.get_original_fn(f), model)
    self.assertIs(hk_transform.get_original_fn(f.init), model)
    self.assertIs(hk_transform.get_original_fn(f.apply), model)
    # As for Haiku's objects, a jitted apply still links back.
    self.assertIs(hk_transform.get_original_fn(jax.jit(f.apply)), model)

  @parameterized.named_parameters(
      ("transform", hke.transform, hk.transform),
      ("with_state", hke.transform_with_state, hk.transform_with_state),
  )
  def test_jitted_function_is_refused_as_haiku_does(self, ours, theirs):
    def forward(x):
      return hk.Linear(2)(x)

    with self.assertRaises(ValueError) as haiku_error:
      theirs(jax.jit(forward))
    with self.assertRaises(ValueError) as our_error:
      ours(jax.jit(forward))
    self.assertEqual(str(our_error.exception), str(haiku_error.exception))
    self.assertIn("jax.jit(hk.transform(f).apply)", str(our_error.exception))

  def test_pmapped_function_is_treated_as_haiku_treats_it(self):
    # Haiku's check looks at the function's type; since JAX 0.9 `jax.pmap`
    # returns a plain function, which Haiku accepts. hke does what Haiku does.
    def outcome(transform):
      try:
        transform(jax.pmap(lambda x: hk.Linear(2)(x)))
      except ValueError as e:
        return str(e)
      return "accepted"

    self.assertEqual(outcome(hke.transform), outcome(hk.transform))
    self.assertEqual(
        outcome(hke.transform_with_state), outcome(hk.transform_with_state)
    )

  def test_running_init_is_true_in_init_only(self):
    seen = []

    class Probe(hk.Module):

      def __init__(self):
        super().__init__(name="probe")
        self.rng = hke.RandomRequest()

      def __call__(self, x):
        seen.append(hk.running_init())
        return x + jax.random.uniform(self.rng.next_key(), x.shape)

    f = hke.transform(
        hke.handlers.WithHaikuRandom.handling(lambda x: Probe()(x))
    )
    x = jnp.zeros([2])
    params = f.init(jax.random.key(0), x)
    f.apply(params, jax.random.key(1), x)
    jax.jit(f.apply)(params, jax.random.key(2), x)
    self.assertEqual(seen, [True, False, False])

  def test_check_jax_usage_refuses_raw_jax_and_accepts_haiku_wrappers(self):
    with hk.config.context(check_jax_usage=True):
      raw = hke.transform(lambda x: jax.vmap(lambda y: hk.Linear(2)(y))(x))
      with self.assertRaisesRegex(hk_base.JaxUsageError, "hk.vmap"):
        raw.init(jax.random.key(0), jnp.ones([3, 5]))

      def forward(x):
        rows = hk.vmap(lambda y: hke.Dropout(0.5)(y), split_rng=True)(x)
        steps = hk.scan(lambda c, y: (c, hke.Dropout(0.5)(y)), 0.0, x)[1]
        return rows, steps

      f = hke.transform(hke.handlers.WithHaikuRandom.handling(forward))
      x = jnp.ones([4, 16])
      params = f.init(jax.random.key(0), x)
      rows, steps = f.apply(params, jax.random.key(1), x)
    for out in (rows, steps):
      self.assertEqual(set(np.unique(np.asarray(out))), {0.0, 2.0})
      # Each member / step draws its own key.
      self.assertLen({tuple(r) for r in np.asarray(out)}, 4)

  def test_without_apply_rng_drops_the_rng_and_keeps_values(self):
    forward = hke.handlers.WithHaikuRandom.handling(_plain)
    x = jnp.linspace(-1.0, 1.0, 8).reshape(2, 4)
    ours = hk.without_apply_rng(hke.transform(forward))
    theirs = hk.transform(forward)
    params = ours.init(jax.random.key(0), x)
    chex.assert_trees_all_equal(params, theirs.init(jax.random.key(0), x))
    np.testing.assert_array_equal(
        ours.apply(params, x), theirs.apply(params, None, x)
    )
    stateful = hk.without_apply_rng(hke.transform_with_state(forward))
    out, state = stateful.apply(params, {}, x)
    np.testing.assert_array_equal(out, theirs.apply(params, None, x))
    self.assertEqual(state, {})

  def test_haiku_transforms_replaced_by_hkes_do_not_recurse(self):
    # A program may install hke's transforms under Haiku's names (as
    # tools/haiku_suite.py does); hke's still call Haiku's originals.
    x = jnp.linspace(-1.0, 1.0, 8).reshape(2, 4)
    expected = hk.transform(_plain).init(jax.random.key(0), x)
    with (
        mock.patch.object(
            hk_transform, "transform_with_state", hke.transform_with_state
        ),
        mock.patch.object(hk, "transform", hke.transform),
        mock.patch.object(hk, "multi_transform", hke.multi_transform),
    ):
      for f in (
          hk.transform(_plain),
          hke.transform(_plain),
          hke.multi_transform(lambda: (_plain, ())),
      ):
        chex.assert_trees_all_equal(f.init(jax.random.key(0), x), expected)
      self.assertEqual(
          hk.without_apply_rng(hke.transform(_plain)).apply(expected, x),
          hk.without_apply_rng(hke.transform_with_state(_plain)).apply(
              expected, {}, x
          )[0],
      )

  def test_tabulate_lists_the_users_modules(self):
    model = _summary_model()
    x = jnp.ones([2, 3])
    table = hk.experimental.tabulate(hke.transform(model))(x)
    self.assertEqual(table, hk.experimental.tabulate(model)(x))
    self.assertIn("encoder (Linear)", table)
    self.assertIn("noise (Dropout)", table)
    self.assertIn("w: f32[3,4]", table)

  def test_eval_summary_records_the_users_module_calls(self):
    model = _summary_model()
    f = hke.transform_with_state(model)
    x = jnp.ones([2, 3])
    for summarised in (f, f.apply, jax.jit(f.apply)):
      calls = hk.experimental.eval_summary(summarised)(x)
      self.assertEqual(
          [
              (c.module_details.module.module_name, str(c.output_spec))
              for c in calls
          ],
          [("encoder", "f32[2,4]"), ("noise", "f32[2,4]")],
      )

  def _multi(self, multi):
    def build():
      shared = _Noisy(name="shared")

      def encode(x):
        return hke.handlers.WithFrozenRandomState.handling(
            shared, jax.random.key(6)
        )(x)

      def decode(x):
        return hke.handlers.WithHaikuRandom.handling(shared)(x)

      return (lambda x: (encode(x), decode(x))), (encode, decode)

    return multi(build)

  @parameterized.named_parameters(
      ("haiku", hk.multi_transform), ("hke", hke.multi_transform)
  )
  def test_multi_transform_with_handlers_inside(self, multi):
    f = self._multi(multi)
    x = jnp.ones([1, 2])
    params = f.init(jax.random.key(0), x)
    chex.assert_trees_all_equal(
        params, self._multi(hk.multi_transform).init(jax.random.key(0), x)
    )
    self.assertEqual(
        jax.tree.map(jnp.shape, params),
        {"shared/proj": {"b": (3,), "w": (2, 3)}},
    )
    encode, decode = f.apply
    h_a = encode(params, jax.random.key(1), x)
    h_b = encode(params, jax.random.key(2), x)
    np.testing.assert_array_equal(h_a, h_b)  # Frozen key: same noise.
    proj = x @ params["shared/proj"]["w"] + params["shared/proj"]["b"][None]
    self.assertFalse(np.array_equal(h_a, proj))  # Noise was added.
    n_a = decode(params, jax.random.key(1), x)
    n_b = decode(params, jax.random.key(2), x)
    self.assertFalse(np.array_equal(n_a, n_b))  # Haiku's rng: fresh noise.
    # hke.multi_transform computes what hk.multi_transform computes.
    _, (ref_encode, ref_decode) = self._multi(hk.multi_transform)
    np.testing.assert_array_equal(h_a, ref_encode(params, jax.random.key(1), x))
    np.testing.assert_array_equal(n_a, ref_decode(params, jax.random.key(1), x))

  def test_multi_transform_with_state_keeps_local_states_per_function(self):
    def build():
      counter = hke.InitialLocalStateRequest(
          lambda: jnp.zeros([], jnp.int32), "counters", name="n"
      )

      class Count(hk.Module):

        def __init__(self):
          super().__init__(name="count")
          self.n = counter

        def __call__(self, x):
          self.n.set(self.n.get() + 1)
          return x + self.n.get()

      count = Count()
      step = hke.handlers.handle_local_states(count)
      peek = hke.handlers.handle_local_states(lambda x: x)
      return step, (step, peek)

    f = hke.multi_transform_with_state(build)
    params, state = f.init(jax.random.key(0), jnp.zeros([]))
    self.assertEqual(state, {"~local_state/counters": {"n": 0}})
    step, peek = f.apply
    for expected in (1, 2):
      out, state = step(params, state, None, jnp.zeros([]))
      self.assertEqual(
          (out, state), (expected, {"~local_state/counters": {"n": expected}})
      )
    # The other function passes the entry it does not touch through.
    out, state = peek(params, state, None, jnp.zeros([]))
    self.assertEqual(state, {"~local_state/counters": {"n": 2}})

  def test_multi_transform_without_state_refuses_local_state_by_name(self):
    def build():
      def forward(x):
        return Counter()(x)

      handled = hke.handlers.handle_local_states(forward)
      return handled, (handled,)

    class Counter(hk.Module):

      def __init__(self):
        super().__init__(name="counter")
        self.n = hke.InitialLocalStateRequest(jnp.zeros, "c")

      def __call__(self, x):
        self.n.set(self.n.get() + 1)
        return x

    with self.assertRaisesRegex(ValueError, "hke.transform_with_state"):
      hke.multi_transform(build).init(jax.random.key(0), jnp.zeros([]))


if __name__ == "__main__":
  absltest.main()
