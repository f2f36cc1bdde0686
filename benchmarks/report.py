"""Renders ``overhead.run``'s measurements as a markdown table and targets."""

from __future__ import annotations

from typing import Any

from benchmarks import measure

HAND, HKE, PENZAI = "hand-threaded", "hk_effects", "penzai v1"


def _cell(values: list[float], scale: float) -> str:
  if not values:
    return "-"
  median, low, high = measure.summary([v * scale for v in values])
  return f"{median:.4g} [{low:.3g}-{high:.3g}]"


def _median(values: list[float]) -> float | None:
  return measure.summary(values)[0] if values else None


def _ratio(a: float | None, b: float | None) -> str:
  return "-" if a is None or b is None or not b else f"{a / b:.3f}"


def _trace_plus_compile(result: dict[str, Any]) -> float | None:
  trace, compile_ = _median(result["trace_s"]), _median(result["compile_s"])
  return None if compile_ is None else trace + compile_


def _rows(depth: int, results: dict[str, Any], names: list[str]):
  """(metric, cells, medians) for each row at one depth."""
  calls = results["module_calls"]
  per_call = {n: [t / calls for t in results[n]["trace_s"]] for n in names}
  yield "trace (ms)", {n: results[n]["trace_s"] for n in names}, 1e3
  yield "trace, thread CPU (ms)", {
      n: results[n].get("trace_cpu_s", []) for n in names}, 1e3
  yield f"trace per module call (µs, {calls} calls)", per_call, 1e6
  yield "lower+compile (ms)", {n: results[n]["compile_s"] for n in names}, 1e3
  yield "trace+compile (ms)", {
      n: [v] if (v := _trace_plus_compile(results[n])) is not None else []
      for n in names}, 1e3
  yield "step (ms)", {n: results[n]["step_s"] for n in names}, 1e3
  yield "HLO instructions", {
      n: [results[n]["hlo_instructions"]] if "hlo_instructions" in results[n]
      else [] for n in names}, 1
  yield "jaxpr equations", {n: [results[n]["jaxpr_eqns"]] for n in names}, 1


def render(data: dict[str, Any]) -> str:
  """The results table, the memory table and the target checks."""
  names = [HAND, HKE] + ([PENZAI] if data["penzai"] else [])
  header = (["depth", "metric"] + names + ["hke / hand"]
            + (["hke / penzai"] if data["penzai"] else []))
  lines = ["| " + " | ".join(header) + " |",
           "|" + "---|" * len(header)]
  for depth, results in data["depths"].items():
    for metric, values, scale in _rows(int(depth), results, names):
      medians = {n: _median(values[n]) for n in names}
      cells = [_cell(values[n], scale) if len(values[n]) > 1 else (
          f"{values[n][0] * scale:.4g}" if values[n] else "-") for n in names]
      cells.append(_ratio(medians[HKE], medians[HAND]))
      if data["penzai"]:
        cells.append(_ratio(medians[HKE], medians[PENZAI]))
      lines.append(f"| {depth} | {metric} | " + " | ".join(cells) + " |")
  if data["memory"]:
    lines += ["", f"Peak Python memory while tracing at depth "
              f"{data['memory_depth']} (tracemalloc):", "",
              "| " + " | ".join(data["memory"]) + " |",
              "|" + "---|" * len(data["memory"]),
              "| " + " | ".join(f"{b / 2**20:.1f} MiB"
                                for b in data["memory"].values()) + " |"]
  machine = data["machine"]
  lines += ["", f"Machine: {machine['cpus']} CPUs, backend "
            f"{machine['backend']}, jax {machine['jax']}, Python "
            f"{machine['python']}; load average "
            f"{machine['load_average'][0]:.1f} before, "
            f"{machine['load_average_after'][0]:.1f} after."]
  lines += ["", "Targets (DESIGN section 8):"]
  lines += [f"  [{'met' if ok else 'MISSED'}] {text}"
            for text, ok in targets(data)]
  return "\n".join(lines)


def _cpu_ratio(result: dict[str, Any]) -> float | None:
  """hk_effects / hand-threaded trace time in thread CPU, if measured."""
  hke, hand = result[HKE].get("trace_cpu_s"), result[HAND].get("trace_cpu_s")
  return _median(hke) / _median(hand) if hke and hand else None


def targets(data: dict[str, Any]) -> list[tuple[str, bool]]:
  """Each target with whether these measurements meet it."""
  checks = []
  depths = sorted(data["depths"], key=int)
  for depth in depths:
    r = data["depths"][depth]
    if r[HKE]["step_s"]:
      ratio = _median(r[HKE]["step_s"]) / _median(r[HAND]["step_s"])
      checks.append((f"depth {depth}: step time ratio {ratio:.3f} <= 1.02",
                     ratio <= 1.02))
      same = r[HKE]["hlo_instructions"] == r[HAND]["hlo_instructions"]
      checks.append((f"depth {depth}: HLO instruction counts equal "
                     f"({r[HKE]['hlo_instructions']} and "
                     f"{r[HAND]['hlo_instructions']})", same))
  deepest = data["depths"][depths[-1]]
  ratio = _median(deepest[HKE]["trace_s"]) / _median(deepest[HAND]["trace_s"])
  cpu = _cpu_ratio(deepest)
  checks.append((f"depth {depths[-1]}: trace time ratio {ratio:.3f} <= 1.10"
                 + (f" (thread CPU {cpu:.3f})" if cpu else ""), ratio <= 1.10))
  def spread(key):
    per_call = [_median(data["depths"][d][HKE][key])
                / data["depths"][d]["module_calls"] for d in depths]
    return max(per_call) / min(per_call)
  checks.append((
      f"hk_effects trace per module call flat across depths {depths} "
      f"(max/min {spread('trace_s'):.2f} <= 1.25"
      + (f"; thread CPU {spread('trace_cpu_s'):.2f})"
         if all(data["depths"][d][HKE].get("trace_cpu_s") for d in depths)
         else ")"), spread("trace_s") <= 1.25))
  if data["penzai"]:
    for depth in depths:
      r = data["depths"][depth]
      faster = _median(r[HKE]["trace_s"]) < _median(r[PENZAI]["trace_s"])
      checks.append((f"depth {depth}: trace faster than Penzai v1", faster))
      hke, pz = _trace_plus_compile(r[HKE]), _trace_plus_compile(r[PENZAI])
      if hke is not None and pz is not None:
        checks.append((f"depth {depth}: trace+compile faster than Penzai v1",
                       hke < pz))
  return checks
