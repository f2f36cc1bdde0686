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
"""A reference interpreter of hk_effects' semantics, for property tests.

Given a nest of handlers and modules whose attributes hold requests, it
predicts, without JAX or Haiku, what the library must do (docs/design.md, 3):

* S1: which handler (by index in the nest, outermost first) serves each
  request, or ``None`` when none claims it;
* what each ``ask()`` returns;
* S6: which side outputs each collector gets, in call order, with their path,
  tag and value (stacked inside ``hk.scan``, batched inside ``hk.vmap``);
* S7: the local states ``init`` returns and those ``apply`` returns;
* S5: which sites draw keys and how many (all must be distinct);
* the first error, when the case is bad input.

Every module method runs the same plan: for each request, in the order its
attributes were set and, inside an attribute, in PyTree order (dict keys
sorted, list and tuple items in order, dataclass fields in order):

* random: ``next_key()``, observed as key data;
* side input: ``ask()``, observed;
* side output: ``tell(x * inc)``;
* local state (initial or shared): ``set(get() + inc)``, the new value
  observed.

A case may also list its module *calls* (``Case.calls``): modules called in
that order, a module possibly several times and by a second method, each
call under an inner nest of handlers of its own that wraps just that call
(sibling and nested nests around one module, the ``hk.multi_transform``
pattern). Binding is per call (design S2): each call is served by the
innermost claiming handler of the outer nest plus that call's nest. The
k-th call (k >= 1) of a module observes under ``<site>#<k>``.

The interpreter is written to be obviously right rather than fast: it walks
the case step by step, as a careful reader of docs/design.md would.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

RANDOM_KINDS = ("haiku_random", "frozen_random", "arg_random")
SIDE_INPUT_KINDS = ("const_inputs", "tuple_inputs")
HANDLER_KINDS = RANDOM_KINDS + SIDE_INPUT_KINDS + ("collect", "local_state")
REQUEST_KINDS = ("random", "side_input", "side_output", "state", "shared_state")
# Where the modules are called: plainly, inside hk.remat (values unchanged),
# inside a loop of LENGTH iterations (hk.scan, hk.fori_loop with int bounds:
# values stacked) or inside hk.vmap over LENGTH members (values batched).
PLACEMENTS = ("plain", "remat", "scan", "fori_loop", "vmap")
ONCE = ("plain", "remat")
LOOPS = ("scan", "fori_loop")
X = np.array([1.0, 2.0], np.float32)
LENGTH = 3  # Iterations of hk.scan and members of hk.vmap.


@dataclasses.dataclass(frozen=True)
class Handler:
  """One handler of the nest.

  ``selector`` says what it claims: random handlers, a frozenset of tags
  (``None`` standing for untagged requests); side-input handlers, the tuple
  of tags they serve; collectors and local-state handlers, ``None`` (all), or
  a frozenset of tags / categories (one tag given as ``tag=`` /
  ``category=`` when ``by_predicate`` is False, a predicate otherwise).
  """

  kind: str
  selector: Any = None
  by_predicate: bool = False
  handler_id: str | None = None
  strict: bool = False
  sharing: str = "forbidden"
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class Request:
  """One request: ``tag`` is the tag (None: untagged random) or category."""

  kind: str
  tag: Any = None
  name: str | None = None
  init: int = 0  # Initial value; requests with equal `init` share one object.
  inc: float = 1.0
  mode: str = "append"


@dataclasses.dataclass(frozen=True)
class Node:
  """Stands for a two-field ``hke.pytree_dataclass`` node."""

  left: Any
  right: Any


@dataclasses.dataclass(frozen=True)
class Module:
  name: str
  attributes: tuple[tuple[str, Any], ...]


@dataclasses.dataclass(frozen=True)
class Call:
  """One call of ``modules[module]`` by ``method``, wrapped in ``nest``
  (outermost first): handlers of these kinds only, which need no argument
  of their own."""

  module: int
  nest: tuple[Handler, ...] = ()
  method: str = "__call__"


INNER_KINDS = (
    "haiku_random",
    "frozen_random",
    "const_inputs",
    "collect",
    "local_state",
)


@dataclasses.dataclass(frozen=True)
class Case:
  handlers: tuple[Handler, ...]  # Outermost first.
  modules: tuple[Module, ...]
  placement: str = "plain"
  stateful: bool = True
  # None: each module called once, by __call__, with no inner nest.
  calls: tuple[Call, ...] | None = None


def module_calls(case: Case) -> tuple[Call, ...]:
  if case.calls is not None:
    return case.calls
  return tuple(Call(i) for i in range(len(case.modules)))


def all_handlers(case: Case) -> tuple[Handler, ...]:
  """The outer nest, then every call's nest: a handler's index in this
  tuple is its index everywhere (``served``, ``collected``)."""
  inner = tuple(h for call in module_calls(case) for h in call.nest)
  return case.handlers + inner


def nest_indices(case: Case, call_number: int) -> list[int]:
  """Indices (into ``all_handlers``) of the handlers around a call,
  outermost first."""
  calls = module_calls(case)
  start = len(case.handlers) + sum(len(c.nest) for c in calls[:call_number])
  return list(range(len(case.handlers))) + list(
      range(start, start + len(calls[call_number].nest))
  )


def observed_site(module: Module, path: str, k: int) -> str:
  site = f"{module.name}/{path}"
  return site if k == 0 else f"{site}#{k}"


@dataclasses.dataclass
class Prediction:
  """What the library must do with a case."""

  error: type[Exception] | None = None
  error_mentions: tuple[str, ...] = ()
  served: dict[str, int | None] = dataclasses.field(default_factory=dict)
  observed: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  collected: dict[int, list[tuple[str, Any, np.ndarray]]] = dataclasses.field(
      default_factory=dict
  )
  init_states: dict[str, dict[str, float]] = dataclasses.field(
      default_factory=dict
  )
  states: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
  key_sites: list[str] = dataclasses.field(default_factory=list)


class _Stop(Exception):
  """The case fails here; carries the predicted error."""

  def __init__(self, error: type[Exception], *mentions: str):
    super().__init__(error.__name__)
    self.error = error
    self.mentions = mentions


def sites(structure: Any, path: str = ""):
  """Yields (attribute path, request) in PyTree order."""
  if isinstance(structure, Request):
    yield path, structure
  elif isinstance(structure, dict):
    for key in sorted(structure):
      yield from sites(structure[key], f"{path}[{key!r}]")
  elif isinstance(structure, (list, tuple)):
    for i, item in enumerate(structure):
      yield from sites(item, f"{path}[{i}]")
  elif isinstance(structure, Node):
    yield from sites(structure.left, f"{path}.left")
    yield from sites(structure.right, f"{path}.right")


def module_sites(module: Module):
  """Yields (attribute path, request) for every request of ``module``."""
  for name, structure in module.attributes:
    yield from sites(structure, name)


def claims(handler: Handler, request: Request) -> bool:
  if handler.kind in RANDOM_KINDS:
    return request.kind == "random" and request.tag in handler.selector
  if handler.kind in SIDE_INPUT_KINDS:
    return request.kind == "side_input" and request.tag in handler.selector
  if handler.kind == "collect":
    return request.kind == "side_output" and (
        handler.selector is None or request.tag in handler.selector
    )
  return request.kind in ("state", "shared_state") and (
      handler.selector is None or request.tag in handler.selector
  )


def server(
    case: Case, request: Request, call_number: int | None = None
) -> int | None:
  """S1: the innermost handler claiming ``request`` (index into
  ``all_handlers``) in the nest around a call, or None."""
  handlers = all_handlers(case)
  indices = (
      list(range(len(case.handlers)))
      if call_number is None
      else nest_indices(case, call_number)
  )
  for index in reversed(indices):
    if claims(handlers[index], request):
      return index
  return None


def side_input_value(index: int, tag: Any) -> float:
  """The value handler ``index`` gives side input ``tag``."""
  return float(10 * (index + 1) + len(str(tag)))


def inputs(placement: str) -> np.ndarray:
  """The model's input: one row, or LENGTH rows for scan and vmap."""
  if placement in ONCE:
    return X
  return X[None] + np.arange(LENGTH, dtype=np.float32)[:, None]


