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
"""What ``examples/train_lm.py`` leaves in its work directory besides
checkpoints: ``metrics.csv``, ``training.png`` and, with ``--tensorboard``,
TensorBoard event files.

Example:

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "metrics.csv")
>>> write_metrics(path, [{"step": 1, "loss": 2.5}])
>>> open(path).read().split()
['step,loss', '1,2.5']
"""

from __future__ import annotations

import csv
from typing import Any

METRICS_NAME = "metrics.csv"
PLOT_NAME = "training.png"


def write_metrics(path: str, rows: list[dict[str, Any]]) -> None:
  """Writes the metric rows as CSV (one row per logged step; a column a
  row lacks is left empty)."""
  fields = list(rows[0]) if rows else ["step"]
  for row in rows:
    fields += [k for k in row if k not in fields]
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)


def _column(rows, name):
  picked = [(r["step"], r[name]) for r in rows if r.get(name, "") != ""]
  return [s for s, _ in picked], [float(v) for _, v in picked]


def plot_metrics(
    path: str,
    rows: list[dict[str, Any]],
    num_layers: int,
    baselines: dict[str, float],
) -> None:
  """Plots the training loss, the held-out metric and per-block statistics.

  With ``baselines`` (the text task), the first panel shows training and
  held-out bits per character with the unigram and bigram baselines as
  horizontal lines; without, the training loss and held-out accuracy.

  Example:

  >>> import os, tempfile
  >>> path = os.path.join(tempfile.mkdtemp(), "t.png")
  >>> rows = [{"step": 1, "loss": 2.0, "block_0_mean": 0.0, "block_0_rms": 1.0}]
  >>> plot_metrics(path, rows, 1, {"bigram_bpc": 3.5})
  >>> open(path, "rb").read(4)
  b'\\x89PNG'
  """
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, axes = plt.subplots(
      1, 3 if not baselines else 2, figsize=(15 if not baselines else 11, 4)
  )
  if baselines:
    steps, loss = _column(rows, "loss")
    axes[0].plot(
        steps,
        [v / 0.6931471805599453 for v in loss],
        label="training batch",
        alpha=0.6,
    )
    axes[0].plot(*_column(rows, "eval_bpc"), marker="o", label="held-out")
    for name, value in sorted(baselines.items()):
      axes[0].axhline(
          value,
          ls="--",
          color="gray" if "uni" in name else "k",
          label=f"{name.split('_')[0]} baseline ({value:.2f})",
      )
    if "bigram_bpc" in baselines:
      goal = 0.75 * baselines["bigram_bpc"]
      axes[0].axhline(
          goal, ls=":", color="k", label=f"goal: 0.75 x bigram ({goal:.2f})"
      )
    axes[0].set(title="bits per character", xlabel="step")
    axes[0].legend(fontsize="small")
  else:
    axes[0].plot(*_column(rows, "loss"))
    axes[0].set(
        yscale="log", title="training loss (answer tokens)", xlabel="step"
    )
    axes[1].plot(*_column(rows, "eval_accuracy"), marker="o")
    axes[1].set(
        ylim=(0, 1.02), title="held-out exact-sequence accuracy", xlabel="step"
    )
  stats = axes[-1]
  for i in range(num_layers):
    (line,) = stats.plot(
        *_column(rows, f"block_{i}_rms"), label=f"block {i} RMS"
    )
    stats.plot(
        *_column(rows, f"block_{i}_mean"),
        "--",
        color=line.get_color(),
        label=f"block {i} mean",
    )
  stats.set(title="block output statistics (side outputs)", xlabel="step")
  stats.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


class TensorBoard:
  """Writes each metric row as TensorBoard scalars (``tensorboardX``).

  Args:
    logdir: where the event files go (the work directory).

  Raises:
    ImportError: ``tensorboardX`` is not installed, with the command that
      installs it.

  Example:

  >>> import tempfile
  >>> board = TensorBoard(tempfile.mkdtemp())
  >>> board.write({"step": 3, "loss": 1.5, "eval_bpc": ""})
  >>> board.close()
  """

  def __init__(self, logdir: str):
    try:
      import tensorboardX  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(
          "--tensorboard writes event files with tensorboardX, which is not "
          "installed; `pip install tensorboardX`, or run without "
          "--tensorboard (metrics.csv has the same numbers)."
      ) from e
    self._writer = tensorboardX.SummaryWriter(logdir=logdir)

  def write(self, row: dict[str, Any]) -> None:
    """Adds every numeric column of ``row`` at ``row["step"]``."""
    for name, value in row.items():
      if name != "step" and value != "":
        self._writer.add_scalar(name, float(value), int(row["step"]))
    self._writer.flush()

  def close(self) -> None:
    """Flushes and closes the event file."""
    self._writer.close()
