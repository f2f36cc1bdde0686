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
r"""Trains a small decoder-only transformer to reverse digit strings.

Every effect of hk_effects is used where a real model uses it (see
``examples/lm_model.py``): dropout keys from the random effect, the causal and
padding mask and the token positions as side inputs, per-block activation
statistics as side outputs, and a KV cache as local state for greedy
decoding. Training is data-parallel over the local devices (and over
processes with ``--coordinator_address``), the evaluation decodes held-out
strings with the cache, and the run leaves a CSV, a plot and a checkpoint in
``--output_dir``.

Usage::

  python examples/train_lm.py                      # ~2 minutes on 2 CPU cores
  python examples/train_lm.py --show_bindings      # who serves which request
  python examples/train_lm.py --restore --num_steps=2000  # continue training

Across two processes on one machine::

  python examples/train_lm.py --coordinator_address=127.0.0.1:12355 \
      --num_processes=2 --process_id=0 &
  python examples/train_lm.py --coordinator_address=127.0.0.1:12355 \
      --num_processes=2 --process_id=1
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
import pickle
import sys
import time
from typing import Any, Sequence

if __package__ in (None, ""):
  # Run as a script: make `hk_effects` and `examples` importable from a
  # checkout without installing it.
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# pylint: disable=g-import-not-at-top,wrong-import-position
from absl import app
from absl import flags
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import optax

import hk_effects as hke
from examples import lm_data
from examples import lm_model
# pylint: enable=g-import-not-at-top,wrong-import-position

NUM_STEPS = flags.DEFINE_integer(
    "num_steps", 600, "Total optimizer steps; with --restore, training goes "
    "on from the checkpoint's step up to this number.")
BATCH_SIZE = flags.DEFINE_integer(
    "batch_size", 64, "Global batch size (sequences per step), split evenly "
    "over all devices of all processes.")
LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", 3e-3, "Peak Adam learning rate, reached after a linear "
    "warm-up and followed by cosine decay to 10%.")
DROPOUT_RATE = flags.DEFINE_float(
    "dropout_rate", 0.1, "Dropout rate after embeddings, attention and MLP "
    "during training (decoding never drops).")
NUM_LAYERS = flags.DEFINE_integer("num_layers", 2, "Transformer blocks.")
D_MODEL = flags.DEFINE_integer("d_model", 64, "Width of the residual stream.")
NUM_HEADS = flags.DEFINE_integer("num_heads", 4, "Attention heads per block.")
MAX_DIGITS = flags.DEFINE_integer(
    "max_digits", 8, "Longest digit string to reverse; lengths are uniform "
    "in [1, max_digits].")
SEED = flags.DEFINE_integer(
    "seed", 0, "Seed of parameters, dropout and training data (held-out "
    "data is seeded apart from it).")
EVAL_EVERY = flags.DEFINE_integer(
    "eval_every", 50, "Steps between evaluations by cached greedy decoding "
    "of held-out strings (also run after the last step).")
EVAL_SIZE = flags.DEFINE_integer(
    "eval_size", 512, "Held-out strings decoded per evaluation (rounded "
    "down to a multiple of the device count).")
LOG_EVERY = flags.DEFINE_integer(
    "log_every", 50, "Steps between progress lines and CSV rows.")
OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", os.path.join("outputs", "train_lm"), "Where metrics.csv, "
    "training.png and checkpoint.pkl are written (created if missing).")
RESTORE = flags.DEFINE_bool(
    "restore", False, "Reload --output_dir/checkpoint.pkl (params, optimizer "
    "state and the decoder's local states) and continue from its step; with "
    "--num_steps at or below that step, only evaluate and decode.")
NUM_DEVICES = flags.DEFINE_integer(
    "num_devices", 0, "Local devices per process to train on, data-parallel "
    "(0: all local devices).")
NUM_SAMPLES = flags.DEFINE_integer(
    "num_samples", 4, "Held-out strings decoded and printed at the end.")
SHOW_BINDINGS = flags.DEFINE_bool(
    "show_bindings", False, "Print which handler serves each effect request "
    "of the training and decoding models (hke.bindings), then exit.")
COORDINATOR_ADDRESS = flags.DEFINE_string(
    "coordinator_address", None, "host:port of process 0, to train across "
    "processes with jax.distributed (CPU collectives over gloo).")
NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", 1, "Number of processes (with --coordinator_address).")
PROCESS_ID = flags.DEFINE_integer(
    "process_id", 0, "This process's index in [0, num_processes).")

CHECKPOINT_NAME = "checkpoint.pkl"
METRICS_NAME = "metrics.csv"
PLOT_NAME = "training.png"


# ----------------------------------------------------------------- model ---

def model_config() -> lm_model.ModelConfig:
  """The model configuration the flags describe."""
  return lm_model.ModelConfig(
      vocab_size=lm_data.VOCAB_SIZE,
      max_length=lm_data.sequence_length(MAX_DIGITS.value) - 1,
      num_layers=NUM_LAYERS.value, d_model=D_MODEL.value,
      num_heads=NUM_HEADS.value, dropout_rate=DROPOUT_RATE.value)


def model_inputs(tokens: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(tokens, mask, positions)`` for a full-sequence call on ``tokens``."""
  positions = jnp.arange(tokens.shape[1])
  return (tokens, lm_model.attention_mask(tokens != lm_data.PAD, positions),
          positions)


