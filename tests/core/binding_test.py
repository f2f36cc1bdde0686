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
"""Tests of binding by traversal (_src/core/binding.py), rules S1, S2, S4."""

from __future__ import annotations

import collections
import dataclasses
import gc
from typing import Any
import weakref

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from test_utils import count_distinct_rows
from test_utils import DrawKey
from test_utils import key_rows

import hk_effects as hke
from hk_effects._src.core import binding


@hke.pytree_dataclass
class _Config:
  rng: Any
  scale: Any


class _HoldsNestedRequests(hk.Module):
  """Keeps requests inside dict, list, tuple and dataclass attributes."""

  def __init__(self):
    super().__init__(name="nested")
    self.masks = {
        "a": hke.SideInputRequest("a"),
        "b": hke.SideInputRequest("b"),
    }
    self.rngs = [hke.RandomRequest(), hke.RandomRequest()]
    self.pair = (hke.SideInputRequest("a"), 10.0)
    self.deep = {"x": [hke.SideInputRequest("b")]}
    self.config = _Config(rng=hke.RandomRequest(), scale=3.0)

  def __call__(self, x):
    keys = key_rows(*(
        jax.random.key_data(r.next_key())
        for r in (self.rngs[0], self.rngs[1], self.config.rng)
    ))
    values = (
        self.masks["a"].ask()
        + self.masks["b"].ask()
        + self.pair[0].ask() * self.pair[1]
        + self.deep["x"][0].ask() * self.config.scale
    )
    return x + values, keys


def _handle_nested(body):
  return hke.handlers.WithHaikuRandom.handling(
      hke.handlers.WithConstantSideInputs.handling(body, {"a": 1.0, "b": 2.0})
  )


class UnhandledErrorTest(absltest.TestCase):

  def test_names_module_path_attribute_and_request(self):
    f = hke.transform(lambda x: DrawKey(name="encoder")(x))
    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"Unhandled RandomEffect: module 'encoder', attribute 'rng' holds "
        r"RandomRequest\(\).*WithHaikuRandom\.handling\(forward\)",
    ):
      f.apply({}, jax.random.key(0), 0.0)

  def test_lists_other_unhandled_requests_met_so_far(self):
    class Holds(hk.Module):

      def __init__(self):
        super().__init__(name="holder")
        self.masks = {"pad": hke.SideInputRequest("pad")}

      def __call__(self, x):
        return x

    def forward(x):
      Holds()(x)
      return DrawKey(name="draw")(x)

    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"module 'draw', attribute 'rng'[\s\S]*Other unhandled requests met "
        r"so far:\n  - module 'holder', attribute \"masks\['pad'\]\": "
        r"SideInputRequest\(tag='pad'\)",
    ):
      hke.transform(forward).apply({}, None, 0.0)

  def test_request_claimed_by_no_handler_in_a_nest_is_unhandled(self):
    handled = hke.handlers.WithConstantSideInputs.handling(
        lambda x: DrawKey(name="draw")(x), {"s": 1.0}, keep_unused=True
    )
    with self.assertRaisesRegex(
        hke.UnhandledEffectError, "module 'draw', attribute 'rng'"
    ):
      hke.transform(handled).apply({}, None, 0.0)


