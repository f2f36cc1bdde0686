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
r"""What ``path_keys=True`` costs: the benchmark transformer with the random
handler deriving keys from where they are drawn, against the default
(Haiku's rng sequence), side by side in one run.

Usage::

  python benchmarks/path_keys_cost.py          # about 1 minute on 2 cores

Both versions are the hk_effects model of ``benchmarks/overhead.py``; only
``WithHaikuRandom(..., path_keys=...)`` differs. Each round traces (and, at
``--compile_depth`` and below, runs) the two back to back in alternating
order; ratios are medians over rounds of path keys / sequence, in thread CPU
time for traces and process CPU time for compiled steps (CPU time leaves out
waiting for a core that other processes hold).
"""

from __future__ import annotations

import os
import statistics
import sys
from typing import Sequence

if __package__ in (None, ""):
  sys.path.insert(
      0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position

from benchmarks import measure  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import models  # pylint: disable=g-import-not-at-top,wrong-import-position

DEPTHS = flags.DEFINE_list(
    "depths", ["4", "16", "64"], "Numbers of transformer blocks to trace."
)
TRACE_REPS = flags.DEFINE_integer("trace_reps", 5, "Paired traces per depth.")
COMPILE_DEPTH = flags.DEFINE_integer(
    "compile_depth", 4, "The deepest model compiled and run."
)
STEP_CALLS = flags.DEFINE_integer(
    "step_calls", 40, "Paired calls of each compiled step (at least 20)."
)

SEQUENCE, PATH = "hk_effects", "hk_effects, path keys"


def _ratio(paired: list[tuple[float, float]]) -> tuple[float, float, float]:
  """Median, min and max over rounds of path keys / sequence."""
  ratios = [path / sequence for sequence, path in paired]
  return statistics.median(ratios), min(ratios), max(ratios)


def measure_depth(
    depth: int, trace_reps: int, compile: bool, step_calls: int
) -> dict[str, object]:
  """Paired measurements of the two versions at one depth."""
  versions = {
      SEQUENCE: models.effectful(depth),
      PATH: models.effectful(depth, path_keys=True),
  }
  for version in versions.values():  # Untimed warm-up.
    measure.trace_time(version)
  traces, eqns = [], {}
  for rnd in range(trace_reps):
    cpu = {}
    for name in (SEQUENCE, PATH)[:: 1 if rnd % 2 == 0 else -1]:
      _, cpu[name], eqns[name] = measure.trace_time(versions[name])
    traces.append((cpu[SEQUENCE], cpu[PATH]))
  result: dict[str, object] = {"trace_cpu_s": traces, "jaxpr_eqns": eqns}
  if not compile:
    return result
  compiled, hlo = {}, {}
  for name, version in versions.items():
    _, compiled[name] = measure.compile_time(version)
    hlo[name] = measure.hlo_instruction_count(compiled[name])
  steps = []
  with measure.no_gc():
    for name, version in versions.items():  # Warm up.
      measure.step_times(compiled[name], version.args, 1)
    for rnd in range(step_calls):
      cpu = {}
      for name in (SEQUENCE, PATH)[:: 1 if rnd % 2 == 0 else -1]:
        [(_, cpu[name])] = measure.step_times(
            compiled[name], versions[name].args, 1
        )
      steps.append((cpu[SEQUENCE], cpu[PATH]))
  result.update(hlo_instructions=hlo, step_cpu_s=steps)
  return result


def render(results: dict[int, dict[str, object]]) -> str:
  """A markdown table: medians of each version and the paired ratios."""
  lines = [
      "| depth | metric | sequence (default) | path keys | path / sequence |",
      "|---|---|---|---|---|",
  ]
  for depth, result in results.items():
    for key, label, scale in (
        ("trace_cpu_s", "trace, thread CPU (ms)", 1e3),
        ("step_cpu_s", "step, process CPU (ms)", 1e3),
    ):
      if key not in result:
        continue
      paired = result[key]
      med, lo, hi = _ratio(paired)
      lines.append(
          f"| {depth} | {label} | "
          f"{statistics.median(p[0] for p in paired) * scale:.4g} | "
          f"{statistics.median(p[1] for p in paired) * scale:.4g} | "
          f"{med:.3f} [{lo:.3f}-{hi:.3f}] |"
      )
    for key, label in (
        ("hlo_instructions", "HLO instructions"),
        ("jaxpr_eqns", "jaxpr equations"),
    ):
      if key in result:
        counts = result[key]
        lines.append(
            f"| {depth} | {label} | {counts[SEQUENCE]} | "
            f"{counts[PATH]} | {counts[PATH] / counts[SEQUENCE]:.3f} |"
        )
  return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
  del argv
  if STEP_CALLS.value < 20:
    raise app.UsageError(
        f"--step_calls={STEP_CALLS.value}: pass 20 or more (the step ratio "
        "is a median over that many rounds)."
    )
  if TRACE_REPS.value < 1:
    raise app.UsageError(f"--trace_reps={TRACE_REPS.value}: pass 1 or more.")
  results = {}
  for depth in (int(d) for d in DEPTHS.value):
    print(f"depth {depth}: measuring", flush=True)
    results[depth] = measure_depth(
        depth, TRACE_REPS.value, depth <= COMPILE_DEPTH.value, STEP_CALLS.value
    )
  print()
  print(render(results))
  print(
      "\nRatios: median [min-max] over rounds of path keys / sequence, "
      f"the two run back to back; load average {os.getloadavg()[0]:.1f}."
  )


if __name__ == "__main__":
  app.run(main)
