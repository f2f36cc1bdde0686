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
"""hk_effects under the call patterns Haiku users write (issue 14).

Each test is a scenario a Haiku user writes: one module under several
handler nests, hk.multi_transform, ensembles from ``jax.vmap(f.init)``,
re-entrant applies, requests inside plain dataclasses. Every one of them
gave a silently wrong value or a spurious error before binding became
per call (docs/design.md, S2).
"""

from __future__ import annotations

import dataclasses

from absl.testing import absltest
from absl.testing import parameterized
import conftest  # pylint: disable=unused-import  # Key-reuse checker, alone.
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from test_utils import DrawKey

import hk_effects as hke

H = hke.handlers


class Noisy(hk.Module):
  """A Linear layer plus noise drawn from a random request."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.rng = hke.RandomRequest()

  def __call__(self, x):
    y = hk.Linear(3)(x)
    return y + jax.random.normal(self.rng.next_key(), y.shape)

  def noise(self, x):
    return jax.random.normal(self.rng.next_key(), x.shape)


class Tells(hk.Module):
  """Tells its input under tag "acts" and returns it doubled."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.out = hke.SideOutputRequest("acts")

  def __call__(self, x):
    self.out.tell(x)
    return 2 * x


def _key_data(key):
  return np.asarray(jax.random.key_data(key))


class BindingIsPerCallTest(parameterized.TestCase):
  """Item 1: the innermost running handler that claims a request serves it,
  on every call, whatever served it before."""

  def test_module_seen_by_haiku_random_then_frozen_is_frozen_there(self):
    frozen_key = jax.random.key(5)

    def forward(x):
      module = DrawKey(name="draw")
      first = module(x)  # Under WithHaikuRandom.
      frozen = H.WithFrozenRandomState.handling(module, frozen_key)(x)
      return first, frozen

    f = hke.transform(H.WithHaikuRandom.handling(forward))
    first_a, frozen_a = f.apply({}, jax.random.key(1), 0.0)
    first_b, frozen_b = f.apply({}, jax.random.key(2), 0.0)
    self.assertFalse(np.array_equal(first_a, first_b))
    np.testing.assert_array_equal(frozen_a, frozen_b)
    alone = hke.transform(
        H.WithFrozenRandomState.handling(
            lambda x: DrawKey(name="draw")(x), jax.random.clone(frozen_key)
        )
    )
    np.testing.assert_array_equal(frozen_a, alone.apply({}, None, 0.0))

  def test_second_method_under_a_nested_handler_is_served_by_it(self):
    def forward(x):
      module = Noisy()
      y = module(x)
      frozen = H.WithFrozenRandomState.handling(
          module.noise, jax.random.key(3)
      )(x)
      return y, frozen

    f = hke.transform(H.WithHaikuRandom.handling(forward))
    x = jnp.ones([2])
    params = f.init(jax.random.key(0), x)
    _, frozen_a = f.apply(params, jax.random.key(1), x)
    _, frozen_b = f.apply(params, jax.random.key(2), x)
    np.testing.assert_array_equal(frozen_a, frozen_b)

  def test_method_running_a_handler_inside_itself_rebinds(self):
    class FreezesItself(hk.Module):

      def __init__(self):
        super().__init__(name="self_freezing")
        self.rng = hke.RandomRequest()

      def __call__(self, x):
        outer = self.rng.next_key()
        inner = H.WithFrozenRandomState.handling(self.draw, jax.random.key(4))(
            x
        )
        return _key_rows(outer), inner

      def draw(self, x):
        del x
        return _key_rows(self.rng.next_key())

    f = hke.transform(H.WithHaikuRandom.handling(lambda x: FreezesItself()(x)))
    outer_a, inner_a = f.apply({}, jax.random.key(1), 0.0)
    outer_b, inner_b = f.apply({}, jax.random.key(2), 0.0)
    self.assertFalse(np.array_equal(outer_a, outer_b))
    np.testing.assert_array_equal(inner_a, inner_b)

  def test_nested_collector_gets_what_is_told_inside_it(self):
    def forward(x):
      module = Tells(name="tells")
      y = module(x)
      z, inner = H.CollectingSideOutputs.handling(module, tag="acts")(y)
      return z, inner

    f = hke.transform(H.CollectingSideOutputs.handling(forward, tag="acts"))
    (z, inner), outer = f.apply({}, None, jnp.ones([2]))
    np.testing.assert_array_equal(z, 4 * np.ones(2))
    self.assertEqual([v.path for v in inner], ["tells/out"])
    np.testing.assert_array_equal(inner[0].value, 2 * np.ones(2))
    # The outer collector sees only the call it served.
    self.assertEqual(len(outer), 1)
    np.testing.assert_array_equal(outer[0].value, np.ones(2))

  def test_sibling_handlers_around_one_module(self):
    frozen_key = jax.random.key(8)

    def forward(x):
      module = DrawKey(name="draw")
      random = H.WithHaikuRandom.handling(module)(x)
      frozen = H.WithFrozenRandomState.handling(module, frozen_key)(x)
      return random, frozen

    f = hke.transform(forward)
    random_a, frozen_a = f.apply({}, jax.random.key(1), 0.0)
    random_b, frozen_b = f.apply({}, jax.random.key(2), 0.0)
    self.assertFalse(np.array_equal(random_a, random_b))
    np.testing.assert_array_equal(frozen_a, frozen_b)

  def test_multi_transform_shares_a_module_across_handlers(self):
    def build():
      shared = Noisy(name="shared")

      def encode(x):
        return H.WithFrozenRandomState.handling(shared, jax.random.key(6))(x)

      def decode(x):
        return H.WithHaikuRandom.handling(shared.noise)(x)

      def init(x):
        return decode(encode(x))

      return init, (encode, decode)

    f = hk.multi_transform(build)
    x = jnp.ones([1, 2])
    params = f.init(jax.random.key(0), x)
    encode, decode = f.apply
    h_a = encode(params, jax.random.key(1), x)
    h_b = encode(params, jax.random.key(2), x)
    np.testing.assert_array_equal(h_a, h_b)  # Frozen noise.
    n_a = decode(params, jax.random.key(1), h_a)
    n_b = decode(params, jax.random.key(2), h_a)
    self.assertFalse(np.array_equal(n_a, n_b))  # Haiku's rng.