class LifetimeTest(absltest.TestCase):

  def test_module_holds_a_ref_of_its_handler_after_the_call(self):
    modules = []

    def body(x):
      modules.append(DrawKey())
      return modules[-1](x)

    handler = hke.handlers.WithHaikuRandom.handling(body, handler_id="rand")
    hke.transform(handler).apply({}, jax.random.key(0), 0.0)
    self.assertEqual(
        modules[-1].rng, hke.HandledRandomRef(hke.RandomRequest(), "rand")
    )
    self.assertEqual(binding.active_scopes(), ())

  def test_ref_used_after_its_handler_returned_raises(self):
    modules = []

    def body(x):
      modules.append(DrawKey(name="late"))
      return modules[-1](x)

    handler = hke.handlers.WithHaikuRandom.handling(body, handler_id="rand")

    def forward(x):
      handler(x)
      return modules[-1](x)  # The handler has returned.

    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"module 'late', attribute 'rng'.*served by handler 'rand'.*not "
        r"running now.*inside the handler's body",
    ):
      hke.transform(forward).apply({}, jax.random.key(0), 0.0)

  def test_runtime_impl_used_after_its_handler_returned_raises(self):
    leaked = []

    class Leaks(hk.Module):

      def __init__(self):
        super().__init__(name="leaks")
        self.rng = hke.RandomRequest()

      def __call__(self, x):
        leaked.append(self.rng)
        return x

    handler = hke.handlers.WithHaikuRandom.handling(
        lambda x: Leaks()(x), handler_id="rand"
    )

    def forward(x):
      handler(x)
      return leaked[-1].next_key()

    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"module 'leaks', attribute 'rng' was used after its handler 'rand' "
        "returned",
    ):
      hke.transform(forward).apply({}, jax.random.key(0), 0.0)

  def test_side_input_impl_used_after_its_handler_returned_raises(self):
    leaked = []

    class Leaks(hk.Module):

      def __init__(self):
        super().__init__(name="leaks")
        self.mask = hke.SideInputRequest("m")

      def __call__(self, x):
        leaked.append(self.mask)
        return x * self.mask.ask()

    handler = hke.handlers.WithConstantSideInputs.handling(
        lambda x: Leaks()(x), {"m": 2.0}
    )
    hke.transform(handler).apply({}, None, 1.0)
    with self.assertRaisesRegex(hke.UnhandledEffectError, "do not store them"):
      leaked[-1].ask()


class HandlerIdTest(absltest.TestCase):

  def test_colliding_explicit_ids_in_a_nest_are_an_error(self):
    inner = hke.handlers.WithConstantSideInputs.handling(
        lambda x: x, {}, handler_id="consts"
    )
    outer = hke.handlers.WithHaikuRandom.handling(inner, handler_id="consts")
    with self.assertRaisesRegex(
        ValueError,
        r"Handler id 'consts' of WithConstantSideInputs.*collides"
        r".*distinct `handler_id=`",
    ):
      hke.transform(outer).apply({}, None, 1.0)

  def test_the_same_explicit_id_in_sequence_is_fine(self):
    first = hke.handlers.WithConstantSideInputs.handling(
        lambda x: x * AskScale()(), {"s": 2.0}, handler_id="consts"
    )
    second = hke.handlers.WithConstantSideInputs.handling(
        lambda x: x * AskScale()(), {"s": 3.0}, handler_id="consts"
    )
    out = hke.transform(lambda x: second(first(x))).apply({}, None, 1.0)
    self.assertEqual(float(out), 6.0)

  def test_non_string_handler_id_is_an_error(self):
    with self.assertRaisesRegex(TypeError, "handler_id must be a string.*7"):
      hke.handlers.WithHaikuRandom.handling(lambda x: x, handler_id=7)

  def test_non_callable_body_is_an_error(self):
    with self.assertRaisesRegex(
        TypeError, "WithHaikuRandom.handling expects a callable body.*got 3"
    ):
      hke.handlers.WithHaikuRandom.handling(3)


class AskScale(hk.Module):

  def __init__(self):
    super().__init__()
    self.s = hke.SideInputRequest("s")

  def __call__(self):
    return self.s.ask()


