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
"""Tests of the local-state effect (S7) and its handlers."""

from absl.testing import absltest
from absl.testing import parameterized
import chex
import conftest  # pylint: disable=unused-import  # Key-reuse rules, alone.
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

COUNTERS = "~local_state/counters"


class Counter(hk.Module):
  """Adds its input to a local counter and returns the new count."""

  def __init__(
      self, name=None, state_name=None, initializer=None, category="counters"
  ):
    super().__init__(name=name)
    self.count = hke.InitialLocalStateRequest(
        initializer or (lambda: jnp.zeros([], jnp.float32)),
        category,
        name=state_name,
    )

  def __call__(self, x):
    new = self.count.get() + x
    self.count.set(new)
    return new

  def peek(self):
    return self.count.get()


def _run(fn, *args, states=None, **handler_kwargs):
  f = hke.transform_with_state(
      hke.handlers.handle_local_states(fn, **handler_kwargs)
  )
  params, state = f.init(jax.random.key(0), *args)
  out, state = f.apply(
      params, states if states is not None else state, None, *args
  )
  return out, state, (f, params)


class WorkflowTest(parameterized.TestCase):

  def test_init_returns_initial_states_and_apply_updates(self):
    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: Counter()(x))
    )
    params, state = f.init(None, 2.0)
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 0.0)
    _, state = f.apply(params, state, None, 2.0)
    _, state = f.apply(params, state, None, 3.0)
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 5.0)

  def test_unnamed_states_are_named_by_module_path_and_attribute(self):
    class Holder(hk.Module):

      def __init__(self):
        super().__init__(name="holder")
        self.cache = {
            "k": hke.InitialLocalStateRequest(lambda: jnp.zeros([2]), "cache")
        }

      def __call__(self, x):
        self.cache["k"].set(self.cache["k"].get() + x)
        return x

    def forward(x):
      with hk.experimental.name_scope("outer"):
        return Holder()(x)

    _, state, _ = _run(forward, jnp.ones([2]))
    self.assertEqual(
        list(state["~local_state/cache"]), ["outer/holder:cache['k']"]
    )

  def test_jit_equals_no_jit(self):
    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: Counter()(x) * 2)
    )
    params, state = f.init(None, 1.5)
    out1, state1 = f.apply(params, state, None, 1.5)
    out2, state2 = jax.jit(f.apply)(params, state, None, 1.5)
    chex.assert_trees_all_equal((out1, state1), (out2, state2))

  def test_category_predicate_claims_only_matching_categories(self):
    def forward(x):
      a = Counter(name="a", category="mine")(x)
      b = Counter(name="b", category="yours")(x)
      return a + b

    inner = hke.handlers.handle_local_states(
        forward, category_predicate=lambda c: c == "mine", handler_id="inner"
    )
    outer = hke.handlers.handle_local_states(
        inner, category="yours", handler_id="outer"
    )
    table = hke.bindings(outer)(1.0)
    served = {r.module_path: r.handler_id for r in table.rows}
    self.assertEqual(served, {"a": "inner", "b": "outer"})

  def test_stateless_transform_is_a_clear_error(self):
    f = hke.transform(hke.handlers.handle_local_states(lambda x: Counter()(x)))
    with self.assertRaisesRegex(ValueError, "transform_with_state"):
      f.init(None, 1.0)

  def test_unhandled_local_state_names_module(self):
    f = hke.transform_with_state(lambda x: Counter(name="lonely")(x))
    with self.assertRaisesRegex(hke.UnhandledEffectError, "'lonely'.*'count'"):
      f.init(None, 1.0)


