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
r"""Trains a small decoder-only transformer on Python's reference manual.

The default task is character-level language modelling of
``pydoc_data.topics`` (shipped with every CPython; ``examples/text_data.py``):
the run reports held-out bits per character next to unigram and bigram
baselines fitted on the same split, then continues held-out prompts with the
KV cache, greedily and by sampling. ``--task=reverse`` trains the same model
to reverse digit strings, scored by exact-sequence accuracy.

Every effect of hk_effects is used where a real model uses it (see
``examples/lm_model.py``): dropout keys and sampling keys from the random
effect, the causal mask and the token positions as side inputs, per-block
activation statistics as side outputs, and a KV cache as local state for
decoding. Training is data-parallel over the local devices (and over
processes with ``--coordinator_address``). The run leaves ``metrics.csv``,
``training.png``, orbax checkpoints (``examples/checkpoints.py``) and,
with ``--tensorboard``, TensorBoard event files in ``--workdir``.

Usage::

  python examples/train_lm.py                      # ~2 minutes on 2 CPU cores
  python examples/train_lm.py --show_bindings      # who serves which request
  python examples/train_lm.py --restore --num_steps=600  # continue training
  python examples/train_lm.py --task=reverse --workdir=outputs/reverse

Across two processes on one machine::

  python examples/train_lm.py --coordinator_address=127.0.0.1:12355 \
      --num_processes=2 --process_id=0 &
  python examples/train_lm.py --coordinator_address=127.0.0.1:12355 \
      --num_processes=2 --process_id=1
"""

from __future__ import annotations

import functools
import logging as python_logging
import os
import sys
import time
from typing import Any, Sequence

if __package__ in (None, ""):
  # Run as a script: make `hk_effects` and `examples` importable from a
  # checkout without installing it.
  sys.path.insert(
      0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  )

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

from examples import checkpoints
from examples import lm_model
from examples import lm_outputs
from examples import lm_tasks
import hk_effects as hke

# pylint: enable=g-import-not-at-top,wrong-import-position

TASK = flags.DEFINE_enum(
    "task",
    "text",
    ["text", "reverse"],
    "text: character-level language "
    "model of pydoc_data.topics, scored in held-out bits per character; "
    "reverse: reverse digit strings, scored by exact-sequence accuracy.",
)
NUM_STEPS = flags.DEFINE_integer(
    "num_steps",
    300,
    "Total optimizer steps; with --restore, training goes "
    "on from the checkpoint's step up to this number (the learning-rate "
    "schedule spans --num_steps, so only an unchanged value continues the "
    "interrupted run bit for bit).",
)
BATCH_SIZE = flags.DEFINE_integer(
    "batch_size",
    64,
    "Global batch size (sequences per step), split evenly "
    "over all devices of all processes.",
)
LEARNING_RATE = flags.DEFINE_float(
    "learning_rate",
    1e-2,
    "Peak Adam learning rate, reached after a linear "
    "warm-up and followed by cosine decay to 10%.",
)
DROPOUT_RATE = flags.DEFINE_float(
    "dropout_rate",
    0.05,
    "Dropout rate after embeddings, attention and MLP "
    "during training (evaluation and decoding never drop).",
)
NUM_LAYERS = flags.DEFINE_integer("num_layers", 2, "Transformer blocks.")
D_MODEL = flags.DEFINE_integer("d_model", 128, "Width of the residual stream.")
NUM_HEADS = flags.DEFINE_integer("num_heads", 4, "Attention heads per block.")
SEQ_LEN = flags.DEFINE_integer(
    "seq_len",
    64,
    "--task=text: characters per training window, the "
    "model's context (and KV-cache) length.",
)
MAX_DIGITS = flags.DEFINE_integer(
    "max_digits",
    8,
    "--task=reverse: longest digit string; lengths are "
    "uniform in [1, max_digits].",
)
SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of parameters, dropout, training batches and samples."
)
EVAL_EVERY = flags.DEFINE_integer(
    "eval_every",
    50,
    "Steps between held-out evaluations (also run after the last step).",
)
EVAL_SIZE = flags.DEFINE_integer(
    "eval_size",
    512,
    "--task=reverse: held-out strings decoded per "
    "evaluation (rounded down to a multiple of the device count). The text "
    "task always scores every held-out character.",
)
LOG_EVERY = flags.DEFINE_integer(
    "log_every", 25, "Steps between progress lines and metric rows."
)
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir",
    os.path.join("outputs", "train_lm"),
    "Work directory: "
    "metrics.csv, training.png, checkpoints/<step> (orbax) and "
    "TensorBoard events are written there (created if missing).",
)
flags.DEFINE_alias("workdir", "output_dir")
RESTORE = flags.DEFINE_bool(
    "restore",
    False,
    "Load the latest checkpoint of --workdir (params, "
    "optimizer state, local states, step, metrics) and continue from its "
    "step; the flags that shape the run must match the checkpoint's. With "
    "--num_steps at or below its step, only evaluate and decode.",
)
CHECKPOINT_EVERY = flags.DEFINE_integer(
    "checkpoint_every",
    200,
    "Steps between checkpoints (one is also written "
    "after the last step); 0: only after the last step.",
)
KEEP_CHECKPOINTS = flags.DEFINE_integer(
    "keep_checkpoints",
    3,
    "Newest checkpoints kept in --workdir; older ones "
    "are deleted (0: keep all).",
)
NUM_DEVICES = flags.DEFINE_integer(
    "num_devices",
    0,
    "Local devices per process to train on, data-parallel "
    "(0: all local devices).",
)
NUM_SAMPLES = flags.DEFINE_integer(
    "num_samples",
    4,
    "Held-out prompts continued (text) or strings shown (reverse) at the end.",
)
TEMPERATURE = flags.DEFINE_float(
    "temperature",
    0.8,
    "--task=text: temperature of the sampled "
    "continuations (keys from the random effect); 0: greedy only.",
)
TENSORBOARD = flags.DEFINE_bool(
    "tensorboard",
    False,
    "Also write the metric rows as TensorBoard event "
    "files in --workdir (needs tensorboardX).",
)
SHOW_BINDINGS = flags.DEFINE_bool(
    "show_bindings",
    False,
    "Print which handler serves each effect request "
    "of the training and decoding models (hke.bindings), then exit.",
)
COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address",
    None,
    "host:port of process 0, to train across "
    "processes with jax.distributed (CPU collectives over gloo).",
)
NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", 1, "Number of processes (with --coordinator_address)."
)
PROCESS_ID = flags.DEFINE_integer(
    "process_id", 0, "This process's index in [0, num_processes)."
)

