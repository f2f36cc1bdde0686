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
"""Tests of examples/train_lm.py, its model and its data (tiny settings)."""

from __future__ import annotations

import csv
import io
import os
import pickle
import shutil
import tempfile
import contextlib

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver
import chex
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke
from examples import lm_data
from examples import lm_model
from examples import train_lm

_TINY = dict(num_steps=4, batch_size=8, num_layers=1, d_model=16, num_heads=2,
             max_digits=3, eval_every=2, log_every=2, eval_size=16,
             num_samples=2, num_devices=2)


def setUpModule():
  # pytest leaves absl flags unparsed; the launcher reads them with `.value`.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def _tiny_config(**overrides) -> lm_model.ModelConfig:
  values = dict(vocab_size=lm_data.VOCAB_SIZE,
                max_length=lm_data.sequence_length(3) - 1, num_layers=2,
                d_model=16, num_heads=2, dropout_rate=0.0)
  values.update(overrides)
  return lm_model.ModelConfig(**values)


def _run_main(**flag_values) -> str:
  out = io.StringIO()
  with flagsaver.flagsaver(**flag_values), contextlib.redirect_stdout(out):
    train_lm.main(["train_lm"])
  return out.getvalue()


class DataTest(absltest.TestCase):

  def test_answer_is_the_reversed_digits_then_eos(self):
    batch = lm_data.make_batch(np.random.default_rng(0), 16, max_digits=5)
    digits = lm_data.digits_of(batch)
    for row, n in enumerate(batch.lengths):
      expected = list(digits[row, :n][::-1] + lm_data.FIRST_DIGIT)
      self.assertEqual(list(batch.answer[row, :n]), expected)
      self.assertEqual(batch.answer[row, n], lm_data.EOS)
      self.assertEqual(batch.prompt[row, -1], lm_data.SEP)

  def test_held_out_split_never_reaches_training_batches(self):
    rng = np.random.default_rng(1)
    train = lm_data.make_batch(rng, 2000, max_digits=4)
    held = lm_data.make_batch(rng, 200, max_digits=4, held_out=True)
    self.assertFalse(lm_data.is_held_out(lm_data.digits_of(train),
                                         train.lengths).any())
    self.assertTrue(lm_data.is_held_out(lm_data.digits_of(held),
                                        held.lengths).all())

  def test_lengths_vary_and_prompts_are_left_padded(self):
    batch = lm_data.make_batch(np.random.default_rng(2), 200, max_digits=4)
    self.assertEqual(set(batch.lengths.tolist()), {1, 2, 3, 4})
    short = int(np.argmin(batch.lengths))
    self.assertEqual(batch.prompt[short, 0], lm_data.PAD)

  def test_zero_digits_is_an_error_naming_the_value(self):
    with self.assertRaisesRegex(ValueError, "max_digits must be at least 1; "
                                "got 0"):
      lm_data.make_batch(np.random.default_rng(0), 2, max_digits=0)


class ModelTest(chex.TestCase):

  def _params(self, config):
    model = hke.transform(lm_model.training_forward(config))
    tokens = jnp.zeros([1, config.max_length], jnp.int32)
    return model, model.init(jax.random.key(0),
                             train_lm.model_inputs(tokens))

  def test_cached_decode_equals_uncached_decode(self):
    config = _tiny_config()
    model, params = self._params(config)
    batch = lm_data.make_batch(np.random.default_rng(3), 6, max_digits=3)
    prompt = jnp.asarray(batch.prompt)
    answer_length = batch.answer.shape[1]
    decoder = hke.transform_with_state(
        lm_model.decoding_forward(config, batch_size=6))
    cached_tokens, cached_logits, states = jax.jit(
        train_lm.greedy_decode_cached, static_argnums=(0, 3))(
            decoder, params, prompt, answer_length)
    tokens, logits = jax.jit(
        train_lm.greedy_decode_uncached, static_argnums=(0, 3))(
            model, params, prompt, answer_length)
    chex.assert_trees_all_close(cached_logits, logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(cached_tokens, tokens)
    # The caches hold every position that was fed: the prompt and all but
    # the last answer token.
    indices = [v for k, v in jax.tree_util.tree_leaves_with_path(states)
               if "index" in jax.tree_util.keystr(k)]
    self.assertEqual([int(i) for i in indices],
                     [config.max_length] * config.num_layers)

  def test_padding_keys_are_masked_out(self):
    config = _tiny_config()
    model, params = self._params(config)
    batch = lm_data.make_batch(np.random.default_rng(4), 20, max_digits=3)
    row = int(np.argmin(batch.lengths))
    tokens = jnp.asarray(batch.tokens[row:row + 1, :-1])
    logits, _ = model.apply(params, None, train_lm.model_inputs(tokens))
    # Changing what sits in padded slots must not change any real position.
    pad = tokens == lm_data.PAD
    in_prompt = (jnp.arange(tokens.shape[1]) < batch.prompt_length)[None]
    self.assertTrue(bool((pad & in_prompt).any()))
    edited = jnp.where(pad & in_prompt, 7, tokens)
    inputs = (edited,) + train_lm.model_inputs(tokens)[1:]
    edited_logits, _ = model.apply(params, None, inputs)
    real = ~np.asarray(pad[0])
    np.testing.assert_allclose(edited_logits[0, real], logits[0, real],
                               atol=1e-5)

  def test_training_forward_tells_mean_and_rms_per_block(self):
    config = _tiny_config(num_layers=3)
    model, params = self._params(config)
    tokens = jnp.ones([2, config.max_length], jnp.int32)
    _, side_outputs = model.apply(params, None, train_lm.model_inputs(tokens))
    self.assertLen(side_outputs, 3)
    for i, told in enumerate(side_outputs):
      self.assertIn(f"block_{i}", told.path)
      self.assertGreater(float(told.value["rms"]),
                         abs(float(told.value["mean"])))

  def test_dropout_keys_come_from_apply_rng(self):
    config = _tiny_config(dropout_rate=0.5)
    model, params = self._params(config)
    inputs = train_lm.model_inputs(jnp.ones([2, config.max_length], jnp.int32))
    apply = jax.jit(model.apply)
    a, _ = apply(params, jax.random.key(1), inputs)
    b, _ = apply(params, jax.random.key(1), inputs)
    c, _ = apply(params, jax.random.key(2), inputs)
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.allclose(a, c))

  def test_heads_must_divide_width(self):
    with self.assertRaisesRegex(ValueError, "d_model=10 is not a multiple of "
                                "num_heads=4"):
      _ = _tiny_config(d_model=10, num_heads=4).key_size


class LauncherTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    # tempfile, not create_tempdir: pytest leaves absl flags unparsed.
    self.output_dir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.output_dir)

  def _rows(self):
    with open(os.path.join(self.output_dir, train_lm.METRICS_NAME)) as f:
      return list(csv.DictReader(f))

  def test_smoke_run_writes_csv_plot_checkpoint_and_restores(self):
    printed = _run_main(output_dir=self.output_dir, **_TINY)
    self.assertIn("Final: step 4, held-out exact-sequence accuracy", printed)
    self.assertIn("steps/s", printed)
    rows = self._rows()
    self.assertEqual([r["step"] for r in rows], ["2", "4"])
    for column in ("loss", "token_accuracy", "steps_per_s", "eval_accuracy",
                   "block_0_mean", "block_0_rms"):
      self.assertNotEqual(rows[-1][column], "", column)
    self.assertBetween(float(rows[-1]["eval_accuracy"]), 0.0, 1.0)
    with open(os.path.join(self.output_dir, train_lm.PLOT_NAME), "rb") as f:
      self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
    path = os.path.join(self.output_dir, train_lm.CHECKPOINT_NAME)
    with open(path, "rb") as f:
      saved = pickle.load(f)
    self.assertEqual(saved["step"], 4)
    self.assertSetEqual(
        {"params", "opt_state", "local_states", "metrics", "config", "step"},
        set(saved))
    self.assertNotEmpty(jax.tree.leaves(saved["local_states"]))

    printed = _run_main(output_dir=self.output_dir, restore=True,
                        **dict(_TINY, num_steps=6))
    self.assertIn("Restored step 4", printed)
    self.assertEqual([r["step"] for r in self._rows()], ["2", "4", "6"])
    with open(path, "rb") as f:
      resumed = pickle.load(f)
    self.assertEqual(resumed["step"], 6)
    changed = jax.tree.map(lambda a, b: not np.array_equal(a, b),
                           saved["params"], resumed["params"])
    self.assertTrue(any(jax.tree.leaves(changed)))

    # At or past the checkpoint's step, a restored run only evaluates.
    printed = _run_main(output_dir=self.output_dir, restore=True,
                        **dict(_TINY, num_steps=6))
    self.assertIn("Final: step 6", printed)
    with open(path, "rb") as f:
      chex.assert_trees_all_equal(pickle.load(f)["params"], resumed["params"])

  def test_show_bindings_prints_every_request_and_its_handler(self):
    printed = _run_main(show_bindings=True, **_TINY)
    self.assertIn("side input 'attn_mask'", printed)
    self.assertIn("side output 'block_stats'", printed)
    self.assertIn("WithHaikuRandom", printed)
    self.assertIn("WithFunctionalLocalState", printed)
    self.assertFalse(os.listdir(self.output_dir))

  def test_restore_without_checkpoint_names_the_path(self):
    with self.assertRaisesRegex(FileNotFoundError, "no checkpoint at .*"
                                "checkpoint.pkl"):
      _run_main(output_dir=self.output_dir, restore=True, **_TINY)

  def test_too_many_devices_is_an_error_with_the_fix(self):
    with self.assertRaisesRegex(ValueError, "--num_devices=99 but this process "
                                r"has \d+ local devices"):
      _run_main(output_dir=self.output_dir, **dict(_TINY, num_devices=99))

  def test_batch_not_divisible_by_devices_is_an_error(self):
    with self.assertRaisesRegex(ValueError, "--batch_size=9 is not a multiple "
                                "of the 2 devices"):
      _run_main(output_dir=self.output_dir, **dict(_TINY, batch_size=9))


if __name__ == "__main__":
  absltest.main()