class PlacementTest(parameterized.TestCase):
  """A set is never lost inside Haiku's control-flow wrappers (S7)."""

  def test_scan_counter_ends_at_three(self):
    def forward(x):
      counter = Counter()

      def body(c, _):
        return c + counter(1.0), None

      c, _ = hk.scan(body, x, None, length=3)
      return c

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    params, state = f.init(None, 0.0)
    _, state = f.apply(params, state, None, 0.0)
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 3.0)

  @parameterized.parameters(True, False)
  def test_cond_keeps_taken_branch_update(self, pred):
    def forward(p):
      counter = Counter()
      if hk.running_init():
        counter(0.0)  # Create the state before the cond, as in Haiku.
      return hk.cond(p, lambda: counter(10.0), lambda: counter(-1.0))

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    params, state = f.init(None, pred)
    _, state = f.apply(params, state, None, pred)
    self.assertEqual(
        float(state[COUNTERS]["counter:count"]), 10.0 if pred else -1.0
    )

  def test_switch_keeps_taken_branch_update(self):
    def forward(i):
      counter = Counter()
      if hk.running_init():
        counter(0.0)
      return hk.switch(
          i, [lambda: counter(1.0), lambda: counter(2.0), lambda: counter(3.0)]
      )

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    params, state = f.init(None, 2)
    _, state = f.apply(params, state, None, 2)
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 3.0)

  def test_fori_loop_and_while_loop(self):
    def forward(x):
      counter = Counter()
      if hk.running_init():
        counter(0.0)
      hk.fori_loop(0, 4, lambda i, c: c + counter(1.0), x)
      if not hk.running_init():  # hk.while_loop cannot run at init.
        hk.while_loop(lambda c: c < 3, lambda c: c + counter(0.5) * 0 + 1, x)
      return x

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    params, state = f.init(None, 0.0)
    _, state = f.apply(params, state, None, 0.0)
    # 4 increments of 1 in fori_loop, 3 of 0.5 in while_loop.
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 5.5)

  def test_remat_update_survives(self):
    def forward(x):
      counter = Counter()
      return hk.remat(counter)(x)

    _, state, _ = _run(forward, 4.0)
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 4.0)

  def test_vmap_shares_unbatched_state(self):
    # Haiku state is not mapped by hk.vmap: a state read and updated with a
    # value that does not depend on the example is shared by all members.
    def forward(xs):
      counter = Counter()
      if hk.running_init():
        counter(0.0)
      return hk.vmap(lambda x: x + counter(1.0), split_rng=False)(xs)

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    xs = jnp.arange(3.0)
    params, state = f.init(None, xs)
    out, state = f.apply(params, state, None, xs)
    np.testing.assert_array_equal(out, xs + 1.0)
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 1.0)

  def test_vmap_per_example_set_is_an_error_naming_the_state(self):
    def forward(xs):
      counter = Counter()
      if hk.running_init():
        counter(0.0)
      return hk.vmap(counter, split_rng=False)(xs)

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    with self.assertRaisesRegex(ValueError, "counter:count"):
      f.init(None, jnp.arange(3.0))

  def test_layer_stack_gives_per_layer_states(self):
    def forward(x):
      @hk.layer_stack(4)
      def stack(y):
        return y + Counter()(1.0)

      return stack(x)

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    params, state = f.init(None, 0.0)
    _, state1 = f.apply(params, state, None, 0.0)
    _, state2 = f.apply(params, state1, None, 0.0)
    ((key, before),) = [(k, v) for b in state1.values() for k, v in b.items()]
    ((_, after),) = [(k, v) for b in state2.values() for k, v in b.items()]
    self.assertEqual(key, "counter:count")
    # One counter per layer, stacked on a leading axis; each apply adds one
    # per layer. (Haiku's layer_stack init runs each layer once in apply
    # mode, so init's states already count one step, as with hk.set_state.)
    self.assertEqual(before.shape, (4,))
    np.testing.assert_array_equal(after - before, np.ones(4))


