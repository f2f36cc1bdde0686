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
"""Tests of the side-output effect (_src/effects/side_output/side_output.py) and
of the carriers that bring told values out of Haiku wrappers
(_src/effects/side_output/side_output_transport.py)."""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke
from hk_effects._src.core import binding
from hk_effects._src.effects.side_output import side_output_transport

Collect = hke.handlers.CollectingSideOutputs
X = jnp.array([1.0, 2.0])


def _run(fn, x=X, jit=False, **handler_kwargs):
  """init + apply of Collect.handling(fn); returns (out, values)."""
  f = hke.transform_with_state(Collect.handling(fn, **handler_kwargs))
  params, state = f.init(jax.random.key(0), x)
  apply = jax.jit(f.apply) if jit else f.apply
  (out, values), _ = apply(params, state, jax.random.key(1), x)
  return out, values


def _summary(values):
  return [(v.path, v.tag) for v in values]


class Probe(hk.Module):
  """Tells its input under two tags."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.first = hke.SideOutputRequest("a")
    self.second = hke.SideOutputRequest("b")

  def __call__(self, x):
    self.first.tell(x)
    self.second.tell(2 * x)
    return x


def _three_tags(x):
  x = Probe()(x)
  return hke.TellIntermediate("c", name="last")(x + 1)


class CollectTest(parameterized.TestCase):

  def test_collects_all_tags_in_call_order_with_paths(self):
    _, values = _run(_three_tags)
    self.assertEqual(
        _summary(values),
        [
            ("probe/first", "a"),
            ("probe/second", "b"),
            ("last/intermediate", "c"),
        ],
    )
    np.testing.assert_array_equal(values[1].value, [2.0, 4.0])
    np.testing.assert_array_equal(values[2].value, [2.0, 3.0])

  def test_collects_one_tag(self):
    _, values = _run(_three_tags, tag="b")
    self.assertEqual(_summary(values), [("probe/second", "b")])

  def test_collects_tags_accepted_by_a_predicate(self):
    _, values = _run(_three_tags, tag_predicate=lambda t: t in ("a", "c"))
    self.assertEqual([v.tag for v in values], ["a", "c"])

  def test_returns_the_body_output_unchanged(self):
    out, _ = _run(_three_tags)
    np.testing.assert_array_equal(out, [2.0, 3.0])

  def test_unhandled_tell_is_a_no_op(self):
    f = hke.transform(_three_tags, apply_rng=False)
    np.testing.assert_array_equal(f.apply({}, X), [2.0, 3.0])

  def test_tags_not_claimed_are_no_ops(self):
    _, values = _run(_three_tags, tag="missing")
    self.assertEqual(values, [])

  def test_inner_collector_wins_for_its_tag(self):
    inner = Collect.handling(_three_tags, tag="a")
    outer = Collect.handling(inner)
    f = hke.transform(outer, apply_rng=False)
    (_, inner_values), outer_values = f.apply({}, X)
    self.assertEqual([v.tag for v in inner_values], ["a"])
    self.assertEqual([v.tag for v in outer_values], ["b", "c"])

  def test_functional_tell(self):
    def fn(x):
      hke.tell("norm", jnp.sum(x))
      return Probe()(x)

    _, values = _run(fn, tag="norm")
    self.assertEqual(_summary(values), [("~/tell", "norm")])
    self.assertEqual(float(values[0].value), 3.0)

  def test_functional_tell_without_collector_is_a_no_op(self):
    f = hke.transform(lambda x: (hke.tell("t", x), x)[1], apply_rng=False)
    np.testing.assert_array_equal(f.apply({}, X), X)

  def test_pytree_values(self):
    def fn(x):
      hke.tell("pair", {"x": x, "n": 3})
      return x

    _, values = _run(fn)
    np.testing.assert_array_equal(values[0].value["x"], X)
    self.assertEqual(int(values[0].value["n"]), 3)

  def test_bindings_lists_side_output_requests(self):
    table = hke.bindings(Collect.handling(_three_tags, handler_id="c"))(X)
    self.assertEqual(
        [
            (
                r.module_path,
                r.attribute_path,
                r.request.describe(),
                r.handler_id,
            )
            for r in table.rows
        ],
        [
            ("probe", "first", "side output 'a'", "c"),
            ("probe", "second", "side output 'b'", "c"),
            ("last", "intermediate", "side output 'c'", "c"),
        ],
    )


class PlacementTest(parameterized.TestCase):

  def test_scan_stacks_values(self):
    def fn(x):
      probe = hke.TellIntermediate("t")

      def body(c, xi):
        c = c + xi
        probe(c * x)
        return c, None

      return hk.scan(body, 0.0, jnp.arange(1.0, 4.0))[0]

    out, values = _run(fn)
    self.assertEqual(float(out), 6.0)
    self.assertLen(values, 1)
    np.testing.assert_array_equal(
        values[0].value, [[1.0, 2.0], [3.0, 6.0], [6.0, 12.0]]
    )

  def test_layer_stack_stacks_values_with_prefixed_paths(self):
    def layer(x):
      x = hk.Linear(2, w_init=jnp.ones, b_init=jnp.ones)(x)
      return hke.TellIntermediate("t")(x)

    def fn(x):
      y = hk.layer_stack(3, name="first")(layer)(x[None])
      return hk.layer_stack(2, name="second")(layer)(y)

    out, values = _run(fn)
    self.assertEqual(
        _summary(values),
        [
            ("first/tell_intermediate/intermediate", "t"),
            ("second/tell_intermediate/intermediate", "t"),
        ],
    )
    # [1, 2] -> 4 -> 9 -> 19 per unit (sum of inputs + 1).
    np.testing.assert_array_equal(values[0].value[:, 0, 0], [4.0, 9.0, 19.0])
    np.testing.assert_array_equal(values[1].value[:, 0, 0], [39.0, 79.0])
    np.testing.assert_array_equal(out, [[79.0, 79.0]])

  def test_vmap_batches_values(self):
    def fn(x):
      probe = hke.TellIntermediate("t")
      return hk.vmap(lambda r: probe(r * 2), split_rng=False)(x)

    x = jnp.arange(6.0).reshape(3, 2)
    _, values = _run(fn, x)
    np.testing.assert_array_equal(values[0].value, x * 2)

  def test_vmap_with_out_axes(self):
    def fn(x):
      probe = hke.TellIntermediate("t")
      return hk.vmap(lambda r: probe(r * 2), out_axes=1, split_rng=False)(x)

    x = jnp.arange(6.0).reshape(3, 2)
    out, values = _run(fn, x)
    np.testing.assert_array_equal(out, (x * 2).T)
    np.testing.assert_array_equal(values[0].value, x * 2)

  def test_remat_leaves_values_unchanged(self):
    def fn(x):
      probe = hke.TellIntermediate("t")
      return hk.remat(lambda v: probe(hk.Linear(2, w_init=jnp.ones)(v)))(x)

    f = hke.transform(Collect.handling(fn))
    params = f.init(jax.random.key(0), X)

    def loss(p):
      out, values = f.apply(p, None, X)
      return jnp.sum(out), values

    grads, values = jax.grad(loss, has_aux=True)(params)
    np.testing.assert_array_equal(values[0].value, [3.0, 3.0])
    np.testing.assert_array_equal(
        grads["linear"]["w"], [[1.0, 1.0], [2.0, 2.0]]
    )

  def test_scan_inside_vmap_stacks_then_batches(self):
    def fn(x):
      probe = hke.TellIntermediate("t")

      def row(r):
        return hk.scan(lambda c, xi: (probe(c + xi), None), 0.0, r)[0]

      return hk.vmap(row, split_rng=False)(x)

    x = jnp.arange(6.0).reshape(2, 3)
    _, values = _run(fn, x)
    np.testing.assert_array_equal(values[0].value, jnp.cumsum(x, axis=1))

  def test_dynamic_unroll_stacks_values(self):
    class Core(hk.RNNCore):

      def __init__(self):
        super().__init__()
        self.out = hke.SideOutputRequest("h")

      def __call__(self, x, prev):
        h = prev + x
        self.out.tell(h)
        return h, h

      def initial_state(self, batch_size):
        return jnp.zeros(())

    _, values = _run(
        lambda x: hk.dynamic_unroll(Core(), x, jnp.zeros(()), time_major=True)[
            0
        ]
    )
    np.testing.assert_array_equal(values[0].value, [1.0, 3.0])

  def test_tells_before_and_after_a_loop_keep_call_order(self):
    def fn(x):
      hke.tell("before", x)
      hk.scan(lambda c, xi: (c, hke.tell("inside", xi)), 0.0, x)
      hke.tell("after", x)
      return x

    _, values = _run(fn)
    self.assertEqual([v.tag for v in values], ["before", "inside", "after"])

  def test_jit_equals_no_jit(self):
    def fn(x):
      x = hk.nets.MLP([3, 2])(x[None])
      hk.scan(lambda c, xi: (c, hke.tell("s", xi * c)), 2.0, x[0])
      return hke.TellIntermediate("out")(x)

    out_a, values_a = _run(fn)
    out_b, values_b = _run(fn, jit=True)
    np.testing.assert_array_equal(out_a, out_b)
    self.assertEqual(_summary(values_a), _summary(values_b))
    for a, b in zip(values_a, values_b):
      np.testing.assert_array_equal(a.value, b.value)

  def test_vmap_of_the_whole_apply_batches_values(self):
    f = hke.transform(Collect.handling(_three_tags), apply_rng=False)
    xs = jnp.arange(6.0).reshape(3, 2)
    _, values = jax.vmap(lambda x: f.apply({}, x))(xs)
    np.testing.assert_array_equal(values[1].value, 2 * xs)

  def test_no_collector_keeps_haiku_programs_unchanged(self):
    def fn(x):
      return hk.scan(lambda c, xi: (c + xi, c), 0.0, x)

    with_patch = hke.transform(fn, apply_rng=False)
    original = hke.transform(
        lambda x: hk.scan.__wrapped__(lambda c, xi: (c + xi, c), 0.0, x),
        apply_rng=False,
    )
    self.assertEqual(
        str(jax.make_jaxpr(lambda x: with_patch.apply({}, x))(X)),
        str(jax.make_jaxpr(lambda x: original.apply({}, x))(X)),
    )

  def test_collector_without_tells_keeps_outputs(self):
    def fn(x):
      return hk.scan(lambda c, xi: (c + xi, c), 0.0, x)

    (carry, ys), values = _run(fn)
    self.assertEqual(float(carry), 3.0)
    np.testing.assert_array_equal(ys, [0.0, 1.0])
    self.assertEqual(values, [])


def _home(mode, x):
  probe = hke.TellIntermediate("t", mode=mode)
  probe(x)
  return probe(2 * x)


def _remat(mode, x):
  return hk.remat(lambda v: _home(mode, v))(x)


def _vmap(mode, x):
  return hk.vmap(lambda v: _home(mode, v), split_rng=False)(x)


def _scan(mode, x):
  probe = hke.TellIntermediate("t", mode=mode)
  return hk.scan(lambda c, i: (probe(x * i), None), x, jnp.arange(1.0, 4.0))


def _map(mode, x):
  probe = hke.TellIntermediate("t", mode=mode)
  return hk.map(lambda i: probe(x * i), jnp.arange(1.0, 4.0))


def _fori_loop(mode, x):
  probe = hke.TellIntermediate("t", mode=mode)
  return hk.fori_loop(0, 3, lambda i, v: (probe(x * (i + 1)), v)[1], x)


def _layer_stack(mode, x):
  def layer(c, i):
    return c, hke.TellIntermediate("t", mode=mode)(x * i)

  return hk.layer_stack(3, with_per_layer_inputs=True)(layer)(
      x, jnp.arange(1.0, 4.0)
  )


_X2 = jnp.array([[1.0, 2.0], [3.0, 4.0]])
# Sequential placements tell x, 2x (twice at one site) or x * i for i = 1..3.
_TWICE = {"append": [_X2, 2 * _X2], "last": [2 * _X2], "sum": [3 * _X2]}
_LOOP = {
    "append": [jnp.stack([_X2, 2 * _X2, 3 * _X2])],
    "last": [3 * _X2],
    "sum": [6 * _X2],
}


class ModeTest(parameterized.TestCase):

  @parameterized.product(
      mode=("append", "last", "sum"),
      placement=(
          ("home", _home, _TWICE),
          ("remat", _remat, _TWICE),
          ("vmap", _vmap, _TWICE),
          ("scan", _scan, _LOOP),
          ("map", _map, _LOOP),
          ("fori_loop", _fori_loop, _LOOP),
          ("layer_stack", _layer_stack, _LOOP),
      ),
  )
  def test_mode_in_placement(self, mode, placement):
    _, fn, expected = placement
    _, values = _run(lambda x: fn(mode, x), _X2)
    self.assertLen(values, len(expected[mode]))
    for value, want in zip(values, expected[mode]):
      np.testing.assert_array_equal(value.value, want)

  def test_last_in_a_reversed_scan_is_index_zero(self):
    def fn(x):
      probe = hke.TellIntermediate("t", mode="last")
      return hk.scan(
          lambda c, i: (probe(x * i), None),
          x,
          jnp.arange(1.0, 4.0),
          reverse=True,
      )

    _, values = _run(fn)
    np.testing.assert_array_equal(values[0].value, X)

  def test_last_in_an_empty_loop_tells_nothing(self):
    def fn(x):
      probe = hke.TellIntermediate("t", mode="last")
      return hk.fori_loop(0, 0, lambda i, v: probe(v), x)

    f = hke.transform(Collect.handling(fn), apply_rng=False)
    _, values = f.apply({}, X)
    self.assertEqual(values, [])

  def test_sum_of_sites_in_nested_loops(self):
    def fn(x):
      probe = hke.TellIntermediate("loss", mode="sum")

      def outer(c, i):
        return hk.scan(
            lambda c2, j: (c2, probe(i * j)), c, jnp.arange(1.0, 3.0)
        )

      return hk.scan(outer, x, jnp.arange(1.0, 4.0))

    _, values = _run(fn)
    self.assertEqual(float(values[0].value), 18.0)  # (1 + 2) * (1 + 2 + 3)


class ErrorTest(parameterized.TestCase):

  def test_unknown_mode(self):
    with self.assertRaisesRegex(ValueError, r"'stack'.*'append', 'last'"):
      hke.SideOutputRequest("t", mode="stack")

  def test_tag_and_predicate_together(self):
    with self.assertRaisesRegex(ValueError, "tag='a'.*pass one of them"):
      Collect.handling(lambda x: x, tag="a", tag_predicate=lambda t: True)

  def test_predicate_not_callable(self):
    with self.assertRaisesRegex(TypeError, "tag_predicate must be a callable"):
      Collect.handling(lambda x: x, tag_predicate="a")

  @parameterized.parameters(
      (
          "hk.while_loop",
          lambda f, x: x
          if hk.running_init()
          else hk.while_loop(lambda v: v[0] < 2.0, lambda v: f(v) + 1, x),
      ),
      (
          "hk.fori_loop with traced bounds",
          lambda f, x: hk.fori_loop(
              0, x[0].astype(jnp.int32), lambda i, v: f(v), x
          ),
      ),
  )
  def test_append_in_a_loop_of_unknown_length_says_what_to_do(self, name, use):
    def fn(x):
      return use(hke.TellIntermediate("t"), x)

    f = hke.transform(Collect.handling(fn), apply_rng=False)
    with self.assertRaisesRegex(
        hke.SideOutputPlacementError,
        "'t' \\(mode='append'\\) at module 'tell_intermediate'.*inside "
        f"{name}.*Use mode='last' or mode='sum'.*static length",
    ):
      jax.jit(f.apply)({}, X)  # Under jit the fori_loop bounds are traced.

  def test_raw_scan_inside_a_module_is_a_raw_transform_error(self):
    class RawScan(hk.Module):

      def __init__(self):
        super().__init__()
        self.out = hke.SideOutputRequest("t")

      def __call__(self, x):
        def body(c, xi):
          self.out.tell(c)
          return c + xi, None

        return jax.lax.scan(body, 0.0, x)[0]

    f = hke.transform(Collect.handling(lambda x: RawScan()(x)), apply_rng=False)
    with self.assertRaisesRegex(
        hke.RawTransformError, "SideOutputEffect.tell.*raw_scan.*hk.scan"
    ):
      f.apply({}, X)

  def test_raw_checkpoint_is_a_raw_transform_error(self):
    probe_fn = lambda v: hke.TellIntermediate("t")(v)
    f = hke.transform(
        Collect.handling(lambda x: jax.checkpoint(probe_fn)(x)), apply_rng=False
    )
    with self.assertRaisesRegex(hke.RawTransformError, "hk.remat"):
      f.apply({}, X)

  def test_unknown_haiku_wrapper(self):
    def fn(x):
      probe = hke.TellIntermediate("t")
      return hk.eval_shape(probe, x)

    f = hke.transform(Collect.handling(fn), apply_rng=False)
    with self.assertRaisesRegex(
        hke.SideOutputPlacementError,
        "inside hk.eval_shape, whose body cannot return extra outputs",
    ):
      f.apply({}, X)

  def test_sum_of_different_shapes(self):
    def fn(x):
      probe = hke.TellIntermediate("t", mode="sum")
      probe(x)
      return probe(x[:1])

    with self.assertRaisesRegex(
        ValueError, "mode='sum'.*tell_intermediate.*use mode='append'"
    ):
      _run(fn)

  def test_non_array_value(self):
    with self.assertRaisesRegex(
        TypeError, "'t' at module '~'.*'hello'.*not an array"
    ):
      _run(lambda x: (hke.tell("t", "hello"), x)[1])

  def test_delivery_after_the_collector_returned(self):
    handler = Collect.handling(lambda x: x, handler_id="gone")
    scope = binding.HandlerScope(handler)
    told = side_output_transport.Told(
        scope, binding.Site("m", "a"), "t", "append"
    )
    with self.assertRaisesRegex(
        hke.SideOutputPlacementError, "after its collector 'gone' returned"
    ):
      side_output_transport.deliver(told, X)

  def test_tell_through_a_stale_runtime_impl(self):
    kept = []

    class Keep(hk.Module):

      def __init__(self):
        super().__init__()
        self.out = hke.SideOutputRequest("t")

      def __call__(self, x):
        kept.append(self.out)
        return x

    f = hke.transform(Collect.handling(lambda x: Keep()(x)), apply_rng=False)
    f.apply({}, X)
    with self.assertRaisesRegex(hke.UnhandledEffectError, "after its handler"):
      kept[0].tell(X)


class TellReturnsItsValueTest(parameterized.TestCase):
  """``tell`` returns its value, handled or not (issue 18, item 1)."""

  def test_handled_tell_returns_the_value(self):
    class Site(hk.Module):

      def __init__(self):
        super().__init__(name="site")
        self.out = hke.SideOutputRequest("t")

      def __call__(self, x):
        return self.out.tell(x * 2) + 1

    f = hke.transform(Collect.handling(lambda x: Site()(x)), apply_rng=False)
    out, told = f.apply({}, X)
    np.testing.assert_array_equal(out, X * 2 + 1)
    np.testing.assert_array_equal(told[0].value, X * 2)

  def test_unhandled_tell_returns_the_value(self):
    np.testing.assert_array_equal(hke.SideOutputRequest("t").tell(X), X)
    f = hke.transform(lambda x: hke.tell("t", x + 1) * 3, apply_rng=False)
    np.testing.assert_array_equal(f.apply({}, X), (X + 1) * 3)

  def test_tell_intermediate_returns_its_input_inside_scan(self):
    def fn(x):
      probe = hke.TellIntermediate("t")
      return hk.scan(lambda c, _: (probe(c) + 1, None), x, None, length=3)[0]

    f = hke.transform(Collect.handling(fn), apply_rng=False)
    out, told = f.apply({}, X)
    np.testing.assert_array_equal(out, X + 3)
    np.testing.assert_array_equal(told[0].value, np.stack([X, X + 1, X + 2]))


class IsCollectedTest(parameterized.TestCase):
  """``hke.is_collected`` lets a value that exists only to be told cost
  nothing when nobody collects it."""

  class Metered(hk.Module):

    def __init__(self, guarded, name=None):
      super().__init__(name=name)
      self.guarded = guarded
      self.norm = hke.SideOutputRequest("norm")

    def __call__(self, x):
      h = jnp.tanh(x)
      if not self.guarded or hke.is_collected("norm"):
        self.norm.tell(jnp.sqrt(jnp.sum(h**2)))
      return h

  def _jaxpr(self, forward, collect=False):
    if collect:
      forward = hke.handlers.CollectingSideOutputs.handling(forward)
    f = hke.transform(forward, apply_rng=False)
    return jax.make_jaxpr(f.apply)({}, jnp.ones(3))

  def test_guarded_metric_adds_no_equation_without_collector(self):
    plain = self._jaxpr(lambda x: jnp.tanh(x))  # pylint: disable=unnecessary-lambda
    unguarded = self._jaxpr(lambda x: self.Metered(False)(x))
    guarded = self._jaxpr(lambda x: self.Metered(True)(x))
    # The tell itself costs nothing; its value's expression does.
    self.assertLen(unguarded.eqns, len(plain.eqns) + 3)
    self.assertEqual(str(guarded), str(plain))

  def test_guarded_metric_is_told_to_a_collector(self):
    f = hke.transform(
        hke.handlers.CollectingSideOutputs.handling(
            lambda x: self.Metered(True)(x)
        ),
        apply_rng=False,
    )
    _, values = f.apply({}, jnp.full([4], 2.0))
    self.assertEqual([v.path for v in values], ["metered/norm"])
    np.testing.assert_allclose(values[0].value, 2.0 * np.tanh(2.0), rtol=1e-6)

  def test_answers_per_tag_and_handler(self):
    answers = []

    def forward(x):
      answers.append((hke.is_collected("a"), hke.is_collected("b")))
      return x

    hke.transform(forward, apply_rng=False).apply({}, 0.0)
    for handler in (
        hke.handlers.CollectingSideOutputs.handling(forward, tag="a"),
        hke.handlers.CollectingSideOutputs.handling(
            forward, tag_predicate=lambda t: t == "b"
        ),
        hke.handlers.CollectingSideOutputs.handling(forward),
    ):
      hke.transform(handler, apply_rng=False).apply({}, 0.0)
    self.assertEqual(
        answers, [(False, False), (True, False), (False, True), (True, True)]
    )
    self.assertFalse(hke.is_collected("a"))  # Outside any transform.

  def test_inside_scan_under_a_collector(self):
    def forward(xs):
      def body(c, x):
        if hke.is_collected("h"):
          hke.tell("h", c * x)
        return c + x, None

      return hk.scan(body, jnp.zeros([]), xs)[0]

    f = hke.transform(
        hke.handlers.CollectingSideOutputs.handling(forward), apply_rng=False
    )
    _, values = f.apply({}, jnp.arange(1.0, 4.0))
    np.testing.assert_allclose(values[0].value, [0.0, 2.0, 9.0])


if __name__ == "__main__":
  absltest.main()
