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
"""The bad-input matrix: every misuse raises a clear error (docs/design.md, 9).

Each row triggers one misuse and names the exception type it must raise and
the strings its message must contain: the offending value and the fix. No
row may raise an AssertionError, a bare KeyError or AttributeError from
inside the library, or an UnexpectedTracerError, and no error may leave
global state behind.
"""

from __future__ import annotations

from typing import Any, Callable

from absl.testing import absltest
from absl.testing import parameterized
import haiku as hk
import jax
import jax.numpy as jnp
from test_utils import global_state_left
from test_utils import nothing_left

import hk_effects as hke

H = hke.handlers
X = jnp.ones([2])


def key() -> jax.Array:
  """A fresh key each time: JAX's key-reuse checker marks used keys."""
  return jax.random.key(0)


COUNT = "~local_state/count"


class Draw(hk.Module):

  def __init__(self, request=None, name=None):
    super().__init__(name=name)
    self.rng = request if request is not None else hke.RandomRequest()

  def __call__(self, x):
    return x + jax.random.uniform(self.rng.next_key(), x.shape)


class Ask(hk.Module):

  def __init__(self, tag="mask", name=None):
    super().__init__(name=name)
    self.mask = hke.SideInputRequest(tag)

  def __call__(self, x):
    return x * self.mask.ask()


class Tell(hk.Module):

  def __init__(self, tag="out", mode="append", name=None):
    super().__init__(name=name)
    self.out = hke.SideOutputRequest(tag, mode)

  def __call__(self, x):
    self.out.tell(x)
    return x


class Counter(hk.Module):

  def __init__(
      self, state_name=None, initializer=None, name=None, request=None, step=1.0
  ):
    super().__init__(name=name)
    self.step = step
    self.count = request or hke.InitialLocalStateRequest(
        initializer or (lambda: jnp.zeros([])), "count", name=state_name
    )

  def __call__(self, x):
    self.count.set(self.count.get() + self.step)
    return x


def _apply(handler, arg=X, with_rng=True):
  """init and apply of ``handler`` under hke.transform, each with a fresh key."""
  f = hke.transform(handler)
  rng = key if with_rng else lambda: None
  return f.apply(f.init(rng(), arg), rng(), arg)


def _apply_with_state(handler, arg=X, states=None):
  f = hke.transform_with_state(handler)
  params, state = f.init(key(), arg)
  return f.apply(params, state if states is None else states(state), key(), arg)


def _counter(x):
  return Counter()(x)


def _boom(_):
  raise RuntimeError("boom")


def _reentered():
  handler = None

  def body(x):
    return handler(x)

  handler = H.WithHaikuRandom.handling(body, handler_id="again")
  return _apply(handler)


def _told_after_collector_returned():
  stash = []

  def body(x):
    class Stash(hk.Module):

      def __init__(self):
        super().__init__()
        self.out = hke.SideOutputRequest("t")

      def __call__(self, y):
        stash.append(self.out)
        return y

    H.CollectingSideOutputs.handling(lambda y: Stash()(y))(x)
    stash[0].tell(x)
    return x

  return _apply(body)


