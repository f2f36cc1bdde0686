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
"""The two tasks ``examples/train_lm.py`` trains on.

``TextTask`` (the default) is character-level language modelling of Python's
reference manual (``examples/text_data.py``), scored in held-out bits per
character against unigram and bigram baselines and ended by continuing
held-out prompts with the KV cache, greedily and by sampling.
``ReverseTask`` is digit-string reversal (``examples/lm_data.py``), scored by
exact-sequence accuracy of cached greedy decoding: a task whose answer is
either right or wrong.

Both offer what the launcher needs: the model configuration, the global
training batch of a step (the same on any number of processes), the loss
weights, a jitted evaluation of held-out data and the final report.

Example:

>>> task = TextTask(seq_len=32, seed=0)
>>> task.train_tokens(step=1, rows=2).shape
(2, 33)
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from examples import lm_data
from examples import lm_model
from examples import text_data
import hk_effects as hke


def _sizes(**sizes: Any) -> dict[str, Any]:
  return {k: v for k, v in sizes.items() if v is not None}


class TextTask:
  """Character-level language modelling of ``pydoc_data.topics``.

  Args:
    seq_len: characters per training window (and the model's context).
    seed: seed of the training windows.

  Example:

  >>> task = TextTask(seq_len=16, seed=0)
  >>> sorted(task.baselines())
  ['bigram_bpc', 'unigram_bpc']
  """

  name = "text"
  metric = "eval_bpc"

  def __init__(self, seq_len: int, seed: int):
    if seq_len < 8:
      raise ValueError(
          f"--seq_len={seq_len} is too short to continue a "
          "prompt; pass at least 8."
      )
    self.corpus = text_data.load_corpus()
    self.seq_len = seq_len
    self.seed = seed
    self._baselines = None

  def model_config(self, **sizes: Any) -> lm_model.ModelConfig:
    """The transformer for this corpus: ``sizes`` are ModelConfig fields."""
    return lm_model.ModelConfig(
        vocab_size=self.corpus.vocab_size,
        max_length=self.seq_len,
        **_sizes(**sizes),
    )

  def train_tokens(self, step: int, rows: int) -> np.ndarray:
    """The global batch of ``step``: ``rows`` random training windows."""
    rng = np.random.default_rng([self.seed, step])
    return text_data.train_windows(self.corpus, rng, rows, self.seq_len)

  def loss_masks(self, tokens: jax.Array) -> tuple[None, jax.Array]:
    """No padding; every next character counts."""
    return None, jnp.ones(tokens[:, 1:].shape, jnp.float32)

  def baselines(self) -> dict[str, float]:
    """Held-out bits per character of the unigram and bigram models."""
    if self._baselines is None:
      self._baselines = {
          "unigram_bpc": text_data.unigram_bpc(self.corpus),
          "bigram_bpc": text_data.bigram_bpc(self.corpus),
      }
    return self._baselines

  def eval_data(self, multiple: int) -> tuple[np.ndarray, ...]:
    """Every held-out character as targets: ``(windows, weights)``."""
    return text_data.held_out_windows(
        self.corpus.held_out, self.seq_len, multiple
    )

  def make_evaluate(self, config: lm_model.ModelConfig):
    """A jitted ``evaluate(params, windows, weights)``: held-out bpc."""
    scorer = hke.transform(
        lm_model.training_forward(dataclasses.replace(config, dropout_rate=0.0))
    )

    @jax.jit
    def evaluate(params, windows, weights):
      logits, _ = scorer.apply(
          params, None, lm_model.model_inputs(windows[:, :-1])
      )
      nll = optax.softmax_cross_entropy_with_integer_labels(
          logits, windows[:, 1:]
      )
      bpc = jnp.sum(nll * weights) / jnp.sum(weights) / jnp.log(2.0)
      return {"eval_bpc": bpc}, None

    return evaluate

  def describe(self, metrics: dict[str, float]) -> str:
    """The evaluation's part of a progress line."""
    return f"held-out {metrics['eval_bpc']:.3f} bits/char"

  def prompts(self, count: int) -> np.ndarray:
    """``count`` held-out prompts, each the start of a line, ``[count, n]``.

    Example:

    >>> task = TextTask(seq_len=16, seed=0)
    >>> task.corpus.decode(task.prompts(1)[0])[-1] != "\\n"
    True
    """
    held, newline = self.corpus.held_out, self.corpus.encode("\n")[0]
    length = self.seq_len * 3 // 8
    starts = []
    for i in range(count):
      start = int((i + 0.5) * len(held) / count)
      while (
          held[start - 1] != newline
          or text_data.SEPARATOR in held[start : start + length]
          or held[start] == newline
      ):
        start = (start + 1) % (len(held) - length)
      starts.append(start)
    return held[np.array(starts)[:, None] + np.arange(length)]

  def finish(
      self,
      params: Any,
      config: lm_model.ModelConfig,
      num_samples: int,
      temperature: float,
      rng: jax.Array,
      printing: bool,
  ) -> Any:
    """Continues held-out prompts with the KV cache; returns the caches.

    Prints each prompt with its greedy continuation and, with a positive
    ``temperature``, a sampled one (keys from the random effect).
    """
    if not num_samples:
      return {}
    prompts = jnp.asarray(self.prompts(num_samples))
    count = self.seq_len - prompts.shape[1] + 1
    outputs = {}
    for label, temp in (("greedy", 0.0), ("sampled", temperature)):
      if label == "sampled" and temp == 0:
        continue
      decoder = hke.transform_with_state(
          lm_model.decoding_forward(config, num_samples, temp)
      )
      decode = jax.jit(
          functools.partial(lm_model.decode_cached, decoder),
          static_argnums=(3,),
      )
      tokens, _, states = decode(params, rng if temp else None, prompts, count)
      outputs[label] = np.asarray(tokens)
      if label == "greedy":
        local_states = states
    if printing:
      print(
          "Held-out prompts continued with the KV cache (greedy"
          + (f"; sampled at temperature {temperature}" if temperature else "")
          + "):"
      )
      for row in range(num_samples):
        print(f"  prompt  {self._quote(prompts[row])}")
        for label, tokens in outputs.items():
          print(f"  {label:7s} {self._quote(tokens[row])}")
    return local_states

  def _quote(self, ids) -> str:
    return json.dumps(self.corpus.decode(np.asarray(ids)), ensure_ascii=False)

  def final_line(self, metrics: dict[str, float]) -> str:
    """The evaluation's part of the final line: bpc against the bigram."""
    bpc, base = metrics["eval_bpc"], self.baselines()
    return (
        f"held-out {bpc:.3f} bits/char vs bigram {base['bigram_bpc']:.3f}"
        f" ({bpc / base['bigram_bpc']:.2f} x bigram; unigram "
        f"{base['unigram_bpc']:.3f})"
    )


class ReverseTask:
  """Reversal of digit strings, scored by exact-sequence accuracy.

  Args:
    max_digits: longest string; lengths are uniform in ``[1, max_digits]``.
    seed: seed of the training batches (held-out data is seeded apart).

  Example:

  >>> task = ReverseTask(max_digits=3, seed=0)
  >>> task.train_tokens(step=1, rows=2).shape
  (2, 9)
  """

  name = "reverse"
  metric = "eval_accuracy"

  def __init__(self, max_digits: int, seed: int):
    self.max_digits = max_digits
    self.seed = seed
    self.prompt_length = max_digits + 2
    self.answer_length = max_digits + 1
    self._last = None

  def model_config(self, **sizes: Any) -> lm_model.ModelConfig:
    """The transformer for digit strings: ``sizes`` are ModelConfig fields."""
    return lm_model.ModelConfig(
        vocab_size=lm_data.VOCAB_SIZE,
        max_length=lm_data.sequence_length(self.max_digits) - 1,
        **_sizes(**sizes),
    )

  def train_tokens(self, step: int, rows: int) -> np.ndarray:
    """The global batch of ``step``."""
    rng = np.random.default_rng([self.seed, step])
    return lm_data.make_batch(rng, rows, self.max_digits).tokens

  def loss_masks(self, tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Padding keys are masked; only answer tokens (digits, EOS) count."""
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    in_answer = jnp.arange(targets.shape[1]) >= self.prompt_length - 1
    weights = in_answer[None, :] & (targets != lm_data.PAD)
    return inputs != lm_data.PAD, weights.astype(jnp.float32)

  def baselines(self) -> dict[str, float]:
    return {}

  def eval_data(self, multiple: int, rows: int = 512) -> tuple[np.ndarray]:
    """Held-out strings (the same at every evaluation)."""
    rows = max(rows - rows % multiple, multiple)
    rng = np.random.default_rng([1_000_003, self.seed])
    return (
        lm_data.make_batch(rng, rows, self.max_digits, held_out=True).tokens,
    )

  def make_evaluate(self, config: lm_model.ModelConfig, rows: int):
    """A jitted ``evaluate(params, tokens)`` decoding greedily with the cache.

    Returns ``({"eval_accuracy": ...}, (predicted answers, local states))``.
    """
    decoder = hke.transform_with_state(lm_model.decoding_forward(config, rows))

    @jax.jit
    def evaluate(params, tokens):
      prompt = tokens[:, : self.prompt_length]
      predicted, _, states = lm_model.decode_cached(
          decoder,
          params,
          None,
          prompt,
          self.answer_length,
          prompt != lm_data.PAD,
      )
      answer = tokens[:, self.prompt_length :]
      exact = jnp.all((predicted == answer) | (answer == lm_data.PAD), axis=1)
      return (
          {"eval_accuracy": jnp.mean(exact.astype(jnp.float32))},
          (predicted, states),
      )

    return evaluate

  def describe(self, metrics: dict[str, float]) -> str:
    return f"held-out accuracy {metrics['eval_accuracy']:.3f}"

  def finish(
      self,
      tokens: np.ndarray,
      predicted: np.ndarray,
      states: Any,
      num_samples: int,
      printing: bool,
  ) -> Any:
    """Prints held-out samples of the last evaluation; returns its caches.

    Each decoded answer is shown up to its end marker ``>``.
    """
    samples = min(num_samples, len(tokens))
    if printing and samples:
      print("Held-out samples (cached greedy decoding):")
      for row in range(samples):
        print(
            f"  {lm_data.render(tokens[row, :self.prompt_length]):>40} -> "
            f"{render_answer(predicted[row])}  "
            f"{'ok' if self._exact(tokens[row], predicted[row]) else 'WRONG'}"
        )
    return states

  def _exact(self, tokens: np.ndarray, predicted: np.ndarray) -> bool:
    answer = tokens[self.prompt_length :]
    return bool(np.all((predicted == answer) | (answer == lm_data.PAD)))

  def final_line(self, metrics: dict[str, float]) -> str:
    return (
        f"held-out exact-sequence accuracy {metrics['eval_accuracy']:.4f}"
        " (cached greedy decoding)"
    )


def render_answer(tokens: np.ndarray) -> str:
  """A decoded answer up to and including its first end marker.

  Example:

  >>> render_answer(np.array([5, 6, lm_data.EOS, 7, lm_data.EOS]))
  '1 2 >'
  """
  tokens = np.asarray(tokens)
  ends = np.flatnonzero(tokens == lm_data.EOS)
  return lm_data.render(tokens[: ends[0] + 1] if len(ends) else tokens)
