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
"""Helpers shared by the tests: small effectful modules and a transform runner.

``transform_and_run`` follows Haiku's ``test_utils.transform_and_run``: the
decorated test body runs inside ``hke.transform_with_state`` (``init`` then
``apply``), optionally under handlers, so a test can build modules and call
them directly.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import haiku as hk
from haiku._src import module as hk_module
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke
from hk_effects._src import context


class DrawKey(hk.Module):
  """Returns the raw data of the key its random request serves."""

  def __init__(
      self, request: hke.EffectRequest | None = None, name: str | None = None
  ):
    super().__init__(name=name)
    self.rng = hke.RandomRequest() if request is None else request

  def __call__(self, x: Any = None) -> jax.Array:
    del x
    return jax.random.key_data(self.rng.next_key())


class AskSideInput(hk.Module):
  """Returns the value of the side input ``tag``."""

  def __init__(self, tag: Any, name: str | None = None):
    super().__init__(name=name)
    self.value = hke.SideInputRequest(tag)

  def __call__(self, x: Any = None) -> Any:
    del x
    return self.value.ask()


def clone_keys(tree: Any) -> Any:
  """``tree`` with each PRNG key array replaced by a copy of the same value.

  JAX's key-reuse checker (on in the tests) marks a key once it is used; a
  test that feeds one key value twice on purpose feeds the second use a copy.
  """

  def clone(leaf: Any) -> Any:
    if jnp.issubdtype(jnp.result_type(leaf), jax.dtypes.prng_key):
      return jax.random.clone(leaf)
    return leaf

  return jax.tree.map(clone, tree)


def key_rows(*key_data: jax.Array) -> jax.Array:
  """Stacks key data of any leading shape into rows of 2 uint32 words."""
  return jnp.concatenate([jnp.reshape(k, (-1, 2)) for k in key_data])


def count_distinct_rows(rows: np.ndarray) -> int:
  """How many distinct rows ``rows`` holds."""
  return len({tuple(int(w) for w in row) for row in rows})


def transform_and_run(
    f: Callable[..., Any] | None = None,
    *,
    seed: int | None = 42,
    handler: (
        Callable[[Callable[[Any], Any]], Callable[[Any], Any]] | None
    ) = None,
    jit: bool = False,
) -> Callable[..., Any]:
  """Runs a test body under ``hke.transform_with_state`` init and apply.

  Args:
    f: the test body, ``f(self)``; its return value is returned from apply.
    seed: seed of the rng given to ``init`` and ``apply`` (None: no rng).
    handler: wraps the one-argument body, e.g.
      ``hke.handlers.WithHaikuRandom.handling``.
    jit: whether to jit ``init`` and ``apply``.

  Returns:
    The decorated test method; it returns the output of ``apply``.
  """
  if f is None:
    return functools.partial(
        transform_and_run, seed=seed, handler=handler, jit=jit
    )

  @functools.wraps(f)
  def wrapper(*args, **kwargs):
    def body(_):
      return f(*args, **kwargs)

    forward = body if handler is None else handler(body)
    transformed = hke.transform_with_state(forward)
    init, apply = transformed.init, transformed.apply
    if jit:
      init, apply = jax.jit(init), jax.jit(apply)
    # Like Haiku's helper, init and apply see the same key value; a clone, as
    # the key-reuse checker marks the key init used.
    rng = None if seed is None else jax.random.key(seed)
    params, state = init(rng, None)
    apply_rng = None if rng is None else jax.random.clone(rng)
    out, _ = apply(params, state, apply_rng, None)
    return out

  return wrapper


def global_state_left() -> dict[str, Any]:
  """Every piece of global state hk_effects or Haiku's interceptors keep."""
  return {
      "scopes": list(context.CONTEXT.binding.scopes),
      "effect_scopes": list(context.CONTEXT.binding.effect_scopes),
      "bound_modules": set(context.CONTEXT.binding.bound_modules),
      "interceptor_depth": context.CONTEXT.binding.interceptor_depth,
      "interceptor_stack": list(hk_module.interceptor_stack),
      "targets": list(context.CONTEXT.side_output_transport.targets),
      "collectors": context.CONTEXT.side_output_transport.collectors,
      "known_levels": list(context.CONTEXT.boundaries.known),
      "path_key_invocations": list(context.CONTEXT.path_keys.invocations),
      "path_key_calls": list(context.CONTEXT.path_keys.calls),
      "running_lifts": list(context.CONTEXT.nesting.running_lifts),
      "done_lifts": list(context.CONTEXT.nesting.done_lifts),
      "nested_transforms": dict(context.CONTEXT.nesting.parents),
  }


def nothing_left() -> dict[str, Any]:
  return {k: type(v)() for k, v in global_state_left().items()}