# (name, thunk, exception type, strings its message must contain)
MATRIX: list[
    tuple[str, Callable[[], Any], type[Exception], tuple[str, ...]]
] = [
    # Input tuples.
    (
        "input_tuple_too_short",
        lambda: _apply(
            H.WithSideInputsFromInputTuple.handling(
                lambda x: Ask("mask")(x) + Ask("pos")(x), ("mask", "pos")
            ),
            (X, 1.0),
        ),
        ValueError,
        ("<'mask'>, <'pos'>", "a tuple of 2", "Pass one value per tag"),
    ),
    (
        "input_tuple_not_a_tuple",
        lambda: _apply(
            H.WithSideInputsFromInputTuple.handling(lambda x: x, ("mask",)), X
        ),
        ValueError,
        ("(2 items)", "Pass one value per tag"),
    ),
    (
        "key_from_arg_without_a_key",
        lambda: _apply(H.WithRandomKeyFromArg.handling(lambda x: Draw()(x)), X),
        ValueError,
        ("must be called with a pair (arg, key)",),
    ),
    # Side-input tags.
    (
        "missing_side_input_tag",
        lambda: _apply(
            H.WithConstantSideInputs.handling(
                lambda x: Ask("mask")(x), {"pos": 1.0}, keep_unused=True
            )
        ),
        hke.UnhandledEffectError,
        (
            "module 'ask', attribute 'mask'",
            "SideInputRequest(tag='mask')",
            "WithConstantSideInputs.handling",
        ),
    ),
    (
        "tags_given_as_a_string",
        lambda: H.WithSideInputsFromInputTuple.handling(lambda x: x, "mask"),
        ValueError,
        ("'mask'", "tags=('mask',)"),
    ),
    (
        "duplicate_tags",
        lambda: H.WithSideInputsFromInputTuple.handling(
            lambda x: x, ("a", "a")
        ),
        ValueError,
        ("('a', 'a')", "list each tag once"),
    ),
    (
        "unused_constant_side_input_when_strict",
        lambda: _apply(
            H.WithConstantSideInputs.handling(
                lambda x: Ask("mask")(x),
                {"mask": 1.0, "msak": 2.0},
                strict=True,
            )
        ),
        ValueError,
        ("['msak']", "strict=True"),
    ),
    (
        "side_inputs_not_a_dict",
        lambda: H.WithConstantSideInputs.handling(lambda x: x, [("a", 1.0)]),
        TypeError,
        ("[('a', 1.0)]", "dict {tag: value}"),
    ),
    # Side-input values.
    (
        "constant_side_input_not_an_array",
        lambda: H.WithConstantSideInputs.handling(lambda x: x, {"mask": "all"}),
        TypeError,
        ("'mask'", "'all'", "jnp.asarray"),
    ),
    (
        "tuple_side_input_not_an_array",
        lambda: _apply(
            H.WithSideInputsFromInputTuple.handling(
                lambda x: Ask("mask")(x), ("mask",)
            ),
            (X, {"m": None, "o": object}),
        ),
        TypeError,
        ("'mask'", "jnp.asarray"),
    ),
    # Local-state mappings given to apply. (Missing entries are created from
    # their initializers and extra ones pass through, as in Haiku.)
    (
        "shared_state_missing_from_apply_state",
        lambda: _apply_with_state(
            H.handle_local_states(
                lambda x: Counter(
                    request=hke.SharedLocalStateRequest("cache", "count")
                )(x)
                if not hk.running_init()
                else x
            ),
            states=lambda s: {},
        ),
        ValueError,
        (
            "'cache'",
            "'~local_state/count'",
            "pass apply the state returned by init",
        ),
    ),
    (
        "state_entry_of_wrong_dtype",
        lambda: _apply_with_state(
            H.handle_local_states(_counter),
            states=lambda s: {
                COUNT: {"counter:count": jnp.zeros([3], jnp.int32)}
            },
        ),
        ValueError,
        ("'counter:count'", "int32", "pass the state returned by init"),
    ),
    (
        "state_set_to_a_wrong_shape",
        lambda: _apply_with_state(
            H.handle_local_states(lambda x: Counter(step=jnp.ones([3]))(x))
        ),
        ValueError,
        ("'counter:count'", "cast or reshape"),
    ),
    # Sharing.
    (
        "duplicate_state_names_forbidden",
        lambda: _apply_with_state(
            H.handle_local_states(
                lambda x: Counter("total", name="a")(
                    Counter("total", name="b")(x)
                )
            )
        ),
        ValueError,
        ("'total'", "module 'a'", "module 'b'", "state_sharing='allowed'"),
    ),
    (
        "different_initializers_allowed",
        lambda: _apply_with_state(
            H.handle_local_states(
                lambda x: Counter("total", name="a")(
                    Counter("total", name="b")(x)
                ),
                state_sharing="allowed",
            )
        ),
        ValueError,
        ("'total'", "same initializer object"),
    ),
    (
        "shared_state_nobody_created",
        lambda: _apply_with_state(
            H.handle_local_states(
                lambda x: Counter(
                    request=hke.SharedLocalStateRequest("cache", "count")
                )(x)
            )
        ),
        ValueError,
        ("'cache'", "InitialLocalStateRequest(..., name='cache')"),
    ),
    (
        "unknown_sharing_level",
        lambda: H.handle_local_states(_counter, state_sharing="sometimes"),
        ValueError,
        ("'sometimes'", "'forbidden'"),
    ),
    (
        "local_states_under_stateless_transform",
        lambda: _apply(H.handle_local_states(_counter)),
        ValueError,
        ("'counter:count'", "hke.transform_with_state"),
    ),
    (
        "frozen_states_missing_an_entry",
        lambda: _apply(
            H.freeze_local_states(H.handle_local_states(_counter), {})
        ),
        ValueError,
        ("'counter:count'", "Pass the state mapping"),
    ),
    # Handler ids.
    (
        "colliding_handler_ids",
        lambda: _apply(
            H.WithHaikuRandom.handling(
                H.WithConstantSideInputs.handling(
                    lambda x: Draw()(x), {}, handler_id="ids"
                ),
                handler_id="ids",
            )
        ),
        ValueError,
        ("'ids'", "handler_id="),
    ),
    (
        "handler_applied_inside_its_own_body",
        _reentered,
        ValueError,
        ("'again'", "handler_id="),
    ),
    (
        "handler_id_not_a_string",
        lambda: H.WithHaikuRandom.handling(lambda x: x, handler_id=3),
        TypeError,
        ("got 3", "string"),
    ),
    (
        "body_not_callable",
        lambda: H.CollectingSideOutputs.handling("forward"),
        TypeError,
        ("'forward'", "callable body"),
    ),
    # Keys.
    (
        "key_from_arg_not_a_key",
        lambda: _apply(
            H.WithRandomKeyFromArg.handling(lambda x: Draw()(x)), (X, 3)
        ),
        TypeError,
        ("got 3", "jax.random.key(seed)"),
    ),
    (
        "frozen_key_not_a_key",
        lambda: H.WithFrozenRandomState.handling(lambda x: x, jnp.ones([2])),
        TypeError,
        ("Array([1., 1.]", "jax.random.key(seed)"),
    ),
    (
        "stateful_key_not_a_key",
        lambda: H.WithStatefulRandomKey.handling(lambda x: x, None),
        TypeError,
        ("got None", "jax.random.key(seed)"),
    ),
    (
        "negative_starting_offset",
        lambda: H.WithFrozenRandomState.handling(lambda x: x, key(), -1),
        ValueError,
        ("-1", "non-negative int"),
    ),
    (
        "haiku_random_without_an_rng",
        lambda: _apply(
            H.WithHaikuRandom.handling(lambda x: Draw()(x)), with_rng=False
        ),
        ValueError,
        ("module 'draw', attribute 'rng'", "pass a key as `rng`"),
    ),
    # Per-device RNG.
    (
        "fold_in_axis_outside_pmap",
        lambda: _apply(
            H.WithHaikuRandom.handling(
                lambda x: Draw()(x), fold_in_axis="devices"
            )
        ),
        ValueError,
        (
            "fold_in_axis='devices'",
            "jax.pmap(..., axis_name=...)",
            "fold_in_axis=None",
        ),
    ),
    (
        "fold_in_axis_not_a_name",
        lambda: H.WithFrozenRandomState.handling(
            lambda x: x, key(), fold_in_axis=0
        ),
        TypeError,
        ("got 0", "a str"),
    ),
    # Runtime implementations and refs past their handler.
    (
        "side_output_impl_used_after_its_collector_returned",
        _told_after_collector_returned,
        hke.UnhandledEffectError,
        ("was used after its handler", "do not store them"),
    ),
    # Requests with the wrong handler, or the wrong method.
    (
        "side_input_request_under_a_random_handler",
        lambda: _apply(H.WithHaikuRandom.handling(lambda x: Ask("mask")(x))),
        hke.UnhandledEffectError,
        ("SideInputRequest(tag='mask')", "WithConstantSideInputs.handling"),
    ),
    (
        "tagged_random_request_under_an_untagged_handler",
        lambda: _apply(
            H.WithHaikuRandom.handling(
                lambda x: Draw(hke.TaggedRandomRequest("noise"))(x)
            )
        ),
        hke.UnhandledEffectError,
        ("TaggedRandomRequest(tag='noise')", "tag / predicate / category"),
    ),
    (
        "method_of_another_effect",
        lambda: _apply(
            H.WithConstantSideInputs.handling(
                lambda x: Draw(hke.SideInputRequest("mask"))(x), {"mask": 1.0}
            )
        ),
        AttributeError,
        (
            "'next_key'",
            "SideInputEffect",
            "['ask']",
            "module 'draw', attribute 'rng'",
        ),
    ),
    # Predicates that raise.
    (
        "hole_predicate_raises",
        lambda: _apply(
            H.WithHaikuRandom.handling(
                lambda x: Draw()(x), hole_predicate=lambda r: r.tag == "a"
            )
        ),
        TypeError,
        (
            "AttributeError",
            "RandomRequest()",
            "module 'draw', attribute 'rng'",
            "return False",
        ),
    ),
    (
        "tag_predicate_raises",
        lambda: _apply(
            H.CollectingSideOutputs.handling(
                lambda x: Tell()(x), tag_predicate=_boom
            )
        ),
        TypeError,
        ("RuntimeError: boom", "SideOutputRequest(tag='out'", "return False"),
    ),
    (
        "tag_predicate_raises_on_functional_tell",
        lambda: _apply(
            H.CollectingSideOutputs.handling(
                lambda x: (hke.tell("t", x), x)[1], tag_predicate=_boom
            )
        ),
        TypeError,
        ("RuntimeError: boom", "SideOutputRequest(tag='t'", "return False"),
    ),
    (
        "category_predicate_raises",
        lambda: _apply_with_state(
            H.handle_local_states(
                _counter, category_predicate=lambda c: c.startswith(0)
            )
        ),
        TypeError,
        (
            "TypeError",
            "InitialLocalStateRequest",
            "module 'counter', attribute 'count'",
            "return False",
        ),
    ),
    (
        "predicate_not_callable",
        lambda: H.WithHaikuRandom.handling(lambda x: x, hole_predicate="noise"),
        TypeError,
        ("'noise'", "hke.handlers.tagged('name')"),
    ),
    # Side outputs.
    (
        "unknown_side_output_mode",
        lambda: hke.SideOutputRequest("t", "max"),
        ValueError,
        ("'max'", "'append'"),
    ),
    (
        "told_value_not_an_array",
        lambda: _apply(
            H.CollectingSideOutputs.handling(lambda x: Tell()("text"))
        ),
        TypeError,
        ("'text'", "module 'tell', attribute 'out'", "jnp.asarray"),
    ),
    (
        "summed_values_of_different_shapes",
        lambda: _apply(
            H.CollectingSideOutputs.handling(
                lambda x: [hke.tell("t", v, "sum") for v in (x, x[:1])]
            )
        ),
        ValueError,
        ("(2,)", "(1,)", "mode='append'"),
    ),
    (
        "told_with_two_shapes_in_two_branches",
        lambda: _apply(
            H.CollectingSideOutputs.handling(
                lambda x: hk.switch(
                    0, [lambda y: Tell()(y), lambda y: (Tell()(y[:1]), y)[1]], x
                )
            )
        ),
        hke.SideOutputPlacementError,
        (
            "hk.switch",
            "module 'tell'",
            "branch 0 told float32[2]",
            "branch 1 told float32[1]",
        ),
    ),
    (
        "appended_inside_hk_while_loop",
        lambda: _apply(
            H.CollectingSideOutputs.handling(
                lambda x: x
                if hk.running_init()
                else hk.while_loop(
                    lambda y: y[0] < 3, lambda y: Tell()(y) + 1, x
                )
            )
        ),
        hke.SideOutputPlacementError,
        ("hk.while_loop", "module 'tell'", "mode='last' or mode='sum'"),
    ),
    (
        "tag_and_tag_predicate",
        lambda: H.CollectingSideOutputs.handling(
            lambda x: x, tag="a", tag_predicate=bool
        ),
        ValueError,
        ("tag='a'", "pass one of them"),
    ),
    # Outside any transform.
    (
        "module_created_outside_any_transform",
        lambda: Draw(),
        ValueError,
        ("hk.transform",),
    ),
    (
        "request_used_outside_any_transform",
        lambda: hke.RandomRequest().next_key(),
        hke.UnhandledEffectError,
        ("RandomRequest().next_key()", "WithHaikuRandom.handling"),
    ),
    (
        "key_handler_called_outside_any_transform",
        lambda: H.WithFrozenRandomState.handling(lambda x: x, key())(X),
        ValueError,
        ("WithFrozenRandomState", "hke.transform(...)"),
    ),
    (
        "local_state_handler_called_outside_any_transform",
        lambda: H.handle_local_states(lambda x: x)(X),
        ValueError,
        ("WithFunctionalLocalState", "hke.transform_with_state"),
    ),
]

