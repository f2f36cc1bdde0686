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
"""The cells of the compatibility matrix: one check per (transform, effect).

This file holds the registry, the probes, the harnesses and the rows of
``jax.jit``, ``jax.grad`` and ``jax.vmap``; ``matrix_cells_wrappers.py``
holds the rows of Haiku's wrappers and ``jax.checkpoint``,
``matrix_cells_devices.py`` the multi-device rows.

Each effect has a probe layer whose output shows what the effect did:

* random: ``Noise`` returns ``x + uniform(next_key())``, so ``out - x`` is the
  draw and distinct draws mean distinct keys;
* side input: ``Scale`` returns ``x * ask()``;
* side output: ``Report`` tells ``2 * x`` and returns ``x``;
* local state: ``Counter`` adds ``x`` to a state shaped like ``x``.

A *harness* per effect turns a forward function into a pure function of
arrays (params, initial states and, but for the random effect, the rng
closed over), which is what a transform under test receives. Random probes
get zeros, so their outputs are the draws themselves, bit for bit. ``@cell(row, effect)`` registers the check of one
matrix cell; it is called as ``check(test, wrap)``, where ``wrap`` is
``test.variant`` (chex's with/without jit) for rows tested both ways and the
identity otherwise. Error cells only build and call the model: the test
module asserts the error the matrix promises.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

Check = Callable[
    [Any, Callable[[Callable[..., Any]], Callable[..., Any]]], None
]
CELLS: dict[tuple[str, str], Check] = {}

XS = jnp.array([1.0, 2.0, 3.0])
ZEROS = jnp.zeros(3)
SCALE = 3.0


def key() -> jax.Array:
  """A fresh key each time: JAX's key-reuse checker marks used keys."""
  return jax.random.key(0)


def cell(row: str, effect: str) -> Callable[[Check], Check]:
  """Registers the check of matrix cell ``(row, effect)``."""

  def register(check: Check) -> Check:
    if (row, effect) in CELLS:
      raise ValueError(f"Two checks for cell ({row!r}, {effect!r}).")
    CELLS[(row, effect)] = check
    return check

  return register


# ----------------------------------------------------------------- probes ---


class Noise(hk.Module):
  """Adds a uniform draw from the random effect."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.rng = hke.RandomRequest()

  def __call__(self, x: jax.Array) -> jax.Array:
    return x + jax.random.uniform(self.rng.next_key(), jnp.shape(x))


class Scale(hk.Module):
  """Multiplies by the side input ``"scale"``."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.scale = hke.SideInputRequest("scale")

  def __call__(self, x: jax.Array) -> jax.Array:
    return x * self.scale.ask()


class Report(hk.Module):
  """Tells ``2 * x`` under the tag ``"t"``; returns ``x``."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.told = hke.SideOutputRequest("t")

  def __call__(self, x: jax.Array) -> jax.Array:
    self.told.tell(2 * x)
    return x


class Counter(hk.Module):
  """Adds ``x`` to a local state of ``x``'s shape; returns the new count."""

  def __init__(self, shape: tuple[int, ...] = (), name: str | None = None):
    super().__init__(name=name)
    self.count = hke.InitialLocalStateRequest(
        lambda: jnp.zeros(shape), "counters"
    )

  def __call__(self, x: jax.Array) -> jax.Array:
    self.count.set(self.count.get() + x)
    return self.count.get()


# -------------------------------------------------------------- harnesses ---


def random_fn(forward, fold_in_axis: str | None = None):
  """``(key, arg) -> out`` under ``WithHaikuRandom``."""
  f = hke.transform(
      hke.handlers.WithHaikuRandom.handling(forward, fold_in_axis=fold_in_axis)
  )
  return lambda key, arg: f.apply({}, key, arg)


def side_input_fn(forward):
  """``(arg, scale) -> out`` under ``WithSideInputsFromInputTuple``."""
  f = hke.transform(
      hke.handlers.WithSideInputsFromInputTuple.handling(
          forward, tags=("scale",)
      )
  )
  return lambda arg, scale: f.apply({}, key(), (arg, scale))


def side_output_fn(forward):
  """``arg -> (out, told)``, ``told`` the list of ``SideOutputValue``s."""
  f = hke.transform(hke.handlers.CollectingSideOutputs.handling(forward))
  return lambda arg: f.apply({}, key(), arg)


def local_state_fn(forward, example):
  """``arg -> (out, count)`` from the state ``init`` gives for ``example``.

  Returns the function and the initial count (the one local state's value).
  """
  f = hke.transform_with_state(hke.handlers.handle_local_states(forward))
  params, state = f.init(key(), example)

  def apply(arg):
    out, new_state = f.apply(params, state, key(), arg)
    return out, _only_leaf(new_state)

  return apply, _only_leaf(state)


def _only_leaf(tree):
  (leaf,) = jax.tree_util.tree_leaves(tree)
  return leaf


def assert_rows_distinct(draws) -> None:
  """Every row of ``draws`` differs from every other (distinct keys)."""
  rows = np.asarray(draws).reshape(len(draws), -1)
  assert len({r.tobytes() for r in rows}) == len(rows), f"repeated: {rows}"


def assert_rows_equal(draws) -> None:
  rows = np.asarray(draws).reshape(len(draws), -1)
  for row in rows[1:]:
    np.testing.assert_array_equal(row, rows[0])


def assert_draws(draws) -> None:
  """Values look like uniform draws: in [0, 1), not all zero."""
  draws = np.asarray(draws)
  assert ((draws >= 0) & (draws < 1)).all() and draws.any(), draws


def assert_told(told, expected, path: str = "report/told") -> None:
  """One side output, told at ``path``, with value ``expected``."""
  assert [v.path for v in told] == [path], told
  np.testing.assert_allclose(told[0].value, expected, rtol=1e-6)


