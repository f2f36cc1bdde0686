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
r"""What hk_effects costs over hand-threaded Haiku, Penzai v1 and Flax linen.

Two synthetic models (``benchmarks/models.py``), each at several depths:

* the pre-LayerNorm ``transformer`` (d_model 128, 4 heads, MLP 512,
  sequence 64, batch 8), where most of a block's trace is attention and MLP,
  in hand-threaded Haiku, hk_effects and Penzai v1 with its data effects;
* the effect-dense ``dense`` block (Linear times a side-input mask, relu,
  dropout, a told intermediate, a counter: four effects per five ops), in
  hand-threaded Haiku, hk_effects, hk_effects with ``path_keys=True`` and
  Flax linen (``self.sow``, ``self.make_rng``, a ``self.variable`` counter).

and three real models (``benchmarks/real_models.py``), each as plain Haiku
(in the column "hand-threaded") and as ported to hk_effects: a ResNet
(``hk.nets.ResNet``; BatchNorm flags as side inputs, block outputs told), a
pre-LN transformer LM (mask and positions as side inputs, dropout keys from a
random request, residuals told) and an LSTM sampler (``hk.dynamic_unroll``,
keys from a random request). ``--quick`` measures them at their default
depth, a full run also deeper.

A rival that is not installed is skipped with a note (``pip install -e
.[bench]``). Repetitions are interleaved across versions, so a busy machine
slows all of them alike and the ratios stay fair. The targets are decided by
CPU times, which leave out waiting for a core that other processes hold: the
ratios by the median over rounds of two versions' back-to-back ratios, the
rest by minima (see ``benchmarks/report.py``). Penzai, about ten times
slower to trace, gets fewer traces, and with ``--quick`` its tracemalloc
pass runs at 16 blocks.

The models of every depth are built once, first, and moved to the garbage
collector's permanent generation (``gc.freeze``) while they are measured, so
the collections a trace triggers scan what that trace allocated rather than
the benchmark's models; every version is measured under the same rule. The
trace rounds of all depths are interleaved in three passes.

Usage::

  python benchmarks/overhead.py --quick   # about 2 minutes on 2 cores
  python benchmarks/overhead.py           # more repetitions, 256 dense
                                          # blocks, all compiles

It prints one table (medians with [min-max], ratios hk_effects /
hand-threaded, path keys / default and hk_effects / rival), then every
target and whether it was met.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import platform
import sys
from typing import Any, Callable, Sequence

if __package__ in (None, ""):
  # Run as a script: make `hk_effects` and `benchmarks` importable from a
  # checkout without installing it.
  sys.path.insert(
      0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from benchmarks import measure  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import real_models  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import report  # pylint: disable=g-import-not-at-top,wrong-import-position

QUICK = flags.DEFINE_boolean(
    "quick",
    False,
    "Fewer repetitions, the dense block up to 64 blocks, and fewer "
    "compiles (see --quick_compile_depth).",
)
MODELS = flags.DEFINE_list(
    "models",
    ["transformer", "dense", "resnet", "lm", "lstm"],
    "Which models to measure: the pre-LN transformer, the effect-dense "
    "block, and the real models of benchmarks/real_models.py (ResNet, "
    "transformer LM, LSTM sampler).",
)
DEPTHS = flags.DEFINE_list(
    "depths", ["4", "16", "64"], "Numbers of transformer blocks to measure."
)
DENSE_DEPTHS = flags.DEFINE_list(
    "dense_depths",
    None,
    "Numbers of effect-dense blocks (default 4,16,64,256; quick 4,16,64).",
)
TRACE_REPS = flags.DEFINE_integer(
    "trace_reps",
    None,
    "Traces per Haiku version and depth (default 15, quick 9).",
)
REAL_TRACE_REPS = flags.DEFINE_integer(
    "real_trace_reps",
    25,
    "Traces per version of the real models (resnet, lm, lstm). They trace "
    "in 5-60 ms, and with 9 rounds their median ratio moved by 0.05 "
    "between runs, the size of their 1.05 target.",
)
PENZAI_TRACE_REPS = flags.DEFINE_integer(
    "penzai_trace_reps",
    None,
    "Traces of Penzai v1 per depth (default 3, quick 1: it traces about ten "
    "times slower than the Haiku versions, which are what the 10% target "
    "compares).",
)
COMPILE_REPS = flags.DEFINE_integer(
    "compile_reps",
    None,
    "Lower+compile runs per version and depth (default 3, quick 1).",
)
STEP_CALLS = flags.DEFINE_integer(
    "step_calls", 60, "Calls of each compiled step timed (at least 20)."
)
QUICK_COMPILE_DEPTH = flags.DEFINE_integer(
    "quick_compile_depth",
    4,
    "With --quick, the deepest transformer that is compiled and run (XLA "
    "takes minutes for 64 blocks on 2 CPU cores). The dense block is "
    "compiled at every depth for hk_effects and Flax linen (trace+compile "
    "is compared), and hand-threaded and path keys at the target depth.",
)
MEMORY_DEPTH = flags.DEFINE_integer(
    "memory_depth",
    64,
    "Depth at which peak tracing memory of the Haiku transformers is "
    "measured (0: not at all).",
)
PENZAI_MEMORY_DEPTH = flags.DEFINE_integer(
    "penzai_memory_depth",
    None,
    "Depth at which Penzai's peak tracing memory is measured (default "
    "--memory_depth; quick 16: tracemalloc slows tracing about five-fold, and "
    "Penzai's trace at depth 64 then takes a minute).",
)
SKIP_PENZAI = flags.DEFINE_boolean(
    "skip_penzai", False, "Leave Penzai v1 out even if it is installed."
)
SKIP_LINEN = flags.DEFINE_boolean(
    "skip_linen", False, "Leave Flax linen out even if it is installed."
)
JSON_OUT = flags.DEFINE_string(
    "json_out", None, "Also write every raw measurement to this JSON file."
)

# The depth at which the dense block's targets are decided.
DENSE_TARGET_DEPTH = 64


def _rotated(items: list[Any], shift: int) -> list[Any]:
  shift %= len(items)
  return items[shift:] + items[:shift]


def _new_results(versions: list[models.Version]) -> dict[str, Any]:
  return {
      v.name: {
          "trace_s": [],
          "trace_cpu_s": [],
          "compile_s": [],
          "step_s": [],
          "step_cpu_s": [],
      }
      for v in versions
  }


def _few_rounds(trace_reps: int, few: int) -> set[int]:
  """The rounds in which a slow rival is traced too, spread over all of them
  so that its few traces do not all fall in one busy stretch."""
  return {
      round((i + 0.5) * trace_reps / few - 0.5)
      for i in range(min(trace_reps, few))
  }


def _trace_rounds(
    versions: list[models.Version],
    results: dict[str, Any],
    rounds: range,
    few_rounds: set[int],
) -> None:
  """Traces every version once per round, rotating the order each round."""
  for rnd in rounds:
    for version in _rotated(versions, rnd):
      if version.name == report.PENZAI and rnd not in few_rounds:
        continue
      seconds, cpu_seconds, eqns = measure.trace_time(version)
      results[version.name]["trace_s"].append(seconds)
      results[version.name]["trace_cpu_s"].append(cpu_seconds)
      results[version.name]["jaxpr_eqns"] = eqns


def _compile_and_step(
    versions: list[models.Version],
    results: dict[str, Any],
    compile_reps: int,
    step_calls: int,
) -> None:
  """Compile times, HLO counts and interleaved compiled-step times."""
  compiled = {}
  for rep in range(compile_reps):
    for version in _rotated(versions, rep):
      seconds, compiled[version.name] = measure.compile_time(version)
      results[version.name]["compile_s"].append(seconds)
  for version in versions:
    results[version.name]["hlo_instructions"] = measure.hlo_instruction_count(
        compiled[version.name]
    )
  with measure.no_gc():
    for version in versions:  # Warm up.
      measure.step_times(compiled[version.name], version.args, 1)
    # One call per version per round, rotating the order: load changes on a
    # shared machine then hit every version alike.
    for rnd in range(step_calls):
      for version in _rotated(versions, rnd):
        [(wall, cpu)] = measure.step_times(
            compiled[version.name], version.args, 1
        )
        results[version.name]["step_s"].append(wall)
        results[version.name]["step_cpu_s"].append(cpu)


def _measure_memory(
    data: dict[str, Any], versions: list[models.Version]
) -> None:
  """One tracemalloc trace per version (tracemalloc slows tracing a lot)."""
  for version in versions:
    print(f"peak tracing memory of {version.name}", flush=True)
    data["memory"][version.name] = measure.trace_peak_memory(version)


def available(module: str) -> bool:
  """Whether ``module`` (a rival library) can be imported."""
  try:
    __import__(module)
  except ImportError:
    return False
  return True


@dataclasses.dataclass
class Plan:
  """What to measure of one model: versions, depths, and which versions to
  compile at which depth."""

  model: str
  versions: list[str]
  depths: list[int]
  rival: str | None
  compile_at: Callable[[int, str], bool]


def plans(
    model_names: Sequence[str],
    depths: Sequence[int],
    dense_depths: Sequence[int],
    quick: bool,
    compile_depth: int,
    with_penzai: bool,
    with_linen: bool,
) -> list[Plan]:
  """The measurement plan of each requested model."""
  out = []
  for name in model_names:
    if name == report.TRANSFORMER:
      out.append(
          Plan(
              name,
              [report.HAND, report.HKE]
              + ([report.PENZAI] if with_penzai else []),
              list(depths),
              report.PENZAI if with_penzai else None,
              lambda depth, version: depth <= compile_depth,
          )
      )
    elif name == report.DENSE:

      def dense_compiles(depth: int, version: str) -> bool:
        if not quick or version in (report.HKE, report.LINEN):
          return True
        return depth == DENSE_TARGET_DEPTH

      out.append(
          Plan(
              name,
              [report.HAND, report.HKE, report.PATH_KEYS]
              + ([report.LINEN] if with_linen else []),
              list(dense_depths),
              report.LINEN if with_linen else None,
              dense_compiles,
          )
      )
    elif name in real_models.BUILDERS:
      out.append(
          Plan(
              name,
              [report.HAND, report.HKE],
              (
                  real_models.DEFAULT_DEPTHS
                  if quick
                  else real_models.FULL_DEPTHS
              )[name],
              None,
              lambda depth, version: True,
          )
      )
    else:
      known = [report.TRANSFORMER, report.DENSE, *real_models.BUILDERS]
      raise app.UsageError(
          f"--models: unknown model {name!r}; choose from "
          + ", ".join(map(repr, known))
          + "."
      )
  return out


def _build(plan: Plan, depth: int) -> list[models.Version]:
  if plan.model in real_models.BUILDERS:
    builders = real_models.BUILDERS[plan.model]
  elif plan.model == report.TRANSFORMER:
    builders = models.BUILDERS
  else:
    builders = models.DENSE_BUILDERS
  return [builders[name](depth) for name in plan.versions]


def run(
    model_plans: Sequence[Plan],
    trace_reps: int,
    compile_reps: int,
    step_calls: int,
    memory_depth: int | None,
    penzai_trace_reps: int | None = None,
    penzai_memory_depth: int | None = None,
    real_trace_reps: int | None = None,
) -> dict[str, Any]:
  """All measurements, as a JSON-able dict (see ``report.render``)."""
  data: dict[str, Any] = {
      "machine": {
          "python": platform.python_version(),
          "jax": jax.__version__,
          "cpus": os.cpu_count(),
          "load_average": list(os.getloadavg()),
          "backend": jax.default_backend(),
      },
      "models": {},
      "memory": {},
  }
  transformer = [p for p in model_plans if p.model == report.TRANSFORMER]
  memory_depths = (
      {}
      if not memory_depth or not transformer
      else {v: memory_depth for v in (report.HAND, report.HKE)}
  )
  if memory_depths and report.PENZAI in transformer[0].versions:
    memory_depths[report.PENZAI] = penzai_memory_depth or memory_depth
  data["memory_depths"] = memory_depths
  built = {}
  for plan in model_plans:
    data["models"][plan.model] = {
        "versions": plan.versions,
        "rival": plan.rival,
        "depths": {},
    }
    for depth in plan.depths:
      print(f"{plan.model} {depth}: building", flush=True)
      built[plan.model, depth] = _build(plan, depth)
      data["models"][plan.model]["depths"][depth] = _new_results(
          built[plan.model, depth]
      )
  gc.collect()
  gc.freeze()
  try:
    for (model, depth), versions in built.items():
      # Untimed: counting module calls traces the hand-threaded step, which
      # also warms up this depth; the first trace of a process pays for
      # JAX's own caches whatever the version.
      data["models"][model]["depths"][depth]["module_calls"] = (
          measure.module_calls(versions[0])
      )
      for version in versions:
        if version.name != report.PENZAI:
          measure.trace_time(version)
    # The rounds of all depths are interleaved in a few passes, so that a
    # busy stretch of a shared machine does not fall on one depth only (the
    # per-module-call cost is compared across depths).
    passes = min(3, trace_reps)
    few = _few_rounds(trace_reps, penzai_trace_reps or trace_reps)
    for pass_ in range(passes):
      for (model, depth), versions in built.items():
        reps = (
            real_trace_reps or trace_reps
            if model in real_models.BUILDERS
            else trace_reps
        )
        print(
            f"{model} {depth}: tracing (pass {pass_ + 1} of {passes})",
            flush=True,
        )
        _trace_rounds(
            versions,
            data["models"][model]["depths"][depth],
            range(pass_ * reps // passes, (pass_ + 1) * reps // passes),
            few,
        )
    for plan in model_plans:
      for depth in plan.depths:
        chosen = [
            v
            for v in built[plan.model, depth]
            if plan.compile_at(depth, v.name)
        ]
        if chosen and compile_reps:
          print(
              f"{plan.model} {depth}: compiling and running "
              f"{', '.join(v.name for v in chosen)}",
              flush=True,
          )
          _compile_and_step(
              chosen,
              data["models"][plan.model]["depths"][depth],
              compile_reps,
              step_calls,
          )
    for plan in transformer:
      for depth in plan.depths:
        _measure_memory(
            data,
            [
                v
                for v in built[plan.model, depth]
                if memory_depths.get(v.name) == depth
            ],
        )
  finally:
    gc.unfreeze()
  del built
  if transformer:
    for depth in sorted(
        set(memory_depths.values()) - set(transformer[0].depths)
    ):
      _measure_memory(
          data,
          [
              v
              for v in _build(transformer[0], depth)
              if memory_depths[v.name] == depth
          ],
      )
  data["machine"]["load_average_after"] = list(os.getloadavg())
  return data


def main(argv: Sequence[str]) -> None:
  del argv
  if STEP_CALLS.value < 20:
    raise app.UsageError(
        f"--step_calls={STEP_CALLS.value}: the step time is a median of at "
        "least 20 calls; pass 20 or more."
    )
  with_penzai = not SKIP_PENZAI.value and available("penzai.deprecated.v1")
  with_linen = not SKIP_LINEN.value and available("flax.linen")
  quick = QUICK.value
  trace_reps = TRACE_REPS.value or (9 if quick else 15)
  penzai_trace_reps = min(
      trace_reps, PENZAI_TRACE_REPS.value or (1 if quick else 3)
  )
  compile_reps = COMPILE_REPS.value or (1 if quick else 3)
  dense_depths = DENSE_DEPTHS.value or (
      ["4", "16", "64"] if quick else ["4", "16", "64", "256"]
  )
  depths = [int(d) for d in DEPTHS.value]
  compile_depth = QUICK_COMPILE_DEPTH.value if quick else max(depths)
  model_plans = plans(
      MODELS.value,
      depths,
      [int(d) for d in dense_depths],
      quick,
      compile_depth,
      with_penzai,
      with_linen,
  )
  data = run(
      model_plans,
      trace_reps,
      compile_reps,
      STEP_CALLS.value,
      MEMORY_DEPTH.value,
      penzai_trace_reps=penzai_trace_reps,
      penzai_memory_depth=PENZAI_MEMORY_DEPTH.value or (16 if quick else None),
      real_trace_reps=REAL_TRACE_REPS.value,
  )
  print()
  print(report.render(data))
  for skipped, flag, extra in (
      (with_penzai, SKIP_PENZAI, "Penzai v1"),
      (with_linen, SKIP_LINEN, "Flax linen"),
  ):
    if not skipped:
      print(
          f"\n{extra} skipped: "
          + (
              f"--{flag.name} given."
              if flag.value
              else "not installed (pip install -e .[bench])."
          )
      )
  if JSON_OUT.value:
    with open(JSON_OUT.value, "w", encoding="utf-8") as f:
      json.dump(data, f, indent=1)


if __name__ == "__main__":
  app.run(main)