def answer_weights(targets: jax.Array, prompt_length: int) -> jax.Array:
  """1.0 where a next-token target belongs to the answer (digits and EOS)."""
  in_answer = jnp.arange(targets.shape[1]) >= prompt_length - 1
  return (in_answer[None, :] & (targets != lm_data.PAD)).astype(jnp.float32)


def loss_fn(params, rng, tokens, model: Any, prompt_length: int):
  """Mean cross-entropy on answer tokens, and metrics for the progress log."""
  inputs, targets = tokens[:, :-1], tokens[:, 1:]
  logits, side_outputs = model.apply(params, rng, model_inputs(inputs))
  weights = answer_weights(targets, prompt_length)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  loss = jnp.sum(losses * weights) / jnp.sum(weights)
  correct = (jnp.argmax(logits, -1) == targets).astype(jnp.float32)
  stats = jnp.stack([jnp.stack([s.value["mean"], s.value["rms"]])
                     for s in side_outputs])
  return loss, {"loss": loss,
                "token_accuracy": jnp.sum(correct * weights) / jnp.sum(weights),
                "block_stats": stats}


def make_optimizer(num_steps: int) -> optax.GradientTransformation:
  """Adam with warm-up, cosine decay and gradient clipping."""
  schedule = optax.warmup_cosine_decay_schedule(
      0.0, LEARNING_RATE.value, warmup_steps=min(100, num_steps // 10 + 1),
      decay_steps=max(num_steps, 1), end_value=LEARNING_RATE.value * 0.1)
  return optax.chain(optax.clip_by_global_norm(1.0),
                     optax.adamw(schedule, weight_decay=1e-4))


def make_train_step(model, optimizer, prompt_length: int):
  """A jitted step. The loss averages over the global batch, so under the
  data-parallel sharding the gradients XLA all-reduces are the average of the
  per-device gradients."""
  grad_fn = jax.grad(functools.partial(loss_fn, model=model,
                                       prompt_length=prompt_length),
                     has_aux=True)

  @jax.jit
  def step(params, opt_state, rng, tokens):
    grads, metrics = grad_fn(params, rng, tokens)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics
  return step


# -------------------------------------------------------------- decoding ---

def greedy_decode_cached(decoder, params, prompt: jax.Array,
                         answer_length: int):
  """Greedy answer tokens ``[batch, answer_length]`` using the KV cache.

  The prompt fills the cache in one call; then each step feeds the last
  token alone. Returns ``(tokens, logits, local_states)``.
  """
  batch, prompt_length = prompt.shape
  length = prompt_length + answer_length - 1
  key_valid = jnp.concatenate(
      [prompt != lm_data.PAD, jnp.ones([batch, answer_length - 1], bool)], 1)
  positions = jnp.arange(prompt_length)
  args = (prompt, lm_model.attention_mask(key_valid, positions), positions)
  _, states = decoder.init(jax.random.key(0), args)
  logits, states = decoder.apply(params, states, None, args)
  first = logits[:, -1]

  def one_token(carry, position):
    states, previous = carry
    token = jnp.argmax(previous, -1).astype(jnp.int32)
    positions = position[None]
    args = (token[:, None], lm_model.attention_mask(key_valid, positions),
            positions)
    logits, states = decoder.apply(params, states, None, args)
    return (states, logits[:, 0]), previous

  (states, last), logits = jax.lax.scan(
      one_token, (states, first), jnp.arange(prompt_length, length))
  logits = jnp.concatenate([jnp.moveaxis(logits, 0, 1), last[:, None]], 1)
  return jnp.argmax(logits, -1).astype(jnp.int32), logits, states


def greedy_decode_uncached(scorer, params, prompt: jax.Array,
                           answer_length: int):
  """Greedy answer tokens by re-running the whole sequence at every step.

  The reference the cached decoder must match. Returns ``(tokens, logits)``.
  """
  batch, prompt_length = prompt.shape
  buffer = jnp.concatenate(
      [prompt, jnp.full([batch, answer_length - 1], lm_data.PAD, jnp.int32)], 1)
  key_valid = jnp.concatenate(
      [prompt != lm_data.PAD, jnp.ones([batch, answer_length - 1], bool)], 1)
  positions = jnp.arange(buffer.shape[1])
  mask = lm_model.attention_mask(key_valid, positions)

  def one_token(buffer, k):
    logits, _ = scorer.apply(params, None, (buffer, mask, positions))
    step_logits = jax.lax.dynamic_index_in_dim(
        logits, prompt_length - 1 + k, axis=1, keepdims=False)
    token = jnp.argmax(step_logits, -1).astype(jnp.int32)
    buffer = jax.lax.dynamic_update_index_in_dim(
        buffer, token, jnp.minimum(prompt_length + k, buffer.shape[1] - 1), 1)
    return buffer, step_logits

  _, logits = jax.lax.scan(one_token, buffer, jnp.arange(answer_length))
  logits = jnp.moveaxis(logits, 0, 1)
  return jnp.argmax(logits, -1).astype(jnp.int32), logits


def make_evaluate(decoder, answer_length: int, prompt_length: int):
  """A jitted function decoding held-out strings greedily with the KV cache.

  Returns ``(exact-sequence accuracy, predicted answers, local states)``.
  """

  @jax.jit
  def evaluate(params, tokens):
    predicted, _, states = greedy_decode_cached(
        decoder, params, tokens[:, :prompt_length], answer_length)
    answer = tokens[:, prompt_length:]
    counted = answer != lm_data.PAD
    exact = jnp.all((predicted == answer) | ~counted, axis=1)
    return jnp.mean(exact.astype(jnp.float32)), predicted, states
  return evaluate


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
        "count=N simulates N devices).")
  return devices[:wanted]