class TraversalTest(absltest.TestCase):

  def test_requests_in_containers_are_served(self):
    def body(x):
      return _HoldsNestedRequests()(x)

    out, keys = hke.transform(_handle_nested(body)).apply(
        {}, jax.random.key(0), jnp.zeros(1)
    )
    # a + b + a * 10 + b * 3 with a=1, b=2.
    np.testing.assert_array_equal(out, [1.0 + 2.0 + 10.0 + 6.0])
    self.assertEqual(count_distinct_rows(np.asarray(keys)), 3)

  def test_attribute_paths_name_the_place_in_the_container(self):
    table = hke.bindings(_handle_nested(lambda x: _HoldsNestedRequests()(x)))(
        jnp.zeros(1)
    )
    self.assertCountEqual(
        [r.attribute_path for r in table.rows],
        [
            "masks['a']",
            "masks['b']",
            "rngs[0]",
            "rngs[1]",
            "pair[0]",
            "deep['x'][0]",
            "config.rng",
        ],
    )
    self.assertTrue(all(r.module_path == "nested" for r in table.rows))

  def test_containers_hold_refs_again_after_the_call(self):
    modules = []

    def body(x):
      modules.append(_HoldsNestedRequests())
      return modules[-1](x)

    hke.transform(_handle_nested(body)).apply(
        {}, jax.random.key(0), jnp.zeros(1)
    )
    module = modules[-1]
    self.assertIsInstance(module.masks["a"], hke.HandledSideInputRef)
    self.assertIsInstance(module.config.rng, hke.HandledRandomRef)
    self.assertEqual(module.pair[1], 10.0)

  def test_container_subtypes_keep_their_type_and_name_their_paths(self):
    pair = collections.namedtuple("pair", ["mask", "scale"])

    class Tagged(list):
      pass

    @dataclasses.dataclass(frozen=True)
    class Frozen:
      mask: Any
      scale: float = 5.0

    modules, seen = [], {}

    class Holds(hk.Module):

      def __init__(self):
        super().__init__(name="holds")
        self.named = pair(hke.SideInputRequest("a"), 10.0)
        self.ordered = collections.OrderedDict(z=hke.SideInputRequest("b"))
        self.default = collections.defaultdict(float)
        self.default["k"] = hke.SideInputRequest("a")
        self.tagged = Tagged([1.0, hke.SideInputRequest("b")])
        self.frozen = Frozen(hke.SideInputRequest("a"))

      def __call__(self, x):
        seen.update(
            named=type(self.named),
            ordered=type(self.ordered),
            default=type(self.default),
            tagged=type(self.tagged),
            frozen=type(self.frozen),
        )
        return x + (
            self.named.mask.ask() * self.named.scale
            + self.ordered["z"].ask()
            + self.default["k"].ask()
            + self.tagged[1].ask() * self.tagged[0]
            + self.frozen.mask.ask() * self.frozen.scale
        )

    def body(x):
      modules.append(Holds())
      return modules[-1](x)

    handled = hke.handlers.WithConstantSideInputs.handling(
        body, {"a": 1.0, "b": 2.0}
    )
    out = hke.transform(handled).apply({}, None, 0.0)
    # a * 10 + b + a + b * 1 + a * 5 with a=1, b=2.
    self.assertEqual(float(out), 10.0 + 2.0 + 1.0 + 2.0 + 5.0)
    # During the call and after it, each container keeps its own type.
    self.assertEqual(
        seen,
        dict(
            named=pair,
            ordered=collections.OrderedDict,
            default=collections.defaultdict,
            tagged=Tagged,
            frozen=Frozen,
        ),
    )
    module = modules[-1]
    self.assertIsInstance(module.named, pair)
    self.assertEqual(module.named.scale, 10.0)
    self.assertIsInstance(module.named.mask, hke.HandledSideInputRef)
    self.assertIs(module.default.default_factory, float)
    self.assertIsInstance(module.tagged, Tagged)
    self.assertIsInstance(module.frozen.mask, hke.HandledSideInputRef)
    self.assertEqual(module.frozen.scale, 5.0)
    table = hke.bindings(handled)(0.0)
    self.assertCountEqual(
        [r.attribute_path for r in table.rows],
        [
            "named.mask",
            "ordered['z']",
            "default['k']",
            "tagged[1]",
            "frozen.mask",
        ],
    )

  def test_nested_call_on_the_same_module_binds_once(self):
    seen = []

    class CallsItself(hk.Module):

      def __init__(self):
        super().__init__()
        self.rng = hke.RandomRequest()

      def helper(self):
        seen.append(self.rng)
        return jax.random.key_data(self.rng.next_key())

      def __call__(self, x):
        seen.append(self.rng)
        first = self.helper()
        # Still the runtime impl: the nested call did not restore the ref.
        seen.append(self.rng)
        return key_rows(first, jax.random.key_data(self.rng.next_key()))

    f = hke.transform(
        hke.handlers.WithHaikuRandom.handling(lambda x: CallsItself()(x))
    )
    rows = np.asarray(f.apply({}, jax.random.key(0), 0.0))
    self.assertEqual(count_distinct_rows(rows), 2)
    self.assertLen(seen, 3)
    self.assertIs(seen[0], seen[1])
    self.assertIs(seen[1], seen[2])
    self.assertIsInstance(seen[0], hke.EffectRuntimeImpl)

  def test_module_without_requests_keeps_its_attributes(self):
    modules = []

    def body(x):
      modules.append(hk.Linear(2, name="plain"))
      return modules[-1](x)

    f = hke.transform(hke.handlers.WithHaikuRandom.handling(body))
    params = f.init(jax.random.key(0), jnp.ones([1, 3]))
    f.apply(params, jax.random.key(0), jnp.ones([1, 3]))
    self.assertEqual(modules[-1].output_size, 2)
    self.assertEqual(modules[-1].module_name, "plain")


