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
"""The matrix cells of Haiku's wrappers, ``jax.checkpoint``, cond and switch.

The registry, probes and harnesses are ``matrix_cells``'s; see its
docstring. Layers are built outside the wrapped bodies, as Haiku needs, but
for ``hk.layer_stack``, whose body builds one layer per layer.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import haiku as hk
import jax
import jax.numpy as jnp
from matrix_cells import assert_draws
from matrix_cells import assert_rows_distinct
from matrix_cells import assert_rows_equal
from matrix_cells import assert_told
from matrix_cells import cell
from matrix_cells import Counter
from matrix_cells import key
from matrix_cells import local_state_fn
from matrix_cells import Noise
from matrix_cells import random_fn
from matrix_cells import Report
from matrix_cells import SCALE
from matrix_cells import Scale
from matrix_cells import side_input_fn
from matrix_cells import side_output_fn
from matrix_cells import sum_out
from matrix_cells import XS
from matrix_cells import ZEROS
import numpy as np

import hk_effects as hke

# ---------------------------------------------------------------- hk.vmap ---


def _hk_vmap_row(split_rng: bool) -> str:
  row = f"`hk.vmap(split_rng={split_rng})`"

  def vmap(fn):
    # Haiku refuses split_rng=True at init (params are shared); its idiom.
    return hk.vmap(fn, split_rng=split_rng and not hk.running_init())

  @cell(row, "random")
  def _(t, wrap):
    del t
    draws = wrap(random_fn(lambda xs: vmap(Noise())(xs)))(key(), ZEROS)
    assert_draws(draws)
    if split_rng:
      assert_rows_distinct(draws)
    else:
      assert_rows_equal(draws)

  @cell(row, "side input")
  def _(t, wrap):
    del t
    out = wrap(side_input_fn(lambda xs: vmap(Scale())(xs)))(XS, SCALE)
    np.testing.assert_array_equal(out, XS * SCALE)

  @cell(row, "side output")
  def _(t, wrap):
    del t
    out, told = wrap(side_output_fn(lambda xs: vmap(Report())(xs)))(XS)
    np.testing.assert_array_equal(out, XS)
    assert_told(told, 2 * XS)  # Batched.

  @cell(row, "local state")
  def _(t, wrap):
    del t

    def forward(per_example):
      def run(xs):
        counter = Counter()
        if hk.running_init():
          counter(0.0)  # Created outside the vmap, as Haiku needs.
        if per_example:
          return vmap(counter)(xs)
        return vmap(lambda x: x + counter(1.0))(xs)

      return run

    # An update that does not depend on the example is shared by all.
    shared, _ = local_state_fn(forward(False), XS)
    out, count = wrap(shared)(XS)
    np.testing.assert_array_equal(out, XS + 1.0)
    np.testing.assert_array_equal(count, 1.0)
    # A per-example one cannot be kept: Haiku raises, naming the state.
    wrap(lambda xs: local_state_fn(forward(True), xs)[0](xs))(XS)

  return row


HK_VMAP_SPLIT = _hk_vmap_row(True)
HK_VMAP_SHARED = _hk_vmap_row(False)

HKE_VMAP = "`hke.vmap(local_state_axes=...)`"


def hke_vmap(fn):
  """``fn`` mapped with one "counters" state per member."""
  return hke.vmap(
      fn, split_rng=not hk.running_init(), local_state_axes={"counters": 0}
  )


@cell(HKE_VMAP, "random")
def _(t, wrap):
  del t
  draws = wrap(random_fn(lambda xs: hke_vmap(Noise())(xs)))(key(), ZEROS)
  assert_draws(draws)
  assert_rows_distinct(draws)


@cell(HKE_VMAP, "side input")
def _(t, wrap):
  del t
  out = wrap(side_input_fn(lambda xs: hke_vmap(Scale())(xs)))(XS, SCALE)
  np.testing.assert_array_equal(out, XS * SCALE)


@cell(HKE_VMAP, "side output")
def _(t, wrap):
  del t
  out, told = wrap(side_output_fn(lambda xs: hke_vmap(Report())(xs)))(XS)
  np.testing.assert_array_equal(out, XS)
  assert_told(told, 2 * XS)  # Batched.


@cell(HKE_VMAP, "local state")
def _(t, wrap):
  # Created per member at init, set per member in apply: the update hk.vmap
  # refuses.
  apply, initial = local_state_fn(lambda xs: hke_vmap(Counter())(xs), XS)
  np.testing.assert_array_equal(initial, ZEROS)  # One per member.
  out, count = wrap(apply)(XS)
  np.testing.assert_array_equal(out, XS)
  np.testing.assert_array_equal(count, XS)
  t.assertEqual(count.shape, (3,))


# ------------------------------------------- hk.scan, layer_stack, fori ---

SCAN = "`hk.scan`"
LAYER_STACK = "`hk.layer_stack`"
FORI_LOOP = "`hk.fori_loop`"


def scanned(layer: hk.Module, xs: jax.Array) -> jax.Array:
  """``layer`` applied to each element of ``xs`` by ``hk.scan``."""
  return hk.scan(lambda c, x: (c, layer(x)), 0.0, xs)[1]


def layer_stacked(
    make_layer: Callable[[], hk.Module], xs: jax.Array
) -> jax.Array:
  """One fresh layer per element of ``xs``, stacked by ``hk.layer_stack``."""
  stack = hk.layer_stack(len(xs), with_per_layer_inputs=True, name="stack")
  return stack(lambda c, x: (c, make_layer()(x)))(0.0, xs)[1]


def fori_looped(layer: hk.Module, xs: jax.Array) -> jax.Array:
  """``layer`` applied to each element of ``xs`` by ``hk.fori_loop``."""
  return hk.fori_loop(
      0, len(xs), lambda i, acc: acc.at[i].set(layer(xs[i])), jnp.zeros_like(xs)
  )


@cell(SCAN, "random")
def _(t, wrap):
  del t
  draws = wrap(random_fn(lambda xs: scanned(Noise(), xs)))(key(), ZEROS)
  assert_draws(draws)
  assert_rows_distinct(draws)  # A fresh key per iteration (S5).


@cell(LAYER_STACK, "random")
def _(t, wrap):
  del t
  draws = wrap(random_fn(lambda xs: layer_stacked(Noise, xs)))(key(), ZEROS)
  assert_draws(draws)
  assert_rows_distinct(draws)  # A fresh key per layer.


@cell(FORI_LOOP, "random")
def _(t, wrap):
  del t
  draws = wrap(random_fn(lambda xs: fori_looped(Noise(), xs)))(key(), ZEROS)
  assert_draws(draws)
  assert_rows_distinct(draws)


@cell(SCAN, "side input")
def _(t, wrap):
  del t
  out = wrap(side_input_fn(lambda xs: scanned(Scale(), xs)))(XS, SCALE)
  np.testing.assert_array_equal(out, XS * SCALE)


@cell(LAYER_STACK, "side input")
def _(t, wrap):
  del t
  out = wrap(side_input_fn(lambda xs: layer_stacked(Scale, xs)))(XS, SCALE)
  np.testing.assert_array_equal(out, XS * SCALE)


@cell(FORI_LOOP, "side input")
def _(t, wrap):
  del t
  out = wrap(side_input_fn(lambda xs: fori_looped(Scale(), xs)))(XS, SCALE)
  np.testing.assert_array_equal(out, XS * SCALE)


@cell(SCAN, "side output")
def _(t, wrap):
  del t
  _, told = wrap(side_output_fn(lambda xs: scanned(Report(), xs)))(XS)
  assert_told(told, 2 * XS)  # Stacked on a leading axis.


@cell(LAYER_STACK, "side output")
def _(t, wrap):
  del t
  _, told = wrap(side_output_fn(lambda xs: layer_stacked(Report, xs)))(XS)
  assert_told(told, 2 * XS, path="stack/report/told")


@cell(FORI_LOOP, "side output")
def _(t, wrap):
  del t
  _, told = wrap(side_output_fn(lambda xs: fori_looped(Report(), xs)))(XS)
  assert_told(told, 2 * XS)


@cell(SCAN, "local state")
def _(t, wrap):
  del t
  apply, _ = local_state_fn(lambda xs: scanned(Counter(), xs), XS)
  out, count = wrap(apply)(XS)
  np.testing.assert_array_equal(out, np.cumsum(XS))
  np.testing.assert_array_equal(count, 6.0)  # Every iteration's set stays.


@cell(LAYER_STACK, "local state")
def _(t, wrap):
  del t
  apply, initial = local_state_fn(lambda xs: layer_stacked(Counter, xs), XS)
  _, count = wrap(apply)(XS)
  # One state per layer, stacked. Haiku's layer_stack init runs each layer
  # once in apply mode, so the initial states already hold one step.
  np.testing.assert_array_equal(initial, XS)
  np.testing.assert_array_equal(count - initial, XS)


@cell(FORI_LOOP, "local state")
def _(t, wrap):
  del t

  def forward(xs):
    counter = Counter()
    if hk.running_init():
      counter(0.0)  # Haiku creates state before a loop, not inside it.
    return fori_looped(counter, xs)

  out, count = wrap(local_state_fn(forward, XS)[0])(XS)
  np.testing.assert_array_equal(out, np.cumsum(XS))
  np.testing.assert_array_equal(count, 6.0)


# ---------------------------------------------------- remat, checkpoint ---

REMAT = "`hk.remat`"
CHECKPOINT_INSIDE = "`jax.checkpoint` inside the model"
CHECKPOINT_AROUND = "`jax.checkpoint` around `apply`"


def _sum_told(apply, x):
  _, told = apply(x)
  return jnp.sum(told[0].value), told


def _grad_of_sum(fn, wrap):
  return wrap(jax.value_and_grad(lambda x: jnp.sum(fn(x))))(XS)


@cell(REMAT, "random")
def _(t, wrap):
  del t
  plain = random_fn(lambda x: Noise()(x))
  rematted = random_fn(lambda x: hk.remat(Noise())(x))
  value, grad = _grad_of_sum(functools.partial(rematted, key()), wrap)
  np.testing.assert_array_equal(rematted(key(), XS), plain(key(), XS))
  np.testing.assert_allclose(value, jnp.sum(plain(key(), XS)), rtol=1e-6)
  np.testing.assert_array_equal(grad, np.ones(3))


@cell(REMAT, "side input")
def _(t, wrap):
  del t
  apply = side_input_fn(lambda x: hk.remat(Scale())(x))
  value, grad = _grad_of_sum(lambda x: apply(x, SCALE), wrap)
  np.testing.assert_allclose(value, SCALE * 6.0)
  np.testing.assert_array_equal(grad, np.full(3, SCALE))


@cell(REMAT, "side output")
def _(t, wrap):
  del t
  apply = side_output_fn(lambda x: hk.remat(Report())(x))
  (_, told), grad = wrap(
      jax.value_and_grad(functools.partial(_sum_told, apply), has_aux=True)
  )(XS)
  assert_told(told, 2 * XS)  # Unchanged by remat.
  np.testing.assert_array_equal(grad, np.full(3, 2.0))


@cell(REMAT, "local state")
def _(t, wrap):
  del t
  apply, _ = local_state_fn(lambda x: hk.remat(Counter(x.shape))(x), XS)
  (_, count), grad = wrap(
      jax.value_and_grad(functools.partial(sum_out, apply), has_aux=True)
  )(XS)
  np.testing.assert_array_equal(count, XS)
  np.testing.assert_array_equal(grad, np.ones(3))


@cell(CHECKPOINT_INSIDE, "random")
def _(t, wrap):
  del t
  wrap(random_fn(lambda x: jax.checkpoint(Noise())(x)))(key(), XS)


@cell(CHECKPOINT_INSIDE, "side input")
def _(t, wrap):
  del t
  apply = side_input_fn(lambda x: jax.checkpoint(Scale())(x))
  value, grad = _grad_of_sum(lambda x: apply(x, SCALE), wrap)
  np.testing.assert_allclose(value, SCALE * 6.0)
  np.testing.assert_array_equal(grad, np.full(3, SCALE))


@cell(CHECKPOINT_INSIDE, "side output")
def _(t, wrap):
  del t
  wrap(side_output_fn(lambda x: jax.checkpoint(Report())(x)))(XS)


@cell(CHECKPOINT_INSIDE, "local state")
def _(t, wrap):
  del t
  forward = lambda x: jax.checkpoint(Counter(x.shape))(x)  # pylint: disable=unnecessary-lambda-assignment
  wrap(lambda xs: local_state_fn(forward, xs)[0](xs))(XS)


@cell(CHECKPOINT_AROUND, "random")
def _(t, wrap):
  del t
  apply = random_fn(lambda x: Noise()(x))
  value, grad = _grad_of_sum(
      jax.checkpoint(functools.partial(apply, key())), wrap
  )
  np.testing.assert_allclose(value, jnp.sum(apply(key(), XS)), rtol=1e-6)
  np.testing.assert_array_equal(grad, np.ones(3))


@cell(CHECKPOINT_AROUND, "side input")
def _(t, wrap):
  del t
  apply = jax.checkpoint(side_input_fn(lambda x: Scale()(x)))
  value, grad = _grad_of_sum(lambda x: apply(x, SCALE), wrap)
  np.testing.assert_allclose(value, SCALE * 6.0)
  np.testing.assert_array_equal(grad, np.full(3, SCALE))


@cell(CHECKPOINT_AROUND, "side output")
def _(t, wrap):
  del t
  apply = jax.checkpoint(side_output_fn(lambda x: Report()(x)))
  (_, told), grad = wrap(
      jax.value_and_grad(functools.partial(_sum_told, apply), has_aux=True)
  )(XS)
  assert_told(told, 2 * XS)
  np.testing.assert_array_equal(grad, np.full(3, 2.0))


@cell(CHECKPOINT_AROUND, "local state")
def _(t, wrap):
  del t
  apply, _ = local_state_fn(lambda x: Counter(x.shape)(x), XS)
  (_, count), grad = wrap(
      jax.value_and_grad(
          functools.partial(sum_out, jax.checkpoint(apply)), has_aux=True
      )
  )(XS)
  np.testing.assert_array_equal(count, XS)
  np.testing.assert_array_equal(grad, np.ones(3))


# ------------------------------------------------------- hk.cond, switch ---

COND = "`hk.cond`"
SWITCH = "`hk.switch`"


def _branches(layer: hk.Module, x: jax.Array) -> list[Callable[[], Any]]:
  """Three branches: the layer on ``x``, on ``10 * x``, and no layer."""
  return [lambda: layer(x), lambda: layer(10 * x), lambda: x]


@cell(COND, "random")
def _(t, wrap):
  def forward(arg):
    x, pred = arg
    noise = Noise()
    first = noise(x)
    return first, hk.cond(pred, lambda: noise(x), lambda: x)

  apply = wrap(random_fn(forward))
  first, taken = apply(key(), (ZEROS, True))
  assert_draws(taken)
  t.assertFalse(np.array_equal(taken, first))  # Its own key.
  np.testing.assert_array_equal(apply(key(), (ZEROS, False))[1], ZEROS)


@cell(SWITCH, "random")
def _(t, wrap):
  def forward(arg):
    x, index = arg
    return hk.switch(index, _branches(Noise(), x))

  apply = wrap(random_fn(forward))
  assert_draws(apply(key(), (ZEROS, 1)))  # The taken branch drew.
  np.testing.assert_array_equal(apply(key(), (ZEROS, 2)), ZEROS)


@cell(COND, "side input")
def _(t, wrap):
  del t
  apply = wrap(
      side_input_fn(
          lambda arg: hk.cond(arg[1], lambda: Scale()(arg[0]), lambda: arg[0])
      )
  )
  np.testing.assert_array_equal(apply((XS, True), SCALE), XS * SCALE)
  np.testing.assert_array_equal(apply((XS, False), SCALE), XS)


@cell(SWITCH, "side input")
def _(t, wrap):
  del t
  apply = wrap(
      side_input_fn(lambda arg: hk.switch(arg[1], _branches(Scale(), arg[0])))
  )
  np.testing.assert_array_equal(apply((XS, 1), SCALE), 10 * XS * SCALE)
  np.testing.assert_array_equal(apply((XS, 2), SCALE), XS)


@cell(COND, "side output")
def _(t, wrap):
  # Told in the true branch only: zeros and present False where not taken.
  apply = wrap(
      side_output_fn(
          lambda arg: hk.cond(arg[1], lambda: Report()(arg[0]), lambda: arg[0])
      )
  )
  _, told = apply((XS, True))
  assert_told(told, 2 * XS)
  t.assertTrue(bool(told[0].present))
  _, told = apply((XS, False))
  assert_told(told, ZEROS)
  t.assertFalse(bool(told[0].present))


@cell(SWITCH, "side output")
def _(t, wrap):
  apply = wrap(
      side_output_fn(lambda arg: hk.switch(arg[1], _branches(Report(), arg[0])))
  )
  for index, expected in ((0, 2 * XS), (1, 20 * XS), (2, ZEROS)):
    _, told = apply((XS, index))
    assert_told(told, expected)  # The taken branch's value.
    t.assertEqual(bool(told[0].present), index != 2)


def _counter_in(branching: Callable[..., Any]):
  def forward(arg):
    x, choice = arg
    counter = Counter(x.shape)
    if hk.running_init():
      counter(0 * x)  # Haiku creates state before a cond, not in a branch.
    return branching(choice, counter, x)

  return forward


@cell(COND, "local state")
def _(t, wrap):
  del t
  forward = _counter_in(
      lambda pred, counter, x: hk.cond(
          pred, lambda: counter(x), lambda: counter(-x)
      )
  )
  apply, _ = local_state_fn(forward, (XS, True))
  np.testing.assert_array_equal(wrap(apply)((XS, True))[1], XS)
  np.testing.assert_array_equal(wrap(apply)((XS, False))[1], -XS)


@cell(SWITCH, "local state")
def _(t, wrap):
  del t
  forward = _counter_in(
      lambda index, counter, x: hk.switch(index, _branches(counter, x))
  )
  apply, _ = local_state_fn(forward, (XS, 0))
  np.testing.assert_array_equal(wrap(apply)((XS, 1))[1], 10 * XS)
  np.testing.assert_array_equal(wrap(apply)((XS, 2))[1], np.zeros(3))


# ------------------------------------------------------------ while_loop ---

WHILE_LOOP = "`hk.while_loop` / `hk.fori_loop` with traced bounds"


def while_looped(layer: hk.Module, xs: jax.Array) -> jax.Array:
  """``layer`` applied to each element of ``xs`` by ``hk.while_loop``
  (``layer`` runs once unconditionally at init, as Haiku needs)."""
  if hk.running_init():
    return jnp.full_like(xs, layer(xs[0]))

  def body(state):
    i, acc = state
    return i + 1, acc.at[i].set(layer(xs[i]))

  return hk.while_loop(
      lambda state: state[0] < len(xs), body, (0, jnp.zeros_like(xs))
  )[1]


@cell(WHILE_LOOP, "random")
def _(t, wrap):
  del t
  draws = wrap(random_fn(lambda xs: while_looped(Noise(), xs)))(key(), ZEROS)
  assert_draws(draws)
  assert_rows_distinct(draws)


@cell(WHILE_LOOP, "side input")
def _(t, wrap):
  del t
  out = wrap(side_input_fn(lambda xs: while_looped(Scale(), xs)))(XS, SCALE)
  np.testing.assert_array_equal(out, XS * SCALE)


class _Tells(hk.Module):
  """Tells ``x`` under "total" (mode sum) and "final" (mode last)."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.total = hke.SideOutputRequest("total", mode="sum")
    self.final = hke.SideOutputRequest("final", mode="last")

  def __call__(self, x: jax.Array) -> jax.Array:
    self.total.tell(x)
    self.final.tell(x)
    return x