METRICS_NAME = lm_outputs.METRICS_NAME
PLOT_NAME = lm_outputs.PLOT_NAME
# The flags a checkpoint must agree with to be restored: they shape the
# model, the optimizer or the data. Flags absent here (steps, logging,
# devices, samples) may change between a run and its continuation.
RESTORE_CHECKED_FLAGS = (
    "task",
    "num_layers",
    "d_model",
    "num_heads",
    "dropout_rate",
    "learning_rate",
    "batch_size",
    "seed",
)
TASK_FLAGS = {"text": ("seq_len",), "reverse": ("max_digits",)}


# --help lists the flags in these groups, in this order.
FLAG_GROUPS = (
    ("Model", ("num_layers", "d_model", "num_heads", "dropout_rate")),
    ("Data", ("task", "seq_len", "max_digits", "eval_size")),
    (
        "Training",
        (
            "num_steps",
            "batch_size",
            "learning_rate",
            "seed",
            "eval_every",
            "restore",
        ),
    ),
    (
        "Outputs",
        (
            "output_dir",
            "log_every",
            "checkpoint_every",
            "keep_checkpoints",
            "num_samples",
            "temperature",
            "tensorboard",
            "show_bindings",
        ),
    ),
    (
        "Distributed",
        ("num_devices", "coordinator_address", "num_processes", "process_id"),
    ),
)
_HELP_ARGS = ("--help", "-help", "-h", "-?", "--helpshort")