def _replicated(seed, n):
  """One key value per device."""
  data = jax.random.key_data(jax.random.key(seed))
  return jax.random.wrap_key_data(jnp.broadcast_to(data, (n, *data.shape)))


def _key_rows(key):
  return jax.random.key_data(key)


def _linear_model(x):
  return Noisy(name="noisy")(x)


_KEY_OWNING = (
    dict(
        testcase_name="frozen",
        handle=lambda body, seed: H.WithFrozenRandomState.handling(
            body, jax.random.key(seed)
        ),
        arg=lambda x, seed: x,
    ),
    dict(
        testcase_name="key_from_arg",
        handle=lambda body, seed: H.WithRandomKeyFromArg.handling(body),
        arg=lambda x, seed: (x, jax.random.key(seed)),
    ),
    dict(
        testcase_name="frozen_path_keys",
        handle=lambda body, seed: H.WithFrozenRandomState.handling(
            body, jax.random.key(seed), path_keys=True
        ),
        arg=lambda x, seed: x,
    ),
)


class ParamsIgnoreRandomHandlersTest(parameterized.TestCase):
  """Item 2: a random handler changes only the keys its requests draw."""

  @parameterized.named_parameters(*_KEY_OWNING)
  def test_params_depend_on_init_rng_not_on_the_handler_key(self, handle, arg):
    x = jnp.ones([1, 2])
    init = lambda seed, rng: hke.transform(handle(_linear_model, seed)).init(
        rng, arg(x, seed)
    )
    a = init(1, jax.random.key(0))
    b = init(2, jax.random.key(0))
    c = init(1, jax.random.key(1))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    self.assertFalse(
        np.array_equal(a["noisy/linear"]["w"], c["noisy/linear"]["w"])
    )

  @parameterized.named_parameters(*_KEY_OWNING)
  def test_params_equal_those_under_haiku_random(self, handle, arg):
    x = jnp.ones([1, 2])
    owned = hke.transform(handle(_linear_model, 3)).init(
        jax.random.key(0), arg(x, 3)
    )
    haiku = hke.transform(H.WithHaikuRandom.handling(_linear_model)).init(
        jax.random.key(0), x
    )
    if "path" not in str(handle):
      jax.tree.map(np.testing.assert_array_equal, owned, haiku)
    self.assertEqual(jax.tree.structure(owned), jax.tree.structure(haiku))

  @parameterized.named_parameters(*_KEY_OWNING)
  def test_vmapped_init_builds_distinct_ensemble_members(self, handle, arg):
    x = jnp.ones([1, 2])
    f = hke.transform(handle(_linear_model, 3))
    members = jax.vmap(lambda k: f.init(k, arg(x, 3)))(
        jax.random.split(jax.random.key(0), 4)
    )
    w = np.asarray(members["noisy/linear"]["w"])
    self.assertEqual(len({row.tobytes() for row in w}), 4)

  def test_stateful_key_handler_leaves_params_alone(self):
    x = jnp.ones([1, 2])
    init = lambda seed: hke.transform_with_state(
        H.handle_local_states(
            H.WithStatefulRandomKey.handling(
                _linear_model, jax.random.key(seed)
            )
        )
    ).init(jax.random.key(0), x)
    (pa, _), (pb, _) = init(1), init(2)
    jax.tree.map(np.testing.assert_array_equal, pa, pb)

  def test_init_without_rng_still_refuses_to_initialise_params(self):
    f = hke.transform(
        H.WithFrozenRandomState.handling(_linear_model, jax.random.key(0))
    )
    with self.assertRaisesRegex(ValueError, "non-None PRNGKey"):
      f.init(None, jnp.ones([1, 2]))

  def test_fold_in_axis_init_outside_pmap_gives_plain_params(self):
    x = jnp.ones([1, 2])
    folded = hke.transform(
        H.WithHaikuRandom.handling(_linear_model, fold_in_axis="i")
    ).init(jax.random.key(0), x)
    plain = hke.transform(H.WithHaikuRandom.handling(_linear_model)).init(
        jax.random.key(0), x
    )
    jax.tree.map(np.testing.assert_array_equal, folded, plain)

  def test_fold_in_axis_init_under_pmap_gives_one_param_set(self):
    f = hke.transform(
        H.WithHaikuRandom.handling(_linear_model, fold_in_axis="i")
    )
    n = jax.local_device_count()
    params = jax.pmap(f.init, axis_name="i")(
        _replicated(0, n), jnp.ones([n, 1, 2])
    )
    w = np.asarray(params["noisy/linear"]["w"])
    for device_w in w[1:]:
      np.testing.assert_array_equal(device_w, w[0])
    # ... while the noise drawn at apply differs per device.
    out = jax.pmap(f.apply, axis_name="i")(
        params, _replicated(1, n), jnp.ones([n, 1, 2])
    )
    self.assertEqual(len({np.asarray(o).tobytes() for o in out}), n)


