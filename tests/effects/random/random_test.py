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
"""Tests of the random effect (_src/effects/random/random.py), rule S5."""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import conftest  # pylint: disable=unused-import  # Key-reuse checker, alone.
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from test_utils import count_distinct_rows
from test_utils import DrawKey
from test_utils import key_rows

import hk_effects as hke

_KEY = jax.random.key(7)


def _draw_everywhere(x):
  """Draws keys from every placement S5 names; returns them as rows."""
  del x
  module = DrawKey(name="reused")
  by_call = [module(), module()]
  other_module = DrawKey(name="other")()

  def scan_step(carry, _):
    return carry, module()

  _, by_scan = hk.scan(scan_step, 0, None, length=3)

  def layer(carry, per_layer):
    return carry, DrawKey(name="stacked")(per_layer)

  _, by_layer = hk.layer_stack(3, with_per_layer_inputs=True)(layer)(
      0.0, jnp.zeros(3)
  )

  by_vmap = hk.vmap(module, split_rng=True)(jnp.zeros(4))
  return key_rows(*by_call, other_module, by_scan, by_layer, by_vmap)


# Each case: (name, build the handled function, call its apply with a seed).
_HANDLERS = (
    dict(
        testcase_name="haiku_random",
        build=lambda body: hke.handlers.WithHaikuRandom.handling(body),
        apply=lambda f, seed: f.apply({}, jax.random.key(seed), 0.0),
    ),
    dict(
        testcase_name="key_from_arg",
        build=lambda body: hke.handlers.WithRandomKeyFromArg.handling(body),
        apply=lambda f, seed: f.apply({}, None, (0.0, jax.random.key(seed))),
    ),
)


def _apply_frozen(seed: int, starting_offset: int = 0, fn=_draw_everywhere):
  handled = hke.handlers.WithFrozenRandomState.handling(
      fn, jax.random.key(seed), starting_offset=starting_offset
  )
  return hke.transform(handled).apply({}, None, 0.0)


class DistinctKeysTest(parameterized.TestCase):

  @parameterized.named_parameters(*_HANDLERS)
  def test_every_next_key_in_one_application_is_distinct(self, build, apply):
    rows = np.asarray(apply(hke.transform(build(_draw_everywhere)), 0))
    self.assertEqual(rows.shape, (2 + 1 + 3 + 3 + 4, 2))
    self.assertEqual(count_distinct_rows(rows), rows.shape[0])

  def test_frozen_state_gives_distinct_keys_everywhere(self):
    rows = np.asarray(_apply_frozen(0))
    self.assertEqual(count_distinct_rows(rows), rows.shape[0])

  @parameterized.named_parameters(*_HANDLERS)
  def test_same_key_gives_same_keys(self, build, apply):
    f = hke.transform(build(_draw_everywhere))
    np.testing.assert_array_equal(apply(f, 3), apply(f, 3))

  @parameterized.named_parameters(*_HANDLERS)
  def test_different_key_gives_different_keys(self, build, apply):
    f = hke.transform(build(_draw_everywhere))
    first, second = np.asarray(apply(f, 3)), np.asarray(apply(f, 4))
    self.assertFalse(np.any(np.all(first == second, axis=-1)))

  def test_fori_loop_iterations_draw_distinct_keys(self):
    def forward(x):
      del x
      module = DrawKey()

      def body(i, keys):
        return keys.at[i].set(module())

      return hk.fori_loop(0, 3, body, jnp.zeros((3, 2), jnp.uint32))

    f = hke.transform(hke.handlers.WithHaikuRandom.handling(forward))
    rows = np.asarray(f.apply({}, jax.random.key(0), 0.0))
    self.assertEqual(count_distinct_rows(rows), 3)


class FrozenRandomStateTest(parameterized.TestCase):

  def test_is_deterministic_without_an_apply_rng(self):
    np.testing.assert_array_equal(_apply_frozen(1), _apply_frozen(1))

  def test_starting_offset_changes_every_key(self):
    base, shifted = np.asarray(_apply_frozen(1)), np.asarray(
        _apply_frozen(1, starting_offset=1)
    )
    self.assertFalse(np.any(np.all(base == shifted, axis=-1)))

  def test_first_key_comes_from_the_key_folded_with_the_offset(self):
    out = _apply_frozen(5, starting_offset=2, fn=lambda x: DrawKey()(x))
    expected = jax.random.key_data(
        hk.PRNGSequence(jax.random.fold_in(jax.random.key(5), 2)).__next__()
    )
    np.testing.assert_array_equal(out, expected)

  def test_ignores_the_apply_rng(self):
    handled = hke.handlers.WithFrozenRandomState.handling(
        lambda x: DrawKey()(x), _KEY
    )
    f = hke.transform(handled)
    np.testing.assert_array_equal(
        f.apply({}, jax.random.key(0), 0.0), f.apply({}, jax.random.key(1), 0.0)
    )

  @parameterized.parameters(-1, 1.5, "0")
  def test_bad_starting_offset_is_an_error_naming_it(self, offset):
    with self.assertRaisesRegex(ValueError, "starting_offset.*" + repr(offset)):
      hke.handlers.WithFrozenRandomState.handling(
          lambda x: x, _KEY, starting_offset=offset
      )


