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
"""examples/train_lm.py across two processes trains like one process.

Two launcher processes on this machine join with ``jax.distributed`` on a
loopback address (CPU collectives over gloo), each with 2 simulated devices,
and train data-parallel over the 4; a third, plain run trains on 1 device.
With the same flags the global batches, parameters and dropout keys are the
same, so the losses each run logs must match up to float reduction order.
"""

# bazel-data: //examples:train_lm

from __future__ import annotations

import csv
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from absl.testing import absltest
import numpy as np

from examples import checkpoints

ROOT = pathlib.Path(__file__).resolve().parents[2]
LAUNCHER = ROOT / "examples" / "train_lm.py"
TINY_FLAGS = (
    "--num_steps=3",
    "--batch_size=8",
    "--num_layers=1",
    "--d_model=16",
    "--num_heads=2",
    "--seq_len=16",
    "--eval_every=100",
    "--log_every=1",
    "--num_samples=0",
    "--dropout_rate=0.1",
    "--seed=3",
    "--checkpoint_every=2",
)
# A hard limit for all three runs together; a hung collective fails the test
# instead of hanging it.
TIMEOUT_S = 480


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(
    output_dir: pathlib.Path, devices: int, *flags: str
) -> subprocess.Popen:
  env = dict(
      os.environ,
      JAX_PLATFORMS="cpu",
      XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
  )
  return subprocess.Popen(
      [
          sys.executable,
          str(LAUNCHER),
          *TINY_FLAGS,
          f"--output_dir={output_dir}",
          *flags,
      ],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
  )


def _finish(runs: dict[str, subprocess.Popen]) -> dict[str, str]:
  """Waits for every run (killing all at the deadline); returns outputs."""
  deadline = time.monotonic() + TIMEOUT_S
  outputs, failed = {}, []
  for name, process in runs.items():
    try:
      outputs[name], _ = process.communicate(
          timeout=max(1.0, deadline - time.monotonic())
      )
    except subprocess.TimeoutExpired:
      for other in runs.values():
        other.kill()
      outputs[name], _ = process.communicate()
      failed.append(f"{name} timed out after {TIMEOUT_S} s")
      continue
    if process.returncode:
      failed.append(f"{name} exited with status {process.returncode}")
  if failed:
    tails = "\n".join(
        f"--- {name} ---\n{out[-3000:]}" for name, out in outputs.items()
    )
    raise AssertionError(f"{'; '.join(failed)}\n{tails}")
  return outputs


def _losses(output_dir: pathlib.Path) -> list[float]:
  with open(output_dir / "metrics.csv", encoding="utf-8") as f:
    rows = list(csv.DictReader(f))
  assert [int(r["step"]) for r in rows] == [1, 2, 3], rows
  return [float(r["loss"]) for r in rows]


class TwoProcessTest(absltest.TestCase):

  def test_two_processes_log_the_losses_of_one(self):
    tmp = pathlib.Path(tempfile.mkdtemp())
    self.addCleanup(shutil.rmtree, tmp)
    address = f"--coordinator_address=127.0.0.1:{_free_port()}"
    runs = {
        "one process": _launch(tmp / "one", 1),
        # One --workdir for both, as on a shared file system: orbax has
        # every process take part in a save and process 0 write the arrays.
        "process 0": _launch(
            tmp / "two", 2, address, "--num_processes=2", "--process_id=0"
        ),
        "process 1": _launch(
            tmp / "two", 2, address, "--num_processes=2", "--process_id=1"
        ),
    }
    outputs = _finish(runs)
    for name in ("process 0", "process 1"):
      self.assertIn("on 4 device(s) in 2 process(es)", outputs[name])
    self.assertIn("on 1 device(s) in 1 process(es)", outputs["one process"])

    single, distributed = _losses(tmp / "one"), _losses(tmp / "two")
    np.testing.assert_allclose(distributed, single, rtol=1e-5)
    # Training moved: the steps saw different batches and parameters.
    self.assertLen(set(single), 3)
    # Both processes saved steps 2 and 3 together; the last holds the
    # losses logged and parameters of the 1-process run's shapes (Adam
    # amplifies float differences of near-zero gradients, so the values are
    # not compared).
    self.assertEqual(
        [s for s, _ in checkpoints.list_checkpoints(str(tmp / "two"))], [2, 3]
    )
    one, two = (
        checkpoints.load(checkpoints.latest(str(tmp / run)))
        for run in ("one", "two")
    )
    np.testing.assert_allclose(
        [r["loss"] for r in two.metrics], single, rtol=1e-5
    )
    self.assertEqual(
        [(p, a.shape) for p, a in two.arrays["params"]],
        [(p, a.shape) for p, a in one.arrays["params"]],
    )


if __name__ == "__main__":
  absltest.main()