class StatefulRandomKeyTest(parameterized.TestCase):
  """Item 3."""

  def test_one_handler_called_twice_hands_out_distinct_keys(self):
    def draw(x):
      return DrawKey(name="draw")(x)

    handler = H.WithStatefulRandomKey.handling(draw, jax.random.key(0))
    f = hke.transform_with_state(
        H.handle_local_states(lambda x: (handler(x), handler(x)))
    )
    params, state = f.init(None, 0.0)
    (a, b), state = f.apply(params, state, None, 0.0)
    (c, d), _ = f.apply(params, state, None, 0.0)
    rows = {np.asarray(k).tobytes() for k in (a, b, c, d)}
    self.assertLen(rows, 4)

  @parameterized.parameters("train-rng", "rng 0", "Stream.A", "0rng")
  def test_any_string_is_a_valid_handler_id(self, handler_id):
    handler = H.WithStatefulRandomKey.handling(
        lambda x: DrawKey(name="draw")(x),
        jax.random.key(0),
        handler_id=handler_id,
    )
    self.assertEqual(handler.handler_id, handler_id)
    f = hke.transform_with_state(H.handle_local_states(handler))
    params, state = f.init(None, 0.0)
    a, state = f.apply(params, state, None, 0.0)
    b, _ = f.apply(params, state, None, 0.0)
    self.assertFalse(np.array_equal(a, b))