def state_key(module: Module, path: str, request: Request) -> str:
  """Design 11: a named state is keyed by its name, else by its site."""
  return request.name if request.name else f"{module.name}:{path}"


def bundle(request: Request) -> str:
  return f"~local_state/{request.tag}"


def _check_ids(case: Case) -> None:
  handlers = all_handlers(case)
  for number in range(len(module_calls(case))):
    seen = set()
    for index in nest_indices(case, number):
      handler_id = handlers[index].handler_id
      if handler_id is not None and handler_id in seen:
        # The message may name an inferred id derived from the duplicate.
        raise _Stop(ValueError, "collides", "handler_id=")
      seen.add(handler_id)


class _Run:
  """One traced call of the model (init or apply) in the interpreter."""

  def __init__(self, case: Case, initial: dict[tuple[str, str], float] | None):
    self.case = case
    self.init = initial is None
    # (bundle, key) -> [initial, current, was set]
    self.states: dict[tuple[str, str], list[Any]] = {
        k: [v, v, False] for k, v in (initial or {}).items()
    }
    self.named: dict[tuple[int, str, str], tuple[str, Request]] = {}
    self.used: dict[int, set[Any]] = {}

  def bind(
      self, module: Module, path: str, request: Request, call_number: int
  ) -> int | None:
    index = server(self.case, request, call_number)
    if index is None:
      return None
    handler = all_handlers(self.case)[index]
    self.used.setdefault(index, set()).add(request.tag)
    if request.kind in ("state", "shared_state") and request.name:
      self._check_sharing(index, handler, module, path, request)
    return index

  def _check_sharing(self, index, handler, module, path, request) -> None:
    if request.kind == "shared_state":
      return  # A shared request refers to a state; it never conflicts.
    site = f"{module.name}/{path}"
    full = (index, bundle(request), request.name)
    first = self.named.setdefault(full, (site, request))
    if first[0] == site:
      return
    if handler.sharing == "forbidden":
      raise _Stop(ValueError, repr(request.name), "state_sharing=")
    if handler.sharing == "allowed" and first[1].init != request.init:
      raise _Stop(ValueError, repr(request.name), "initializer")
    if handler.sharing == "unsafe" and self.init:
      # The later request's initial value wins while nothing set the state.
      pair = self.states.get(full[1:])
      if pair is not None and not pair[2]:
        self.states[full[1:]] = [float(request.init)] * 2 + [False]

  def act(
      self, module: Module, path: str, request: Request, index: int | None
  ) -> float | None:
    """Runs one protocol call; returns the observed state value, if any."""
    if index is None:
      if request.kind == "side_output":
        return None
      raise _Stop(_unhandled_error(), repr(module.name), path)
    if request.kind not in ("state", "shared_state"):
      return None
    if not self.case.stateful:
      raise _Stop(ValueError, "hke.transform_with_state")
    key = (bundle(request), state_key(module, path, request))
    if key not in self.states:
      if request.kind == "shared_state":
        raise _Stop(ValueError, repr(request.name), "SharedLocalStateRequest")
      # Created from its initializer, at init or in apply (design S7).
      self.states[key] = [float(request.init)] * 2 + [False]
    pair = self.states[key]
    pair[1] += request.inc
    pair[2] = True
    return pair[1]


