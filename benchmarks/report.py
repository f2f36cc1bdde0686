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
"""Renders ``overhead.run``'s measurements as one markdown table and targets.

Two models are measured (``benchmarks/models.py``): the pre-LN
``transformer``, where most of a block's trace is attention and MLP, and the
effect-dense ``dense`` block (four effects per five ops). Which statistic
decides each target (printed with the targets too):

* trace ratio hk_effects / hand-threaded: the median over rounds of the
  ratio of the two versions' *thread CPU* times in that round. Tracing is
  single-threaded Python, so thread CPU leaves out time spent waiting for a
  core; the two traces of a round run back to back, so they share the load
  of a shared machine (which inflates even CPU time, through caches and
  shared cores), and the median drops the rounds where the load changed
  between them. The ratio of minima and of wall-time medians are shown too.
* trace per module call (flat across depths) and trace faster than the
  rival library (Penzai v1 for the transformer, Flax linen for the dense
  block): the *minimum* thread CPU time of a version's traces, the
  repetition least disturbed by other processes.
* step time ratio (hk_effects / hand-threaded; path keys / default): the
  median over rounds of the ratio of two versions' *process CPU* times of
  one compiled-step call each, back to back (XLA runs a step on several
  threads of the process, so thread CPU would miss most of it, and wall
  time includes waiting for cores other processes hold).
* trace + compile: median trace wall time plus median lower+compile wall
  time (compiling is multi-threaded too).
"""

from __future__ import annotations

from typing import Any, Iterator

from benchmarks import measure

HAND, HKE, PATH_KEYS = "hand-threaded", "hk_effects", "hk_effects, path keys"
PENZAI, LINEN = "penzai v1", "flax linen"
COLUMNS = (HAND, HKE, PATH_KEYS, PENZAI, LINEN)
TRANSFORMER, DENSE = "transformer", "dense"
# The real models of benchmarks/real_models.py; their plain-Haiku version
# fills the hand-threaded column.
RESNET, LM, LSTM = "resnet", "lm", "lstm"


def _cell(values: list[float], scale: float) -> str:
  if not values:
    return "-"
  if len(values) == 1:
    return f"{values[0] * scale:.4g}"
  median, low, high = measure.summary([v * scale for v in values])
  return f"{median:.4g} [{low:.3g}-{high:.3g}]"


def _median(values: list[float]) -> float | None:
  return measure.summary(values)[0] if values else None


def _ratio(a: float | None, b: float | None) -> str:
  return "-" if a is None or b is None or not b else f"{a / b:.3f}"


def _trace_plus_compile(result: dict[str, Any]) -> float | None:
  trace, compile_ = _median(result["trace_s"]), _median(result["compile_s"])
  return None if compile_ is None else trace + compile_


def trace_cost(result: dict[str, Any]) -> float:
  """Minimum thread-CPU seconds of a version's traces at one depth."""
  return min(result["trace_cpu_s"])


def paired_ratios(
    result: dict[str, Any],
    key: str = "trace_cpu_s",
    num: str = HKE,
    den: str = HAND,
) -> list[float]:
  """``num / den`` of each round's measurements (the two versions ran back
  to back in a round): thread CPU of traces, or process CPU of steps."""
  return [a / b for a, b in zip(result[num][key], result[den][key])]


def _rows(results: dict[str, Any], names: list[str]) -> Iterator[Any]:
  """(metric, values per version, scale, statistic of the ratio columns)."""
  calls = results["module_calls"]
  yield "trace, wall (ms)", {n: results[n]["trace_s"] for n in names}, 1e3, (
      "median"
  )
  yield "trace, thread CPU (ms)", {
      n: results[n]["trace_cpu_s"] for n in names
  }, 1e3, "median"
  yield "trace, thread CPU, ratio per round [decides]", {
      n: [] for n in names
  }, 1, "trace_cpu_s"
  yield f"trace per module call, thread CPU min (µs, {calls} calls)", {
      n: [trace_cost(results[n]) / calls] for n in names
  }, 1e6, "min"
  yield "lower+compile (ms)", {n: results[n]["compile_s"] for n in names}, (
      1e3
  ), "median"
  yield "trace+compile (ms)", {
      n: [v] if (v := _trace_plus_compile(results[n])) is not None else []
      for n in names
  }, 1e3, "median"
  yield "step, wall (ms)", {n: results[n]["step_s"] for n in names}, 1e3, (
      "median"
  )
  yield "step, process CPU (ms)", {
      n: results[n]["step_cpu_s"] for n in names
  }, 1e3, "median"
  yield "step, process CPU, ratio per round [decides]", {
      n: [] for n in names
  }, 1, "step_cpu_s"
  yield "HLO instructions", {
      n: (
          [results[n]["hlo_instructions"]]
          if "hlo_instructions" in results[n]
          else []
      )
      for n in names
  }, 1, "median"
  yield "jaxpr equations", {n: [results[n]["jaxpr_eqns"]] for n in names}, (
      1
  ), "median"


