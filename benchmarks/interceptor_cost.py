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
r"""What telling a ResNet's block outputs costs a trace, by the way it is done.

Usage::

  python benchmarks/interceptor_cost.py    # about 20 seconds on 2 cores

``hk.nets.ResNet`` (``benchmarks/real_models.py``, ResNet-18 layout) traced
with ``jax.make_jaxpr``, against:

* ``ported``: the port whose blocks tell their outputs through a
  ``SideOutputRequest`` (BatchNorm flags as side inputs);
* ``select_calls``: the unedited ``hk.nets.ResNet`` with
  ``hke.select_calls(...).at_instances_of(BlockV1).insert_after(lambda:
  hke.TellIntermediate(tag))`` under ``hke.transform_with_state``, told
  values collected;
* ``user interceptor``: the unedited model under ``hke.transform_with_state``
  inside a user's no-op ``hk.intercept_methods``: Haiku's own interceptor
  chain then runs for every module call, with hk_effects' interceptor in it;
* ``user interceptor, hk``: the same under ``hk.transform_with_state``
  (Haiku's chain with one interceptor, no hk_effects).

All variants trace to the same 745 equations. Every round traces each once,
in rotating order; each ratio is the median over rounds of the variant's
thread CPU time over the plain model's in that round.
"""

from __future__ import annotations

import os
import statistics
import sys
from typing import Any, Callable, Sequence

if __package__ in (None, ""):
  sys.path.insert(
      0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import haiku as hk  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

from benchmarks import measure  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import models  # pylint: disable=g-import-not-at-top,wrong-import-position
from benchmarks import real_models  # pylint: disable=g-import-not-at-top,wrong-import-position
import hk_effects as hke  # pylint: disable=g-import-not-at-top,wrong-import-position

ROUNDS = flags.DEFINE_integer("rounds", 11, "Rounds of traces (at least 3).")
DEPTH = flags.DEFINE_integer("depth", 2, "ResNet blocks per group.")

PLAIN = "hk.nets.ResNet"


def _version(
    name: str, forward: Callable[[], Any], haiku_transform: bool, depth: int
) -> models.Version:
  transform = (
      hk.transform_with_state if haiku_transform else hke.transform_with_state
  )
  images = real_models.resnet_inputs()
  params, state = models.materialize(
      jax.eval_shape(transform(forward()).init, jax.random.key(1), images)
  )
  return models.Version(
      name,
      lambda: transform(forward()).apply,
      (params, state, None, images),
  )


def versions(depth: int) -> list[models.Version]:
  """The plain model first, then each way of telling block outputs."""

  def plain():
    return real_models.plain_resnet_forward(depth)

  def select_calls():
    edited = (
        hke.select_calls(plain())
        .at_instances_of(hk.nets.ResNet.BlockV1)
        .insert_after(lambda: hke.TellIntermediate("block_output"))
    )
    return hke.handlers.CollectingSideOutputs.handling(edited)

  def user_interceptor():
    forward = plain()

    def intercepted(images):
      with hk.intercept_methods(lambda f, args, kwargs, _: f(*args, **kwargs)):
        return forward(images)

    return intercepted

  return [
      _version(PLAIN, plain, True, depth),
      _version(
          "ported",
          lambda: real_models.ported_resnet_forward(depth),
          False,
          depth,
      ),
      _version("select_calls", select_calls, False, depth),
      _version("user interceptor", user_interceptor, False, depth),
      _version("user interceptor, hk", user_interceptor, True, depth),
  ]


def run(depth: int, rounds: int) -> dict[str, dict[str, Any]]:
  """Thread-CPU trace seconds and jaxpr equations per variant."""
  built = versions(depth)
  results = {v.name: {"trace_cpu_s": [], "jaxpr_eqns": 0} for v in built}
  for version in built:  # Warm up JAX's caches.
    measure.trace_time(version)
  for rnd in range(rounds):
    shift = rnd % len(built)
    for version in built[shift:] + built[:shift]:
      _, cpu, eqns = measure.trace_time(version)
      results[version.name]["trace_cpu_s"].append(cpu)
      results[version.name]["jaxpr_eqns"] = eqns
  return results


def render(results: dict[str, dict[str, Any]]) -> str:
  base = results[PLAIN]["trace_cpu_s"]
  lines = [
      (
          "| variant | trace, thread CPU (ms, median) | ratio per round "
          "[min-max] | jaxpr equations |"
      ),
      "|---|---|---|---|",
  ]
  for name, r in results.items():
    ratios = [a / b for a, b in zip(r["trace_cpu_s"], base)]
    lines.append(
        f"| {name} | {statistics.median(r['trace_cpu_s']) * 1e3:.1f} | "
        f"{statistics.median(ratios):.3f} [{min(ratios):.3f}-"
        f"{max(ratios):.3f}] | {r['jaxpr_eqns']} |"
    )
  lines.append(
      f"\nLoad average {os.getloadavg()[0]:.1f} at the end; {len(base)} rounds."
  )
  return "\n".join(lines)


def main(argv: Sequence[str]) -> None:
  del argv
  if ROUNDS.value < 3:
    raise app.UsageError(f"--rounds={ROUNDS.value}: pass 3 or more.")
  print(f"load average {os.getloadavg()[0]:.1f} at the start", flush=True)
  print(render(run(DEPTH.value, ROUNDS.value)))


if __name__ == "__main__":
  app.run(main)
