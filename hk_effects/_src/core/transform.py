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
"""``hke.transform`` and friends: Haiku's transforms, plus effects.

They return Haiku's own ``Transformed`` (and ``*WithState``, ``Multi*``)
objects, with the binding machinery active for the whole function, so an
unhandled request fails with its module path and attribute even where no
handler runs, and local-state handlers learn whether state is allowed.
Haiku's contracts hold for them: ``get_original_fn`` (``tabulate``,
``eval_summary``) gives back the function passed in, a ``jax.jit`` /
``jax.pmap`` function is refused with Haiku's error, and
``hk.without_apply_rng``, ``hk.running_init()`` and ``check_jax_usage`` work
unchanged. They call Haiku's transforms as ``hki`` took them at import, so a
program that puts hke's under Haiku's names (``tools/haiku_suite.py``) never
makes them call themselves. Handlers work inside Haiku's own transforms too
(each installs the binding while it runs), without these checks.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import haiku as hk
import jax

from hk_effects._src.core import binding
from hk_effects._src.haiku import haiku_internals as hki


def _with_effect_scope(
    fn: Callable[..., Any], stateless: bool, updated=functools.WRAPPER_UPDATES
):
  @functools.wraps(fn, updated=updated)
  def wrapped(*args, **kwargs):
    with binding.effect_scope(stateless=stateless):
      return fn(*args, **kwargs)

  return wrapped


def _transform(fn: Callable[..., Any], stateless: bool, finish=lambda t: t):
  """Haiku's ``finish(transform_with_state(fn))``, scoped, checked and with
  ``get_original_fn`` giving back ``fn``."""
  hki.check_not_jax_transformed(fn)
  transformed = finish(
      hki.transform_with_state(_with_effect_scope(fn, stateless))
  )
  hki.tie_in_original_fn(fn, transformed.init, transformed.apply)
  return transformed


def transform(
    fn: Callable[..., Any], *, apply_rng: bool = True
) -> hk.Transformed:
  """Like ``hk.transform``, with effect binding and checks.

  Args:
    fn: the forward function (usually wrapped in effect handlers).
    apply_rng: if False, ``apply`` takes no ``rng`` argument (as
      ``hk.without_apply_rng``).

  Returns:
    Haiku's ``Transformed`` pair of pure functions.

  Raises:
    ValueError: ``fn`` is already ``jax.jit`` / ``jax.pmap`` decorated
      (Haiku's own check and message).

  Example:

  >>> import haiku as hk, jax, jax.numpy as jnp, hk_effects as hke
  >>> f = hke.transform(lambda x: hk.Linear(2)(x))
  >>> params = f.init(jax.random.key(0), jnp.ones([1, 3]))
  >>> f.apply(params, None, jnp.ones([1, 3])).shape
  (1, 2)
  """
  transformed = _transform(fn, stateless=True, finish=hki.without_state)
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
  return _transform(fn, stateless=False)


def _scoped_factory(f: Callable[[], tuple[Any, Any]], stateless: bool):
  """``f`` of ``hk.multi_transform*`` with each function it returns scoped."""

  # `updated=()`: a module's attributes are not copied onto its wrapper.
  scoped = functools.partial(
      _with_effect_scope, stateless=stateless, updated=()
  )

  @functools.wraps(f)
  def factory():
    template, apply_fns = f()
    return scoped(template), jax.tree.map(scoped, apply_fns)

  return factory


def multi_transform(
    f: Callable[[], tuple[Callable[..., Any], Any]],
) -> hk.MultiTransformed:
  """Like ``hk.multi_transform``, with effect binding and checks.

  ``f`` returns a template function (run by ``init``) and a tree of
  functions sharing its modules; each becomes a pure ``apply`` function.
  Handlers may wrap any of them, or modules inside them: binding is decided
  on every call, so one module serves the handler running at that moment.

  Example:

  >>> import haiku as hk, jax, jax.numpy as jnp, hk_effects as hke
  >>> def build():
  ...   encoder = hk.Linear(2, name="encoder")
  ...   decoder = hk.Linear(3, name="decoder")
  ...   encode = hke.handlers.WithHaikuRandom.handling(
  ...       lambda x: hke.Dropout(0.5)(encoder(x)))
  ...   return (lambda x: decoder(encode(x))), (encode, decoder)
  >>> f = hke.multi_transform(build)
  >>> x = jnp.ones([1, 3])
  >>> params = f.init(jax.random.key(0), x)
  >>> encode, decode = f.apply
  >>> decode(params, None, encode(params, jax.random.key(1), x)).shape
  (1, 3)
  """
  return hki.multi_without_state(
      hki.multi_transform_with_state(_scoped_factory(f, stateless=True))
  )


def multi_transform_with_state(
    f: Callable[[], tuple[Callable[..., Any], Any]],
) -> hk.MultiTransformedWithState:
  """Like ``hk.multi_transform_with_state``, with effect binding and checks.

  Local states of every function are Haiku state: ``init`` creates those
  the template uses, and each ``apply`` passes through the entries it does
  not touch.

  Example:

  >>> import haiku as hk, jax, jax.numpy as jnp, hk_effects as hke
  >>> def build():
  ...   lin = hk.Linear(2, name="lin")
  ...   return lin, (lin,)
  >>> f = hke.multi_transform_with_state(build)
  >>> params, state = f.init(jax.random.key(0), jnp.ones([1, 3]))
  >>> (apply_lin,) = f.apply
  >>> out, state = apply_lin(params, state, None, jnp.ones([1, 3]))
  >>> out.shape
  (1, 2)
  """
  return hki.multi_transform_with_state(_scoped_factory(f, stateless=False))
