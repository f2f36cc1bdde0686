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
r"""Activation patching and gradient saliency on the digit-reversal model.

Loads the checkpoint ``examples/train_lm.py`` writes (or trains one with
train_lm's flags when there is none), takes a held-out digit string and a
*corrupted* copy whose last digit differs, so the first answer token differs,
and asks which block outputs at which positions carry that difference:

1. **Activation patching.** ``hke.select_calls`` puts a
   ``hke.TellIntermediate("residual")`` after every block, which makes each
   block's output a side-output site. ``CollectingSideOutputs`` records the
   clean run's residual stream; ``PatchingSideOutputs`` then runs the
   corrupted input with one block's output at one position replaced by the
   clean one. The score is how much of the clean-vs-corrupt logit difference
   of the first answer token that restores (1: all of it, 0: none).
2. **Gradient saliency.** ``PerturbingSideOutputs`` adds zero perturbations
   at the same sites; ``jax.grad`` of the logit difference with respect to
   them gives its gradient per block and position, and (clean - corrupt)
   times that gradient is the first-order estimate of what patching the
   site would do ("attribution patching"), printed beside the real thing.

It prints both tables and plots them to ``--plot``.

Usage::

  python examples/train_lm.py --task=reverse --workdir=outputs/reverse
  python examples/activation_patching.py --workdir=outputs/reverse

Run as a script, ``--task`` defaults to ``reverse`` and ``--workdir`` to
``outputs/reverse``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Any, Sequence

if __package__ in (None, ""):
  sys.path.insert(
      0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np

from examples import checkpoints
from examples import lm_data
from examples import lm_model
from examples import train_lm  # Its flags (--output_dir, ...) apply here.
import hk_effects as hke

# pylint: enable=g-import-not-at-top,wrong-import-position

EXAMPLE_INDEX = flags.DEFINE_integer(
    "example_index",
    0,
    "Which held-out string (with at least two digits) "
    "to patch; the corrupted copy changes its last digit.",
)
PLOT = flags.DEFINE_string(
    "plot",
    None,
    "PNG to write the patching and attribution heatmaps to "
    "(default: --output_dir/activation_patching.png).",
)

RESIDUAL_TAG = "residual"
H = hke.handlers


def load_or_train() -> tuple[lm_model.ModelConfig, Any]:
  """(config, params) from --workdir's latest checkpoint, trained if none."""
  if train_lm.TASK.value != "reverse":
    raise ValueError(
        "activation_patching analyses the digit-reversal model, but "
        f"--task={train_lm.TASK.value}; pass --task=reverse (and a --workdir "
        "holding such a checkpoint, or an empty one to train it)."
    )
  workdir = train_lm.OUTPUT_DIR.value
  if not checkpoints.list_checkpoints(workdir):
    print(
        f"No checkpoint at {workdir}: training with train_lm's flags "
        f"(--num_steps={train_lm.NUM_STEPS.value}).",
        flush=True,
    )
    task = train_lm.make_task()
    train_lm.run(task, train_lm.model_config(task))
  path = checkpoints.latest(workdir)
  checkpoint = checkpoints.load(path)
  if checkpoint.config["task"] != "reverse":
    raise ValueError(
        f"{path} is a --task={checkpoint.config['task']} "
        "checkpoint; activation_patching needs a --task=reverse "
        "one (point --workdir at it)."
    )
  fields = {f.name for f in dataclasses.fields(lm_model.ModelConfig)}
  config = lm_model.ModelConfig(
      **{k: v for k, v in checkpoint.config.items() if k in fields}
  )
  print(f"Loaded step {checkpoint.step} from {path}.")
  return (
      dataclasses.replace(config, dropout_rate=0.0),
      checkpoint.tree("params"),
  )


def model_inputs(tokens: np.ndarray):
  """The model's inputs for left-padded reversal tokens (pad keys masked)."""
  return lm_model.model_inputs(tokens, tokens != lm_data.PAD)


def probed_forward(config: lm_model.ModelConfig):
  """The model with a residual-stream site after every block."""

  def forward(tokens):
    return lm_model.Transformer(config, name="transformer")(tokens)

  return (
      hke.select_calls(forward)
      .at_instances_of(lm_model.Block)
      .insert_after(lambda: hke.TellIntermediate(RESIDUAL_TAG))
  )


def handled(body):
  """``body`` with the side inputs and keys the model asks for."""
  body = H.WithSideInputsFromInputTuple.handling(
      body, tags=(lm_model.MASK_TAG, lm_model.POSITIONS_TAG)
  )
  return H.WithHaikuRandom.handling(body)


def clean_and_corrupted(max_digits: int) -> tuple[np.ndarray, np.ndarray]:
  """Input tokens ``[1, T]`` of a held-out string and of its corruption."""
  batch = lm_data.make_batch(
      np.random.default_rng(7), 64, max_digits, held_out=True
  )
  rows = np.flatnonzero(batch.lengths >= 2)
  clean = batch.tokens[rows[EXAMPLE_INDEX.value % len(rows)]][None, :-1]
  corrupted = clean.copy()
  last = batch.prompt_length - 2  # The last digit sits just before SEP.
  digit = corrupted[0, last] - lm_data.FIRST_DIGIT
  corrupted[0, last] = lm_data.FIRST_DIGIT + (digit + 1) % 10
  return clean, corrupted


def logit_difference(logits, query: int, good: int, bad: int):
  """How much the model prefers the clean answer token at ``query``."""
  return logits[0, query, good] - logits[0, query, bad]