def _paired_cell(results: dict[str, Any], key: str, num: str, den: str) -> str:
  if num not in results or den not in results:
    return "-"
  ratios = paired_ratios(results, key, num, den)
  if not ratios:
    return "-"
  median, low, high = measure.summary(ratios)
  return f"{median:.3f} [{low:.3f}-{high:.3f}]"


def _table(data: dict[str, Any]) -> list[str]:
  header = (
      ["model", "depth", "metric"]
      + list(COLUMNS)
      + ["hke / hand", "path keys / hke", "hke / rival"]
  )
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for model, run in data["models"].items():
    names, rival = run["versions"], run.get("rival")
    for depth, results in run["depths"].items():
      for metric, values, scale, statistic in _rows(results, names):
        paired = statistic in ("trace_cpu_s", "step_cpu_s")
        pick = min if statistic == "min" else _median
        stats = {n: pick(values[n]) if values[n] else None for n in names}
        cells = [
            _cell(values[n], scale) if n in names else "-" for n in COLUMNS
        ]
        if paired:
          cells += [
              _paired_cell(results, statistic, HKE, HAND),
              _paired_cell(results, statistic, PATH_KEYS, HKE),
              "-",
          ]
        else:
          cells += [
              _ratio(stats[HKE], stats[HAND]),
              _ratio(stats.get(PATH_KEYS), stats[HKE]),
              _ratio(stats[HKE], stats.get(rival)),
          ]
        lines.append(
            f"| {model} | {depth} | {metric} | " + " | ".join(cells) + " |"
        )
  return lines


def render(data: dict[str, Any]) -> str:
  """The results table, the memory table and the target checks."""
  lines = _table(data)
  reps = "; ".join(
      f"{model} "
      + ", ".join(
          f"{depth}: "
          + "/".join(str(len(results[n]["trace_s"])) for n in run["versions"])
          for depth, results in run["depths"].items()
      )
      for model, run in data["models"].items()
  )
  lines += [
      "",
      (
          "Cells: median [min-max] of the repetitions; ratios of "
          "medians, except in rows saying min (ratios of minima) and "
          "ratio per round (median [min-max] over rounds of the two "
          "versions' CPU times, run back to back); hke / rival: Penzai v1 "
          "for the transformer, Flax linen for the dense block; for resnet, "
          "lm and lstm the hand-threaded column is the plain Haiku model "
          "(benchmarks/real_models.py). Traces per "
          f"depth (in the order of the columns): {reps}."
      ),
  ]
  if data["memory"]:
    lines += [
        "",
        (
            "Peak Python memory while tracing the transformer "
            "(tracemalloc, one trace each):"
        ),
        "",
        "| version | blocks | peak | per block |",
        "|---|---|---|---|",
    ]
    for name in [n for n in (HAND, HKE, PENZAI) if n in data["memory"]]:
      peak, blocks = data["memory"][name], data["memory_depths"][name]
      lines.append(
          f"| {name} | {blocks} | {peak / 2**20:.1f} MiB | "
          f"{peak / 2**10 / blocks:.0f} KiB |"
      )
  machine = data["machine"]
  lines += [
      "",
      (
          f"Machine: {machine['cpus']} CPUs, backend "
          f"{machine['backend']}, jax {machine['jax']}, Python "
          f"{machine['python']}; load average "
          f"{machine['load_average'][0]:.1f} before, "
          f"{machine['load_average_after'][0]:.1f} after."
      ),
  ]
  lines += [
      "",
      (
          "Targets (docs of benchmarks/report.py), each with the "
          "statistic that decides it (CPU time, which leaves out waiting "
          "for a core: the tracing thread's for traces, the process's for "
          "compiled steps that XLA runs on several threads; wall time for "
          "trace+compile):"
      ),
  ]
  lines += [
      f"  [{'met' if ok else 'MISSED'}] {text}" for text, ok in targets(data)
  ]
  return "\n".join(lines)


def _median_ratio(
    result: dict[str, Any], key: str, num: str = HKE, den: str = HAND
) -> float:
  return _median(result[num][key]) / _median(result[den][key])