class HandlerIdsTest(absltest.TestCase):
  """Item 4."""

  def test_two_lambdas_in_one_scope_get_distinct_ids(self):
    a = H.WithHaikuRandom.handling(lambda x: x)
    b = H.WithHaikuRandom.handling(lambda x: x)
    self.assertNotEqual(a.handler_id, b.handler_id)
    # Stable: the same callable gives the same id.
    fn = lambda x: x
    self.assertEqual(
        H.WithHaikuRandom.handling(fn).handler_id,
        H.WithHaikuRandom.handling(fn).handler_id,
    )

  def test_model_applied_inside_another_models_module(self):
    teacher = hke.transform(H.WithHaikuRandom.handling(_linear_model))
    x = jnp.ones([1, 2])
    teacher_params = teacher.init(jax.random.key(0), x)

    class Distil(hk.Module):

      def __call__(self, x):
        target = teacher.apply(teacher_params, hk.next_rng_key(), x)
        return Noisy(name="student")(x) - target

    student = hke.transform(H.WithHaikuRandom.handling(lambda x: Distil()(x)))
    params = student.init(jax.random.key(1), x)
    out = student.apply(params, jax.random.key(2), x)
    self.assertEqual(out.shape, (1, 3))
    self.assertTrue(np.all(np.isfinite(out)))

  def test_same_model_applied_inside_itself(self):
    # Teacher and student built by one function from one body: their
    # handlers have the same inferred id, and the student applies the
    # teacher inside its own forward.
    teacher_params = {}
    depth = []

    def body(x):
      y = Noisy(name="noisy")(x)
      if teacher_params and not depth:
        depth.append(1)
        try:
          y = y + make().apply(teacher_params, hk.next_rng_key(), x)
        finally:
          depth.pop()
      return y

    make = lambda: hke.transform(H.WithHaikuRandom.handling(body))
    x = jnp.ones([1, 2])
    teacher_params.update(make().init(jax.random.key(0), x))
    student = make()
    params = student.init(jax.random.key(1), x)
    out = student.apply(params, jax.random.key(2), x)
    self.assertEqual(out.shape, (1, 3))
    self.assertTrue(np.all(np.isfinite(out)))


@dataclasses.dataclass
class PlainConfig:
  """A plain dataclass (not a PyTree) holding a request."""

  scale: float
  rng: hke.RandomRequest


@dataclasses.dataclass(frozen=True)
class FrozenConfig:
  rng: hke.RandomRequest
  name: str = "frozen"


class TraversalTest(absltest.TestCase):
  """Item 5: requests are found wherever the README says."""

  def test_request_inside_a_plain_dataclass(self):
    class Holder(hk.Module):

      def __init__(self):
        super().__init__(name="holder")
        self.config = PlainConfig(2.0, hke.RandomRequest())
        self.frozen = FrozenConfig(hke.RandomRequest())

      def __call__(self):
        a = self.config.rng.next_key()
        b = self.frozen.rng.next_key()
        return jnp.stack([jax.random.key_data(a), jax.random.key_data(b)])

    f = hke.transform(H.WithHaikuRandom.handling(lambda x: Holder()()))
    rows = np.asarray(f.apply({}, jax.random.key(0), 0.0))
    self.assertFalse(np.array_equal(rows[0], rows[1]))
    table = hke.bindings(H.WithHaikuRandom.handling(lambda x: Holder()()))(0.0)
    self.assertEqual(
        [r.attribute_path for r in table], ["config.rng", "frozen.rng"]
    )

  def test_plain_dataclass_is_restored_after_the_call(self):
    class Holder(hk.Module):

      def __init__(self):
        super().__init__(name="holder")
        self.config = PlainConfig(2.0, hke.RandomRequest())

      def __call__(self):
        return jax.random.key_data(self.config.rng.next_key())

    kept = []

    def forward(x):
      holder = Holder()
      holder()
      kept.append(holder.config)
      return x

    hke.transform(H.WithHaikuRandom.handling(forward)).apply(
        {}, jax.random.key(0), 0.0
    )
    self.assertIsInstance(kept[0], PlainConfig)
    self.assertIsInstance(kept[0].rng, hke.HandledRandomRef)
    self.assertEqual(kept[0].scale, 2.0)

  def test_module_with_an_unflattenable_dict_and_no_requests(self):
    class Lookup(hk.Module):

      def __init__(self):
        super().__init__(name="lookup")
        self.table = {0: 1.0, "one": 2.0, 2: [jnp.ones(1)]}

      def __call__(self, x):
        return x * self.table[0] + self.table["one"]

    for transform in (hk.transform, hke.transform):
      out = transform(lambda x: Lookup()(x)).apply({}, None, 3.0)
      self.assertEqual(float(out), 5.0)

  def test_request_inside_a_mixed_key_dict(self):
    class Lookup(hk.Module):

      def __init__(self):
        super().__init__(name="lookup")
        self.table = {0: hke.SideInputRequest("s"), "one": 2.0}

      def __call__(self, x):
        return x * self.table[0].ask() + self.table["one"]

    f = hke.transform(
        H.WithConstantSideInputs.handling(lambda x: Lookup()(x), {"s": 10.0})
    )
    self.assertEqual(float(f.apply({}, None, 3.0)), 32.0)