def grouped_help() -> str:
  """The launcher's usage and its flags by group (what ``--help`` prints)."""
  lines = [__doc__.strip(), ""]
  for title, names in FLAG_GROUPS:
    lines.append(f"{title} flags:")
    for name in names:
      flag = flags.FLAGS[name]
      alias = " (alias --workdir)" if name == "output_dir" else ""
      lines.append(f"  --{name}{alias}: {flag.help}")
      lines.append(f"    (default: {flag.default_as_str})")
    lines.append("")
  lines.append("--helpfull lists every flag, absl's and JAX's included.")
  return "\n".join(lines)


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with ``--help`` printing the grouped flags."""
  if any(arg in _HELP_ARGS for arg in argv[1:]):
    print(grouped_help())
    sys.exit(0)
  return app.parse_flags_with_usage(argv)


def quiet_logs() -> None:
  """Keeps informational log lines (JAX's backend probing, orbax's progress,
  matplotlib's font cache) off the console; ``--verbosity=0`` or
  ``--verbosity=1`` brings absl's INFO or DEBUG lines back."""
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  # A fresh machine's first plot builds matplotlib's font cache and says so.
  python_logging.getLogger("matplotlib").setLevel(python_logging.ERROR)


def continue_command(output_dir: str) -> str:
  """The command that continues this run from its last checkpoint."""
  names = RESTORE_CHECKED_FLAGS + TASK_FLAGS[TASK.value]
  changed = [
      f"--{n}={flags.FLAGS[n].value}"
      for n in names
      if flags.FLAGS[n].value != flags.FLAGS[n].default
  ]
  return " ".join(
      ["python examples/train_lm.py", f"--workdir={output_dir}"]
      + changed
      + ["--restore", f"--num_steps={2 * max(NUM_STEPS.value, 1)}"]
  )


# ------------------------------------------------------------- training ---


def make_task() -> lm_tasks.TextTask | lm_tasks.ReverseTask:
  """The task ``--task`` names."""
  if TASK.value == "text":
    return lm_tasks.TextTask(SEQ_LEN.value, SEED.value)
  return lm_tasks.ReverseTask(MAX_DIGITS.value, SEED.value)


def model_config(task) -> lm_model.ModelConfig:
  """The model configuration the flags describe, for ``task``."""
  return task.model_config(
      num_layers=NUM_LAYERS.value,
      d_model=D_MODEL.value,
      num_heads=NUM_HEADS.value,
      dropout_rate=DROPOUT_RATE.value,
  )


def loss_fn(params, rng, tokens, model: Any, task: Any):
  """Mean cross-entropy on the task's targets, and metrics for the log."""
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  key_valid, weights = task.loss_masks(tokens)
  logits, side_outputs = model.apply(
      params, rng, lm_model.model_inputs(inputs, key_valid)
  )
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  loss = jnp.sum(losses * weights) / jnp.sum(weights)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  stats = jnp.stack(
      [jnp.stack([s.value["mean"], s.value["rms"]]) for s in side_outputs]
  )
  return loss, {
      "loss": loss,
      "token_accuracy": jnp.sum(correct * weights) / jnp.sum(weights),
      "block_stats": stats,
  }


def make_optimizer(num_steps: int) -> optax.GradientTransformation:
  """Adam with warm-up, cosine decay and gradient clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      0.0,
      LEARNING_RATE.value,
      warmup_steps=min(100, num_steps // 10 + 1),
      decay_steps=max(num_steps, 1),
      end_value=LEARNING_RATE.value * 0.1,
  )
  return optax.chain(
      optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=1e-4)
  )


def make_train_step(model, optimizer, task):
  """A jitted step. The loss averages over the global batch, so under the
  data-parallel sharding the gradients XLA all-reduces are the average of the
  per-device gradients."""
  grad_fn = jax.grad(
      functools.partial(loss_fn, model=model, task=task), has_aux=True
  )

  @jax.jit
  def step(params, opt_state, rng, tokens):
    grads, metrics = grad_fn(params, rng, tokens)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics

  return step


# ------------------------------------------------------------ data, mesh ---


def local_devices() -> list[jax.Device]:
  """The devices this process trains on (``--num_devices`` of its own)."""
  devices = jax.local_devices()
  wanted = NUM_DEVICES.value or len(devices)
  if not 1 <= wanted <= len(devices):
    raise ValueError(
        f"--num_devices={NUM_DEVICES.value} but this process has "
        f"{len(devices)} local devices; pass a number in [1, {len(devices)}] "
        "or 0 for all (on CPU, XLA_FLAGS=--xla_force_host_platform_device_"
        "count=N simulates N devices)."
    )
  return devices[:wanted]


def make_mesh() -> jax.sharding.Mesh:
  """A one-axis ("data") mesh over the chosen devices of every process."""
  per_process = len(local_devices())
  by_process: dict[int, list[jax.Device]] = {}
  for device in jax.devices():
    by_process.setdefault(device.process_index, []).append(device)
  devices = [d for p in sorted(by_process) for d in by_process[p][:per_process]]
  return jax.sharding.Mesh(np.array(devices), ("data",))


def per_process_rows(total: int, mesh: jax.sharding.Mesh, what: str) -> int:
  """Rows each process contributes to a global batch of ``total`` rows."""
  devices = mesh.devices.size
  if total % devices:
    raise ValueError(
        f"{what}={total} is not a multiple of the {devices} devices training "
        f"data-parallel; pass a multiple of {devices} or fewer --num_devices."
    )
  return total // jax.process_count()


def global_batch(mesh: jax.sharding.Mesh, rows: np.ndarray) -> jax.Array:
  """The data-sharded global array of ``rows`` (the whole global batch,
  which every process holds): each process puts in its own slice."""
  per_process = len(rows) // jax.process_count()
  mine = rows[jax.process_index() * per_process :][:per_process]
  sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("data")
  )
  return jax.make_array_from_process_local_data(sharding, mine)


def gathered(tree: Any) -> Any:
  """``tree`` as numpy (typed PRNG keys as keys) on every process.

  Arrays that span processes (replicated params, data-sharded outputs) are
  gathered from all of them (every process must call this); arrays this
  process holds whole, and numpy arrays, are its own values.
  """
  leaves, treedef = jax.tree.flatten(tree)
  # Typed PRNG keys cross as their key data and are wrapped again after.
  impls = {
      i: jax.random.key_impl(x)
      for i, x in enumerate(leaves)
      if isinstance(x, jax.Array)
      and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
  }
  for i in impls:
    leaves[i] = jax.random.key_data(leaves[i])
  spanning = [
      i
      for i, x in enumerate(leaves)
      if isinstance(x, jax.Array) and not x.is_fully_addressable
  ]
  if spanning:
    # One collective for all; tiled=True: a replicated array comes back as
    # its value and a sharded one as the whole global array.
    values = multihost_utils.process_allgather(
        [leaves[i] for i in spanning], tiled=True
    )
    for i, value in zip(spanning, values):
      leaves[i] = value
  leaves = [np.asarray(jax.device_get(x)) for x in leaves]
  for i, impl in impls.items():
    leaves[i] = jax.random.wrap_key_data(leaves[i], impl=impl)
  return jax.tree.unflatten(treedef, leaves)


# ---------------------------------------------------------- checkpoints ---


def restore_config(config: lm_model.ModelConfig) -> dict[str, Any]:
  """What a checkpoint records and ``--restore`` checks: the flags of
  ``RESTORE_CHECKED_FLAGS``, the task's own, and the model's vocabulary and
  context sizes (the corpus differs between Python versions)."""
  names = RESTORE_CHECKED_FLAGS + TASK_FLAGS[TASK.value]
  values = {name: flags.FLAGS[name].value for name in names}
  values["vocab_size"] = config.vocab_size
  values["max_length"] = config.max_length
  return values


def load_checkpoint(
    output_dir: str, config: lm_model.ModelConfig
) -> checkpoints.Checkpoint:
  """The latest checkpoint of ``output_dir``, if its settings are this
  run's (an error naming every flag that differs otherwise)."""
  path = checkpoints.latest(output_dir)
  ckpt = checkpoints.load(path)
  differences = checkpoints.config_differences(
      ckpt.config, restore_config(config)
  )
  if differences:
    raise ValueError(
        f"--restore: {path} was written by a run with other settings: "
        f"{'; '.join(differences)}. Pass the checkpoint's values, or a fresh "
        "--workdir to start a new run."
    )
  return ckpt


def save(
    output_dir: str, step: int, config, params, opt_state, local_states, rows
) -> None:
  """Writes a checkpoint and ``metrics.csv``. Every process takes part in
  gathering the arrays and in orbax's save (which has process 0 write the
  host arrays); only process 0 writes ``metrics.csv``."""
  params, opt_state, local_states = gathered((params, opt_state, local_states))
  # Only the caches of the shown samples are kept: enough to inspect or
  # resume their decoding, without a whole evaluation batch.
  local_states = jax.tree.map(
      lambda x: x[: NUM_SAMPLES.value] if x.ndim else x, local_states
  )
  checkpoints.save(
      output_dir,
      step,
      {
          "params": params,
          "opt_state": opt_state,
          "local_states": local_states,
      },
      restore_config(config),
      rows,
      keep=KEEP_CHECKPOINTS.value,
  )
  if jax.process_index() == 0:
    lm_outputs.write_metrics(os.path.join(output_dir, METRICS_NAME), rows)


# ------------------------------------------------------------------ main ---


def show_bindings(config: lm_model.ModelConfig) -> None:
  """Prints the ``hke.bindings`` tables of the training and decoding models."""
  inputs = lm_model.model_inputs(jnp.zeros([1, config.max_length], jnp.int32))
  print("Training model (hke.transform):")
  print(hke.bindings(lm_model.training_forward(config))(inputs))
  print("\nDecoding model, sampling (hke.transform_with_state):")
  print(hke.bindings(lm_model.decoding_forward(config, 1, 0.8))(inputs))


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  started, cpu_started = time.perf_counter(), time.process_time()
  quiet_logs()
  if COORDINATOR_ADDRESS.value:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        COORDINATOR_ADDRESS.value, NUM_PROCESSES.value, PROCESS_ID.value
    )
  if jax.process_index() == 0 and not SHOW_BINDINGS.value:
    what = {
        "text": (
            "a character-level language model of Python's reference "
            "manual (pydoc_data.topics)"
        ),
        "reverse": "a model that reverses digit strings",
    }[TASK.value]
    print(
        f"Training {what}: a {NUM_LAYERS.value}-block transformer, "
        + (
            f"from the last checkpoint up to step {NUM_STEPS.value}"
            if RESTORE.value
            else f"for {NUM_STEPS.value} steps"
        )
        + f", writing to {OUTPUT_DIR.value}. Preparing the data and "
        "compiling first.",
        flush=True,
    )
  task = make_task()
  config = model_config(task)
  if SHOW_BINDINGS.value:
    show_bindings(config)
    return
  run(task, config, started, cpu_started)


