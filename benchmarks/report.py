"""Renders ``overhead.run``'s measurements as a markdown table and targets.

Which statistic decides each target (printed with the targets too):

* trace ratio hk_effects / hand-threaded: the median over rounds of the
  ratio of the two versions' *thread CPU* times in that round. Tracing is
  single-threaded Python, so thread CPU leaves out time spent waiting for a
  core; the two traces of a round run back to back, so they share the load
  of a shared machine (which inflates even CPU time, through caches and
  shared cores), and the median drops the rounds where the load changed
  between them. The ratio of minima and of wall-time medians are shown too.
* trace per module call (flat across depths) and trace faster than Penzai:
  the *minimum* thread CPU time of a version's traces, the repetition least
  disturbed by other processes (depths are measured at different times, and
  Penzai gets few traces).
* step time ratio: the median over rounds of the ratio of the two versions'
  *process CPU* times of one compiled-step call each, back to back (XLA runs
  a step on several threads of the process, so thread CPU would miss most of
  it, and wall time includes waiting for cores other processes hold).
* trace + compile: median trace wall time plus median lower+compile wall
  time (compiling is multi-threaded too).
"""

from __future__ import annotations

from typing import Any

from benchmarks import measure

HAND, HKE, PENZAI = "hand-threaded", "hk_effects", "penzai v1"



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


def paired_ratios(result: dict[str, Any],
                  key: str = "trace_cpu_s") -> list[float]:
  """hk_effects / hand-threaded of each round's measurements (both versions
  ran back to back in a round): thread CPU of traces, or step wall times."""
  return [hke / hand for hke, hand in zip(result[HKE][key], result[HAND][key])]


def _rows(results: dict[str, Any], names: list[str]):
  """(metric, values per version, scale, statistic of the ratio columns)."""
  calls = results["module_calls"]
  yield "trace, wall (ms)", {n: results[n]["trace_s"] for n in names}, 1e3, (
      "median")
  yield "trace, thread CPU (ms)", {
      n: results[n]["trace_cpu_s"] for n in names}, 1e3, "median"
  yield "trace, thread CPU, ratio per round [decides]", {
      n: [] for n in names}, 1, "trace_cpu_s"
  yield f"trace per module call, thread CPU min (µs, {calls} calls)", {
      n: [trace_cost(results[n]) / calls] for n in names}, 1e6, "min"
  yield "lower+compile (ms)", {n: results[n]["compile_s"] for n in names}, (
      1e3), "median"
  yield "trace+compile (ms)", {
      n: [v] if (v := _trace_plus_compile(results[n])) is not None else []
      for n in names}, 1e3, "median"
  yield "step, wall (ms)", {n: results[n]["step_s"] for n in names}, 1e3, (
      "median")
  yield "step, process CPU (ms)", {
      n: results[n]["step_cpu_s"] for n in names}, 1e3, "median"
  yield "step, process CPU, ratio per round [decides]", {
      n: [] for n in names}, 1, "step_cpu_s"
  yield "HLO instructions", {
      n: [results[n]["hlo_instructions"]] if "hlo_instructions" in results[n]
      else [] for n in names}, 1, "median"
  yield "jaxpr equations", {n: [results[n]["jaxpr_eqns"]] for n in names}, (
      1), "median"


