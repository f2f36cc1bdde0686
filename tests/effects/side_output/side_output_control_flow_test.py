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
"""Side outputs told inside hk.cond / hk.switch branches and while loops.

Written as a Haiku user writes them: an auxiliary loss told by the branch
that runs, a probe in one expert of a switch, statistics summed over a
while loop, a branch inside a scan inside a vmap; values checked against the
same computation written out by hand.
"""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import conftest  # pylint: disable=unused-import  # Key-reuse checker, alone.
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

Collect = hke.handlers.CollectingSideOutputs
X = jnp.array([1.0, -2.0, 3.0])


def _collect(forward, jit=True):
  f = hke.transform(Collect.handling(forward))
  params = f.init(None, *_example(forward))  # No rng: see the note below.
  apply = jax.jit(f.apply) if jit else f.apply
  return lambda *args: apply(params, None, *args)


# (Haiku's own hk.cond inside hk.scan inside hk.vmap at init, given an rng,
# trips JAX's key-reuse checker, with or without hk_effects: these models
# draw no key, so init gets none.)


def _example(forward):
  return getattr(forward, "example", (X,))


class Gate(hk.Module):
  """A linear layer that tells its output's mean square as an aux loss."""

  def __init__(self, name=None):
    super().__init__(name=name)
    self.loss = hke.SideOutputRequest("aux_loss", mode="sum")

  def __call__(self, x):
    y = hk.Linear(3, w_init=hk.initializers.Constant(0.5))(x)
    self.loss.tell(jnp.mean(y**2))
    return y