class TaggedStreamTest(absltest.TestCase):

  def test_tagged_request_is_served_by_the_matching_handler(self):
    handled = hke.handlers.WithHaikuRandom.handling(
        lambda x: DrawKey(hke.TaggedRandomRequest("noise"))(x),
        hole_predicate=hke.handlers.tagged("noise"),
    )
    out = hke.transform(handled).apply({}, jax.random.key(0), 0.0)
    expected = hke.transform(
        lambda x: jax.random.key_data(hk.next_rng_key())
    ).apply({}, jax.random.key(0), 0.0)
    np.testing.assert_array_equal(out, expected)

  def test_default_predicate_does_not_serve_a_tagged_request(self):
    handled = hke.handlers.WithHaikuRandom.handling(
        lambda x: DrawKey(hke.TaggedRandomRequest("noise"))(x)
    )
    with self.assertRaisesRegex(hke.UnhandledEffectError, "'noise'"):
      hke.transform(handled).apply({}, jax.random.key(0), 0.0)

  def test_handler_for_another_tag_does_not_serve_it(self):
    handled = hke.handlers.WithHaikuRandom.handling(
        lambda x: DrawKey(hke.TaggedRandomRequest("noise"))(x),
        hole_predicate=hke.handlers.tagged("dropout"),
    )
    with self.assertRaisesRegex(hke.UnhandledEffectError, "'noise'"):
      hke.transform(handled).apply({}, jax.random.key(0), 0.0)

  def test_tagged_predicate_does_not_serve_untagged_requests(self):
    handled = hke.handlers.WithHaikuRandom.handling(
        lambda x: DrawKey()(x), hole_predicate=hke.handlers.tagged("noise")
    )
    with self.assertRaisesRegex(hke.UnhandledEffectError, "RandomRequest"):
      hke.transform(handled).apply({}, jax.random.key(0), 0.0)

  def test_two_tagged_streams_from_two_handlers(self):
    def forward(x):
      return (
          DrawKey(hke.TaggedRandomRequest("a"), name="a")(x),
          DrawKey(hke.TaggedRandomRequest("b"), name="b")(x),
      )

    inner = hke.handlers.WithFrozenRandomState.handling(
        forward, jax.random.key(1), hole_predicate=hke.handlers.tagged("a")
    )
    outer = hke.handlers.WithFrozenRandomState.handling(
        inner, jax.random.key(2), hole_predicate=hke.handlers.tagged("b")
    )
    a, b = hke.transform(outer).apply({}, None, 0.0)
    only_a = hke.handlers.WithFrozenRandomState.handling(
        lambda x: DrawKey(hke.TaggedRandomRequest("a"), name="a")(x),
        jax.random.key(1),
        hole_predicate=hke.handlers.tagged("a"),
    )
    np.testing.assert_array_equal(a, hke.transform(only_a).apply({}, None, 0.0))
    self.assertFalse(np.array_equal(a, b))