FORBIDDEN = (AssertionError, KeyError, jax.errors.UnexpectedTracerError)


class BadInputTest(parameterized.TestCase):

  @parameterized.named_parameters(
      (name, thunk, error, mentions) for name, thunk, error, mentions in MATRIX
  )
  def test_raises_a_clear_error(self, thunk, error, mentions):
    with self.assertRaises(Exception) as caught:
      thunk()
    exception = caught.exception
    self.assertIs(type(exception), error, repr(exception))
    self.assertNotIsInstance(exception, FORBIDDEN)
    for mention in mentions:
      self.assertIn(mention, str(exception))
    self.assertEqual(global_state_left(), nothing_left())

  @parameterized.parameters("inner_first", "outer_first")
  def test_states_of_sibling_local_state_handlers_are_not_extra(self, order):
    # Two sub-models handled separately in one forward function: neither
    # handler may call the other's states "extra" in apply.
    def forward(x):
      c0 = H.handle_local_states(lambda y: Counter(name="a")(y))
      every = H.handle_local_states(
          lambda y: Counter(
              request=hke.InitialLocalStateRequest(
                  lambda: jnp.zeros([]), "other"
              ),
              name="b",
          )(y)
      )
      return every(c0(x)) if order == "inner_first" else c0(every(x))

    _, states = _apply_with_state(forward)
    self.assertEqual(
        {k: {n: float(v) for n, v in e.items()} for k, e in states.items()},
        {COUNT: {"a:count": 1.0}, "~local_state/other": {"b:count": 1.0}},
    )

  def test_extra_state_passes_through_under_plain_haiku_transform_too(self):
    f = hk.transform_with_state(H.handle_local_states(_counter))
    params, state = f.init(key(), X)
    stray = jnp.arange(2.0)
    _, state = f.apply(
        params, {COUNT: {**state[COUNT], "stray": stray}}, key(), X
    )
    self.assertEqual(state[COUNT]["stray"].tolist(), [0.0, 1.0])
    self.assertEqual(float(state[COUNT]["counter:count"]), 1.0)

  def test_a_raising_predicate_keeps_its_exception_as_the_cause(self):
    with self.assertRaises(TypeError) as caught:
      _apply(
          H.CollectingSideOutputs.handling(
              lambda x: Tell()(x), tag_predicate=_boom
          )
      )
    self.assertIsInstance(caught.exception.__cause__, RuntimeError)

  def test_the_same_handler_called_twice_in_sequence_is_fine(self):
    handler = H.WithConstantSideInputs.handling(
        lambda x: Ask()(x), {"mask": 3.0}
    )
    out = _apply(lambda x: handler(handler(x)))
    self.assertEqual(out.tolist(), [9.0, 9.0])

  def test_a_helper_wrapping_twice_gives_distinct_inferred_ids(self):
    def collect(body):
      return H.CollectingSideOutputs.handling(lambda x: body(x))

    outer = collect(collect(lambda x: Tell()(x)))
    (_, inner_told), outer_told = _apply(outer)
    self.assertNotEqual(
        outer.handler_id, outer.body.__closure__[0].cell_contents.handler_id
    )
    self.assertEqual([v.path for v in inner_told], ["tell/out"])
    self.assertEqual(outer_told, [])


if __name__ == "__main__":
  absltest.main()
