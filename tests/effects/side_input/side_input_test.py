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
"""Tests of the side-input effect (_src/effects/side_input/side_input.py)."""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from test_utils import AskSideInput

import hk_effects as hke

FromTuple = hke.handlers.WithSideInputsFromInputTuple
Constant = hke.handlers.WithConstantSideInputs


def _weighted_sum(x):
  """x * a + b, reading a and b as side inputs from two modules."""
  return (
      x * AskSideInput("a", name="ask_a")() + AskSideInput("b", name="ask_b")()
  )


def _apply(handled, arg):
  return hke.transform(handled, apply_rng=False).apply({}, arg)


class InputTupleTest(absltest.TestCase):

  def test_one_tag(self):
    handled = FromTuple.handling(lambda x: x + AskSideInput("by")(), ("by",))
    np.testing.assert_array_equal(
        _apply(handled, (jnp.array([1.0, 2.0]), 10.0)), [11.0, 12.0]
    )

  def test_several_tags_follow_the_order_of_tags(self):
    handled = FromTuple.handling(_weighted_sum, ("b", "a"))
    np.testing.assert_array_equal(
        _apply(handled, (jnp.array([1.0, 2.0]), 100.0, 3.0)), [103.0, 106.0]
    )

  def test_nested_pairs_equal_a_single_triple(self):
    triple = FromTuple.handling(_weighted_sum, ("a", "b"))
    inner = FromTuple.handling(_weighted_sum, ("a",))
    outer = FromTuple.handling(lambda arg_and_a: inner(arg_and_a), ("b",))
    x = jnp.array([1.0, -2.0])
    np.testing.assert_array_equal(
        _apply(triple, (x, 3.0, 0.5)), _apply(outer, ((x, 3.0), 0.5))
    )

  def test_values_can_be_traced_arguments_under_jit(self):
    handled = FromTuple.handling(_weighted_sum, ("a", "b"))
    apply = jax.jit(hke.transform(handled, apply_rng=False).apply)
    np.testing.assert_array_equal(
        apply({}, (jnp.ones(2), jnp.float32(2.0), jnp.float32(1.0))), [3.0, 3.0]
    )

  def test_value_may_be_a_pytree_of_arrays(self):
    def body(x):
      value = AskSideInput("pair")()
      return x * value["scale"] + value["shift"]

    handled = FromTuple.handling(body, ("pair",))
    out = _apply(handled, (jnp.ones(2), {"scale": 2.0, "shift": jnp.ones(2)}))
    np.testing.assert_array_equal(out, [3.0, 3.0])


class ConstantSideInputsTest(absltest.TestCase):

  def test_serves_every_tag(self):
    handled = Constant.handling(_weighted_sum, {"a": 2.0, "b": 1.0})
    np.testing.assert_array_equal(
        _apply(handled, jnp.array([1.0, 3.0])), [3.0, 7.0]
    )

  def test_unused_side_input_is_an_error_naming_the_tag_when_strict(self):
    handled = Constant.handling(
        _weighted_sum, {"a": 2.0, "b": 1.0, "mask_typo": 0.0}, strict=True
    )
    with self.assertRaisesRegex(ValueError, r"\['mask_typo'\].*strict=True"):
      _apply(handled, jnp.ones(2))

  def test_unused_side_inputs_are_dropped_by_default(self):
    # Penzai's keep_unused=False: a side input nobody asks for is no error
    # (modules may ask only on some paths, as in train vs eval).
    handled = Constant.handling(
        _weighted_sum, {"a": 2.0, "b": 1.0, "unused": 0.0}
    )
    np.testing.assert_array_equal(_apply(handled, jnp.ones(2)), [3.0, 3.0])

  def test_a_forward_asking_only_in_training_works_in_eval(self):
    class MaybeAsk(hk.Module):

      def __call__(self, x, train):
        return x * self.s.ask() if train else x

      def __init__(self):
        super().__init__()
        self.s = hke.SideInputRequest("s")

    for train, want in ((True, 4.0), (False, 1.0)):
      handled = Constant.handling(
          lambda x, train=train: MaybeAsk()(x, train), {"s": 4.0}
      )
      np.testing.assert_array_equal(_apply(handled, jnp.ones(1)), [want])

  def test_strict_must_be_a_bool(self):
    with self.assertRaisesRegex(TypeError, "strict must be True or False.*1"):
      Constant.handling(lambda x: x, {}, strict=1)

  def test_keep_unused_allows_unused_side_inputs(self):
    handled = Constant.handling(
        _weighted_sum, {"a": 2.0, "b": 1.0, "unused": 0.0}, keep_unused=True
    )
    np.testing.assert_array_equal(_apply(handled, jnp.ones(2)), [3.0, 3.0])

  def test_side_inputs_must_be_a_dict(self):
    with self.assertRaisesRegex(TypeError, r"dict \{tag: value\}.*\('a', 1\)"):
      Constant.handling(_weighted_sum, [("a", 1)])


class HoistTest(absltest.TestCase):

  def test_hoisted_handler_on_hoisted_values_equals_the_original(self):
    handler = Constant.handling(
        _weighted_sum, {"a": jnp.float32(2.0), "b": jnp.float32(5.0)}
    )
    new, hoisted = hke.handlers.hoist_constant_side_inputs(handler)
    x = jnp.array([1.0, 2.0])
    np.testing.assert_array_equal(
        _apply(new, (x, *hoisted.values())), _apply(handler, x)
    )
    self.assertEqual(
        list(hoisted),
        [
            hke.HoistedTag(handler.handler_id, "a"),
            hke.HoistedTag(handler.handler_id, "b"),
        ],
    )

  def test_hoisted_values_can_change_without_retracing_the_constants(self):
    handler = Constant.handling(_weighted_sum, {"a": 2.0, "b": 5.0})
    new, _ = hke.handlers.hoist_constant_side_inputs(handler)
    np.testing.assert_array_equal(_apply(new, (jnp.ones(1), 10.0, 0.0)), [10.0])

  def test_hoisting_a_non_constant_handler_is_an_error(self):
    handler = FromTuple.handling(_weighted_sum, ("a", "b"))
    with self.assertRaisesRegex(
        TypeError, "WithConstantSideInputs.*got WithSideInputsFromInputTuple"
    ):
      hke.handlers.hoist_constant_side_inputs(handler)