def make_mesh() -> jax.sharding.Mesh:
  """A one-axis ("data") mesh over the chosen devices of every process."""
  per_process = len(local_devices())
  by_process: dict[int, list[jax.Device]] = {}
  for device in jax.devices():
    by_process.setdefault(device.process_index, []).append(device)
  devices = [d for p in sorted(by_process) for d in by_process[p][:per_process]]
  return jax.sharding.Mesh(np.array(devices), ("data",))


def global_batch(mesh: jax.sharding.Mesh, local_tokens: np.ndarray) -> jax.Array:
  """Puts this process's rows of a batch into the data-sharded global array."""
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  return jax.make_array_from_process_local_data(sharding, local_tokens)


def per_process_rows(total: int, mesh: jax.sharding.Mesh, what: str) -> int:
  """Rows each process contributes to a global batch of ``total`` rows."""
  devices = mesh.devices.size
  if total % devices:
    raise ValueError(
        f"{what}={total} is not a multiple of the {devices} devices training "
        f"data-parallel; pass a multiple of {devices} or fewer --num_devices.")
  return total // jax.process_count()


def train_batch(step: int, rows: int) -> np.ndarray:
  """This process's ``rows`` rows of the global batch of ``step``.

  The global batch depends on the seed and step only (deterministic,
  resumable), so runs on any number of processes train on the same data.
  """
  rng = np.random.default_rng([SEED.value, step])
  tokens = lm_data.make_batch(rng, rows * jax.process_count(),
                              MAX_DIGITS.value).tokens
  return tokens[jax.process_index() * rows:][:rows]


def held_out_batch(rows: int) -> lm_data.Batch:
  """Held-out rows for this process (the same at every evaluation)."""
  rng = np.random.default_rng([1_000_003, SEED.value, jax.process_index()])
  return lm_data.make_batch(rng, rows, MAX_DIGITS.value, held_out=True)


# --------------------------------------------------------------- outputs ---

def write_metrics(path: str, rows: list[dict[str, float]]) -> None:
  """Writes the metric rows as CSV (one row per logged step)."""
  fields = list(rows[0]) if rows else ["step"]
  for row in rows:
    fields += [k for k in row if k not in fields]
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)