def render(data: dict[str, Any]) -> str:
  """The results table, the memory table and the target checks."""
  names = [HAND, HKE] + ([PENZAI] if data["penzai"] else [])
  header = (["depth", "metric"] + names + ["hke / hand"]
            + (["hke / penzai"] if data["penzai"] else []))
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  for depth, results in data["depths"].items():
    for metric, values, scale, statistic in _rows(results, names):
      paired = statistic in ("trace_cpu_s", "step_cpu_s")
      pick = min if statistic == "min" else _median
      stats = {n: pick(values[n]) if values[n] else None for n in names}
      cells = [_cell(values[n], scale) for n in names]
      if paired:
        ratios = paired_ratios(results, statistic)
        if ratios:
          median, low, high = measure.summary(ratios)
          cells.append(f"{median:.3f} [{low:.3f}-{high:.3f}]")
        else:
          cells.append("-")
      else:
        cells.append(_ratio(stats[HKE], stats[HAND]))
      if data["penzai"]:
        cells.append("-" if paired else _ratio(stats[HKE], stats[PENZAI]))
      lines.append(f"| {depth} | {metric} | " + " | ".join(cells) + " |")
  reps = ", ".join(
      f"{depth}: " + "/".join(str(len(results[n]["trace_s"])) for n in names)
      for depth, results in data["depths"].items())
  lines += ["", "Cells: median [min-max] of the repetitions; ratios of "
            "medians, except in rows saying min (ratios of minima) and "
            "ratio per round (median [min-max] over rounds of hk_effects / "
            "hand-threaded CPU time, the two run back to back). Traces per "
            f"depth ({' / '.join(names)}): {reps}."]
  if data["memory"]:
    lines += ["", "Peak Python memory while tracing (tracemalloc, one trace "
              "each):", "", "| version | blocks | peak | per block |",
              "|---|---|---|---|"]
    for name in [n for n in (HAND, HKE, PENZAI) if n in data["memory"]]:
      peak, blocks = data["memory"][name], data["memory_depths"][name]
      lines.append(f"| {name} | {blocks} | {peak / 2**20:.1f} MiB | "
                   f"{peak / 2**10 / blocks:.0f} KiB |")
  machine = data["machine"]
  lines += ["", f"Machine: {machine['cpus']} CPUs, backend "
            f"{machine['backend']}, jax {machine['jax']}, Python "
            f"{machine['python']}; load average "
            f"{machine['load_average'][0]:.1f} before, "
            f"{machine['load_average_after'][0]:.1f} after."]
  lines += ["", "Targets (DESIGN section 8), each with the statistic that "
            "decides it (CPU time, which leaves out waiting for a core: the "
            "tracing thread's for traces, the process's for compiled steps "
            "that XLA runs on several threads; wall time for "
            "trace+compile):"]
  lines += [f"  [{'met' if ok else 'MISSED'}] {text}"
            for text, ok in targets(data)]
  return "\n".join(lines)


def _median_ratio(result: dict[str, Any], key: str) -> float:
  return _median(result[HKE][key]) / _median(result[HAND][key])


def targets(data: dict[str, Any]) -> list[tuple[str, bool]]:
  """Each target with whether these measurements meet it."""
  checks = []
  depths = sorted(data["depths"], key=int)
  for depth in depths:
    r = data["depths"][depth]
    if r[HKE]["step_s"]:
      ratio = _median(paired_ratios(r, "step_cpu_s"))
      checks.append((f"depth {depth}: step time ratio {ratio:.3f} <= 1.02 "
                     f"(median of {len(r[HKE]['step_s'])} rounds' process-CPU "
                     "ratios; of wall medians "
                     f"{_median_ratio(r, 'step_s'):.3f})", ratio <= 1.02))
      same = r[HKE]["hlo_instructions"] == r[HAND]["hlo_instructions"]
      checks.append((f"depth {depth}: HLO instruction counts equal "
                     f"({r[HKE]['hlo_instructions']} and "
                     f"{r[HAND]['hlo_instructions']})", same))
  deepest = data["depths"][depths[-1]]
  ratio = _median(paired_ratios(deepest))
  checks.append((
      f"depth {depths[-1]}: trace time ratio {ratio:.3f} <= 1.10 (median of "
      f"{len(paired_ratios(deepest))} rounds' thread-CPU ratios; ratio of "
      "minima "
      f"{trace_cost(deepest[HKE]) / trace_cost(deepest[HAND]):.3f}, of wall "
      f"medians {_median_ratio(deepest, 'trace_s'):.3f})", ratio <= 1.10))
  per_call = [trace_cost(data["depths"][d][HKE])
              / data["depths"][d]["module_calls"] for d in depths]
  spread = max(per_call) / min(per_call)
  checks.append((
      f"hk_effects trace per module call flat across depths {depths} "
      f"(max/min {spread:.2f} <= 1.25 of the min thread CPU per call: "
      + ", ".join(f"{p * 1e6:.0f}" for p in per_call) + " µs)",
      spread <= 1.25))
  if data["penzai"]:
    for depth in depths:
      r = data["depths"][depth]
      hke, pz = trace_cost(r[HKE]), trace_cost(r[PENZAI])
      checks.append((f"depth {depth}: trace faster than Penzai v1 "
                     f"({hke * 1e3:.0f} vs {pz * 1e3:.0f} ms, min thread CPU)",
                     hke < pz))
      hke, pz = _trace_plus_compile(r[HKE]), _trace_plus_compile(r[PENZAI])
      if hke is not None and pz is not None:
        checks.append((f"depth {depth}: trace+compile faster than Penzai v1 "
                       f"({hke * 1e3:.0f} vs {pz * 1e3:.0f} ms, median wall)",
                       hke < pz))
  return checks