class BranchTest(parameterized.TestCase):

  @parameterized.parameters(True, False)
  def test_a_site_told_in_one_branch_has_present_false_where_not_taken(
      self, jit
  ):
    def forward(x):
      gate = Gate()
      if hk.running_init():
        gate(x)  # Haiku's idiom: create the branch's params before cond.
      return hk.cond(jnp.sum(x) > 0, gate, lambda v: v, x)

    apply = _collect(forward, jit)
    out, told = apply(X)
    (loss,) = told
    self.assertEqual((loss.path, loss.tag), ("gate/loss", "aux_loss"))
    np.testing.assert_allclose(loss.value, jnp.mean(out**2), rtol=1e-6)
    self.assertTrue(bool(loss.present))
    out, told = apply(-X)
    np.testing.assert_array_equal(out, -X)
    np.testing.assert_array_equal(told[0].value, 0.0)
    self.assertFalse(bool(told[0].present))

  def test_a_site_told_in_every_branch_is_the_taken_branch_value(self):
    def forward(x):
      probe = hke.TellIntermediate("act")
      return hk.cond(x[0] > 0, lambda: probe(2 * x), lambda: probe(-x))

    apply = _collect(forward)
    _, told = apply(X)
    np.testing.assert_array_equal(told[0].value, 2 * X)
    _, told = apply(-X)
    np.testing.assert_array_equal(told[0].value, X)
    # Told in every branch: present is the static True, no extra output.
    self.assertIs(told[0].present, np.True_)
    self.assertLen(jax.tree_util.tree_leaves(told), 1)

  def test_sum_and_last_combine_across_the_branch_like_straight_line_code(self):
    def forward(arg):
      x, index = arg
      total = hke.TellIntermediate("total", mode="sum", name="total")
      final = hke.TellIntermediate("final", mode="last", name="final")
      total(x)
      final(x)
      return hk.switch(
          index, [lambda: total(10 * x), lambda: final(-x), lambda: x]
      )

    forward.example = ((X, 0),)
    apply = _collect(forward)
    for index, want_total, want_final in (
        (0, 11 * X, X),
        (1, X, -X),
        (2, X, X),
    ):
      _, (total, final) = apply((X, index))
      np.testing.assert_array_equal(total.value, want_total)
      np.testing.assert_array_equal(final.value, want_final)
      # Both were told before the switch, so they are always present.
      self.assertEqual((bool(total.present), bool(final.present)), (True, True))

  def test_append_gives_one_entry_per_tell_in_the_branches(self):
    def forward(arg):
      x, index = arg
      probe = hke.TellIntermediate("act")

      def twice():
        return probe(probe(x) + 1)

      return hk.switch(index, [twice, lambda: probe(x)])

    forward.example = ((X, 0),)
    apply = _collect(forward)
    _, told = apply((X, 0))
    self.assertLen(told, 2)
    np.testing.assert_array_equal(told[0].value, X)
    np.testing.assert_array_equal(told[1].value, X + 1)
    self.assertEqual([bool(v.present) for v in told], [True, True])
    _, told = apply((X, 1))
    np.testing.assert_array_equal(told[0].value, X)
    np.testing.assert_array_equal(told[1].value, 0 * X)
    self.assertEqual([bool(v.present) for v in told], [True, False])

  def test_mismatched_structures_name_the_site_branches_and_structures(self):
    def forward(x):
      probe = hke.TellIntermediate("act")
      return hk.cond(
          x[0] > 0, lambda: probe(x), lambda: (probe({"a": x[:2]}), x)[1]
      )

    with self.assertRaisesRegex(
        hke.SideOutputPlacementError,
        r"'act' \(mode='append'\) at module 'tell_intermediate'.*branches of "
        r"hk\.cond: true_fun told float32\[3\], false_fun told "
        r"\{a: float32\[2\]\}",
    ):
      _collect(forward)(X)

  @parameterized.named_parameters(
      ("cond", lambda x: hk.cond(x[0] > 0, lambda: 2 * x, lambda: x)),
      (
          "switch",
          lambda x: hk.switch(
              1,
              [lambda: 2 * x, lambda: x],
          ),
      ),
      (
          "while_loop",
          lambda x: x
          if hk.running_init()
          else hk.while_loop(lambda v: v[0] < 9, lambda v: 2 * v, x),
      ),
      (
          "fori_loop_traced",
          lambda x: hk.fori_loop(
              0, x.shape[0] + x[0].astype(jnp.int32), lambda i, v: 2 * v, x
          ),
      ),
  )
  def test_a_body_that_tells_nothing_adds_nothing_to_the_program(self, wrapped):
    def forward(x):
      hke.tell("before", x)  # A collector runs, so the boundary is crossed.
      return wrapped(x)

    collected = hke.transform(Collect.handling(forward)).apply
    plain = hke.transform(wrapped).apply
    control = lambda f: [
        str(e)
        for e in jax.make_jaxpr(f)({}, None, X).eqns  # pylint: disable=g-long-lambda
        if e.primitive.name in ("cond", "while")
    ]
    self.assertNotEmpty(control(plain))
    self.assertEqual(control(collected), control(plain))

  def test_retracing_the_branches_keeps_state_and_keys_right(self):
    class Counted(hk.Module):

      def __init__(self, name=None):
        super().__init__(name=name)
        self.count = hke.InitialLocalStateRequest(
            lambda: jnp.zeros([]), "counters"
        )
        self.rng = hke.RandomRequest()

      def __call__(self, x):
        self.count.set(self.count.get() + 1)
        return x + jax.random.uniform(self.rng.next_key(), x.shape)

    def model(tell):
      def forward(x):
        counted = Counted()
        if hk.running_init():
          return counted(x)
        probe = hke.TellIntermediate("t")
        # Only the true branch tells: the branches are traced twice.
        return hk.cond(
            x[0] > 0,
            lambda v: probe(counted(v)) if tell else counted(v),
            counted,
            x,
        )

      return hke.transform_with_state(
          hke.handlers.WithHaikuRandom.handling(
              hke.handlers.handle_local_states(Collect.handling(forward)),
              path_keys=True,
          )
      )

    results = []
    for tell in (True, False):
      f = model(tell)
      params, state = f.init(jax.random.key(0), X)
      (out, told), new_state = jax.jit(f.apply)(
          params, state, jax.random.key(1), X
      )
      self.assertLen(told, 1 if tell else 0)
      (before,), (after,) = map(jax.tree_util.tree_leaves, (state, new_state))
      results.append((out, after - before))
    # The same draw, and one increment, with the branches traced twice.
    np.testing.assert_array_equal(results[0][0], results[1][0])
    self.assertEqual([float(r[1]) for r in results], [1.0, 1.0])


