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
r"""What the launcher's orbax checkpoints cost against one safetensors file.

Usage::

  python benchmarks/checkpoint_cost.py          # about 20 seconds

Saves and restores the trees ``examples/train_lm.py`` checkpoints with its
default flags (params, Adam state, KV caches of the shown samples) through
``examples/checkpoints.py`` (orbax-checkpoint's ``CheckpointManager``), and,
where ``safetensors`` is installed, the same arrays as the single
safetensors file the launcher wrote before, alternating the two in each
round. Prints wall-time medians and the bytes on disk, side by side.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time

if __package__ in (None, ""):
  sys.path.insert(
      0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np
import optax

from examples import checkpoints
from examples import lm_model
import hk_effects as hke

# pylint: enable=g-import-not-at-top,wrong-import-position

ROUNDS = 7


def launcher_trees() -> dict[str, object]:
  """The parts a default run checkpoints, as host arrays."""
  config = lm_model.ModelConfig(
      vocab_size=103, max_length=64, num_layers=2, d_model=128, num_heads=4
  )
  model = hke.transform(lm_model.training_forward(config))
  params = model.init(
      jax.random.key(0),
      lm_model.model_inputs(jnp.zeros([1, 64], jnp.int32)),
  )
  opt_state = optax.adamw(1e-3).init(params)
  shape = (4, config.max_length, config.num_heads, config.key_size)
  caches = {
      "~local_state/kv_cache": {
          f"transformer/block_{i}/attention:cache['{n}']": np.zeros(
              shape, np.float32
          )
          for i in range(2)
          for n in "kv"
      }
  }
  return jax.device_get(
      {"params": params, "opt_state": opt_state, "local_states": caches}
  )


def _size(path: str) -> int:
  if os.path.isfile(path):
    return os.path.getsize(path)
  return sum(
      os.path.getsize(os.path.join(d, f))
      for d, _, files in os.walk(path)
      for f in files
  )


def main() -> None:
  trees = launcher_trees()
  flat = {
      part + jax.tree_util.keystr(p): np.asarray(v)
      for part, tree in trees.items()
      for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]
  }
  try:
    from safetensors import numpy as safetensors_numpy  # pylint: disable=g-import-not-at-top
  except ImportError:
    safetensors_numpy = None
  times: dict[str, list[float]] = {}
  sizes: dict[str, int] = {}
  work = tempfile.mkdtemp()
  try:
    for step in range(1, ROUNDS + 1):
      t = time.perf_counter()
      path = checkpoints.save(work, step, trees, {"seed": 0}, keep=2)
      times.setdefault("orbax save", []).append(time.perf_counter() - t)
      t = time.perf_counter()
      restored = checkpoints.load(path)
      restored.tree("params")
      times.setdefault("orbax restore", []).append(time.perf_counter() - t)
      sizes["orbax"] = _size(path)
      if safetensors_numpy is not None:
        file = os.path.join(work, f"checkpoint_{step}.safetensors")
        t = time.perf_counter()
        with open(file, "wb") as f:
          f.write(safetensors_numpy.save(flat))
          f.flush()
          os.fsync(f.fileno())
        times.setdefault("safetensors save", []).append(time.perf_counter() - t)
        t = time.perf_counter()
        safetensors_numpy.load_file(file)
        times.setdefault("safetensors restore", []).append(
            time.perf_counter() - t
        )
        sizes["safetensors"] = _size(file)
        os.remove(file)
  finally:
    shutil.rmtree(work)
  n = sum(np.size(v) for v in flat.values())
  print(f"{len(flat)} arrays, {n:,} numbers; median of {ROUNDS} rounds")
  for what in ("save", "restore"):
    row = {
        k.split()[0]: statistics.median(v)
        for k, v in times.items()
        if k.endswith(what)
    }
    line = f"{what:8s}" + "".join(
        f"  {k} {1e3 * v:7.1f} ms" for k, v in row.items()
    )
    if len(row) == 2:
      line += (
          f"  (orbax / safetensors {row['orbax'] / row['safetensors']:.1f}x)"
      )
    print(line)
  print(
      "on disk "
      + "".join(f"  {k} {v / 2**20:.2f} MiB" for k, v in sizes.items())
  )


if __name__ == "__main__":
  main()