def sum_out(fn, *args, **kwargs):
  """``fn`` returning ``sum(out), extra``: for value_and_grad(has_aux)."""
  out, extra = fn(*args, **kwargs)
  return jnp.sum(out), extra


# ---------------------------------------------------------------- jax.jit ---

JIT = "`jax.jit`"


@cell(JIT, "random")
def _(t, wrap):
  del wrap
  apply = random_fn(lambda x: Noise()(x))
  eager, jitted = apply(key(), ZEROS), jax.jit(apply)(key(), ZEROS)
  np.testing.assert_array_equal(jitted, eager)  # Bit for bit (S3).
  assert_draws(jitted)
  assert_rows_distinct(jitted)
  t.assertFalse(np.array_equal(jax.jit(apply)(jax.random.key(1), ZEROS), eager))


@cell(JIT, "side input")
def _(t, wrap):
  del t, wrap
  apply = side_input_fn(lambda x: Scale()(x))
  np.testing.assert_array_equal(jax.jit(apply)(XS, SCALE), XS * SCALE)
  np.testing.assert_array_equal(jax.jit(apply)(XS, 5.0), XS * 5.0)


@cell(JIT, "side output")
def _(t, wrap):
  del t, wrap
  apply = side_output_fn(lambda x: Report()(x))
  out, told = jax.jit(apply)(XS)
  np.testing.assert_array_equal(out, XS)
  assert_told(told, 2 * XS)
  chex.assert_trees_all_equal((out, told), apply(XS))


@cell(JIT, "local state")
def _(t, wrap):
  del t, wrap
  apply, initial = local_state_fn(lambda x: Counter(x.shape)(x), XS)
  np.testing.assert_array_equal(initial, np.zeros(3))
  out, count = jax.jit(apply)(XS)
  np.testing.assert_array_equal(count, XS)
  chex.assert_trees_all_equal((out, count), apply(XS))


# ------------------------------------------------------------------- grad ---

GRAD = "`jax.grad` / `jax.value_and_grad`"


@cell(GRAD, "random")
def _(t, wrap):
  del t
  apply = random_fn(lambda x: Noise()(x))
  value, grad = wrap(jax.value_and_grad(lambda x: jnp.sum(apply(key(), x))))(XS)
  np.testing.assert_allclose(value, jnp.sum(apply(key(), XS)), rtol=1e-6)
  np.testing.assert_array_equal(grad, np.ones(3))


@cell(GRAD, "side input")
def _(t, wrap):
  del t
  apply = side_input_fn(lambda x: Scale()(x))
  value, (dx, ds) = wrap(
      jax.value_and_grad(lambda x, s: jnp.sum(apply(x, s)), argnums=(0, 1))
  )(XS, SCALE)
  np.testing.assert_allclose(value, SCALE * 6.0)
  np.testing.assert_array_equal(dx, np.full(3, SCALE))
  np.testing.assert_allclose(ds, 6.0)  # Side inputs are differentiable.


@cell(GRAD, "side output")
def _(t, wrap):
  del t
  apply = side_output_fn(lambda x: Report()(x))

  def loss(x):
    out, told = apply(x)
    return jnp.sum(out) + jnp.sum(told[0].value), told

  (value, told), grad = wrap(jax.value_and_grad(loss, has_aux=True))(XS)
  assert_told(told, 2 * XS)
  np.testing.assert_allclose(value, 18.0)
  np.testing.assert_array_equal(grad, np.full(3, 3.0))  # Through the tell.


@cell(GRAD, "local state")
def _(t, wrap):
  del t
  apply, _ = local_state_fn(lambda x: Counter(x.shape)(x) * x, XS)
  (value, count), grad = wrap(
      jax.value_and_grad(functools.partial(sum_out, apply), has_aux=True)
  )(XS)
  np.testing.assert_array_equal(count, XS)
  np.testing.assert_allclose(value, 14.0)  # sum(x * x) from a zero count.
  np.testing.assert_array_equal(grad, 2 * XS)


# ------------------------------------------------------------ jax.vmap ---

JAX_VMAP = "`jax.vmap` over `apply`"


@cell(JAX_VMAP, "random")
def _(t, wrap):
  del t
  apply = random_fn(lambda x: Noise()(x))
  keys = jax.random.split(key(), 3)
  replayed = jax.random.clone(keys)  # The same keys again, fed on purpose.
  per_key = wrap(jax.vmap(apply))(keys, ZEROS)
  assert_rows_distinct(per_key)
  np.testing.assert_array_equal(per_key[1], apply(replayed[1], ZEROS[1]))
  shared_key = wrap(jax.vmap(apply, in_axes=(None, 0)))(key(), ZEROS)
  assert_draws(shared_key)
  assert_rows_equal(shared_key)  # Same key, same draw.


@cell(JAX_VMAP, "side input")
def _(t, wrap):
  del t
  apply = side_input_fn(lambda x: Scale()(x))
  scales = jnp.array([10.0, 20.0, 30.0])
  np.testing.assert_array_equal(wrap(jax.vmap(apply))(XS, scales), XS * scales)


@cell(JAX_VMAP, "side output")
def _(t, wrap):
  del t
  out, told = wrap(jax.vmap(side_output_fn(lambda x: Report()(x))))(XS)
  np.testing.assert_array_equal(out, XS)
  assert_told(told, 2 * XS)  # Batched.


@cell(JAX_VMAP, "local state")
def _(t, wrap):
  del t
  apply, _ = local_state_fn(lambda x: Counter()(x), XS[0])
  out, counts = wrap(jax.vmap(apply))(XS)
  np.testing.assert_array_equal(counts, XS)  # One state per member.
  np.testing.assert_array_equal(out, XS)