class LoopTest(parameterized.TestCase):

  def test_while_loop_carries_sum_and_last(self):
    def forward(x):
      total = hke.TellIntermediate("total", mode="sum", name="total")
      final = hke.TellIntermediate("final", mode="last", name="final")

      def body(state):
        step, v = state
        total(v)
        final(step)
        return step + 1, v / 2

      if hk.running_init():
        return x
      return hk.while_loop(
          lambda s: jnp.max(jnp.abs(s[1])) > 0.5, body, (0, x)
      )[1]

    _, (total, final) = _collect(forward)(X)
    # Halving 3.0 until every |v| <= 0.5 takes 3 steps: 3, 1.5, 0.75.
    np.testing.assert_allclose(total.value, X * (1 + 0.5 + 0.25))
    self.assertEqual(int(final.value), 2)
    self.assertEqual((bool(total.present), bool(final.present)), (True, True))
    _, (total, final) = _collect(forward)(X / 10)  # No iteration runs.
    np.testing.assert_array_equal(total.value, 0 * X)
    self.assertEqual((bool(total.present), bool(final.present)), (False, False))

  def test_fori_loop_with_traced_bounds_sums_under_jit(self):
    def forward(arg):
      x, n = arg
      total = hke.TellIntermediate("total", mode="sum")
      return hk.fori_loop(0, n, lambda i, v: (total(v * i), v)[1], x)

    forward.example = ((X, 4),)
    f = hke.transform(Collect.handling(forward))
    params = jax.jit(f.init)(jax.random.key(0), (X, 4))
    _, (total,) = jax.jit(f.apply)(params, None, (X, 4))
    np.testing.assert_allclose(total.value, X * (0 + 1 + 2 + 3))

  def test_a_conditional_tell_in_a_while_loop_keeps_the_last_taken(self):
    def forward(x):
      final = hke.TellIntermediate("final", mode="last")
      if hk.running_init():
        return x

      def body(state):
        step, v = state
        v = hk.cond(step % 2 == 0, lambda: final(v * step), lambda: v)
        return step + 1, v

      return hk.while_loop(lambda s: s[0] < 4, body, (0, x))[1]

    _, (final,) = _collect(forward)(X)
    np.testing.assert_array_equal(final.value, 0 * X)  # Steps 0 and 2.
    self.assertTrue(bool(final.present))

  def test_a_tell_in_cond_fun_says_it_belongs_in_body_fun(self):
    def forward(x):
      probe = hke.TellIntermediate("norm")
      if hk.running_init():
        return x
      return hk.while_loop(
          lambda v: probe(jnp.max(jnp.abs(v))) > 0.5, lambda v: v / 2, x
      )

    with self.assertRaisesRegex(
        hke.RawTransformError,
        r"^SideOutputEffect\.tell\(\) at module 'tell_intermediate', "
        r"attribute 'intermediate' ran in hk\.while_loop's cond_fun, which "
        r"cannot carry side outputs.*Move the effect into body_fun",
    ):
      _collect(forward)(X)

  def test_last_in_a_scan_of_a_branch_is_the_last_taken_iteration(self):
    def forward(xs):
      final = hke.TellIntermediate("final", mode="last")

      def step(c, x):
        return c, hk.cond(x > 0, lambda: final(x), lambda: x)

      return hk.scan(step, 0.0, xs)[1]

    apply = _collect(forward)
    _, (final,) = apply(X)
    self.assertEqual(float(final.value), 3.0)
    _, (final,) = apply(jnp.array([2.0, 1.0, -1.0]))
    self.assertEqual(float(final.value), 1.0)
    _, (final,) = apply(-jnp.abs(X))
    self.assertFalse(bool(final.present))


