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
"""Measurements of one model version: trace, compile, step, HLO, memory.

Every measurement that times a trace builds a fresh step function first,
because ``jax.make_jaxpr`` and ``jax.jit`` reuse the trace of a function
object they have seen (docs/design.md, 10): timing the same function twice
would time a cache hit.
"""

from __future__ import annotations

import contextlib
import gc
import re
import statistics
import time
import tracemalloc
from typing import Any, Callable, Iterator

import haiku as hk
import jax

from benchmarks import models

# An HLO instruction is a line `[ROOT] name = type op(...)` inside a
# computation; headers, braces and metadata lines do not match.
_HLO_INSTRUCTION = re.compile(r"^\s*(ROOT\s+)?%?[\w.\-]+ = ")


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
  """Wall seconds, this thread's CPU seconds, and what ``fn()`` returned."""
  gc.collect()  # Leftovers of the previous measurement are not this one's.
  wall, cpu = time.perf_counter(), time.thread_time()
  out = fn()
  return time.perf_counter() - wall, time.thread_time() - cpu, out


def trace_time(version: models.Version) -> tuple[float, float, int]:
  """Wall and thread-CPU seconds to ``jax.make_jaxpr`` a fresh step, and
  its equation count.

  Tracing is single-threaded Python, so its thread CPU time leaves out the
  time spent waiting for a core that other processes hold (a shared machine).
  """
  step = version.make_step()
  seconds, cpu_seconds, jaxpr = _timed(
      lambda: jax.make_jaxpr(step)(*version.args)
  )
  return seconds, cpu_seconds, len(jaxpr.jaxpr.eqns)


def compile_time(version: models.Version) -> tuple[float, Any]:
  """Seconds to lower and compile a fresh, already traced step."""
  traced = jax.jit(version.make_step()).trace(*version.args)
  seconds, _, compiled = _timed(lambda: traced.lower().compile())
  return seconds, compiled


def hlo_instruction_count(compiled: Any) -> int:
  """Instructions in the optimized HLO module, all computations included."""
  return sum(
      1
      for line in compiled.as_text().splitlines()
      if _HLO_INSTRUCTION.match(line)
  )


def step_times(
    compiled: Any, args: tuple[Any, ...], calls: int
) -> list[tuple[float, float]]:
  """Wall and process-CPU seconds per call of the compiled step, each
  waited for.

  XLA runs a step on several threads of this process, so its CPU time is the
  process's (which, unlike wall time, leaves out waiting for a core that
  other processes hold). Run it inside ``no_gc()``: a full collection per
  call would cost more than the call (the heap holds every model built), and
  a call allocates too few Python objects to need one.
  """
  times = []
  for _ in range(calls):
    wall, cpu = time.perf_counter(), time.process_time()
    jax.block_until_ready(compiled(*args))
    times.append((time.perf_counter() - wall, time.process_time() - cpu))
  return times


@contextlib.contextmanager
def no_gc() -> Iterator[None]:
  """Collects once, then keeps the cyclic garbage collector off inside."""
  gc.collect()
  gc.disable()
  try:
    yield
  finally:
    gc.enable()


def trace_peak_memory(version: models.Version) -> int:
  """Peak bytes Python allocated while tracing a fresh step (tracemalloc)."""
  step = version.make_step()
  gc.collect()
  tracemalloc.start()
  try:
    jax.make_jaxpr(step)(*version.args)
    return tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()


def module_calls(version: models.Version) -> int:
  """Haiku module method calls in one trace of a Haiku version's step."""
  calls = 0

  def count(next_fun, args, kwargs, context):
    nonlocal calls
    calls += context.method_name != "__init__"
    return next_fun(*args, **kwargs)

  with hk.intercept_methods(count):
    jax.make_jaxpr(version.make_step())(*version.args)
  return calls


def summary(values: list[float]) -> tuple[float, float, float]:
  """(median, min, max)."""
  return statistics.median(values), min(values), max(values)
