r"""What hk_effects costs over hand-threaded Haiku, and over Penzai v1.

Traces, compiles and runs one pre-LayerNorm transformer stack (d_model 128,
4 heads, MLP 512, sequence 64, batch 8; see ``benchmarks/models.py``) at
several depths in three versions: hand-threaded Haiku, hk_effects and
Penzai v1 with its data effects (skipped, with a note, when penzai is not
installed: ``pip install -e .[bench]``). Repetitions are interleaved across
versions, so a busy machine slows all of them alike and the ratios stay fair.
The targets are decided by CPU times, which leave out waiting for a core
that other processes hold: the ratios by the median over rounds of the two
Haiku versions' back-to-back ratios, the rest by minima (see
``benchmarks/report.py``). Penzai, about ten times slower to trace, gets
fewer traces, and with ``--quick`` its tracemalloc pass runs at 16 blocks.

The models of every depth are built once, first, and moved to the garbage
collector's permanent generation (``gc.freeze``) while they are measured, so
the collections a trace triggers scan what that trace allocated rather than
the benchmark's models; every version is measured under the same rule. The
trace rounds of all depths are interleaved in three passes.

Usage::

  python benchmarks/overhead.py --quick   # under 2 minutes on 2 cores
  python benchmarks/overhead.py           # more repetitions, all compiles

It prints medians with [min-max] and the ratios hk_effects / hand-threaded
and hk_effects / Penzai, then the targets of DESIGN section 8 and whether
they were met.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import sys
from typing import Any, Sequence

if __package__ in (None, ""):
  # Run as a script: make `hk_effects` and `benchmarks` importable from a
  # checkout without installing it.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from benchmarks import measure  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import report  # pylint: disable=g-import-not-at-top,wrong-import-position

QUICK = flags.DEFINE_boolean(
    "quick", False,
    "Fewer repetitions, and compile/step only up to --quick_compile_depth.")
DEPTHS = flags.DEFINE_list("depths", ["4", "16", "64"],
                           "Numbers of transformer blocks to measure.")
TRACE_REPS = flags.DEFINE_integer(
    "trace_reps", None,
    "Traces per Haiku version and depth (default 15, quick 9).")
PENZAI_TRACE_REPS = flags.DEFINE_integer(
    "penzai_trace_reps", None,
    "Traces of Penzai v1 per depth (default 3, quick 1: it traces about ten "
    "times slower than the Haiku versions, which are what the 10% target "
    "compares).")
COMPILE_REPS = flags.DEFINE_integer(
    "compile_reps", None,
    "Lower+compile runs per version and depth (default 3, quick 1).")
STEP_CALLS = flags.DEFINE_integer(
    "step_calls", 60, "Calls of each compiled step timed (at least 20).")
QUICK_COMPILE_DEPTH = flags.DEFINE_integer(
    "quick_compile_depth", 4,
    "With --quick, the deepest model that is compiled and run (XLA takes "
    "minutes for 64 blocks on 2 CPU cores).")
MEMORY_DEPTH = flags.DEFINE_integer(
    "memory_depth", 64,
    "Depth at which peak tracing memory of the Haiku versions is measured "
    "(0: not at all).")
PENZAI_MEMORY_DEPTH = flags.DEFINE_integer(
    "penzai_memory_depth", None,
    "Depth at which Penzai's peak tracing memory is measured (default "
    "--memory_depth; quick 16: tracemalloc slows tracing about five-fold, and "
    "Penzai's trace at depth 64 then takes a minute).")
SKIP_PENZAI = flags.DEFINE_boolean(
    "skip_penzai", False, "Leave Penzai v1 out even if it is installed.")
JSON_OUT = flags.DEFINE_string(
    "json_out", None, "Also write every raw measurement to this JSON file.")


def _versions(depth: int, with_penzai: bool) -> list[models.Version]:
  names = ["hand-threaded", "hk_effects"] + (["penzai v1"] if with_penzai
                                             else [])
  return [models.BUILDERS[name](depth) for name in names]


def _rotated(items: list[Any], shift: int) -> list[Any]:
  shift %= len(items)
  return items[shift:] + items[:shift]


def _new_results(versions: list[models.Version]) -> dict[str, Any]:
  return {v.name: {"trace_s": [], "trace_cpu_s": [], "compile_s": [],
                   "step_s": [], "step_cpu_s": []} for v in versions}


def _penzai_rounds(trace_reps: int, penzai_trace_reps: int) -> set[int]:
  """The rounds in which Penzai is traced too, spread over all of them so
  that its few traces do not all fall in one busy stretch."""
  return {round((i + 0.5) * trace_reps / penzai_trace_reps - 0.5)
          for i in range(min(trace_reps, penzai_trace_reps))}


def _trace_rounds(versions: list[models.Version], results: dict[str, Any],
                  rounds: range, penzai_rounds: set[int]) -> None:
  """Traces every version once per round, rotating the order each round."""
  for rnd in rounds:
    for version in _rotated(versions, rnd):
      if version.name == "penzai v1" and rnd not in penzai_rounds:
        continue
      seconds, cpu_seconds, eqns = measure.trace_time(version)
      results[version.name]["trace_s"].append(seconds)
      results[version.name]["trace_cpu_s"].append(cpu_seconds)
      results[version.name]["jaxpr_eqns"] = eqns


def _compile_and_step(versions: list[models.Version], results: dict[str, Any],
                      compile_reps: int, step_calls: int) -> None:
  """Compile times, HLO counts and interleaved compiled-step times."""
  compiled = {}
  for rep in range(compile_reps):
    for version in _rotated(versions, rep):
      seconds, compiled[version.name] = measure.compile_time(version)
      results[version.name]["compile_s"].append(seconds)
  for version in versions:
    results[version.name]["hlo_instructions"] = (
        measure.hlo_instruction_count(compiled[version.name]))
  with measure.no_gc():
    for version in versions:  # Warm up.
      measure.step_times(compiled[version.name], version.args, 1)
    # One call per version per round, rotating the order: load changes on a
    # shared machine then hit every version alike.
    for rnd in range(step_calls):
      for version in _rotated(versions, rnd):
        [(wall, cpu)] = measure.step_times(compiled[version.name],
                                           version.args, 1)
        results[version.name]["step_s"].append(wall)
        results[version.name]["step_cpu_s"].append(cpu)


def _measure_memory(data: dict[str, Any],
                    versions: list[models.Version]) -> None:
  """One tracemalloc trace per version (tracemalloc slows tracing a lot)."""
  for version in versions:
    print(f"peak tracing memory of {version.name}", flush=True)
    data["memory"][version.name] = measure.trace_peak_memory(version)


def _penzai_available() -> bool:
  try:
    import penzai.deprecated.v1  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def run(depths: Sequence[int], trace_reps: int, compile_reps: int,
        compile_depth: int, step_calls: int, memory_depth: int | None,
        with_penzai: bool,
        penzai_trace_reps: int | None = None,
        penzai_memory_depth: int | None = None) -> dict[str, Any]:
  """All measurements, as a JSON-able dict (see ``report.render``)."""
  data: dict[str, Any] = {
      "machine": {
          "python": platform.python_version(), "jax": jax.__version__,
          "cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
          "backend": jax.default_backend()},
      "penzai": with_penzai, "depths": {}, "memory": {},
  }
  memory_depths = {} if not memory_depth else {
      v: memory_depth for v in ("hand-threaded", "hk_effects")}
  if memory_depth and with_penzai:
    memory_depths["penzai v1"] = penzai_memory_depth or memory_depth
  data["memory_depths"] = memory_depths
  built = {}
  for depth in depths:
    print(f"depth {depth}: building", flush=True)
    built[depth] = _versions(depth, with_penzai)
    data["depths"][depth] = _new_results(built[depth])
  gc.collect()
  gc.freeze()
  try:
    for depth in depths:
      # Untimed: counting module calls traces the hand-threaded step, which
      # also warms up this depth; the first trace of a process pays for
      # JAX's own caches whatever the version.
      data["depths"][depth]["module_calls"] = measure.module_calls(
          built[depth][0])
    for version in built[depths[0]]:
      measure.trace_time(version)
    # The rounds of all depths are interleaved in a few passes, so that a
    # busy stretch of a shared machine does not fall on one depth only (the
    # per-module-call cost is compared across depths).
    passes = min(3, trace_reps)
    penzai_rounds = _penzai_rounds(trace_reps, penzai_trace_reps or trace_reps)
    for pass_ in range(passes):
      for depth in depths:
        print(f"depth {depth}: tracing (pass {pass_ + 1} of {passes})",
              flush=True)
        _trace_rounds(built[depth], data["depths"][depth],
                      range(pass_ * trace_reps // passes,
                            (pass_ + 1) * trace_reps // passes),
                      penzai_rounds)
    for depth in depths:
      if depth <= compile_depth and compile_reps:
        print(f"depth {depth}: compiling and running", flush=True)
        _compile_and_step(built[depth], data["depths"][depth], compile_reps,
                          step_calls)
    for depth in depths:
      _measure_memory(data, [v for v in built[depth]
                             if memory_depths.get(v.name) == depth])
  finally:
    gc.unfreeze()
  del built
  for depth in sorted(set(memory_depths.values()) - set(depths)):
    _measure_memory(data, [v for v in _versions(depth, with_penzai)
                           if memory_depths[v.name] == depth])
  data["machine"]["load_average_after"] = list(os.getloadavg())
  return data


def main(argv: Sequence[str]) -> None:
  del argv
  if STEP_CALLS.value < 20:
    raise app.UsageError(
        f"--step_calls={STEP_CALLS.value}: the step time is a median of at "
        "least 20 calls; pass 20 or more.")
  with_penzai = not SKIP_PENZAI.value and _penzai_available()
  quick = QUICK.value
  trace_reps = TRACE_REPS.value or (9 if quick else 15)
  penzai_trace_reps = min(trace_reps, PENZAI_TRACE_REPS.value
                          or (1 if quick else 3))
  compile_reps = COMPILE_REPS.value or (1 if quick else 3)
  depths = [int(d) for d in DEPTHS.value]
  compile_depth = QUICK_COMPILE_DEPTH.value if quick else max(depths)
  data = run(depths, trace_reps, compile_reps, compile_depth,
             STEP_CALLS.value, MEMORY_DEPTH.value, with_penzai,
             penzai_trace_reps=penzai_trace_reps,
             penzai_memory_depth=PENZAI_MEMORY_DEPTH.value or (
                 16 if quick else None))
  print()
  print(report.render(data))
  if not with_penzai:
    print("\nPenzai v1 skipped: "
          + ("--skip_penzai given." if SKIP_PENZAI.value else
             "penzai is not installed (pip install -e .[bench])."))
  if JSON_OUT.value:
    with open(JSON_OUT.value, "w", encoding="utf-8") as f:
      json.dump(data, f, indent=1)


if __name__ == "__main__":
  app.run(main)