class ReduceTest(absltest.TestCase):

  def test_a_custom_reduction_skips_untaken_branches_and_crosses_loops(self):
    peak = hke.Reduce(lambda: jnp.array(-jnp.inf), jnp.maximum)

    def forward(arg):
      xs, bound = arg
      probe = hke.TellIntermediate("peak", mode=peak)

      def step(c, x):  # Only positive steps tell: the rest must not count.
        return c, hk.cond(x > 0, lambda: probe(x), lambda: x)

      hk.scan(step, 0.0, xs)
      if not hk.running_init():

        def body(state):
          i, v = state
          probe(v * i)
          return i + 1, v

        hk.while_loop(lambda s: s[0] < bound, body, (0, jnp.min(xs)))
      return xs

    forward.example = ((X, 0),)
    apply = _collect(forward)
    _, (peak_value,) = apply((X, 0))  # Steps 1 and 3 tell; no iteration.
    self.assertEqual(float(peak_value.value), 3.0)
    _, (peak_value,) = apply((-jnp.abs(X), 0))
    self.assertFalse(bool(peak_value.present))  # Nothing was told.
    _, (peak_value,) = apply((-jnp.abs(X), 3))  # min(xs) * 0 = 0 wins.
    self.assertEqual(float(peak_value.value), 0.0)
    self.assertTrue(bool(peak_value.present))


class NestingTest(absltest.TestCase):

  def test_a_branch_inside_a_scan_inside_a_vmap_stacks_and_batches(self):
    xs = jnp.array([[1.0, -2.0, 3.0], [-1.0, 2.0, -3.0]])

    def forward(batch):
      probe = hke.TellIntermediate("act")

      def step(c, x):
        return c + x, hk.cond(x > 0, lambda: probe(10 * x), lambda: x)

      return hk.vmap(lambda row: hk.scan(step, 0.0, row)[1], split_rng=False)(
          batch
      )

    forward.example = (xs,)
    _, (act,) = _collect(forward)(xs)
    np.testing.assert_array_equal(act.present, xs > 0)  # Batch, then steps.
    np.testing.assert_array_equal(act.value, np.where(xs > 0, 10 * xs, 0.0))

  def test_the_told_value_is_differentiable(self):
    def forward(x):
      gate = Gate()
      if hk.running_init():
        gate(x)
      return hk.cond(jnp.sum(x) > 0, gate, lambda v: v, x)

    f = hke.transform(Collect.handling(forward))
    params = f.init(jax.random.key(0), X)

    def aux_loss(params, x):
      _, told = f.apply(params, None, x)
      return jnp.sum(jnp.where(told[0].present, told[0].value, 0.0))

    grads = jax.jit(jax.grad(aux_loss))(params, X)
    # d mean((x w + b)^2) / dw = 2 x^T (x w + b) / 3.
    y = X @ params["gate/linear"]["w"] + params["gate/linear"]["b"]
    np.testing.assert_allclose(
        grads["gate/linear"]["w"], 2 * np.outer(X, y) / 3, rtol=1e-6
    )
    zero = jax.jit(jax.grad(aux_loss))(params, -X)
    np.testing.assert_array_equal(zero["gate/linear"]["w"], 0.0)


class SignatureTest(absltest.TestCase):

  def test_a_site_told_in_a_branch_is_reported_conditional(self):
    def forward(x):
      hke.TellIntermediate("always", name="always")(x)
      probe = hke.TellIntermediate("sometimes", name="sometimes")
      return hk.cond(x[0] > 0, lambda: probe(x), lambda: x)

    signature = hke.effect_signature(Collect.handling(forward))(X)
    details = {e.module_path: e.detail for e in signature.entries}
    self.assertEqual(details["always"], "tells 'always' x1: float32[3]")
    self.assertEqual(
        details["sometimes"],
        "tells 'sometimes' x1: float32[3], conditional (hk.cond)",
    )


if __name__ == "__main__":
  absltest.main()