def _duration(seconds: float) -> str:
  return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def run(
    task,
    config: lm_model.ModelConfig,
    started: float | None = None,
    cpu_started: float | None = None,
) -> dict[str, Any]:
  """Trains, evaluates, decodes and writes outputs; returns the summary."""
  started = time.perf_counter() if started is None else started
  cpu_started = time.process_time() if cpu_started is None else cpu_started
  is_chief = jax.process_index() == 0
  output_dir = OUTPUT_DIR.value
  # Before any compilation: a missing, refused or mismatched checkpoint
  # fails at once.
  ckpt = load_checkpoint(output_dir, config) if RESTORE.value else None
  mesh = make_mesh()
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  # Checks the batch divides among the devices (the rows are not needed).
  per_process_rows(BATCH_SIZE.value, mesh, "--batch_size")
  if task.name == "reverse":
    eval_arrays = task.eval_data(mesh.devices.size, EVAL_SIZE.value)
    evaluate = task.make_evaluate(config, len(eval_arrays[0]))
  else:
    eval_arrays = task.eval_data(mesh.devices.size)
    evaluate = task.make_evaluate(config)
  per_process_rows(len(eval_arrays[0]), mesh, "held-out rows")

  model = hke.transform(lm_model.training_forward(config))
  optimizer = make_optimizer(NUM_STEPS.value)
  step_fn = make_train_step(model, optimizer, task)
  rng = jax.random.key(SEED.value)
  sample = jnp.asarray(task.train_tokens(0, 1))[:, :-1]
  params = jax.jit(model.init)(rng, lm_model.model_inputs(sample))
  opt_state = optimizer.init(params)
  rows: list[dict[str, Any]] = []
  local_states: Any = {}
  start_step = 0
  if ckpt:
    start_step, rows = ckpt.step, ckpt.metrics
    params, opt_state = (
        ckpt.tree("params", params),
        ckpt.tree("opt_state", opt_state),
    )
    local_states = ckpt.tree("local_states")
    if is_chief:
      print(
          f"Restored step {start_step} from {ckpt.path} (local states: "
          f"{len(jax.tree.leaves(local_states))} arrays)."
      )
  board = None
  if is_chief:
    os.makedirs(output_dir, exist_ok=True)
    if TENSORBOARD.value:
      board = lm_outputs.TensorBoard(output_dir)
  params, opt_state = jax.device_put((params, opt_state), replicated)
  eval_arrays = tuple(global_batch(mesh, a) for a in eval_arrays)
  baselines = task.baselines()
  # Every process says what it trains on; the rest is process 0's to say.
  size = sum(x.size for x in jax.tree.leaves(params))
  print(
      f"Task {task.name}: training {size:,} params on {mesh.devices.size} "
      f"device(s) in {jax.process_count()} process(es), batch "
      f"{BATCH_SIZE.value}, steps {start_step}..{NUM_STEPS.value}."
      + "".join(
          f" {k.split('_')[0].capitalize()} baseline: {v:.3f} "
          "bits/char held out."
          for k, v in sorted(baselines.items(), reverse=True)
      ),
      flush=True,
  )

  metrics: dict[str, float] = {}
  decoded = None
  tick, tick_step = time.perf_counter(), start_step
  for step in range(start_step + 1, NUM_STEPS.value + 1):
    tokens = global_batch(mesh, task.train_tokens(step, BATCH_SIZE.value))
    params, opt_state, train = step_fn(
        params, opt_state, jax.random.fold_in(rng, step), tokens
    )
    last = step == NUM_STEPS.value
    if step == start_step + 1 and step % LOG_EVERY.value and not last:
      # Steps/s and the ETA leave out the first step, which compiles.
      jax.block_until_ready(params)
      tick, tick_step = time.perf_counter(), step
    evaluated = step % EVAL_EVERY.value == 0 or last
    if evaluated:
      metrics, decoded = evaluate(params, *eval_arrays)
      metrics = {k: float(v) for k, v in metrics.items()}
    if step % LOG_EVERY.value == 0 or last:
      train = jax.device_get(train)
      now = time.perf_counter()
      steps_per_s = (step - tick_step) / (now - tick)
      tick, tick_step = now, step
      row = {
          "step": step,
          "loss": float(train["loss"]),
          "token_accuracy": float(train["token_accuracy"]),
          "steps_per_s": steps_per_s,
      }
      row.update({k: v if evaluated else "" for k, v in metrics.items()})
      row.update({k: v if evaluated else "" for k, v in baselines.items()})
      for i, (mean, rms) in enumerate(np.asarray(train["block_stats"])):
        row[f"block_{i}_mean"], row[f"block_{i}_rms"] = float(mean), float(rms)
      rows.append(row)
      if is_chief:
        loss = (
            f"{row['loss'] / np.log(2):.3f} bits/char"
            if baselines
            else (
                f"{row['loss']:.4f}, token accuracy {row['token_accuracy']:.3f}"
            )
        )
        print(
            f"step {step:5d}/{NUM_STEPS.value}: training loss {loss}, "
            f"{steps_per_s:.1f} steps/s, ETA "
            f"{_duration((NUM_STEPS.value - step) / steps_per_s)}"
            + (f", {task.describe(metrics)}" if evaluated else ""),
            flush=True,
        )
        if board:
          board.write(row)
    if task.name == "reverse" and evaluated:
      local_states = decoded[1]
    if (
        CHECKPOINT_EVERY.value
        and step % CHECKPOINT_EVERY.value == 0
        and not last
    ):
      save(output_dir, step, config, params, opt_state, local_states, rows)
  if start_step >= NUM_STEPS.value:
    metrics, decoded = evaluate(params, *eval_arrays)
    metrics = {k: float(v) for k, v in metrics.items()}

  final_step = max(start_step, NUM_STEPS.value)
  if task.name == "text":
    local_states = task.finish(
        gathered(params),
        config,
        NUM_SAMPLES.value,
        TEMPERATURE.value,
        jax.random.fold_in(rng, 0),
        is_chief,
    )
  else:
    tokens, (predicted, states) = gathered((eval_arrays[0], decoded))
    local_states = task.finish(
        tokens, predicted, states, NUM_SAMPLES.value, is_chief
    )
  save(output_dir, final_step, config, params, opt_state, local_states, rows)
  if is_chief and rows:
    lm_outputs.plot_metrics(
        os.path.join(output_dir, PLOT_NAME), rows, config.num_layers, baselines
    )
  if board:
    board.close()
  wall = time.perf_counter() - started
  cpu = time.process_time() - cpu_started
  summary = dict(
      metrics, step=final_step, seconds=wall, cpu_seconds=cpu, **baselines
  )
  if is_chief:
    print(
        f"Final: step {final_step}, {task.final_line(metrics)}; "
        f"{wall:.1f} s wall, {cpu:.1f} s CPU",
        flush=True,
    )
    print(
        f"Outputs in {output_dir} ({METRICS_NAME}, {PLOT_NAME}, "
        f"{checkpoints.SUBDIR}/); continue with: "
        f"{continue_command(output_dir)}",
        flush=True,
    )
  return summary


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
