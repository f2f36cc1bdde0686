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
"""Tests of custom side-output reductions, ``mode=hke.Reduce(...)``
(_src/effects/side_output/side_output_reduce.py)."""

from __future__ import annotations

from absl.testing import absltest
from absl.testing import parameterized
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

Collect = hke.handlers.CollectingSideOutputs
PEAK = hke.Reduce(lambda: jnp.full([2], -jnp.inf), jnp.maximum)
LOGSUMEXP = hke.Reduce(lambda: jnp.full([2], -jnp.inf), jnp.logaddexp)
# A mean needs a count and a sum: partials merge by adding both.
MEAN = hke.Reduce(
    lambda: (jnp.zeros([]), jnp.zeros([2])),
    lambda acc, v: (acc[0] + 1, acc[1] + v),
    merge_fn=lambda a, b: (a[0] + b[0], a[1] + b[1]),
)
# Order-sensitive: keeps the value told last, as mode="last" does.
LAST = hke.Reduce(lambda: jnp.zeros([2]), lambda acc, v: v)


def _collect(forward, x, jit=True):
  f = hke.transform(Collect.handling(forward), apply_rng=False)
  apply = jax.jit(f.apply) if jit else f.apply
  return apply({}, x)


def _scanned(mode, reverse=False):
  def forward(xs):
    probe = hke.TellIntermediate("r", mode=mode, name="probe")

    def step(c, x):
      c = c * 0.5 + x
      probe(jnp.sin(c))
      probe(jnp.cos(c))  # Two tells per iteration.
      return c, None

    return hk.scan(step, jnp.zeros(2), xs, reverse=reverse)[0]

  return forward


def _by_hand(xs, reverse=False):
  """The values _scanned tells, in the order they are told."""
  c, told = jnp.zeros(2), []
  for x in (xs[::-1] if reverse else xs):
    c = c * 0.5 + x
    told += [jnp.sin(c), jnp.cos(c)]
  return jnp.stack(told)


XS = jnp.linspace(-2.0, 3.0, 10).reshape(5, 2)


class ReduceTest(parameterized.TestCase):

  def test_max_inside_scan_equals_the_max_by_hand(self):
    _, (value,) = _collect(_scanned(PEAK), XS)
    self.assertEqual(value.path, "probe/intermediate")
    np.testing.assert_allclose(value.value, _by_hand(XS).max(0), rtol=1e-6)

  def test_running_logsumexp_inside_scan(self):
    _, (value,) = _collect(_scanned(LOGSUMEXP), XS)
    np.testing.assert_allclose(
        value.value, jax.nn.logsumexp(_by_hand(XS), axis=0), rtol=1e-6
    )

  def test_mean_with_a_merge_fn(self):
    _, (value,) = _collect(_scanned(MEAN), XS)
    count, total = value.value
    self.assertEqual(float(count), 10.0)
    np.testing.assert_allclose(total / count, _by_hand(XS).mean(0), rtol=1e-6)

  @parameterized.parameters(False, True)
  def test_iterations_merge_in_the_order_they_ran(self, reverse):
    _, (value,) = _collect(_scanned(LAST, reverse), XS)
    _, (last,) = _collect(_scanned("last", reverse), XS)
    np.testing.assert_array_equal(value.value, last.value)
    np.testing.assert_allclose(
        value.value, _by_hand(XS, reverse)[-1], rtol=1e-6
    )

  def test_outside_loops_tells_fold_in_call_order(self):
    def forward(x):
      probe = hke.TellIntermediate("r", mode=LOGSUMEXP)
      for k in range(3):
        probe(x * k)
      return x

    _, (value,) = _collect(forward, jnp.array([1.0, -1.0]), jit=False)
    np.testing.assert_allclose(
        value.value,
        jnp.log(
            1
            + jnp.exp(jnp.array([1.0, -1.0]))
            + jnp.exp(jnp.array([2.0, -2.0]))
        ),
        rtol=1e-6,
    )

  def test_nested_scans_and_layer_stack(self):
    def forward(x):
      probe = hke.TellIntermediate("r", mode=PEAK)

      def layer(h):
        h = hk.Linear(2, w_init=hk.initializers.Constant(0.5))(h)
        return hk.scan(lambda c, xi: (probe(c * xi), None), h, XS)[0]

      return hk.layer_stack(3, name="stack")(layer)(x)

    f = hke.transform(Collect.handling(forward), apply_rng=False)
    params = f.init(jax.random.key(0), jnp.ones([2]))
    _, (value,) = jax.jit(f.apply)(params, jnp.ones([2]))
    self.assertEqual(value.path, "stack/tell_intermediate/intermediate")
    # By hand: the same layers as a Python loop.
    h, told = jnp.ones([2]), []
    for i in range(3):
      h = h @ params["stack/linear"]["w"][i] + params["stack/linear"]["b"][i]
      for xi in XS:
        h = h * xi
        told.append(h)
    np.testing.assert_allclose(value.value, jnp.stack(told).max(0), rtol=1e-6)

  def test_hk_vmap_reduces_per_member(self):
    forward = lambda xs: hk.vmap(_scanned(PEAK), split_rng=False)(xs)
    batch = jnp.stack([XS, -XS])
    _, (value,) = _collect(forward, batch)
    np.testing.assert_allclose(
        value.value,
        jnp.stack([_by_hand(XS).max(0), _by_hand(-XS).max(0)]),
        rtol=1e-6,
    )

  def test_value_of_jax_grad_through_a_reduced_site(self):
    def loss(xs):
      _, (value,) = _collect(_scanned(LOGSUMEXP), xs, jit=False)
      return jnp.sum(value.value)

    by_hand = lambda xs: jnp.sum(jax.nn.logsumexp(_by_hand(xs), axis=0))
    np.testing.assert_allclose(
        jax.grad(loss)(XS), jax.grad(by_hand)(XS), rtol=1e-5
    )

  def test_bindings_describe_the_reduction(self):
    table = hke.bindings(Collect.handling(_scanned(PEAK)))(XS)
    self.assertEqual(
        [r.request.describe() for r in table.rows],
        ["side output 'r', Reduce(maximum)"],
    )