class SharingTest(parameterized.TestCase):

  def test_forbidden_rejects_duplicate_names(self):
    def forward(x):
      return Counter(name="a", state_name="n")(x) + Counter(
          name="b", state_name="n"
      )(x)

    with self.assertRaisesRegex(ValueError, "'n'.*'a'.*'b'.*forbidden"):
      _run(forward, 1.0)

  def test_allowed_shares_same_initializer(self):
    init = lambda: jnp.zeros([])  # pylint: disable=unnecessary-lambda-assignment

    def forward(x):
      Counter(name="a", state_name="n", initializer=init)(x)
      return Counter(name="b", state_name="n", initializer=init)(x)

    out, state, _ = _run(forward, 1.0, state_sharing="allowed")
    self.assertEqual(float(state[COUNTERS]["n"]), 2.0)
    self.assertEqual(float(out), 2.0)

  def test_allowed_rejects_different_initializers(self):
    def forward(x):
      Counter(name="a", state_name="n")(x)
      return Counter(name="b", state_name="n")(x)

    with self.assertRaisesRegex(ValueError, "different initializers"):
      _run(forward, 1.0, state_sharing="allowed")

  def test_unsafe_shares_and_last_initializer_wins(self):
    def forward(x):
      Counter(
          name="a", state_name="n", initializer=lambda: jnp.asarray(100.0)
      ).peek()
      Counter(
          name="b", state_name="n", initializer=lambda: jnp.asarray(7.0)
      ).peek()
      return x

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(forward, state_sharing="unsafe")
    )
    _, state = f.init(None, 1.0)
    self.assertEqual(float(state[COUNTERS]["n"]), 7.0)

  def test_unsafe_last_initializer_wins_when_created_in_apply(self):
    class LazyPeek(Counter):

      def __call__(self, x):
        return x if hk.running_init() else self.peek()

    def forward(x):
      LazyPeek(
          name="a", state_name="n", initializer=lambda: jnp.asarray(100.0)
      )(x)
      return LazyPeek(
          name="b", state_name="n", initializer=lambda: jnp.asarray(7.0)
      )(x)

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(forward, state_sharing="unsafe")
    )
    params, state = f.init(None, 1.0)
    self.assertNotIn("n", state.get(COUNTERS, {}))
    out, state = f.apply(params, state, None, 1.0)
    self.assertEqual(float(out), 7.0)
    self.assertEqual(float(state[COUNTERS]["n"]), 7.0)

  def test_unsafe_keeps_a_shared_state_given_to_apply(self):
    def forward(x):
      Counter(
          name="a", state_name="n", initializer=lambda: jnp.asarray(100.0)
      ).peek()
      return (
          Counter(
              name="b", state_name="n", initializer=lambda: jnp.asarray(7.0)
          ).peek()
          + 0 * x
      )

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(forward, state_sharing="unsafe")
    )
    params, _ = f.init(None, 1.0)
    out, state = f.apply(params, {COUNTERS: {"n": jnp.asarray(3.0)}}, None, 1.0)
    self.assertEqual(float(out), 3.0)
    self.assertEqual(float(state[COUNTERS]["n"]), 3.0)

  def test_shared_request_reads_named_state(self):
    class Reader(hk.Module):

      def __init__(self):
        super().__init__()
        self.shared = hke.SharedLocalStateRequest("n", "counters")

      def __call__(self):
        self.shared.set(self.shared.get() * 10)
        return self.shared.get()

    def forward(x):
      Counter(state_name="n")(x)
      return Reader()()

    out, state, _ = _run(forward, 2.0)
    self.assertEqual(float(out), 20.0)
    self.assertEqual(float(state[COUNTERS]["n"]), 20.0)

  def test_shared_request_without_owner_is_an_error(self):
    class Reader(hk.Module):

      def __init__(self):
        super().__init__()
        self.shared = hke.SharedLocalStateRequest("missing", "counters")

      def __call__(self):
        return self.shared.get()

    with self.assertRaisesRegex(ValueError, "'missing'.*InitialLocalState"):
      _run(lambda x: Reader()(), 1.0)

  def test_bad_sharing_level(self):
    with self.assertRaisesRegex(ValueError, "'sometimes'"):
      hke.handlers.handle_local_states(lambda x: x, state_sharing="sometimes")