def _unhandled_error() -> type[Exception]:
  import hk_effects  # pylint: disable=g-import-not-at-top

  return hk_effects.UnhandledEffectError


def _nest(states: dict[tuple[str, str], list[Any]], slot: int):
  out: dict[str, dict[str, float]] = {}
  for (b, k), pair in sorted(states.items()):
    out.setdefault(b, {})[k] = pair[slot]
  return out


def _trace(case: Case, run: _Run, pred: Prediction | None) -> None:
  """One pass over the module calls, as the traced body runs them."""
  loops = LENGTH if case.placement in LOOPS else 1
  observed: dict[str, list[float]] = {}
  calls = module_calls(case)
  handlers = all_handlers(case)
  for _ in range(loops if pred is not None else 1):
    seen: dict[int, int] = {}
    for number, call in enumerate(calls):
      module = case.modules[call.module]
      k = seen[call.module] = seen.get(call.module, -1) + 1
      bound = [
          (p, r, run.bind(module, p, r, number))
          for p, r in module_sites(module)
      ]
      for path, request, index in bound:
        value = run.act(module, path, request, index)
        if value is not None:
          observed.setdefault(observed_site(module, path, k), []).append(value)
      # A call's own handlers exit when it returns, inner ones first.
      _check_unused(
          handlers, nest_indices(case, number)[len(case.handlers) :], run
      )
  _check_unused(handlers, list(range(len(case.handlers))), run)
  if pred is None:
    return
  for site, values in observed.items():
    pred.observed[site] = _placed(case.placement, np.asarray(values))