class LexicalScopingTest(absltest.TestCase):

  def test_inner_handler_wins_for_the_same_tag(self):
    inner = Constant.handling(lambda x: x * AskSideInput("s")(), {"s": 3.0})
    outer = Constant.handling(inner, {"s": 100.0})
    np.testing.assert_array_equal(_apply(outer, jnp.ones(1)), [3.0])

  def test_outer_handler_never_sees_a_claimed_request(self):
    # The outer handler would call its only side input unused only if the
    # inner handler claimed every request for it.
    inner = Constant.handling(lambda x: x * AskSideInput("s")(), {"s": 3.0})
    outer = Constant.handling(inner, {"s": 100.0}, strict=True)
    with self.assertRaisesRegex(ValueError, r"\['s'\]"):
      _apply(outer, jnp.ones(1))

  def test_unclaimed_tags_pass_outwards(self):
    inner = Constant.handling(_weighted_sum, {"a": 2.0})
    outer = Constant.handling(inner, {"b": 7.0})
    np.testing.assert_array_equal(_apply(outer, jnp.ones(1)), [9.0])


class BadInputTest(parameterized.TestCase):

  def test_wrong_arity_names_the_expected_tags(self):
    handled = FromTuple.handling(_weighted_sum, ("a", "b"))
    with self.assertRaisesRegex(
        ValueError,
        r"expects \(arg, <'a'>, <'b'>\) \(3 items\) but got a " "tuple of 2",
    ):
      _apply(handled, (jnp.ones(1), 1.0))

  def test_a_non_tuple_argument_is_an_error(self):
    handled = FromTuple.handling(_weighted_sum, ("a",))
    with self.assertRaisesRegex(ValueError, r"\(arg, <'a'>\).*got a list"):
      _apply(handled, [jnp.ones(1), 1.0])

  def test_tags_given_as_a_string_is_an_error(self):
    with self.assertRaisesRegex(ValueError, r"string 'mask'.*tags=\('mask',\)"):
      FromTuple.handling(_weighted_sum, "mask")

  def test_duplicate_tags_are_an_error(self):
    with self.assertRaisesRegex(ValueError, r"duplicate tags in \('a', 'a'\)"):
      FromTuple.handling(_weighted_sum, ("a", "a"))

  @parameterized.parameters(("not an array",), (object(),), ({"k": "text"},))
  def test_value_that_is_not_an_array_names_the_tag(self, value):
    handled = FromTuple.handling(_weighted_sum, ("a", "b"))
    with self.assertRaisesRegex(TypeError, r"side input 'b'.*not an array"):
      _apply(handled, (jnp.ones(1), 1.0, value))

  @parameterized.parameters(True, False)
  def test_a_mask_of_the_wrong_shape_names_its_tag_and_module(self, jit):
    def forward(x):
      return hke.ApplyAttentionMask("mask", name="attn_mask")(x)

    f = hke.transform(FromTuple.handling(forward, ("mask",)), apply_rng=False)
    apply = jax.jit(f.apply) if jit else f.apply
    with self.assertRaisesRegex(
        ValueError,
        r"Incompatible shapes for broadcasting.*\n\(While "
        r"WithSideInputsFromInputTuple\(.*\) served side inputs: 'mask' = "
        r"bool\[3\] for module 'attn_mask', attribute 'mask'\. If the error "
        r"is about one of them, the value given for its tag has the wrong "
        r"shape or dtype",
    ):
      apply({}, (jnp.ones([2, 4]), jnp.ones([3], bool)))
    np.testing.assert_array_equal(
        apply({}, (jnp.ones([2, 4]), jnp.ones([4], bool))), jnp.ones([2, 4])
    )

  def test_constant_value_that_is_not_an_array_names_the_tag(self):
    with self.assertRaisesRegex(TypeError, r"side input 'a'.*jnp\.asarray"):
      Constant.handling(_weighted_sum, {"a": "2.0"})


class RawTransformTest(absltest.TestCase):
  """Side inputs are fixed values, so raw JAX transforms may read them."""

  def _apply(self, module_body):
    class ReadsUnderRawTransform(hk.Module):

      def __init__(self):
        super().__init__()
        self.scale = hke.SideInputRequest("scale")

      def __call__(self, x):
        return module_body(self, x)

    handled = Constant.handling(
        lambda x: ReadsUnderRawTransform()(x), {"scale": jnp.float32(2.0)}
    )
    return _apply(handled, jnp.arange(3.0))

  def test_ask_under_raw_scan(self):
    def body(module, x):
      def step(carry, xi):
        return carry + xi * module.scale.ask(), None

      return jax.lax.scan(step, jnp.float32(0.0), x)[0]

    np.testing.assert_array_equal(self._apply(body), 6.0)

  def test_ask_under_raw_vmap(self):
    def body(module, x):
      return jax.vmap(lambda xi: xi * module.scale.ask())(x)

    np.testing.assert_array_equal(self._apply(body), [0.0, 2.0, 4.0])


if __name__ == "__main__":
  absltest.main()