class ValidationTest(parameterized.TestCase):

  def _init(self):
    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: Counter()(x))
    )
    params, state = f.init(None, 1.0)
    return f, params, state

  def test_entry_nobody_requested_passes_through_unchanged(self):
    f, params, state = self._init()
    ghost = jnp.arange(3, dtype=jnp.int32)
    state = {
        COUNTERS: {**state[COUNTERS], "ghost:x": ghost},
        "~local_state/elsewhere": {"y": jnp.ones([2])},
    }
    _, state = f.apply(params, state, None, 1.0)
    np.testing.assert_array_equal(state[COUNTERS]["ghost:x"], ghost)
    self.assertEqual(state[COUNTERS]["ghost:x"].dtype, jnp.int32)
    np.testing.assert_array_equal(
        state["~local_state/elsewhere"]["y"], jnp.ones([2])
    )
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 1.0)

  def test_state_given_with_a_wrong_shape_fails_at_set_naming_it(self):
    class Last(hk.Module):
      """Keeps its last input."""

      def __init__(self):
        super().__init__()
        self.last = hke.InitialLocalStateRequest(lambda: jnp.zeros([]), "c")

      def __call__(self, x):
        self.last.set(x)
        return x

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: Last()(x))
    )
    params, _ = f.init(None, jnp.float32(1.0))
    with self.assertRaisesRegex(
        ValueError, r"'last:last'.*shape=\(3,\).*shape=\(\)"
    ):
      f.apply(
          params,
          {"~local_state/c": {"last:last": jnp.zeros([3])}},
          None,
          jnp.float32(1.0),
      )

  def test_state_given_with_a_wrong_dtype_fails_at_set_naming_it(self):
    f, params, _ = self._init()
    with self.assertRaisesRegex(ValueError, "'counter:count'.*int32"):
      f.apply(
          params,
          {COUNTERS: {"counter:count": jnp.zeros([], jnp.int32)}},
          None,
          1.0,
      )

  def test_frozen_state_given_with_a_wrong_shape_is_an_error_naming_it(self):
    handler = hke.handlers.handle_local_states(lambda x: Counter()(x))
    frozen = hke.handlers.freeze_local_states(
        handler, {COUNTERS: {"counter:count": jnp.asarray(2.0)}}
    )
    f = hke.transform_with_state(hke.handlers.handle_local_states(frozen))
    params, _ = f.init(None, 1.0)
    with self.assertRaisesRegex(ValueError, "'counter:count'.*given to apply"):
      f.apply(params, {COUNTERS: {"counter:count": jnp.zeros([3])}}, None, 1.0)

  def test_set_with_wrong_shape(self):
    class Bad(hk.Module):

      def __init__(self):
        super().__init__()
        self.s = hke.InitialLocalStateRequest(lambda: jnp.zeros([2]), "c")

      def __call__(self):
        self.s.set(jnp.zeros([5]))

    with self.assertRaisesRegex(ValueError, "'bad:s'.*keeps its structure"):
      _run(lambda x: Bad()(), 1.0)


class LazyCounter(Counter):
  """A counter that skips its update at init, as Haiku users write it."""

  def __call__(self, x):
    if hk.running_init():
      return x
    return super().__call__(x)