class NestedHandlersTest(absltest.TestCase):

  def test_inner_handler_wins_for_what_it_claims(self):
    inner = hke.handlers.WithFrozenRandomState.handling(
        lambda x: DrawKey()(x), jax.random.key(1)
    )
    outer = hke.handlers.WithFrozenRandomState.handling(
        inner, jax.random.key(2)
    )
    nested = hke.transform(outer).apply({}, None, 0.0)
    alone = hke.transform(inner).apply({}, None, 0.0)
    np.testing.assert_array_equal(nested, alone)

  def test_outer_handler_serves_the_rest_with_distinct_keys(self):
    def forward(x):
      untagged = DrawKey(name="untagged")
      tagged = DrawKey(hke.TaggedRandomRequest("noise"), name="tagged")
      return key_rows(untagged(x), tagged(x), untagged(x), tagged(x))

    inner = hke.handlers.WithRandomKeyFromArg.handling(
        forward, hole_predicate=hke.handlers.tagged("noise")
    )
    outer = hke.handlers.WithHaikuRandom.handling(inner)
    f = hke.transform(outer)
    rows = np.asarray(f.apply({}, jax.random.key(0), (0.0, jax.random.key(1))))
    self.assertEqual(count_distinct_rows(rows), 4)
    again = f.apply({}, jax.random.key(0), (0.0, jax.random.key(1)))
    np.testing.assert_array_equal(rows, again)

  def test_outer_stream_changes_with_the_outer_key(self):
    def forward(x):
      return DrawKey(name="untagged")(x)

    inner = hke.handlers.WithRandomKeyFromArg.handling(
        forward, hole_predicate=hke.handlers.tagged("noise")
    )
    f = hke.transform(hke.handlers.WithHaikuRandom.handling(inner))
    # The inner key's value is the same in both applications, on purpose.
    key = jax.random.key(1)
    self.assertFalse(
        np.array_equal(
            f.apply({}, jax.random.key(0), (0.0, key)),
            f.apply({}, jax.random.key(5), (0.0, jax.random.clone(key))),
        )
    )


class BadInputTest(parameterized.TestCase):

  @parameterized.parameters(
      (3,), ("key",), (np.zeros(3, np.uint32),), (np.zeros(2, np.float32),)
  )
  def test_key_from_arg_rejects_a_non_key(self, not_a_key):
    f = hke.transform(
        hke.handlers.WithRandomKeyFromArg.handling(lambda x: DrawKey()(x))
    )
    with self.assertRaisesRegex(
        TypeError, r"needs a PRNG key.*jax\.random\.key"
    ):
      f.apply({}, None, (0.0, not_a_key))

  def test_frozen_state_rejects_a_non_key(self):
    with self.assertRaisesRegex(TypeError, r"WithFrozenRandomState.*1\.0"):
      hke.handlers.WithFrozenRandomState.handling(lambda x: x, 1.0)

  def test_legacy_uint32_key_is_accepted(self):
    f = hke.transform(
        hke.handlers.WithRandomKeyFromArg.handling(lambda x: DrawKey()(x))
    )
    out = f.apply({}, None, (0.0, jax.random.PRNGKey(0)))
    self.assertEqual(out.shape, (2,))

  def test_key_from_arg_needs_a_pair(self):
    f = hke.transform(
        hke.handlers.WithRandomKeyFromArg.handling(lambda x: DrawKey()(x))
    )
    with self.assertRaisesRegex(ValueError, r"pair \(arg, key\).*float"):
      f.apply({}, None, 0.0)

  def test_hole_predicate_must_be_callable(self):
    with self.assertRaisesRegex(TypeError, "hole_predicate.*'noise'.*tagged"):
      hke.handlers.WithHaikuRandom.handling(lambda x: x, hole_predicate="noise")

  def test_haiku_random_without_an_rng_says_to_pass_one(self):
    f = hke.transform(
        hke.handlers.WithHaikuRandom.handling(lambda x: DrawKey()(x))
    )
    with self.assertRaisesRegex(ValueError, "no rng is available.*`rng`"):
      f.apply({}, None, 0.0)


class RawTransformTest(absltest.TestCase):

  def _apply(self, module_body):
    class UsesRawTransform(hk.Module):

      def __init__(self):
        super().__init__()
        self.rng = hke.RandomRequest()

      def __call__(self, x):
        return module_body(self, x)

    f = hke.transform(
        hke.handlers.WithHaikuRandom.handling(lambda x: UsesRawTransform()(x))
    )
    return f.apply({}, jax.random.key(0), jnp.zeros(3))

  def test_next_key_under_raw_scan_is_an_error_naming_hk_scan(self):
    def body(module, x):
      def step(carry, _):
        return carry, jax.random.key_data(module.rng.next_key())

      return jax.lax.scan(step, 0, x)[1]

    with self.assertRaisesRegex(
        hke.RawTransformError,
        r"RandomEffect\.next_key\(\) at module 'uses_raw_transform', "
        r"attribute 'rng'.*hk\.scan",
    ):
      self._apply(body)

  def test_next_key_under_raw_vmap_is_an_error_naming_hk_vmap(self):
    def body(module, x):
      return jax.vmap(lambda _: jax.random.key_data(module.rng.next_key()))(x)

    with self.assertRaisesRegex(
        hke.RawTransformError, r"jax\.vmap.*Use the Haiku wrapper.*hk\.vmap"
    ):
      self._apply(body)


if __name__ == "__main__":
  absltest.main()