class ClassDrawKey(hk.Module):
  """DrawKey with its request declared in the class body (Penzai style)."""

  rng = hke.RandomRequest()

  def __call__(self):
    return jax.random.key_data(self.rng.next_key())


class ClassAttributeTest(absltest.TestCase):

  def _draws(self, make):
    modules = []

    def body(_):
      modules.extend([make("first"), make("second")])
      return [m() for m in modules]

    f = hke.transform(hke.handlers.WithHaikuRandom.handling(body))
    return f.apply({}, jax.random.key(3), None), modules

  def test_a_class_attribute_request_draws_as_an_instance_attribute(self):
    (first, second), modules = self._draws(lambda n: ClassDrawKey(name=n))
    want, _ = self._draws(lambda n: DrawKey(name=n))
    np.testing.assert_array_equal(first, want[0])
    np.testing.assert_array_equal(second, want[1])
    self.assertFalse(np.array_equal(first, second))
    # Each instance holds its own ref; the class keeps its request.
    self.assertIsInstance(modules[0].rng, hke.HandledRandomRef)
    self.assertIsNot(modules[0].rng, modules[1].rng)
    self.assertIsInstance(ClassDrawKey.rng, hke.RandomRequest)

  def test_bindings_list_a_class_attribute_request(self):
    table = hke.bindings(
        hke.handlers.WithHaikuRandom.handling(lambda _: ClassDrawKey()())
    )(None)
    self.assertEqual(
        [(r.module_path, r.attribute_path) for r in table.rows],
        [("class_draw_key", "rng")],
    )


class UnboundUseTest(absltest.TestCase):

  def test_a_request_reached_through_a_transparent_method_names_it(self):
    class Noisy(hk.Module):

      def __init__(self, name=None):
        super().__init__(name=name)
        self.noise = hke.RandomRequest()

      @hk.transparent
      def add_noise(self, x):
        return x + jax.random.normal(self.noise.next_key(), x.shape)

    class Parent(hk.Module):

      def __init__(self):
        super().__init__()
        self.child = Noisy(name="noisy")

      def __call__(self, x):
        return self.child.add_noise(x)

    f = hke.transform(
        hke.handlers.WithHaikuRandom.handling(lambda x: Parent()(x))
    )
    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"^RandomRequest\(\) at module 'parent/~/noisy', attribute 'noise' "
        r"was used \(\.next_key\(\)\) while no method of 'parent/~/noisy' "
        r"that Haiku intercepts runs \(the running one is "
        r"'parent'\.__call__\).*an @hk\.transparent method.*Remove "
        r"@hk\.transparent from that method",
    ):
      f.apply({}, jax.random.key(0), jnp.zeros(2))

  def test_a_request_created_during_the_call_says_to_create_it_in_init(self):
    class Counter(hk.Module):

      def __call__(self, x):
        count = hke.InitialLocalStateRequest(
            lambda: jnp.zeros([]), category="counts"
        )
        count.set(count.get() + 1)
        return x

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: Counter()(x))
    )
    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"was used \(\.set\(\)\) in 'counter'\.__call__, but it was "
        r"created during the call.*Create the request in __init__.*The port "
        r"of hk\.get_state\(name, shape, init\) is self\.x = "
        r"hke\.InitialLocalStateRequest",
    ):
      f.init(None, jnp.zeros(2))