class HaikuStateSemanticsTest(parameterized.TestCase):
  """apply treats local states as Haiku treats hk.get_state / hk.set_state."""

  def test_multi_transform_decoder_apply_passes_encoder_state_through(self):
    def fns():
      encoder = Counter(name="encoder")
      decoder = Counter(name="decoder")
      encode = hke.handlers.handle_local_states(encoder)
      decode = hke.handlers.handle_local_states(decoder)
      return (lambda x: decode(encode(x))), (encode, decode)

    f = hk.multi_transform_with_state(fns)
    params, state = f.init(None, 1.0)
    encode_apply, decode_apply = f.apply
    _, state = encode_apply(params, state, None, 2.0)
    out, state = decode_apply(params, state, None, 5.0)
    self.assertEqual(float(out), 5.0)
    self.assertEqual(
        {k: float(v) for k, v in state[COUNTERS].items()},
        {"encoder:count": 2.0, "decoder:count": 5.0},
    )

  def test_eval_forward_returns_an_untouched_state_bit_identical(self):
    def forward(train):
      def fn(x):
        if train:
          Counter(name="steps")(1.0)
        return Counter(name="seen")(x)

      return hke.transform_with_state(hke.handlers.handle_local_states(fn))

    train_f, eval_f = forward(True), forward(False)
    params, state = train_f.init(None, 1.0)
    _, state = train_f.apply(params, state, None, 0.25)
    steps = state[COUNTERS]["steps:count"]
    _, evaluated = eval_f.apply(params, state, None, 3.0)
    self.assertEqual(set(evaluated[COUNTERS]), {"steps:count", "seen:count"})
    after = evaluated[COUNTERS]["steps:count"]
    self.assertEqual(after.dtype, steps.dtype)
    self.assertEqual(np.asarray(after).tobytes(), np.asarray(steps).tobytes())
    self.assertEqual(float(evaluated[COUNTERS]["seen:count"]), 3.25)

  def test_sibling_handlers_under_plain_haiku_transform_keep_both_states(self):
    def forward(x):
      first = hke.handlers.handle_local_states(lambda y: Counter(name="a")(y))
      second = hke.handlers.handle_local_states(
          lambda y: Counter(name="b", category="other")(y)
      )
      return second(first(x))

    f = hk.transform_with_state(forward)
    params, state = f.init(None, 1.0)
    _, state = f.apply(params, state, None, 1.0)
    out, state = f.apply(params, state, None, 1.0)
    # a counts 1 per apply; b adds a's output: 1, then 1 + 2.
    self.assertEqual(float(state[COUNTERS]["a:count"]), 2.0)
    self.assertEqual(float(state["~local_state/other"]["b:count"]), 3.0)
    self.assertEqual(float(out), 3.0)

  def test_state_skipped_at_init_is_created_in_apply_and_returned(self):
    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: LazyCounter(name="lazy")(x))
    )
    params, state = f.init(None, 1.0)
    self.assertNotIn("lazy:count", state.get(COUNTERS, {}))
    _, state = f.apply(params, state, None, 2.0)
    self.assertEqual(float(state[COUNTERS]["lazy:count"]), 2.0)
    _, state = f.apply(params, state, None, 3.0)
    self.assertEqual(float(state[COUNTERS]["lazy:count"]), 5.0)

  def test_missing_entry_is_created_from_its_initializer(self):
    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: Counter()(x))
    )
    params, _ = f.init(None, 1.0)
    _, state = f.apply(params, {}, None, 4.0)
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 4.0)

  def test_initializer_drawing_a_key_leaves_apply_draws_as_in_haiku(self):
    class Noisy(hk.Module):

      def __init__(self):
        super().__init__()
        self.noise = hke.InitialLocalStateRequest(
            lambda: jax.random.normal(hk.next_rng_key(), [2]), "noise"
        )

      def __call__(self, x):
        self.noise.set(self.noise.get() * 0.5)
        return x * jax.random.bernoulli(hk.next_rng_key(), 0.5, x.shape)

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(lambda x: Noisy()(x))
    )
    x = jnp.ones([8])
    params, state = f.init(jax.random.key(0), x)
    out, new_state = f.apply(params, state, jax.random.key(1), x)
    # The dropout-like draw is apply's first key, as if no initializer ran.
    plain = hk.transform(
        lambda x: x * jax.random.bernoulli(hk.next_rng_key(), 0.5, x.shape)
    )
    np.testing.assert_array_equal(out, plain.apply({}, jax.random.key(1), x))
    noise = "~local_state/noise"
    np.testing.assert_array_equal(
        new_state[noise]["noisy:noise"], state[noise]["noisy:noise"] * 0.5
    )

  def test_initializer_runs_once_at_init_and_never_for_existing_states(self):
    calls = []

    def initializer():
      calls.append(1)
      return jnp.zeros([])

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(
            lambda x: Counter(initializer=initializer)(x)
        )
    )
    params, state = f.init(None, 1.0)
    self.assertLen(calls, 1)
    _, state = f.apply(params, state, None, 1.0)
    _, state = jax.jit(f.apply)(params, state, None, 1.0)
    self.assertLen(calls, 1)
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 2.0)

  def test_initializer_runs_once_when_created_in_apply(self):
    calls = []

    def initializer():
      calls.append(1)
      return jnp.zeros([])

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(
            lambda x: LazyCounter(initializer=initializer)(x)
        )
    )
    params, state = f.init(None, 1.0)
    self.assertEmpty(calls)
    _, state = f.apply(params, state, None, 1.0)
    self.assertLen(calls, 1)
    _, state = f.apply(params, state, None, 1.0)
    self.assertLen(calls, 1)
    self.assertEqual(float(state[COUNTERS]["lazy_counter:count"]), 2.0)

  def test_shared_state_missing_from_apply_state_is_an_error_naming_it(self):
    class Reader(hk.Module):

      def __init__(self):
        super().__init__()
        self.shared = hke.SharedLocalStateRequest("n", "counters")

      def __call__(self):
        return self.shared.get()

    def make(with_owner):
      def forward(x):
        if with_owner:
          Counter(state_name="n")(x)
        return Reader()()

      return hke.transform_with_state(hke.handlers.handle_local_states(forward))

    params, state = make(True).init(None, 1.0)
    # Given init's state, the reader finds "n" though its owner is skipped.
    self.assertEqual(float(make(False).apply(params, state, None, 1.0)[0]), 0.0)
    with self.assertRaisesRegex(
        ValueError, "'n'.*'~local_state/counters'.*state returned by init"
    ):
      make(False).apply(params, {}, None, 1.0)