def analyse(config, params, clean, corrupted) -> dict[str, Any]:
  """The patching and attribution tables ``[blocks, positions]``."""
  probed = probed_forward(config)
  # SEP: its logits predict the first answer token.
  query = int(np.flatnonzero(clean[0] == lm_data.SEP)[0])
  model = hke.transform(handled(probed))
  logits_clean = model.apply(params, None, model_inputs(clean))
  logits_corrupt = model.apply(params, None, model_inputs(corrupted))
  good = int(jnp.argmax(logits_clean[0, query]))
  bad = int(jnp.argmax(logits_corrupt[0, query]))
  if good == bad:  # An untrained model: compare with the next best token.
    bad = int(jnp.argsort(logits_clean[0, query])[-2])
  score = lambda logits: logit_difference(logits, query, good, bad)
  base_clean, base_corrupt = score(logits_clean), score(logits_corrupt)

  collect = hke.transform(
      H.CollectingSideOutputs.handling(handled(probed), tag=RESIDUAL_TAG)
  )
  _, told_clean = collect.apply(params, None, model_inputs(clean))
  _, told_corrupt = collect.apply(params, None, model_inputs(corrupted))
  paths = [v.path for v in told_clean]
  positions = jnp.arange(clean.shape[1])

  def patched_score(path, clean_value, position):
    # Only `position` of this block's output comes from the clean run.
    at = (positions == position)[None, :, None]
    patched = hke.transform(
        handled(
            H.PatchingSideOutputs.handling(
                probed, {path: lambda r: jnp.where(at, clean_value, r)}
            )
        )
    )
    return score(patched.apply(params, None, model_inputs(corrupted)))

  restored = []
  for path, value in zip(paths, told_clean):
    scores = jax.jit(
        jax.vmap(lambda p, path=path, v=value.value: patched_score(path, v, p))
    )(positions)
    restored.append((scores - base_corrupt) / (base_clean - base_corrupt))

  perturbed = hke.transform(
      H.PerturbingSideOutputs.handling(handled(probed), tag=RESIDUAL_TAG)
  )
  corrupt_inputs = model_inputs(corrupted)
  zeros = H.perturbation_zeros(perturbed.apply)(
      params, None, (corrupt_inputs, None)
  )
  grads = jax.jit(
      jax.grad(
          lambda p: score(perturbed.apply(params, None, (corrupt_inputs, p)))
      )
  )(zeros)
  attribution = [
      jnp.sum((c.value - k.value) * grads[c.path], axis=-1)[0]
      / (base_clean - base_corrupt)
      for c, k in zip(told_clean, told_corrupt)
  ]
  return {
      "paths": paths,
      "query": query,
      "good": good,
      "bad": bad,
      "restored": np.asarray(jnp.stack(restored)),
      "attribution": np.asarray(jnp.stack(attribution)),
      "saliency": np.asarray(
          jnp.stack([jnp.linalg.norm(grads[p][0], axis=-1) for p in paths])
      ),
  }


def print_table(title: str, table: np.ndarray, tokens: np.ndarray) -> None:
  print(title)
  header = " ".join(f"{lm_data.render(np.array([t])):>6}" for t in tokens)
  print(f"{'':>8} {header}")
  for i, row in enumerate(table):
    print(f"block_{i:<2} " + " ".join(f"{v:6.2f}" for v in row))


def plot(path: str, result: dict[str, Any], tokens: np.ndarray) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  labels = [lm_data.render(np.array([t])) for t in tokens]
  fig, axes = plt.subplots(
      1, 2, figsize=(2 + 0.5 * len(tokens), 3), sharey=True
  )
  for ax, key, title in zip(
      axes,
      ("restored", "attribution"),
      ("activation patching", "attribution estimate"),
  ):
    image = ax.imshow(result[key], cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_title(title)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(
        range(len(result["paths"])),
        [f"block {i}" for i in range(len(result["paths"]))],
    )
  fig.colorbar(image, ax=axes, label="fraction of logit difference restored")
  fig.savefig(path, dpi=100)
  plt.close(fig)


def run() -> dict[str, Any]:
  """Loads (or trains), analyses, prints and plots; returns the tables."""
  config, params = load_or_train()
  max_digits = (config.max_length + 1 - 3) // 2
  clean, corrupted = clean_and_corrupted(max_digits)
  print(
      f"clean     {lm_data.render(clean[0])}\n"
      f"corrupted {lm_data.render(corrupted[0])}"
  )
  result = analyse(config, params, clean, corrupted)
  print(f"Sites: {result['paths']}")
  print_table(
      "Activation patching (fraction of the clean-vs-corrupt logit "
      "difference restored):",
      result["restored"],
      corrupted[0],
  )
  print_table(
      "Attribution patching estimate ((clean - corrupt) . grad):",
      result["attribution"],
      corrupted[0],
  )
  print_table(
      "Gradient saliency (|d logit difference / d residual|):",
      result["saliency"],
      corrupted[0],
  )
  path = PLOT.value or os.path.join(
      train_lm.OUTPUT_DIR.value, "activation_patching.png"
  )
  plot(path, result, corrupted[0])
  print(f"Wrote {path}.")
  return dict(result, clean=clean, corrupted=corrupted)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  run()


if __name__ == "__main__":
  # Only here, not at import: the tests import train_lm with its defaults.
  flags.FLAGS.set_default("task", "reverse")
  flags.FLAGS.set_default("output_dir", os.path.join("outputs", "reverse"))
  app.run(main)