def plot_metrics(path: str, rows: list[dict[str, float]], num_layers: int
                 ) -> None:
  """Plots loss, held-out accuracy and per-block activation statistics."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  steps = [r["step"] for r in rows]
  fig, axes = plt.subplots(1, 3, figsize=(15, 4))
  axes[0].plot(steps, [r["loss"] for r in rows])
  axes[0].set(yscale="log", title="training loss (answer tokens)",
              xlabel="step")
  evals = [r for r in rows if r.get("eval_accuracy", "") != ""]
  axes[1].plot([r["step"] for r in evals],
               [r["eval_accuracy"] for r in evals], marker="o")
  axes[1].set(ylim=(0, 1.02), title="held-out exact-sequence accuracy",
              xlabel="step")
  for i in range(num_layers):
    line, = axes[2].plot(steps, [r[f"block_{i}_rms"] for r in rows],
                         label=f"block {i} RMS")
    axes[2].plot(steps, [r[f"block_{i}_mean"] for r in rows], "--",
                 color=line.get_color(), label=f"block {i} mean")
  axes[2].set(title="block output statistics (side outputs)", xlabel="step")
  axes[2].legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def save_checkpoint(path: str, **contents: Any) -> None:
  """Pickles ``contents`` with every array fetched to numpy."""
  contents = jax.tree.map(np.asarray, jax.device_get(contents))
  with open(path + ".tmp", "wb") as f:
    pickle.dump(contents, f)
  os.replace(path + ".tmp", path)  # Never leaves a half-written checkpoint.


def load_checkpoint(path: str) -> dict[str, Any]:
  """Reads a checkpoint written by ``save_checkpoint``."""
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"--restore was given but there is no checkpoint at {path!r}; run "
        "without --restore first, or point --output_dir at a finished run.")
  with open(path, "rb") as f:
    return pickle.load(f)


# ------------------------------------------------------------------ main ---

def show_bindings(config: lm_model.ModelConfig) -> None:
  """Prints the ``hke.bindings`` tables of the training and decoding models."""
  tokens = jnp.zeros([1, config.max_length], jnp.int32)
  print("Training model (hke.transform):")
  print(hke.bindings(lm_model.training_forward(config))(model_inputs(tokens)))
  print("\nDecoding model (hke.transform_with_state):")
  print(hke.bindings(lm_model.decoding_forward(config, 1))(
      model_inputs(tokens)))


def print_samples(tokens: np.ndarray, predicted: np.ndarray,
                  prompt_length: int) -> None:
  """Prints held-out prompts with their decoded answers."""
  lengths = np.sum(tokens[:, prompt_length:] != lm_data.PAD, axis=1) - 1
  batch = lm_data.Batch(tokens, lengths, prompt_length)
  exact = lm_data.exact_match(predicted, batch)
  for row in range(len(tokens)):
    print(f"  {lm_data.render(batch.prompt[row]):>40} -> "
          f"{lm_data.render(predicted[row])}  "
          f"{'ok' if exact[row] else 'WRONG'}")


def gathered(tree: Any) -> Any:
  """``tree`` as numpy on every process (gathered across processes)."""
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}.")
  if COORDINATOR_ADDRESS.value:
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(COORDINATOR_ADDRESS.value, NUM_PROCESSES.value,
                               PROCESS_ID.value)
  config = model_config()
  if SHOW_BINDINGS.value:
    show_bindings(config)
    return
  run(config)


def run(config: lm_model.ModelConfig) -> dict[str, Any]:
  """Trains, evaluates and writes outputs; returns the final summary."""
  is_chief = jax.process_index() == 0
  mesh = make_mesh()
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  train_rows = per_process_rows(BATCH_SIZE.value, mesh, "--batch_size")
  eval_total = EVAL_SIZE.value - EVAL_SIZE.value % mesh.devices.size
  eval_rows = per_process_rows(max(eval_total, mesh.devices.size), mesh,
                               "--eval_size")
  prompt_length = MAX_DIGITS.value + 2
  answer_length = MAX_DIGITS.value + 1

  model = hke.transform(lm_model.training_forward(config))
  decoder = hke.transform_with_state(
      lm_model.decoding_forward(config, eval_rows * jax.process_count()))
  optimizer = make_optimizer(NUM_STEPS.value)
  step_fn = make_train_step(model, optimizer, prompt_length)
  evaluate = make_evaluate(decoder, answer_length, prompt_length)

  output_dir = OUTPUT_DIR.value
  os.makedirs(output_dir, exist_ok=True)
  checkpoint_path = os.path.join(output_dir, CHECKPOINT_NAME)
  rng = jax.random.key(SEED.value)
  rows: list[dict[str, float]] = []
  start_step = 0
  if RESTORE.value:
    checkpoint = load_checkpoint(checkpoint_path)
    params, opt_state = checkpoint["params"], checkpoint["opt_state"]
    start_step, rows = checkpoint["step"], checkpoint["metrics"]
    print(f"Restored step {start_step} from {checkpoint_path} (local states: "
          f"{len(jax.tree.leaves(checkpoint['local_states']))} arrays).")
  else:
    sample = jnp.asarray(train_batch(0, 1))[:, :-1]
    params = jax.jit(model.init)(rng, model_inputs(sample))
    opt_state = optimizer.init(params)
  params, opt_state = jax.device_put((params, opt_state), replicated)
  eval_tokens = global_batch(mesh, held_out_batch(eval_rows).tokens)

  print(f"Training {sum(x.size for x in jax.tree.leaves(params)):,} params on "
        f"{mesh.devices.size} device(s) in {jax.process_count()} process(es), "
        f"batch {BATCH_SIZE.value}, steps {start_step}..{NUM_STEPS.value}.",
        flush=True)
  accuracy = float("nan")
  tick, tick_step = time.perf_counter(), start_step
  started = time.perf_counter()
  for step in range(start_step + 1, NUM_STEPS.value + 1):
    tokens = global_batch(mesh, train_batch(step, train_rows))
    params, opt_state, metrics = step_fn(
        params, opt_state, jax.random.fold_in(rng, step), tokens)
    last = step == NUM_STEPS.value
    if step % EVAL_EVERY.value == 0 or last:
      accuracy, predicted, states = evaluate(params, eval_tokens)
      accuracy = float(accuracy)
    if step % LOG_EVERY.value == 0 or last:
      metrics = jax.device_get(metrics)
      now = time.perf_counter()
      steps_per_s = (step - tick_step) / (now - tick)
      tick, tick_step = now, step
      row = {"step": step, "loss": float(metrics["loss"]),
             "token_accuracy": float(metrics["token_accuracy"]),
             "steps_per_s": steps_per_s,
             "eval_accuracy": accuracy if step % EVAL_EVERY.value == 0
                              or last else ""}
      for i, (mean, rms) in enumerate(np.asarray(metrics["block_stats"])):
        row[f"block_{i}_mean"], row[f"block_{i}_rms"] = float(mean), float(rms)
      rows.append(row)
      if is_chief:
        evaluated = (f", held-out accuracy {accuracy:.3f}"
                     if row["eval_accuracy"] != "" else "")
        print(f"step {step:5d}: loss {row['loss']:.4f}, token accuracy "
              f"{row['token_accuracy']:.3f}, {steps_per_s:.1f} steps/s"
              f"{evaluated}", flush=True)
  if start_step >= NUM_STEPS.value:
    accuracy, predicted, states = evaluate(params, eval_tokens)
    accuracy = float(accuracy)

  # Only the caches of the printed samples are kept: enough to inspect or
  # resume their decoding, without the whole evaluation batch.
  samples = min(NUM_SAMPLES.value, eval_rows * jax.process_count())
  predicted, states = gathered((predicted, states))
  local_states = jax.tree.map(lambda x: x[:samples] if x.ndim else x, states)
  if is_chief and samples:
    print("Held-out samples (cached greedy decoding):")
    print_samples(gathered(eval_tokens)[:samples], predicted[:samples],
                  prompt_length)
  final_step = max(start_step, NUM_STEPS.value)
  if is_chief:
    if rows:
      write_metrics(os.path.join(output_dir, METRICS_NAME), rows)
      plot_metrics(os.path.join(output_dir, PLOT_NAME), rows,
                   config.num_layers)
  if jax.process_count() > 1:
    # Replicated global arrays: tiled=True returns their value on every host
    # (the default, tiled=False, refuses arrays that span processes).
    params, opt_state = multihost_utils.process_allgather((params, opt_state),
                                                          tiled=True)
  if is_chief:
    save_checkpoint(checkpoint_path, step=final_step, params=params,
                    opt_state=opt_state, local_states=local_states,
                    metrics=rows, config=dataclasses.asdict(config))
  elapsed = time.perf_counter() - started
  summary = {"step": final_step, "accuracy": accuracy, "seconds": elapsed}
  if is_chief:
    print(f"Final: step {final_step}, held-out exact-sequence accuracy "
          f"{accuracy:.4f} ({eval_rows * jax.process_count()} strings, cached "
          f"greedy decoding), {elapsed:.1f} s; outputs in {output_dir}",
          flush=True)
  return summary


if __name__ == "__main__":
  app.run(main)