def _check_unused(handlers, indices: list[int], run: _Run) -> None:
  for index in reversed(indices):  # Inner ones exit first.
    handler = handlers[index]
    if handler.kind == "const_inputs" and handler.strict:
      unused = [t for t in handler.selector if t not in run.used.get(index, ())]
      if unused:
        raise _Stop(ValueError, repr(unused), "strict=True")


def _placed(placement: str, per_call: np.ndarray) -> np.ndarray:
  """Observations: one per call; stacked by scan, broadcast by vmap."""
  if placement in ONCE:
    return per_call[0]
  if placement in LOOPS:
    return per_call
  return np.full((LENGTH,), per_call[0], np.float32)


def _told(case: Case, request: Request) -> np.ndarray:
  value = inputs(case.placement) * np.float32(request.inc)
  if case.placement not in LOOPS or request.mode == "append":
    return value
  return value[-1] if request.mode == "last" else value.sum(0)


def _collect(
    pred: Prediction, index: int, site: str, request: Request, value: np.ndarray
) -> None:
  """One tell reaching collector ``index``: "append" adds an entry, "last"
  and "sum" keep one per site (where the site was first told)."""
  entries = pred.collected.setdefault(index, [])
  if request.mode != "append":
    for i, (other, tag, old) in enumerate(entries):
      if other == site and tag == request.tag:
        entries[i] = (
            site,
            tag,
            value if request.mode == "last" else old + value,
        )
        return
  entries.append((site, request.tag, value))


def predict(case: Case) -> Prediction:
  """Everything the library must do with ``case`` (see module docstring)."""
  pred = Prediction()
  try:
    _check_ids(case)
    init_run = _Run(case, None)
    _trace(case, init_run, None)
    initial = {k: pair[0] for k, pair in init_run.states.items()}
    pred.init_states = _nest(init_run.states, 0)
    apply_run = _Run(case, initial)
    _trace(case, apply_run, pred)
    pred.states = _nest(apply_run.states, 1)
  except _Stop as stop:
    return Prediction(error=stop.error, error_mentions=stop.mentions)
  handlers = all_handlers(case)
  seen: dict[int, int] = {}
  for number, call in enumerate(module_calls(case)):
    module = case.modules[call.module]
    k = seen[call.module] = seen.get(call.module, -1) + 1
    for path, request in module_sites(module):
      site = f"{module.name}/{path}"
      index = server(case, request, number)
      pred.served[observed_site(module, path, k)] = index
      if request.kind == "random":
        pred.key_sites.append(observed_site(module, path, k))
      elif request.kind == "side_input":
        calls = LENGTH if case.placement in LOOPS else 1
        pred.observed[observed_site(module, path, k)] = _placed(
            case.placement,
            np.full((calls,), side_input_value(index, request.tag), np.float32),
        )
      elif request.kind == "side_output" and index is not None:
        _collect(pred, index, site, request, _told(case, request))
  for index, handler in enumerate(handlers):
    if handler.kind == "collect":
      pred.collected.setdefault(index, [])
  return pred


def keys_per_site(placement: str) -> int:
  """How many keys one site draws in one application (S5)."""
  return 1 if placement in ONCE else LENGTH
