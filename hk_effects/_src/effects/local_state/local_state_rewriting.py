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
"""Rewriting local-state requests: freezing states, hoisting shared ones.

These handlers claim local-state requests only to replace them with other
requests, which outer handlers then bind: ``freeze_local_states`` turns the
states a ``handle_local_states`` handler would keep into frozen values,
``hoist_shared_state_requests`` turns named states into shared references
that ``embed_shared_state_requests`` defines once, outside.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import haiku as hk

from hk_effects._src.core import binding
from hk_effects._src.core import effect_base
from hk_effects._src.effects.local_state import local_state

# The requests that define a state (rather than refer to one).
_DEFINING = (
    local_state.InitialLocalStateRequest,
    local_state.FrozenLocalStateRequest,
)


class _RewritingHandler(
    effect_base.RewritingHandler, protocol=local_state.LocalStateEffect
):
  """A handler that rewrites the local-state requests it claims."""

  def __call__(self, arg):
    with binding.handler_scope(self):
      return self.body(arg)


class _FreezingHandler(_RewritingHandler):
  """Rewrites the requests ``handler`` claims into frozen requests."""

  def __init__(self, handler, states):
    super().__init__(handler.body, f"{handler.handler_id}_frozen")
    self.source = handler
    self.states = states

  def claims(self, request):
    return self.source.claims(request)

  def rewrite(self, request, site):
    bundle = local_state.bundle_name(request.category)
    key = local_state.state_key(request, site)
    try:
      value = self.states[bundle][key]
    except KeyError:
      raise ValueError(
          f"freeze_local_states got no value for local state {key!r} "
          f"(bundle {bundle!r}) at {site}. Pass the state mapping that "
          "init/apply returned for this model."
      ) from None
    return local_state.FrozenLocalStateRequest(
        value, request.category, name=getattr(request, "name", None) or key
    )


def freeze_local_states(
    handler: local_state.WithFunctionalLocalState,
    states: Mapping[str, Mapping[str, Any]],
):
  """A forward function whose local states carry the given values, frozen.

  The requests ``handler`` would claim become ``FrozenLocalStateRequest`` s
  holding their entry of ``states`` (the state mapping ``init`` / ``apply``
  returned), so the function runs, read-only, at that state; wrapping it in
  ``handle_local_states`` again makes the states mutable, starting there.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Total(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.total = hke.InitialLocalStateRequest(
  ...         lambda: jnp.zeros([]), "sums")
  ...   def __call__(self, x):
  ...     return self.total.get() + x
  >>> h = hke.handlers.handle_local_states(lambda x: Total()(x))
  >>> frozen = hke.handlers.freeze_local_states(
  ...     h, {"~local_state/sums": {"total:total": 10.0}})
  >>> print(hke.transform(frozen).apply({}, None, 1.0))
  11.0
  """
  if not isinstance(handler, local_state.WithFunctionalLocalState):
    raise TypeError(
        "freeze_local_states expects the handler handle_local_states "
        f"returned; got {handler!r}."
    )
  return _FreezingHandler(handler, states)


class _HoistingHandler(_RewritingHandler):
  """Rewrites named local-state requests into shared references."""

  def __init__(self, body, category, handler_id=None):
    super().__init__(body, handler_id, config=f"hoist|{category!r}")
    self.category = category

  def claims(self, request):
    return (
        isinstance(request, _DEFINING)
        and request.name is not None
        and (self.category is None or request.category == self.category)
    )

  def rewrite(self, request, site):
    del site
    return local_state.SharedLocalStateRequest(request.name, request.category)


def hoist_shared_state_requests(
    body: Callable[[Any], Any], category: Any = None
):
  """Turns every named local state of ``body`` into a shared reference.

  The returned forward function no longer creates its named states: its
  named ``InitialLocalStateRequest`` / ``FrozenLocalStateRequest`` s become
  ``SharedLocalStateRequest`` s, so the states must be created outside it,
  once, with ``embed_shared_state_requests``. This pins a state that several
  layers share to one definition, chosen by the caller.

  Example:

  >>> import haiku as hk, jax.numpy as jnp, hk_effects as hke
  >>> class Bump(hk.Module):
  ...   def __init__(self):
  ...     super().__init__()
  ...     self.n = hke.InitialLocalStateRequest(
  ...         lambda: jnp.zeros([]), "c", name="steps")
  ...   def __call__(self, x):
  ...     self.n.set(self.n.get() + 1)
  ...     return x
  >>> hoisted = hke.handlers.hoist_shared_state_requests(lambda x: Bump()(x))
  >>> embedded = hke.handlers.embed_shared_state_requests(
  ...     hoisted, {"steps": hke.InitialLocalStateRequest(
  ...         lambda: jnp.full([], 10.0), "c", name="steps")})
  >>> f = hke.transform_with_state(hke.handlers.handle_local_states(embedded))
  >>> params, state = f.init(None, 0.0)
  >>> _, state = f.apply(params, state, None, 0.0)
  >>> print(state["~local_state/c"]["steps"])
  11.0
  """
  return _HoistingHandler(body, category)


class _StateOwner(hk.Module):
  """Holds hoisted local-state requests so that they bind like any other."""

  def __init__(self, requests: Mapping[str, effect_base.EffectRequest]):
    super().__init__(name="embedded_shared_states")
    self.requests = dict(requests)

  def __call__(self) -> None:
    for request in self.requests.values():
      request.get()


def embed_shared_state_requests(
    body: Callable[[Any], Any],
    requests: Mapping[str, effect_base.EffectRequest],
) -> Callable[[Any], Any]:
  """Creates the given named states before running ``body``.

  The inverse of ``hoist_shared_state_requests``: ``requests`` maps each
  state name to the ``InitialLocalStateRequest`` (or
  ``FrozenLocalStateRequest``) that defines it; each must carry that name.

  Example: see ``hoist_shared_state_requests``.

  >>> import hk_effects as hke
  >>> callable(hke.handlers.embed_shared_state_requests(lambda x: x, {}))
  True
  """
  for name, request in requests.items():
    if not isinstance(request, _DEFINING) or (request.name != name):
      raise ValueError(
          f"embed_shared_state_requests: entry {name!r} must be an "
          "InitialLocalStateRequest or FrozenLocalStateRequest with "
          f"name={name!r}; got {request!r}."
      )

  def embedded(arg):
    _StateOwner(requests)()
    return body(arg)

  return embedded