def _inner_model(x):
  """A sub-model whose module names clash with the outer model's."""
  return Tells(name="tells")(hk.Linear(2, name="linear")(x))


class LiftedSubModelTest(parameterized.TestCase):
  """Item 6: side outputs told in a lifted sub-model keep their origin."""

  def _collect(self, forward, x, mode_tag="acts"):
    f = hke.transform(H.CollectingSideOutputs.handling(forward, tag=mode_tag))
    params = f.init(jax.random.key(0), x)
    out, told = f.apply(params, jax.random.key(1), x)
    return params, out, told

  @parameterized.parameters("lift", "experimental_lift")
  def test_lifted_model_tells_under_the_lifting_modules_name(self, kind):
    inner = hk.transform(_inner_model)
    lift = hk.lift if kind == "lift" else hk.experimental.lift

    def forward(x):
      params = lift(inner.init, name="inner")(hk.next_rng_key(), x)
      y = inner.apply(params, None, x)
      return Tells(name="tells")(y)

    x = jnp.ones([1, 2])
    params, _, told = self._collect(forward, x)
    self.assertEqual([v.path for v in told], ["inner/tells/out", "tells/out"])
    inner_out = inner.apply(
        {
            k[len("inner/") :]: v
            for k, v in params.items()
            if k.startswith("inner/")
        },
        None,
        x,
    )
    np.testing.assert_allclose(told[0].value, inner_out / 2)
    np.testing.assert_allclose(told[1].value, inner_out)

  def test_last_mode_keeps_both_the_inner_and_the_outer_value(self):
    class TellsLast(hk.Module):

      def __init__(self, name=None):
        super().__init__(name=name)
        self.out = hke.SideOutputRequest("acts", mode="last")

      def __call__(self, x):
        self.out.tell(x)
        return x + 1

    inner = hk.transform(lambda x: TellsLast(name="probe")(x))

    def forward(x):
      params = hk.lift(inner.init, name="sub")(hk.next_rng_key(), x)
      return TellsLast(name="probe")(inner.apply(params, None, x))

    _, _, told = self._collect(forward, jnp.zeros([2]))
    self.assertEqual(
        [(v.path, float(v.value[0])) for v in told],
        [("sub/probe/out", 0.0), ("probe/out", 1.0)],
    )

  def test_lift_with_state_prefixes_told_values(self):
    inner = hk.transform_with_state(_inner_model)

    def forward(x):
      lifted, updater = hk.experimental.lift_with_state(
          inner.init, name="stateful"
      )
      params, state = lifted(hk.next_rng_key(), x)
      y, state = inner.apply(params, state, None, x)
      updater.update(state)
      return y

    f = hke.transform_with_state(H.CollectingSideOutputs.handling(forward))
    x = jnp.ones([1, 2])
    params, state = f.init(jax.random.key(0), x)
    (_, told), _ = f.apply(params, state, jax.random.key(1), x)
    self.assertEqual([v.path for v in told], ["stateful/tells/out"])

  def test_two_lifts_of_one_model_stay_apart(self):
    inner = hk.transform(_inner_model)

    def forward(x):
      pa = hk.lift(inner.init, name="a")(hk.next_rng_key(), x)
      pb = hk.lift(inner.init, name="b")(hk.next_rng_key(), x)
      return inner.apply(pa, None, x) + inner.apply(pb, None, x)

    _, _, told = self._collect(forward, jnp.ones([1, 2]))
    self.assertEqual([v.path for v in told], ["a/tells/out", "b/tells/out"])
    self.assertFalse(np.array_equal(told[0].value, told[1].value))

  def test_hk_vmapped_lifted_ensemble_tells_batched_values(self):
    inner = hk.transform(_inner_model)
    members = 3

    def forward(x):
      init = jax.vmap(inner.init, in_axes=(0, None))
      keys = hk.next_rng_keys(members) if hk.running_init() else None
      params = hk.lift(init, name="ensemble")(keys, x)
      return hk.vmap(lambda p: inner.apply(p, None, x), split_rng=False)(params)

    x = jnp.ones([1, 2])
    _, out, told = self._collect(forward, x)
    self.assertEqual([v.path for v in told], ["ensemble/tells/out"])
    self.assertEqual(told[0].value.shape, (members, 1, 2))
    np.testing.assert_allclose(told[0].value * 2, out)
    self.assertLen({np.asarray(m).tobytes() for m in told[0].value}, members)

  def test_model_applied_inside_a_module_tells_under_that_module(self):
    inner = hk.transform(_inner_model)
    inner_params = inner.init(jax.random.key(0), jnp.ones([1, 2]))

    class Wrapper(hk.Module):

      def __call__(self, x):
        return inner.apply(inner_params, None, x)

    def forward(x):
      return Tells(name="tells")(Wrapper(name="wrapper")(x))

    _, _, told = self._collect(forward, jnp.ones([1, 2]))
    self.assertEqual([v.path for v in told], ["wrapper/tells/out", "tells/out"])