@cell(WHILE_LOOP, "side output")
def _(t, wrap):
  # "sum" and "last" are carried in the loop state.
  def forward(arg):
    xs, n = arg
    tells = _Tells()

    def body(state):
      i, acc = state
      return i + 1, acc + tells(xs[i])

    return hk.while_loop(lambda state: state[0] < n, body, (0, 0.0))[1]

  apply = wrap(side_output_fn(forward))
  out, told = apply((XS, 2))
  t.assertEqual([v.tag for v in told], ["total", "final"])
  np.testing.assert_array_equal(out, 3.0)
  np.testing.assert_array_equal(told[0].value, 3.0)  # 1 + 2.
  np.testing.assert_array_equal(told[1].value, 2.0)
  t.assertEqual([bool(v.present) for v in told], [True, True])
  _, told = apply((XS, 0))  # No iteration ran: nothing was told.
  t.assertEqual([bool(v.present) for v in told], [False, False])
  np.testing.assert_array_equal(told[0].value, 0.0)


@cell(WHILE_LOOP, "local state")
def _(t, wrap):
  del t

  def forward(xs):
    counter = Counter()
    if hk.running_init():
      counter(0.0)  # Haiku creates state before a loop, not inside it.
      return xs
    return while_looped(counter, xs)

  out, count = wrap(local_state_fn(forward, XS)[0])(XS)
  np.testing.assert_array_equal(out, np.cumsum(XS))
  np.testing.assert_array_equal(count, 6.0)