class HaikuCounter(hk.Module):
  """Counter written with Haiku state, to compare with local states."""

  def __call__(self, x):
    count = hk.get_state("count", [], init=jnp.zeros) + x
    hk.set_state("count", count)
    return count


def _lifted_forward(inner, lift_name="sub"):
  """A model embedding ``inner`` (a TransformedWithState) in a module."""

  class Embed(hk.Module):

    def __call__(self, x):
      lifted, updater = hk.experimental.lift_with_state(
          inner.init, name=lift_name
      )
      params, state = lifted(
          hk.next_rng_key() if hk.running_init() else None, x
      )
      y, state = inner.apply(params, state, None, x)
      updater.update(state)
      return y

  return lambda x: Counter(name="counter")(Embed(name="embed")(x))


class LiftedStateTest(parameterized.TestCase):
  """Local states of a stateful sub-model embedded with lift_with_state."""

  @parameterized.named_parameters(
      ("inner_handler", True), ("outer_handler", False)
  )
  def test_states_come_back_under_the_lifting_modules_name(self, own):
    inner_fn = lambda x: Counter(name="counter")(x)
    inner = hke.transform_with_state(
        hke.handlers.handle_local_states(inner_fn) if own else inner_fn
    )
    f = hke.transform_with_state(
        hke.handlers.handle_local_states(_lifted_forward(inner))
    )
    params, state = f.init(jax.random.key(0), 1.0)
    self.assertEqual(
        sorted(state), ["embed/sub/~local_state/counters", COUNTERS]
    )
    for _ in range(2):
      out, state = f.apply(params, state, None, 2.0)
    # The inner counter adds 2 per apply, the outer adds the inner's count.
    self.assertEqual(
        float(state["embed/sub/~local_state/counters"]["counter:count"]), 4.0
    )
    self.assertEqual(float(state[COUNTERS]["counter:count"]), 6.0)
    self.assertEqual(float(out), 6.0)

  def test_same_layout_as_haiku_state(self):
    local = hke.transform_with_state(lambda x: Counter(name="counter")(x))
    haiku = hk.transform_with_state(lambda x: HaikuCounter(name="counter")(x))
    states = []
    for inner in (local, haiku):
      f = hke.transform_with_state(
          hke.handlers.handle_local_states(_lifted_forward(inner))
      )
      params, state = f.init(jax.random.key(0), 1.0)
      _, state = f.apply(params, state, None, 3.0)
      states.append(state)
    local_state, haiku_state = states
    self.assertEqual(
        float(local_state["embed/sub/~local_state/counters"]["counter:count"]),
        float(haiku_state["embed/sub/counter"]["count"]),
    )

  def test_one_explicit_name_inside_and_outside_a_lift_is_no_clash(self):
    named = lambda name: Counter(name=name, state_name="total")
    inner = hke.transform_with_state(lambda x: named("deep")(x))
    f = hke.transform_with_state(
        hke.handlers.handle_local_states(
            lambda x: named("top")(10 * _lifted_forward(inner)(x))
        )
    )
    params, state = f.init(jax.random.key(0), 1.0)
    _, state = f.apply(params, state, None, 1.0)
    self.assertEqual(
        float(state["embed/sub/~local_state/counters"]["total"]), 1.0
    )
    self.assertEqual(float(state[COUNTERS]["total"]), 10.0)

  def test_ignored_update_keeps_the_lifted_state_as_haiku_does(self):
    inner = hke.transform_with_state(lambda x: Counter(name="counter")(x))

    def forward(x):
      lifted, updater = hk.experimental.lift_with_state(inner.init, name="sub")
      params, state = lifted(
          hk.next_rng_key() if hk.running_init() else None, x
      )
      y, _ = inner.apply(params, state, None, x)
      updater.ignore_update()
      return y

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    params, state = f.init(jax.random.key(0), 1.0)
    out, state = f.apply(params, state, None, 5.0)
    self.assertEqual(float(out), 5.0)
    self.assertEqual(
        float(state["sub/~local_state/counters"]["counter:count"]), 0.0
    )

  def test_vmapped_lift_gives_one_state_per_member(self):
    inner = hke.transform_with_state(lambda x: Counter(name="counter")(x))
    members = 3

    def forward(x):
      init = jax.vmap(inner.init, in_axes=(0, None))
      keys = hk.next_rng_keys(members) if hk.running_init() else None
      lifted, updater = hk.experimental.lift_with_state(init, name="ens")
      params, state = lifted(keys, x)
      ys, state = jax.vmap(inner.apply, in_axes=(0, 0, None, 0))(
          params, state, None, x * jnp.arange(1.0, members + 1)
      )
      updater.update(state)
      return ys

    f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
    params, state = f.init(jax.random.key(0), 1.0)
    _, state = f.apply(params, state, None, 1.0)
    np.testing.assert_array_equal(
        state["ens/~local_state/counters"]["counter:count"], [1.0, 2.0, 3.0]
    )