def _step_and_hlo(
    model: str,
    depth: Any,
    r: dict[str, Any],
    num: str,
    den: str,
    hlo_limit: float,
) -> list[tuple[str, bool]]:
  if not r[num]["step_s"] or not r[den]["step_s"]:
    return []
  ratio = _median(paired_ratios(r, "step_cpu_s", num, den))
  what = "step time ratio" if den == HAND else "path keys step ratio"
  checks = [(
      (
          f"{model} {depth}: {what} {ratio:.3f} <= 1.02 (median of "
          f"{len(r[num]['step_s'])} rounds' process-CPU ratios; of wall "
          f"medians {_median_ratio(r, 'step_s', num, den):.3f})"
      ),
      ratio <= 1.02,
  )]
  a, b = r[num]["hlo_instructions"], r[den]["hlo_instructions"]
  if hlo_limit == 1.0:
    checks.append(
        (f"{model} {depth}: HLO instruction counts equal ({a} and {b})", a == b)
    )
  else:
    checks.append((
        (
            f"{model} {depth}: path keys HLO {a / b:.3f}x the "
            f"default's <= {hlo_limit} ({a} and {b})"
        ),
        a <= hlo_limit * b,
    ))
  return checks


def _trace_ratio(
    model: str, depth: Any, r: dict[str, Any], limit: float
) -> tuple[str, bool]:
  ratios = paired_ratios(r)
  ratio = _median(ratios)
  return (
      (
          f"{model} {depth}: trace time ratio {ratio:.3f} <= {limit:.2f} "
          f"(median of {len(ratios)} rounds' thread-CPU ratios; ratio of "
          f"minima {trace_cost(r[HKE]) / trace_cost(r[HAND]):.3f}, of wall "
          f"medians {_median_ratio(r, 'trace_s'):.3f})"
      ),
      ratio <= limit,
  )


# Per model: the depth the ratio targets are decided at (the deepest run if
# absent), the trace-ratio limits, and the limit on the spread of the trace
# cost per module call across depths.
# Real models are decided at their default (first) depth, with no flatness
# target (their depths are layouts, not repetitions of one block).
_TARGETS = {
    TRANSFORMER: {"trace": (1.10,), "flat": 1.25},
    DENSE: {
        "at": 64,
        "trace": (1.10, 1.05),
        "flat": 1.15,
        "trace_every_depth": 1.10,
    },
    RESNET: {"at": "first", "trace": (1.05,), "flat": None},
    LM: {"at": "first", "trace": (1.05,), "flat": None},
    LSTM: {"at": "first", "trace": (1.05,), "flat": None},
}


def targets(data: dict[str, Any]) -> list[tuple[str, bool]]:
  """Each target with whether these measurements meet it."""
  checks = []
  for model, run in data["models"].items():
    spec = _TARGETS[model]
    runs = run["depths"]
    depths = sorted(runs, key=int)
    at = spec.get("at")
    if at == "first":
      at = next(iter(runs))
    at = at if at in runs else depths[-1]
    for depth in depths:
      checks += _step_and_hlo(model, depth, runs[depth], HKE, HAND, 1.0)
    if PATH_KEYS in run["versions"]:
      checks += _step_and_hlo(model, at, runs[at], PATH_KEYS, HKE, 1.03)
    for i, limit in enumerate(spec["trace"]):
      text, ok = _trace_ratio(model, at, runs[at], limit)
      checks.append((text + (" [moonshot]" if i else ""), ok))
    every = spec.get("trace_every_depth")
    if every is not None:
      checks += [
          _trace_ratio(model, depth, runs[depth], every)
          for depth in depths
          if depth != at
      ]
    if spec["flat"] is not None:
      per_call = [
          trace_cost(runs[d][HKE]) / runs[d]["module_calls"] for d in depths
      ]
      spread = max(per_call) / min(per_call)
      checks.append((
          f"{model}: hk_effects trace per module call flat across depths "
          f"{depths} (max/min {spread:.2f} <= {spec['flat']} of the min thread "
          "CPU per call: "
          + ", ".join(f"{p * 1e6:.0f}" for p in per_call)
          + " µs)",
          spread <= spec["flat"],
      ))
    rival = run.get("rival")
    if rival:
      for depth in depths:
        r = runs[depth]
        hke, other = trace_cost(r[HKE]), trace_cost(r[rival])
        checks.append((
            (
                f"{model} {depth}: trace faster than {rival} "
                f"({hke * 1e3:.1f} vs {other * 1e3:.1f} ms, min thread "
                f"CPU: {other / hke:.2f}x)"
            ),
            hke < other,
        ))
        hke, other = (
            _trace_plus_compile(r[HKE]),
            _trace_plus_compile(r[rival]),
        )
        if hke is not None and other is not None:
          checks.append((
              (
                  f"{model} {depth}: trace+compile faster than "
                  f"{rival} ({hke * 1e3:.0f} vs {other * 1e3:.0f} ms, "
                  f"median wall: {other / hke:.2f}x)"
              ),
              hke < other,
          ))
  return checks