class UsersInterceptorsTest(absltest.TestCase):
  """hk_effects' interceptor shortcuts Haiku's chain only while it is alone;
  a user's interceptor still sees every method call, in Haiku's order."""

  def _model(self):
    def forward(x):
      layer = AskScale()
      return hk.Linear(2, w_init=jnp.ones, name="lin")(x) * layer()

    return hke.transform(
        hke.handlers.WithConstantSideInputs.handling(forward, {"s": 3.0})
    )

  def test_inner_interceptor_sees_every_call_and_effects_still_bind(self):
    seen = []

    def spy(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)  # After __init__, the module has a name.
      seen.append((context.module.module_name, context.method_name))
      return out

    def forward(x):
      with hk.intercept_methods(spy):
        layer = AskScale()
        return hk.Linear(2, w_init=jnp.ones, name="lin")(x) * layer()

    f = hke.transform(
        hke.handlers.WithConstantSideInputs.handling(forward, {"s": 3.0})
    )
    x = jnp.ones([1, 2])
    params = f.init(None, x)
    seen.clear()
    out = f.apply(params, None, x)
    np.testing.assert_allclose(out, [[6.0, 6.0]])
    self.assertEqual(
        seen,
        [
            ("ask_scale", "__init__"),
            ("lin", "__init__"),
            ("lin", "__call__"),
            ("ask_scale", "__call__"),
        ],
    )

  def test_outer_interceptor_runs_first_and_can_change_results(self):
    def double(next_fun, args, kwargs, context):
      out = next_fun(*args, **kwargs)
      if context.method_name == "__call__" and isinstance(
          context.module, AskScale
      ):
        return out * 2
      return out

    f = self._model()
    x = jnp.ones([1, 2])
    params = f.init(None, x)
    with hk.intercept_methods(double):
      out = f.apply(params, None, x)
    np.testing.assert_allclose(out, [[12.0, 12.0]])
    np.testing.assert_allclose(f.apply(params, None, x), [[6.0, 6.0]])

  def test_path_keys_draw_alike_with_and_without_a_users_interceptor(self):
    # Path keys count calls with an interceptor of their own: with only
    # hk_effects' interceptors installed both run without Haiku's chain, and
    # a user's no-op interceptor (Haiku's chain) must change no key.
    def forward(x):
      return jnp.stack([DrawKey(name=f"draw_{i}")() for i in range(3)]) + x

    def noop(next_fun, args, kwargs, context):
      del context
      return next_fun(*args, **kwargs)

    def with_noop(x):
      with hk.intercept_methods(noop):
        return forward(x)

    outs = []
    for body in (forward, with_noop):
      f = hke.transform(
          hke.handlers.WithRandomKeyFromArg.handling(body, path_keys=True),
          apply_rng=False,
      )
      outs.append(f.apply({}, (jnp.zeros([], jnp.uint32), jax.random.key(4))))
    np.testing.assert_array_equal(outs[0], outs[1])
    self.assertEqual(count_distinct_rows(outs[0]), 3)


class GarbageTest(absltest.TestCase):

  def test_intercepted_calls_leave_no_reference_cycles(self):
    # Haiku's interceptor chain is a closure over itself; hk_effects breaks
    # that cycle, so a traced model's modules are freed without the cyclic
    # collector (which otherwise runs full collections during deep traces).
    refs = []

    def forward(x):
      module = hk.Linear(2, name="probe")
      refs.append(weakref.ref(module))
      return module(x)

    f = hke.transform(forward)
    params = f.init(jax.random.key(0), jnp.ones([1, 2]))
    gc.collect()
    gc.disable()
    try:
      refs.clear()
      f.apply(params, None, jnp.ones([1, 2]))
      self.assertIsNone(refs[0]())
    finally:
      gc.enable()

  def test_no_cycles_with_a_path_keyed_handler_stacked_inside(self):
    # A path-keyed random handler adds its own interceptor inside ours.
    refs = []

    def forward(x):
      module = hk.Linear(2, w_init=jnp.ones, name="probe")
      refs.append(weakref.ref(module))
      return module(x)

    f = hke.transform(
        hke.handlers.WithRandomKeyFromArg.handling(forward, path_keys=True),
        apply_rng=False,
    )
    x = jnp.ones([1, 2])
    params = f.init(None, (x, jax.random.key(0)))
    gc.collect()
    gc.disable()
    try:
      refs.clear()
      f.apply(params, (x, jax.random.key(1)))
      self.assertIsNone(refs[0]())
    finally:
      gc.enable()


if __name__ == "__main__":
  absltest.main()
