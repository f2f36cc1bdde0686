"""``hke.transform`` / ``hke.transform_with_state``: Haiku's, plus effects.

They return Haiku's own ``Transformed`` / ``TransformedWithState``. On top of
Haiku they keep the binding machinery active for the whole function, so an
unhandled request fails with its module path and attribute even where no
handler runs, and they tell local-state handlers whether state is allowed.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import haiku as hk

from hk_effects import binding


def _with_effect_scope(fn: Callable[..., Any], stateless: bool):
  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with binding.effect_scope(stateless=stateless):
      return fn(*args, **kwargs)
  return wrapped


def transform(fn: Callable[..., Any], *, apply_rng: bool = True) -> hk.Transformed:
  """Like ``hk.transform``, with effect binding and checks.

  Args:
    fn: the forward function (usually wrapped in effect handlers).
    apply_rng: if False, ``apply`` takes no ``rng`` argument (as
      ``hk.without_apply_rng``).

  Returns:
    Haiku's ``Transformed`` pair of pure functions.

  Example:

  >>> import haiku as hk, jax, jax.numpy as jnp, hk_effects as hke
  >>> f = hke.transform(lambda x: hk.Linear(2)(x))
  >>> params = f.init(jax.random.key(0), jnp.ones([1, 3]))
  >>> f.apply(params, None, jnp.ones([1, 3])).shape
  (1, 2)
  """
  transformed = hk.transform(_with_effect_scope(fn, stateless=True))
  return transformed if apply_rng else hk.without_apply_rng(transformed)


def transform_with_state(fn: Callable[..., Any]) -> hk.TransformedWithState:
  """Like ``hk.transform_with_state``, with effect binding and checks.

  Local states (``hke.handlers.handle_local_states``) need this transform:
  ``init`` returns them with Haiku's state and ``apply`` returns the updates.

  Example:

  >>> import haiku as hk, jax, jax.numpy as jnp, hk_effects as hke
  >>> f = hke.transform_with_state(lambda x: hk.Linear(2)(x))
  >>> params, state = f.init(jax.random.key(0), jnp.ones([1, 3]))
  >>> out, state = f.apply(params, state, None, jnp.ones([1, 3]))
  >>> out.shape
  (1, 2)
  """
  return hk.transform_with_state(_with_effect_scope(fn, stateless=False))