class ReduceErrorTest(parameterized.TestCase):

  @parameterized.parameters(
      ("init_fn", (3, jnp.add)),
      ("reduce_fn", (lambda: 0.0, "add")),
      ("merge_fn", (lambda: 0.0, jnp.add, 1)),
  )
  def test_functions_must_be_callable(self, name, args):
    with self.assertRaisesRegex(
        TypeError, f"Reduce\\({name}=...\\) must be a callable"
    ):
      hke.Reduce(*args)

  def test_reduce_changing_the_accumulator_shape_names_the_site(self):
    grows = hke.Reduce(
        lambda: jnp.zeros([2]), lambda acc, v: jnp.concatenate([acc, v])
    )
    with self.assertRaisesRegex(
        ValueError,
        r"'r' \(Reduce\(.*\)\) at module 'tell_intermediate'.*"
        r"turned the accumulator float32\[2\] into float32\[4\]",
    ):
      _collect(
          lambda x: hke.TellIntermediate("r", mode=grows)(x),
          jnp.ones(2),
          jit=False,
      )

  def test_init_fn_that_raises_is_named(self):
    def broken():
      raise RuntimeError("no init")

    with self.assertRaisesRegex(
        TypeError, r"init_fn .*broken.* raised " "RuntimeError: no init"
    ):
      _collect(
          lambda x: hke.TellIntermediate(
              "r", mode=hke.Reduce(broken, jnp.maximum)
          )(x),
          jnp.ones(2),
          jit=False,
      )

  def test_reduce_fn_that_raises_is_named(self):
    bad = hke.Reduce(lambda: jnp.zeros([2]), lambda acc: acc)
    with self.assertRaisesRegex(TypeError, r"reduce_fn .* raised TypeError"):
      _collect(
          lambda x: hke.TellIntermediate("r", mode=bad)(x),
          jnp.ones(2),
          jit=False,
      )

  def test_a_mode_that_is_neither_a_name_nor_a_reduce(self):
    with self.assertRaisesRegex(ValueError, "or hke.Reduce"):
      hke.SideOutputRequest("r", mode=max)


if __name__ == "__main__":
  absltest.main()
