r"""What hk_effects costs over hand-threaded Haiku, and over Penzai v1.

Traces, compiles and runs one pre-LayerNorm transformer stack (d_model 128,
4 heads, MLP 512, sequence 64, batch 8; see ``benchmarks/models.py``) at
several depths in three versions: hand-threaded Haiku, hk_effects and
Penzai v1 with its data effects (skipped, with a note, when penzai is not
installed: ``pip install -e .[bench]``). Repetitions are interleaved across
versions, so a busy machine slows all of them alike and the ratios stay fair.

Usage::

  python benchmarks/overhead.py --quick   # about 2 minutes on 2 idle cores
  python benchmarks/overhead.py           # more repetitions, all compiles

It prints medians with [min-max] and the ratios hk_effects / hand-threaded
and hk_effects / Penzai, then the targets of DESIGN section 8 and whether
they were met.
"""

from __future__ import annotations

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
    "Traces per version and depth (default 7, quick 5; Penzai 2 with quick).")
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
    "memory_depth", 64, "Depth at which peak tracing memory is measured.")
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


def _measure_depth(versions: list[models.Version], trace_reps: int,
                   compile_reps: int, step_calls: int,
                   warm_up: bool,
                   penzai_trace_reps: int | None = None
                   ) -> dict[str, dict[str, Any]]:
  """Raw measurements of every version at one depth, interleaved."""
  results = {v.name: {"trace_s": [], "trace_cpu_s": [], "compile_s": [],
                      "step_s": []} for v in versions}
  if warm_up:
    # The first trace of a process pays for JAX's own caches (primitive
    # rules, lowering tables) whatever the version, so it is not timed.
    for version in versions:
      measure.trace_time(version)
  for rep in range(trace_reps):
    for version in _rotated(versions, rep):
      if (version.name == "penzai v1" and penzai_trace_reps is not None
          and rep >= penzai_trace_reps):
        continue  # --quick: Penzai is ~10x slower; fewer reps tell as much.
      seconds, cpu_seconds, eqns = measure.trace_time(version)
      results[version.name]["trace_s"].append(seconds)
      results[version.name]["trace_cpu_s"].append(cpu_seconds)
      results[version.name]["jaxpr_eqns"] = eqns
  compiled = {}
  for rep in range(compile_reps):
    for version in _rotated(versions, rep):
      seconds, compiled[version.name] = measure.compile_time(version)
      results[version.name]["compile_s"].append(seconds)
  if compiled:
    for version in versions:
      results[version.name]["hlo_instructions"] = (
          measure.hlo_instruction_count(compiled[version.name]))
      measure.step_times(compiled[version.name], version.args, 1)  # Warm up.
    # One call per version per round, rotating the order: load changes on a
    # shared machine then hit every version alike.
    for rnd in range(step_calls):
      for version in _rotated(versions, rnd):
        results[version.name]["step_s"] += measure.step_times(
            compiled[version.name], version.args, 1)
  return results


def _penzai_available() -> bool:
  try:
    import penzai.deprecated.v1  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def run(depths: Sequence[int], trace_reps: int, compile_reps: int,
        compile_depth: int, step_calls: int, memory_depth: int | None,
        with_penzai: bool,
        penzai_trace_reps: int | None = None) -> dict[str, Any]:
  """All measurements, as a JSON-able dict (see ``report.render``)."""
  data: dict[str, Any] = {
      "machine": {
          "python": platform.python_version(), "jax": jax.__version__,
          "cpus": os.cpu_count(), "load_average": list(os.getloadavg()),
          "backend": jax.default_backend()},
      "penzai": with_penzai, "depths": {}, "memory": {},
  }
  built = {}
  for depth in depths:
    versions = built[depth] = _versions(depth, with_penzai)
    reps = compile_reps if depth <= compile_depth else 0
    print(f"depth {depth}: measuring {', '.join(v.name for v in versions)}",
          flush=True)
    data["depths"][depth] = _measure_depth(
        versions, trace_reps, reps, step_calls, warm_up=depth == depths[0],
        penzai_trace_reps=penzai_trace_reps)
    data["depths"][depth]["module_calls"] = measure.module_calls(depth)
  if memory_depth:
    for version in (built.get(memory_depth)
                    or _versions(memory_depth, with_penzai)):
      data["memory"][version.name] = measure.trace_peak_memory(version)
    data["memory_depth"] = memory_depth
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
  trace_reps = TRACE_REPS.value or (5 if quick else 7)
  compile_reps = COMPILE_REPS.value or (1 if quick else 3)
  depths = [int(d) for d in DEPTHS.value]
  compile_depth = QUICK_COMPILE_DEPTH.value if quick else max(depths)
  data = run(depths, trace_reps, compile_reps, compile_depth,
             STEP_CALLS.value, MEMORY_DEPTH.value, with_penzai,
             penzai_trace_reps=2 if quick else None)
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