class FreezeTest(parameterized.TestCase):

  def test_freeze_round_trip(self):
    handler = hke.handlers.handle_local_states(lambda x: Counter()(x))
    f = hke.transform_with_state(handler)
    params, state = f.init(None, 1.0)
    _, state = f.apply(params, state, None, 4.0)

    frozen = hke.handlers.freeze_local_states(handler, state)
    # Read-only run at that state, without a local-state handler: the
    # counter's get() returns the frozen value and the output adds x.
    peek = hke.transform(
        hke.handlers.freeze_local_states(
            hke.handlers.handle_local_states(lambda x: Counter().peek()), state
        )
    )
    self.assertEqual(float(peek.apply({}, None, 0.0)), 4.0)
    g = hke.transform_with_state(hke.handlers.handle_local_states(frozen))
    _, state2 = g.init(None, 0.0)
    chex.assert_trees_all_equal(
        jax.tree_util.tree_leaves(state2), jax.tree_util.tree_leaves(state)
    )

  def test_frozen_get_without_handler_and_set_error(self):
    class Reader(hk.Module):

      def __init__(self):
        super().__init__()
        self.count = hke.InitialLocalStateRequest(jnp.zeros, "counters")

      def __call__(self, write):
        if write:
          self.count.set(1.0)
        return self.count.get()

    handler = hke.handlers.handle_local_states(lambda w: Reader()(w))
    frozen = hke.handlers.freeze_local_states(
        handler, {COUNTERS: {"reader:count": jnp.asarray(6.0)}}
    )
    f = hke.transform(frozen)
    self.assertEqual(float(f.apply({}, None, False)), 6.0)
    with self.assertRaisesRegex(hke.UnhandledEffectError, "read-only"):
      f.apply({}, None, True)

  def test_bindings_of_a_frozen_model_that_sets_state(self):
    handler = hke.handlers.handle_local_states(lambda x: Counter()(x))
    frozen = hke.handlers.freeze_local_states(
        handler, {COUNTERS: {"counter:count": jnp.asarray(2.0)}}
    )
    table = hke.bindings(frozen)(1.0)
    self.assertIsNone(table.stopped_at)
    (row,) = table.rows
    self.assertIsInstance(row.request, hke.FrozenLocalStateRequest)
    self.assertEqual(row.handler_id, "unhandled")

  def test_freeze_missing_value_names_state(self):
    handler = hke.handlers.handle_local_states(lambda x: Counter()(x))
    frozen = hke.handlers.freeze_local_states(handler, {COUNTERS: {}})
    with self.assertRaisesRegex(ValueError, "'counter:count'"):
      hke.transform(frozen).apply({}, None, 1.0)