class BindingsTableTest(absltest.TestCase):
  """Item 8."""

  def test_table_iterates_and_has_a_length(self):
    def forward(x):
      return Noisy(name="a")(x) + Noisy(name="b")(x)

    table = hke.bindings(
        H.WithHaikuRandom.handling(forward, handler_id="rand")
    )(jnp.ones([1, 2]))
    self.assertLen(table, 2)
    self.assertEqual(
        [(r.module_path, r.attribute_path, r.handler_id) for r in table],
        [("a", "rng", "rand"), ("b", "rng", "rand")],
    )
    self.assertEqual(table[1].module_path, "b")

  def test_a_module_under_two_handlers_has_a_row_for_each(self):
    def forward(x):
      module = DrawKey(name="draw")
      H.WithHaikuRandom.handling(module, handler_id="first")(x)
      return H.WithFrozenRandomState.handling(
          module, jax.random.key(0), handler_id="second"
      )(x)

    table = hke.bindings(forward)(0.0)
    self.assertEqual([r.handler_id for r in table], ["first", "second"])


class ErrorsTest(absltest.TestCase):
  """Item 9."""

  def test_request_used_in_the_forward_body_names_module_and_attribute(self):
    def forward(x):
      module = DrawKey(name="draw")
      module(x)
      return module.rng.next_key()

    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"module 'draw', attribute 'rng'.*outside a method of its module, "
        r"while its handler 'rand' runs.*only inside the methods",
    ):
      hke.transform(
          H.WithHaikuRandom.handling(forward, handler_id="rand")
      ).apply({}, jax.random.key(0), 0.0)

  def test_request_never_bound_used_in_the_forward_body(self):
    def forward(x):
      del x
      return DrawKey(name="draw").rng.next_key()

    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        "outside a module method, while a handler that claims it runs",
    ):
      hke.transform(H.WithHaikuRandom.handling(forward)).apply(
          {}, jax.random.key(0), 0.0
      )


if __name__ == "__main__":
  absltest.main()
