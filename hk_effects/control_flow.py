"""Carrying side outputs out of Haiku's control-flow wrappers.

Haiku threads exactly three things through the JAX primitive under
``hk.scan``, ``hk.vmap``, ``hk.remat``, ``hk.fori_loop`` and
``hk.layer_stack``: params, Haiku state and the rng sequence (DESIGN
section 10). A value told inside such a body is a tracer of the body's trace;
kept in a Python list it would leak, and Haiku state keeps only the last
iteration (and is refused by the stateless ``hk.transform``). So while a side
output collector runs, hk_effects makes these wrappers carry told values as
*extra outputs* of the wrapped body:

1. each told value goes to the innermost *target* on a thread-local stack: the
   collector's home (its own trace level) or a *transport* pushed inside the
   body of a wrapped ``hk.scan`` / ``hk.vmap`` / ... call;
2. when the body returns, the transport's values are appended to the body's
   outputs, so JAX stacks them (scan, fori_loop, layer_stack), batches them
   (vmap) or passes them through (remat) exactly like the body's own outputs;
3. the wrapper then tells the resulting values again at its own level, where
   the next target (an enclosing wrapper's transport, or the collector) takes
   them. Only static metadata (site, tag, mode) stays on the Python side.

A value is accepted only where the current JAX trace is the target's own, so
no tracer can leak: under a raw JAX transform (``jax.lax.scan``,
``jax.checkpoint``, ``jax.vmap`` inside a module) the tell raises
``RawTransformError``; inside ``hk.cond``, ``hk.switch``, ``hk.while_loop`` or
``hk.fori_loop`` with traced bounds, whose bodies cannot return extra outputs
of a statically known shape, it raises ``SideOutputPlacementError`` saying
what to do instead.

hk_effects installs these carriers by replacing ``hk.scan``, ``hk.map`` (via
``haiku._src.stateful.scan``), ``hk.fori_loop``, ``hk.vmap``, ``hk.remat``,
``hk.cond``, ``hk.switch``, ``hk.while_loop``, the scan used by
``hk.dynamic_unroll`` and ``hk.layer_stack``'s scanning class when it is
imported (and lets ``hk.layer_stack`` report the name of its lifted module, to
prefix paths told inside it). While no collector runs each replacement costs one check and calls
Haiku's original, so programs are unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import operator
import threading
from typing import Any, Callable, Iterator

import haiku as hk
import jax
import jax.numpy as jnp
from haiku._src import base as hk_base
from haiku._src import layer_stack as hk_layer_stack
from haiku._src import module as hk_module
from haiku._src import recurrent as hk_recurrent
from haiku._src import stateful as hk_stateful

from hk_effects import binding
from hk_effects import nesting
from hk_effects import path_keys

MODES = ("append", "last", "sum")


class SideOutputPlacementError(ValueError):
  """A side output was told where it cannot be carried out.

  Example:

  >>> import hk_effects as hke
  >>> issubclass(hke.SideOutputPlacementError, ValueError)
  True
  """

SideOutputPlacementError.__module__ = "hk_effects"


@dataclasses.dataclass(frozen=True)
class Told:
  """Static description of one told value: who collects it and how."""
  scope: Any  # The collecting handler's binding.HandlerScope.
  site: binding.Site
  tag: Any
  mode: str

  @property
  def path(self) -> str:
    return f"{self.site.module_path}/{self.site.attribute_path}"


class Accumulator:
  """Told values in call order; "sum" and "last" keep one entry per site."""

  def __init__(self):
    self.told: list[Told] = []
    self.values: list[Any] = []
    self._index: dict[tuple[Any, ...], int] = {}

  def add(self, told: Told, value: Any) -> None:
    if told.mode == "append":
      self.told.append(told)
      self.values.append(value)
      return
    key = (id(told.scope), told.site, told.tag, told.mode)
    i = self._index.get(key)
    if i is None:
      self._index[key] = len(self.values)
      self.told.append(told)
      self.values.append(value)
    elif told.mode == "last":
      self.values[i] = value
    else:
      self.values[i] = _add(told, self.values[i], value)


def _add(told: Told, a: Any, b: Any) -> Any:
  shapes = lambda t: jax.tree_util.tree_map(
      lambda x: (x.shape, x.dtype), t)
  if (jax.tree_util.tree_structure(a) != jax.tree_util.tree_structure(b)
      or shapes(a) != shapes(b)):
    raise ValueError(
        f"Side output {told.tag!r} (mode='sum') at {told.site} was told "
        f"values of different structure or shape: {shapes(a)} and "
        f"{shapes(b)}. 'sum' adds every value told at one site, so they must "
        "match; tell values of one shape, or use mode='append'.")
  return jax.tree_util.tree_map(jnp.add, a, b)


@dataclasses.dataclass(eq=False)
class _Target:
  kind: str  # "home", "transport" or "barrier".
  name: str
  level: Any
  scope: Any = None
  accumulator: Accumulator | None = None
  # The Haiku transform the target lives in (hk_effects.nesting), and
  # whether it runs init.
  token: Any = None
  init: bool = False


class _ThreadState(threading.local):

  def __init__(self):
    self.targets: list[_Target] = []
    self.collectors = 0
    # One slot per running hk.layer_stack: the module its lift created.
    self.lifts: list[Any] = []


_state = _ThreadState()


def is_collecting() -> bool:
  """Whether a side-output collector runs (the carriers' one cheap check)."""
  return _state.collectors > 0


@contextlib.contextmanager
def _pushed(target: _Target) -> Iterator[_Target]:
  _state.targets.append(target)
  try:
    yield target
  finally:
    _state.targets.remove(target)


@contextlib.contextmanager
def collecting(scope) -> Iterator[Accumulator]:
  """Makes ``scope`` a collector whose home is the current trace level."""
  target = _Target("home", "collector", hk_base.JaxTraceLevel.current(),
                   scope=scope, accumulator=Accumulator(),
                   token=nesting.transform_token(),
                   init=hk_base.inside_transform() and hk.running_init())
  _state.collectors += 1
  try:
    with _pushed(target):
      yield target.accumulator
  finally:
    _state.collectors -= 1


@contextlib.contextmanager
def barrier(name: str) -> Iterator[None]:
  """Marks a wrapper that cannot carry side outputs out of its body."""
  with _pushed(_Target("barrier", name, None)):
    yield


def deliver(told: Told, value: Any) -> None:
  """Gives ``value`` to the innermost target between here and its collector."""
  target = None
  for candidate in reversed(_state.targets):
    if candidate.kind != "home" or candidate.scope is told.scope:
      target = candidate
      break
  if target is None:
    raise SideOutputPlacementError(
        f"Side output {told.tag!r} at {told.site} was told after its "
        f"collector {told.scope.handler_id!r} returned. Call the module "
        "inside the collector's body.")
  if target.kind == "barrier":
    raise SideOutputPlacementError(
        f"Side output {told.tag!r} at {told.site} was told inside "
        f"{target.name}, whose body cannot return extra outputs (its branches "
        "or iterations have no statically known shape in common), so the "
        "value cannot reach the collector. Return the value from the body "
        f"and tell it after {target.name} (hke.tell(tag, value) works outside "
        "modules), or use hk.scan / hk.fori_loop with Python int bounds, "
        "which carry side outputs.")
  if hk_base.JaxTraceLevel.current() != target.level:
    if target.init and nesting.transform_token() is not target.token:
      # A nested transform's init under a raw JAX transform (hk.lift of a
      # jax.vmap'ed init: an ensemble). init returns parameters and states
      # only, so what is told during it never reaches the user anyway.
      return
    if hk_base.inside_transform():
      binding.check_no_raw_transform(told.site, "SideOutputEffect", "tell")
    raise SideOutputPlacementError(
        f"Side output {told.tag!r} at {told.site} was told under a JAX trace "
        f"that {target.name} does not carry out (a Haiku wrapper hk_effects "
        "does not know, such as hk.eval_shape or a nested hk.transform), so "
        "the value would leak a tracer. Return it from that wrapper and tell "
        "it outside, or use hk.scan / hk.vmap / hk.remat / hk.layer_stack.")
  if nesting.transform_token() is not target.token:
    # Told in a model nested in the target's (hk.lift, a re-entrant apply):
    # its module names get the path of the nesting.
    prefix = nesting.prefix_from(target.token)
    if prefix:
      told = dataclasses.replace(told, site=binding.Site(
          f"{prefix}/{told.site.module_path}", told.site.attribute_path))
  target.accumulator.add(told, value)


class _Transport:
  """Carries values told inside one wrapped body out as extra outputs."""

  def __init__(self, name: str):
    self.name = name
    self.told: tuple[Told, ...] = ()

  def wrap(self, fun: Callable[..., Any]) -> Callable[..., Any]:
    """``fun`` returning ``(out, told_values)``."""
    @functools.wraps(fun)
    def carried(*args, **kwargs):
      target = _Target("transport", self.name,
                       hk_base.JaxTraceLevel.current(),
                       accumulator=Accumulator(),
                       token=nesting.transform_token(),
                       init=hk.running_init())
      with _pushed(target):
        out = fun(*args, **kwargs)
      # Static metadata only; the values leave as outputs of the trace.
      self.told = tuple(target.accumulator.told)
      return out, tuple(target.accumulator.values)
    return carried

  def retell(self, values: tuple[Any, ...],
             reduce: Callable[[str, Any], Any], prefix: str = "") -> None:
    for told, value in zip(self.told, values):
      value = reduce(told.mode, value)
      if value is None:
        continue
      if prefix:
        told = dataclasses.replace(told, site=binding.Site(
            f"{prefix}/{told.site.module_path}", told.site.attribute_path))
      deliver(told, value)


def _unchanged(mode: str, value: Any) -> Any:
  del mode
  return value


def _stacked(reverse: bool) -> Callable[[str, Any], Any]:
  """Reduces values stacked by a loop according to their mode."""
  def reduce(mode: str, value: Any) -> Any:
    if mode == "append":
      return value
    if mode == "sum":
      return jax.tree_util.tree_map(
          lambda v: jnp.sum(v, axis=0, dtype=v.dtype), value)
    if any(v.shape[0] == 0 for v in jax.tree_util.tree_leaves(value)):
      return None  # No iteration ran, so nothing was told.
    # The last iteration to run is index 0 of a reversed loop.
    return jax.tree_util.tree_map(lambda v: v[0 if reverse else -1], value)
  return reduce


def _carried_scan(orig_scan: Callable[..., Any], name: str, f, init, xs,
                  length=None, reverse=False, unroll=1):
  transport = _Transport(name)
  carried = transport.wrap(f)

  def body(carry, x):
    (carry, y), told = carried(carry, x)
    return carry, (y, told)

  carry, (ys, told) = orig_scan(body, init, xs, length, reverse, unroll)
  transport.retell(told, _stacked(reverse))
  return carry, ys


_ORIGINAL_SCAN = hk_stateful.scan


def _make_scan(orig: Callable[..., Any]) -> Callable[..., Any]:
  def carried(f, init, xs, length, reverse, unroll):
    if not is_collecting():
      return orig(f, init, xs, length, reverse, unroll)
    return _carried_scan(orig, "hk.scan", f, init, xs, length, reverse, unroll)

  @functools.wraps(orig)
  def scan(f, init, xs, length=None, reverse=False, unroll=1):
    if path_keys.tracking():
      return _indexed_scan(carried, "hk.scan", f, init, xs, length, reverse,
                           unroll)
    return carried(f, init, xs, length, reverse, unroll)
  return scan


def _indexed_scan(run: Callable[..., Any], kind: str, f, init, xs, length,
                  reverse, unroll):
  """``run`` with each body run told its position in ``xs`` (path keys)."""
  if length is None:
    length = jax.tree_util.tree_leaves(xs)[0].shape[0]
  with path_keys.loop(kind, length) as frame:
    def indexed(carry, x_and_index):
      x, index = x_and_index
      with path_keys.body(frame, index):
        return f(carry, x)
    # The index rides along with xs, so Haiku's init (which runs the first
    # step outside the scan) indexes it too. It counts steps in the order
    # they run: a reverse scan's first step is at the last position.
    return run(indexed, init, (xs, _step_indices(length, reverse)), length,
               reverse, unroll)


def _step_indices(length: int, reverse: bool) -> jax.Array:
  indices = jnp.arange(length)
  return indices[::-1] if reverse else indices


def _make_fori_loop(orig: Callable[..., Any]) -> Callable[..., Any]:
  @functools.wraps(orig)
  def fori_loop(lower, upper, body_fun, init_val):
    if not path_keys.tracking():
      return carried(lower, upper, body_fun, init_val)
    try:
      length = max(0, operator.index(upper) - operator.index(lower))
    except (TypeError, jax.errors.ConcretizationTypeError):
      length = None
    with path_keys.loop("hk.fori_loop", length) as frame:
      def indexed(i, val):
        with path_keys.body(frame, i - lower):
          return body_fun(i, val)
      return carried(lower, upper, indexed, init_val)

  def carried(lower, upper, body_fun, init_val):
    if not is_collecting():
      return orig(lower, upper, body_fun, init_val)
    try:
      lower, upper = operator.index(lower), operator.index(upper)
    except (TypeError, jax.errors.ConcretizationTypeError):
      with barrier("hk.fori_loop with traced bounds"):
        return orig(lower, upper, body_fun, init_val)
    # With static bounds the loop is a scan (as jax.lax.fori_loop lowers it),
    # which can stack what its body tells.
    step = lambda val, i: (body_fun(i, val), None)
    val, _ = _carried_scan(_ORIGINAL_SCAN, "hk.fori_loop", step, init_val,
                           jnp.arange(lower, upper))
    return val
  return fori_loop


def _make_vmap(orig: Callable[..., Any]) -> Callable[..., Any]:
  @functools.wraps(orig)
  def vmap(fun, in_axes=0, out_axes=0, axis_name=None, axis_size=None,
           **kwargs):
    orig.require_split_rng = vmap.require_split_rng
    plain = orig(fun, in_axes, out_axes, axis_name, axis_size, **kwargs)

    @functools.wraps(fun)
    def mapped(*args):
      body, name, direct = fun, axis_name, plain
      if path_keys.tracking() and kwargs.get("split_rng", False):
        # Path keys fold in the member index, read from a named axis.
        name = axis_name if axis_name is not None else (
            f"hk_effects_member_{next(_MEMBER_AXES)}")
        body, direct = _member_indexed(fun, name), None
      if not is_collecting():
        if direct is None:
          direct = orig(body, in_axes, out_axes, name, axis_size, **kwargs)
        return direct(*args)
      transport = _Transport("hk.vmap")
      out, told = orig(transport.wrap(body), in_axes, (out_axes, 0), name,
                       axis_size, **kwargs)(*args)
      transport.retell(told, _unchanged)
      return out
    return mapped
  vmap.require_split_rng = getattr(orig, "require_split_rng", True)
  return vmap


_MEMBER_AXES = itertools.count()


def _member_indexed(fun: Callable[..., Any],
                    axis_name: str) -> Callable[..., Any]:
  @functools.wraps(fun)
  def indexed(*args, **kwargs):
    with path_keys.member(jax.lax.axis_index(axis_name)):
      return fun(*args, **kwargs)
  return indexed


def _make_while_loop(orig: Callable[..., Any]) -> Callable[..., Any]:
  barriered = _make_barrier(orig, "hk.while_loop")

  @functools.wraps(orig)
  def while_loop(cond_fun, body_fun, init_val):
    if not path_keys.tracking():
      return barriered(cond_fun, body_fun, init_val)
    # The iteration count is carried, to index the body for path keys.
    with path_keys.loop("hk.while_loop", None) as frame:
      def indexed(val_and_index):
        val, index = val_and_index
        with path_keys.body(frame, index):
          return body_fun(val), index + 1
      val, _ = barriered(lambda val_and_index: cond_fun(val_and_index[0]),
                         indexed, (init_val, jnp.zeros((), jnp.int32)))
    return val
  return while_loop


def _make_remat(orig: Callable[..., Any]) -> Callable[..., Any]:
  @functools.wraps(orig)
  def remat(fun, *remat_args, **remat_kwargs):
    plain = orig(fun, *remat_args, **remat_kwargs)

    @functools.wraps(fun)
    def rematted(*args, **kwargs):
      if not is_collecting():
        return plain(*args, **kwargs)
      transport = _Transport("hk.remat")
      out, told = orig(transport.wrap(fun), *remat_args, **remat_kwargs)(
          *args, **kwargs)
      transport.retell(told, _unchanged)
      return out
    return rematted
  return remat


def _make_barrier(orig: Callable[..., Any], name: str) -> Callable[..., Any]:
  @functools.wraps(orig)
  def wrapper(*args, **kwargs):
    if not is_collecting():
      return orig(*args, **kwargs)
    with barrier(name):
      return orig(*args, **kwargs)
  return wrapper


def _make_branching(orig: Callable[..., Any], name: str) -> Callable[..., Any]:
  """``hk.cond`` / ``hk.switch``: a barrier for side outputs, and branches
  that count module calls from one start for path keys."""
  barriered = _make_barrier(orig, name)

  @functools.wraps(orig)
  def wrapper(*args, **kwargs):
    if not path_keys.tracking():
      return barriered(*args, **kwargs)
    with path_keys.alternatives() as branch:
      if name == "hk.switch":
        index, branches, *operands = args
        args = (index, [branch(f) for f in branches], *operands)
      else:  # Haiku's cond takes its branches in two positional layouts.
        args = tuple(branch(a) if callable(a) else a for a in args)
        kwargs = {k: branch(v) if callable(v) else v
                  for k, v in kwargs.items()}
      return barriered(*args, **kwargs)
  return wrapper


def _make_layer_stack_call(orig: Callable[..., Any]) -> Callable[..., Any]:
  @functools.wraps(orig)
  def __call__(self, x, *args_ys, reverse=False):  # pylint: disable=invalid-name
    if not path_keys.tracking():
      return carried(self, x, *args_ys, reverse=reverse)
    # Layer i is the i-th copy of the layer's modules: its index rides along
    # as one more per-layer input, which _make_layer_call takes off again.
    count = self._count  # pylint: disable=protected-access
    with path_keys.loop("hk.layer_stack", count, relative=True) as frame:
      self._hke_frame = frame  # pylint: disable=protected-access
      try:
        return carried(self, x, *args_ys, _step_indices(count, reverse),
                       reverse=reverse)
      finally:
        del self._hke_frame

  def carried(self, x, *args_ys, reverse=False):
    if not is_collecting():
      return orig(self, x, *args_ys, reverse=reverse)
    transport = _Transport("hk.layer_stack")
    self._hke_transport = transport  # pylint: disable=protected-access
    _state.lifts.append(None)
    try:
      out, (zs, told) = orig(self, x, *args_ys, reverse=reverse)
    finally:
      del self._hke_transport
      lifted = _state.lifts.pop()
    # Layers run in a nested transform whose module names lack the stack's
    # prefix; adding it keeps paths (and "sum"/"last" sites) distinct.
    transport.retell(told, _stacked(reverse),
                     prefix=getattr(lifted, "prefix_name", ""))
    return out, zs
  return __call__


def _make_layer_call(orig: Callable[..., Any]) -> Callable[..., Any]:
  # Runs inside layer_stack's per-layer transform: the layer's output `z` is
  # what jax.lax.scan stacks, so told values ride along with it.
  @functools.wraps(orig)
  def _call_wrapped(self, *args, **kwargs):
    frame = getattr(self, "_hke_frame", None)
    if frame is None:
      return carried(self, *args, **kwargs)
    *args, index = args
    with path_keys.body(frame, index):
      return carried(self, *args, **kwargs)

  def carried(self, *args, **kwargs):
    transport = getattr(self, "_hke_transport", None)
    if transport is None:
      return orig(self, *args, **kwargs)
    (out, z), told = transport.wrap(functools.partial(orig, self))(
        *args, **kwargs)
    return out, (z, told)
  return hk_module.transparent(_call_wrapped)


class _LiftRecorder:
  """``haiku._src.lift`` as layer_stack sees it, noting the lifting module."""

  def __init__(self, lift_module: Any):
    self._lift = lift_module

  def __getattr__(self, name: str) -> Any:
    return getattr(self._lift, name)

  def _record(self, lift_fn: Callable[..., Any], *args, **kwargs):
    lifted, updater = lift_fn(*args, **kwargs)
    if _state.lifts:
      # Haiku hides the LiftingModule (its name holds the uniquified prefix)
      # in a lambda's closure.
      cells = getattr(lifted, "__closure__", None) or ()
      _state.lifts[-1] = next(
          (c.cell_contents for c in cells
           if hasattr(c.cell_contents, "prefix_name")), None)
    return lifted, updater

  def lift_with_state(self, *args, **kwargs):
    return self._record(self._lift.lift_with_state, *args, **kwargs)

  def transparent_lift_with_state(self, *args, **kwargs):
    return self._record(self._lift.transparent_lift_with_state, *args,
                        **kwargs)


def _patch(owner: Any, name: str, make: Callable[..., Any], *args) -> None:
  current = getattr(owner, name)
  if getattr(current, "__hk_effects_carrier__", False):
    return
  replacement = make(current, *args)
  replacement.__hk_effects_carrier__ = True
  setattr(owner, name, replacement)


def install() -> None:
  """Installs the carriers (idempotent; done when hk_effects is imported)."""
  for owner in (hk, hk_stateful):
    _patch(owner, "scan", _make_scan)
    _patch(owner, "fori_loop", _make_fori_loop)
    _patch(owner, "vmap", _make_vmap)
    _patch(owner, "remat", _make_remat)
    _patch(owner, "cond", _make_branching, "hk.cond")
    _patch(owner, "switch", _make_branching, "hk.switch")
    _patch(owner, "while_loop", _make_while_loop)
  _patch(hk_recurrent.hk, "scan", _make_scan)
  if not isinstance(hk_layer_stack.lift, _LiftRecorder):
    hk_layer_stack.lift = _LiftRecorder(hk_layer_stack.lift)
  _patch(hk_layer_stack._LayerStack, "__call__", _make_layer_stack_call)  # pylint: disable=protected-access
  for cls in (hk_layer_stack._LayerStackNoPerLayer,  # pylint: disable=protected-access
              hk_layer_stack._LayerStackWithPerLayer):  # pylint: disable=protected-access
    _patch(cls, "_call_wrapped", _make_layer_call)


install()