class HoistTest(absltest.TestCase):

  def test_hoist_then_embed_shares_one_definition(self):
    def forward(x):
      Counter(name="a", state_name="n")(x)
      return Counter(name="b", state_name="n")(x)

    hoisted = hke.handlers.hoist_shared_state_requests(forward)
    embedded = hke.handlers.embed_shared_state_requests(
        hoisted,
        {
            "n": hke.InitialLocalStateRequest(
                lambda: jnp.asarray(100.0), "counters", name="n"
            )
        },
    )
    # Without hoisting, two definitions of "n" are forbidden; hoisted, both
    # layers refer to the one embedded definition.
    out, state, _ = _run(embedded, 1.0)
    self.assertEqual(float(out), 102.0)
    self.assertEqual(float(state[COUNTERS]["n"]), 102.0)

  def test_hoisted_without_embedding_names_missing_state(self):
    hoisted = hke.handlers.hoist_shared_state_requests(
        lambda x: Counter(state_name="n")(x)
    )
    with self.assertRaisesRegex(ValueError, "'n'"):
      _run(hoisted, 1.0)

  def test_embed_rejects_misnamed_request(self):
    with self.assertRaisesRegex(ValueError, "'n'.*name='n'"):
      hke.handlers.embed_shared_state_requests(
          lambda x: x, {"n": hke.InitialLocalStateRequest(jnp.zeros, "c")}
      )


class StatefulRandomKeyTest(absltest.TestCase):

  def test_key_advances_every_call(self):
    class Draw(hk.Module):

      def __init__(self):
        super().__init__()
        self.rng = hke.RandomRequest()

      def __call__(self, x):
        return jax.random.uniform(self.rng.next_key(), x.shape)

    h = hke.handlers.WithStatefulRandomKey.handling(
        lambda x: Draw()(x), jax.random.key(0)
    )
    f = hke.transform_with_state(
        hke.handlers.handle_local_states(h, category="random")
    )
    params, state = f.init(None, jnp.zeros(4))
    (bundle,) = state.values()
    (key_name,) = bundle
    self.assertEqual(key_name, f"{h.handler_id.lower()}:key")
    # The same key value again, to show the draw depends on it alone.
    replayed = jax.tree.map(jax.random.clone, state)
    a, state1 = f.apply(params, state, None, jnp.zeros(4))
    b, state2 = f.apply(params, state1, None, jnp.zeros(4))
    a2, _ = f.apply(params, replayed, None, jnp.zeros(4))
    self.assertFalse(np.any(np.asarray(a) == np.asarray(b)))
    np.testing.assert_array_equal(a, a2)
    self.assertFalse(
        np.array_equal(
            jax.random.key_data(state1["~local_state/random"][key_name]),
            jax.random.key_data(state2["~local_state/random"][key_name]),
        )
    )


class KVCacheTest(absltest.TestCase):

  def test_cached_greedy_steps_equal_full_sequence(self):
    batch, time, model = 2, 6, 16

    def make(decode):
      def forward(x):
        attn = hke.KVCachedAttention(
            num_heads=4, key_size=4, max_length=time, batch_size=batch
        )
        return attn(x, decode=decode)

      return hke.transform_with_state(hke.handlers.handle_local_states(forward))

    full_f, decode_f = make(False), make(True)
    x = jax.random.normal(jax.random.key(1), [batch, time, model])
    params, state = decode_f.init(jax.random.key(0), x[:, :1])
    full, _ = full_f.apply(params, {}, None, x)
    outs = []
    apply = jax.jit(decode_f.apply)
    for t in range(time):
      out, state = apply(params, state, None, x[:, t : t + 1])
      outs.append(out)
    np.testing.assert_allclose(
        jnp.concatenate(outs, axis=1), full, rtol=1e-5, atol=1e-5
    )
    self.assertEqual(
        int(
            state["~local_state/kv_cache"]["kv_cached_attention:cache['index']"]
        ),
        time,
    )


if __name__ == "__main__":
  absltest.main()
