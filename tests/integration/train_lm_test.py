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
"""Tests of examples/train_lm.py, its model, data and checkpoints (tiny)."""

from __future__ import annotations

import contextlib
import csv
import functools
import glob
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
from unittest import mock

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver
from absl.testing import parameterized
import chex
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from examples import checkpoints
from examples import lm_data
from examples import lm_model
from examples import lm_tasks
from examples import text_data
from examples import train_lm
import hk_effects as hke

_TINY = dict(
    num_steps=4,
    batch_size=8,
    num_layers=1,
    d_model=16,
    num_heads=2,
    seq_len=16,
    eval_every=2,
    log_every=2,
    num_samples=2,
    num_devices=2,
    checkpoint_every=0,
    dropout_rate=0.1,
)
_TINY_REVERSE = dict(_TINY, task="reverse", max_digits=3, eval_size=16)


def setUpModule():
  # pytest leaves absl flags unparsed; the launcher reads them with `.value`.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def _reverse_config(**overrides) -> lm_model.ModelConfig:
  values = dict(
      vocab_size=lm_data.VOCAB_SIZE,
      max_length=lm_data.sequence_length(3) - 1,
      num_layers=2,
      d_model=16,
      num_heads=2,
      dropout_rate=0.0,
  )
  values.update(overrides)
  return lm_model.ModelConfig(**values)


def _run_main(**flag_values) -> str:
  out = io.StringIO()
  with flagsaver.flagsaver(**flag_values), contextlib.redirect_stdout(out):
    train_lm.main(["train_lm"])
  return out.getvalue()


class ReverseDataTest(absltest.TestCase):

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
    self.assertFalse(
        lm_data.is_held_out(lm_data.digits_of(train), train.lengths).any()
    )
    self.assertTrue(
        lm_data.is_held_out(lm_data.digits_of(held), held.lengths).all()
    )

  def test_zero_digits_is_an_error_naming_the_value(self):
    with self.assertRaisesRegex(
        ValueError, "max_digits must be at least 1; got 0"
    ):
      lm_data.make_batch(np.random.default_rng(0), 2, max_digits=0)

  def test_rendered_answer_stops_at_the_end_marker(self):
    answer = np.array([6, 5, lm_data.EOS, 9, lm_data.EOS, lm_data.PAD])
    self.assertEqual(lm_tasks.render_answer(answer), "2 1 >")


class TextDataTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    cls.corpus = text_data.load_corpus()

  def test_split_is_by_document_and_held_out_text_is_never_trained_on(self):
    from pydoc_data import topics  # pylint: disable=g-import-not-at-top

    names = self.corpus.held_out_names
    self.assertNotEmpty(names)
    self.assertLess(len(names), len(topics.topics) // 4)
    train_text = self.corpus.decode(self.corpus.train)
    held_text = self.corpus.decode(self.corpus.held_out)
    for name in names:
      self.assertIn(topics.topics[name], held_text)
      self.assertNotIn(topics.topics[name][:300], train_text)
    self.assertEqual(
        len(self.corpus.train) + len(self.corpus.held_out),
        sum(len(t) for t in topics.topics.values()) + len(topics.topics),
    )

  def test_held_out_windows_score_every_character_after_the_first_once(self):
    ids = self.corpus.held_out[:1000]
    windows, weights = text_data.held_out_windows(ids, 64, multiple=8)
    self.assertEqual(len(windows) % 8, 0)
    scored = windows[:, 1:][weights > 0]
    np.testing.assert_array_equal(scored, ids[1:])
    np.testing.assert_array_equal(windows[:, :-1][weights > 0], ids[:-1])

  def test_bigram_baseline_is_the_smoothed_pair_frequency(self):
    corpus = text_data.load_corpus({"alpha": "ab", "beta": "aab"})
    # Training stream: SEP a a b; pairs (S,a) (a,a) (a,b), add-one over 3
    # symbols. Held out: SEP a b, scored at (S,a) and (a,b).
    p_sa, p_ab = 2 / 4, 2 / 5
    expected = -(np.log2(p_sa) + np.log2(p_ab)) / 2
    self.assertAlmostEqual(text_data.bigram_bpc(corpus), expected)
    self.assertLess(
        text_data.bigram_bpc(self.corpus), text_data.unigram_bpc(self.corpus)
    )

  def test_unknown_character_is_an_error_naming_it(self):
    with self.assertRaisesRegex(
        ValueError, r"characters \['\\x07'\] are not " "in the corpus alphabet"
    ):
      self.corpus.encode("bell\x07")


class ModelTest(chex.TestCase):

  def _params(self, config):
    model = hke.transform(lm_model.training_forward(config))
    tokens = jnp.zeros([1, config.max_length], jnp.int32)
    return model, model.init(jax.random.key(0), lm_model.model_inputs(tokens))

  def test_cached_decode_equals_uncached_decode(self):
    config = _reverse_config()
    model, params = self._params(config)
    batch = lm_data.make_batch(np.random.default_rng(3), 6, max_digits=3)
    prompt = jnp.asarray(batch.prompt)
    valid = prompt != lm_data.PAD
    answer_length = batch.answer.shape[1]
    decoder = hke.transform_with_state(
        lm_model.decoding_forward(config, batch_size=6)
    )
    cached_tokens, cached_logits, states = jax.jit(
        lm_model.decode_cached, static_argnums=(0, 4)
    )(decoder, params, None, prompt, answer_length, valid)
    tokens, logits = jax.jit(
        lm_model.greedy_decode_uncached, static_argnums=(0, 3)
    )(model, params, prompt, answer_length, valid)
    chex.assert_trees_all_close(cached_logits, logits, atol=1e-4, rtol=1e-4)
    np.testing.assert_array_equal(cached_tokens, tokens)
    # The caches hold every position that was fed: the prompt and all but
    # the last answer token.
    indices = [
        v
        for k, v in jax.tree_util.tree_leaves_with_path(states)
        if "index" in jax.tree_util.keystr(k)
    ]
    self.assertEqual(
        [int(i) for i in indices], [config.max_length] * config.num_layers
    )

  def test_sampling_keys_come_from_the_random_effect(self):
    config = lm_model.ModelConfig(
        vocab_size=12, max_length=10, num_layers=1, d_model=16, num_heads=2
    )
    _, params = self._params(config)
    prompt = jnp.arange(8, dtype=jnp.int32).reshape(2, 4) + 1

    decoders = {}

    def decode(temperature, rng):
      if temperature not in decoders:
        decoder = hke.transform_with_state(
            lm_model.decoding_forward(config, 2, temperature)
        )
        decoders[temperature] = jax.jit(
            functools.partial(lm_model.decode_cached, decoder),
            static_argnums=(3,),
        )
      return decoders[temperature](params, rng, prompt, 6)

    key = jax.random.key(1)
    a, _, _ = decode(2.0, jax.random.clone(key))
    b, _, _ = decode(2.0, key)
    c, _, _ = decode(2.0, jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.array_equal(a, c))
    # Near zero temperature each sample is the most likely token.
    tokens, logits, _ = decode(1e-4, jax.random.key(3))
    np.testing.assert_array_equal(tokens, np.argmax(logits, -1))

  def test_decoding_past_the_cache_is_an_error(self):
    config = _reverse_config()
    _, params = self._params(config)
    decoder = hke.transform_with_state(lm_model.decoding_forward(config, 1))
    with self.assertRaisesRegex(
        ValueError,
        "need a KV cache of 9 positions, but the decoder's max_length is 8",
    ):
      lm_model.decode_cached(
          decoder, params, None, jnp.ones([1, 4], jnp.int32), 6
      )

  def test_padding_keys_are_masked_out(self):
    config = _reverse_config()
    model, params = self._params(config)
    batch = lm_data.make_batch(np.random.default_rng(4), 20, max_digits=3)
    row = int(np.argmin(batch.lengths))
    tokens = jnp.asarray(batch.tokens[row : row + 1, :-1])
    pad = tokens == lm_data.PAD
    inputs = lm_model.model_inputs(tokens, ~pad)
    logits, _ = model.apply(params, None, inputs)
    # Changing what sits in padded slots must not change any real position.
    self.assertTrue(bool(pad.any()))
    edited_logits, _ = model.apply(
        params, None, (jnp.where(pad, 7, tokens),) + inputs[1:]
    )
    real = ~np.asarray(pad[0])
    np.testing.assert_allclose(
        edited_logits[0, real], logits[0, real], atol=1e-5
    )

  def test_training_forward_tells_mean_and_rms_per_block(self):
    config = _reverse_config(num_layers=3)
    model, params = self._params(config)
    tokens = jnp.ones([2, config.max_length], jnp.int32)
    _, side_outputs = model.apply(params, None, lm_model.model_inputs(tokens))
    self.assertLen(side_outputs, 3)
    for i, told in enumerate(side_outputs):
      self.assertIn(f"block_{i}", told.path)
      self.assertGreater(
          float(told.value["rms"]), abs(float(told.value["mean"]))
      )

  def test_dropout_keys_come_from_apply_rng(self):
    config = _reverse_config(dropout_rate=0.5)
    model, params = self._params(config)
    inputs = lm_model.model_inputs(jnp.ones([2, config.max_length], jnp.int32))
    apply = jax.jit(model.apply)
    key = jax.random.key(1)
    a, _ = apply(params, jax.random.clone(key), inputs)
    b, _ = apply(params, key, inputs)
    c, _ = apply(params, jax.random.key(2), inputs)
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.allclose(a, c))

  def test_heads_must_divide_width(self):
    with self.assertRaisesRegex(
        ValueError, "d_model=10 is not a multiple of num_heads=4"
    ):
      _ = _reverse_config(d_model=10, num_heads=4).key_size


def _read_events(directory: str) -> dict[str, list[tuple[int, float]]]:
  """Scalars of the TensorBoard event files in ``directory``, read back from
  their TFRecord framing (length, CRC, event proto, CRC)."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top

  scalars: dict[str, list[tuple[int, float]]] = {}
  for path in glob.glob(os.path.join(directory, "events.out.tfevents.*")):
    with open(path, "rb") as f:
      data = f.read()
    offset = 0
    while offset < len(data):
      (length,) = struct.unpack("<Q", data[offset : offset + 8])
      event = event_pb2.Event.FromString(
          data[offset + 12 : offset + 12 + length]
      )
      offset += 12 + length + 4
      for value in event.summary.value:
        scalars.setdefault(value.tag, []).append(
            (event.step, value.simple_value)
        )
  return scalars


class _Noise(hk.Module):
  """Adds noise drawn from a random request."""

  def __init__(self):
    super().__init__()
    self.rng = hke.RandomRequest()

  def __call__(self, x):
    return x + jax.random.normal(self.rng.next_key(), x.shape)


class CheckpointKeysTest(parameterized.TestCase):
  """Typed PRNG keys in local state, as WithStatefulRandomKey keeps them."""

  def _model(self, impl):
    return hke.transform_with_state(
        hke.handlers.handle_local_states(
            hke.handlers.WithStatefulRandomKey.handling(
                lambda x: _Noise()(x), jax.random.key(3, impl=impl)
            )
        )
    )

  @parameterized.product(
      impl=("threefry2x32", "rbg"), with_template=(False, True)
  )
  def test_a_stateful_key_is_restored_exactly(self, impl, with_template):
    f, x = self._model(impl), jnp.zeros(4)
    params, state = f.init(None, x)
    _, state = f.apply(params, state, None, x)  # Not the initial key.
    directory = tempfile.mkdtemp()
    checkpoints.save(directory, 1, {"local_states": state}, {})
    ckpt = checkpoints.load(checkpoints.latest(directory))
    restored = ckpt.tree(
        "local_states", template=state if with_template else None
    )
    (saved_key,), (key,) = jax.tree.leaves(state), jax.tree.leaves(restored)
    self.assertEqual(jax.random.key_impl(key), jax.random.key_impl(saved_key))
    self.assertEqual(str(key.dtype), str(saved_key.dtype))
    np.testing.assert_array_equal(
        jax.random.key_data(key), jax.random.key_data(saved_key)
    )
    # The run goes on as it would have: same draws, same next key.
    want, want_state = f.apply(params, state, None, x)
    got, got_state = f.apply(params, restored, None, x)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(
        jax.random.key_data(jax.tree.leaves(got_state)[0]),
        jax.random.key_data(jax.tree.leaves(want_state)[0]),
    )

  def test_a_template_with_raw_key_data_names_the_entry(self):
    f, x = self._model("threefry2x32"), jnp.zeros(4)
    _, state = f.init(None, x)
    directory = tempfile.mkdtemp()
    checkpoints.save(directory, 1, {"local_states": state}, {})
    raw = jax.tree.map(jax.random.key_data, state)
    with self.assertRaisesRegex(
        ValueError,
        r"local_states\['~local_state/random'\]\['withstatefulrandomkey_"
        r"[0-9a-f]+:key'\] is key<fry>\[\] but this run's is uint32\[2\]",
    ):
      checkpoints.load(checkpoints.latest(directory)).tree(
          "local_states", template=raw
      )


class LauncherTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    # tempfile, not create_tempdir: pytest leaves absl flags unparsed.
    self.workdir = tempfile.mkdtemp()
    self.addCleanup(shutil.rmtree, self.workdir)

  def _rows(self):
    with open(os.path.join(self.workdir, train_lm.METRICS_NAME)) as f:
      return list(csv.DictReader(f))

  def _steps_saved(self):
    return [s for s, _ in checkpoints.list_checkpoints(self.workdir)]

  def test_text_run_reports_bpc_baselines_samples_and_checkpoints(self):
    printed = _run_main(
        workdir=self.workdir,
        tensorboard=True,
        **dict(_TINY, checkpoint_every=1, keep_checkpoints=2),
    )
    self.assertRegex(
        printed,
        r"(?m)^Final: step 4, held-out \d\.\d+ bits/char vs "
        r"bigram \d\.\d+ \(\d\.\d+ x bigram; unigram \d\.\d+\); "
        r"[\d.]+ s wall, [\d.]+ s CPU$",
    )
    self.assertRegex(printed, r"steps/s, ETA \dm\d\ds")
    lines = printed.splitlines()
    self.assertEqual(
        lines[0],
        "Training a character-level language model of Python's reference "
        "manual (pydoc_data.topics): a 1-block transformer, for 4 steps, "
        f"writing to {self.workdir}. Preparing the data and compiling first.",
    )
    self.assertEqual(
        lines[-1],
        f"Outputs in {self.workdir} (metrics.csv, training.png, "
        "checkpoints/); continue with: python examples/train_lm.py "
        f"--workdir={self.workdir} --num_layers=1 --d_model=16 --num_heads=2 "
        "--dropout_rate=0.1 --batch_size=8 --seq_len=16 --restore "
        "--num_steps=8",
    )
    self.assertEqual(printed.count('  greedy  "'), 2)
    self.assertEqual(printed.count('  sampled "'), 2)
    rows = self._rows()
    self.assertEqual([r["step"] for r in rows], ["2", "4"])
    for column in (
        "loss",
        "steps_per_s",
        "eval_bpc",
        "bigram_bpc",
        "unigram_bpc",
        "block_0_mean",
        "block_0_rms",
    ):
      self.assertNotEqual(rows[-1][column], "", column)
    self.assertLess(
        float(rows[-1]["bigram_bpc"]), float(rows[-1]["unigram_bpc"])
    )
    with open(os.path.join(self.workdir, train_lm.PLOT_NAME), "rb") as f:
      self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
    # Every step wrote one; only the newest two are kept, and no temporary
    # directory of orbax's write-then-rename is left.
    self.assertEqual(self._steps_saved(), [3, 4])
    self.assertEqual(
        sorted(os.listdir(checkpoints.checkpoint_dir(self.workdir))),
        ["3", "4"],
    )
    ckpt = checkpoints.load(checkpoints.latest(self.workdir))
    self.assertEqual(ckpt.step, 4)
    self.assertEqual(ckpt.config["d_model"], 16)
    self.assertEqual([r["step"] for r in ckpt.metrics], [2, 4])
    caches = ckpt.tree("local_states")["~local_state/kv_cache"]
    self.assertEqual(
        caches["transformer/block_0/attention:cache['k']"].shape, (2, 16, 2, 8)
    )
    # The TensorBoard events hold the CSV's numbers.
    events = _read_events(self.workdir)
    self.assertEqual(
        events["loss"], [(int(r["step"]), float(r["loss"])) for r in rows]
    )
    self.assertEqual([s for s, _ in events["eval_bpc"]], [2, 4])
    self.assertAlmostEqual(
        events["bigram_bpc"][0][1], float(rows[0]["bigram_bpc"]), places=5
    )

  def test_restore_continues_bit_for_bit_and_only_evaluates_at_the_end(self):
    flags_ = dict(
        _TINY,
        checkpoint_every=2,
        keep_checkpoints=0,
        num_samples=1,
        temperature=0.0,
    )
    _run_main(workdir=self.workdir, **flags_)
    straight = checkpoints.load(checkpoints.latest(self.workdir))
    straight_losses = [(r["loss"], r["eval_bpc"]) for r in self._rows()]
    # As if the run had been stopped after step 2: continue from there.
    shutil.rmtree(checkpoints.checkpoint_path(self.workdir, 4))
    printed = _run_main(workdir=self.workdir, restore=True, **flags_)
    self.assertIn("Restored step 2", printed)
    resumed = checkpoints.load(checkpoints.latest(self.workdir))
    self.assertEqual(resumed.step, 4)
    self.assertEqual(
        [(r["loss"], r["eval_bpc"]) for r in self._rows()], straight_losses
    )
    for part in ("params", "opt_state", "local_states"):
      self.assertEqual(
          [p for p, _ in resumed.arrays[part]],
          [p for p, _ in straight.arrays[part]],
      )
      for (_, a), (_, b) in zip(resumed.arrays[part], straight.arrays[part]):
        np.testing.assert_array_equal(a, b)
    first = checkpoints.load(checkpoints.checkpoint_path(self.workdir, 2))
    self.assertFalse(
        all(
            np.array_equal(a, b)
            for (_, a), (_, b) in zip(
                first.arrays["params"], resumed.arrays["params"]
            )
        )
    )

    # At the checkpoint's step, a restored run only evaluates and decodes.
    printed = _run_main(workdir=self.workdir, restore=True, **flags_)
    # One layer's cache: keys, values and the position counter.
    self.assertIn("Restored step 4 from", printed)
    self.assertIn("(local states: 3 arrays)", printed)
    self.assertIn("Final: step 4, held-out", printed)
    again = checkpoints.load(checkpoints.latest(self.workdir))
    for part in ("params", "opt_state", "local_states"):
      for (_, a), (_, b) in zip(again.arrays[part], resumed.arrays[part]):
        np.testing.assert_array_equal(a, b)

  def test_restore_with_other_settings_names_the_differing_flags(self):
    with flagsaver.flagsaver(**_TINY):
      config = train_lm.restore_config(
          train_lm.model_config(train_lm.make_task())
      )
    checkpoints.save(
        self.workdir, 2, {"params": {}}, dict(config, d_model=32, seed=5)
    )
    with self.assertRaisesRegex(
        ValueError,
        r"--d_model=32 \(checkpoint\) vs --d_model=16 \(this run\)"
        r"; --seed=5 \(checkpoint\) vs --seed=0 \(this run\)\. Pass the",
    ):
      _run_main(workdir=self.workdir, restore=True, **_TINY)

  def test_old_pickle_checkpoint_is_refused_saying_why(self):
    with open(os.path.join(self.workdir, "checkpoint.pkl"), "wb") as f:
      f.write(b"\x80\x04\x95\x00")
    with self.assertRaisesRegex(
        ValueError,
        "checkpoint.pkl' is a pickle .* "
        "not loaded: unpickling a file runs whatever "
        "code it names",
    ):
      _run_main(workdir=self.workdir, restore=True, **_TINY)

  def test_old_safetensors_checkpoint_is_refused_saying_why(self):
    with open(
        os.path.join(self.workdir, "checkpoint_00000300.safetensors"), "wb"
    ) as f:
      f.write(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with self.assertRaisesRegex(
        ValueError,
        "checkpoint_00000300.safetensors' is a safetensors checkpoint of an "
        "older examples/train_lm.py, which this version does not read: "
        "checkpoints are now written by orbax-checkpoint into",
    ):
      _run_main(workdir=self.workdir, restore=True, **_TINY)

  def test_typed_keys_in_local_state_restore_exactly(self):
    class Draw(hk.Module):

      def __init__(self):
        super().__init__()
        self.rng = hke.RandomRequest()

      def __call__(self, x):
        return jax.random.uniform(self.rng.next_key(), x.shape)

    f = hke.transform_with_state(
        hke.handlers.handle_local_states(
            hke.handlers.WithStatefulRandomKey.handling(
                lambda x: Draw()(x), jax.random.key(7, impl="rbg")
            )
        )
    )
    x = jnp.zeros([3])
    params, state = f.init(None, x)
    _, state = f.apply(params, state, None, x)
    checkpoints.save(
        self.workdir, 1, {"local_states": train_lm.gathered(state)}, {}
    )
    restored = checkpoints.load(checkpoints.latest(self.workdir)).tree(
        "local_states"
    )
    (saved_key,), (restored_key,) = (
        jax.tree.leaves(state),
        jax.tree.leaves(restored),
    )
    self.assertEqual(restored_key.dtype, saved_key.dtype)
    self.assertEqual(str(jax.random.key_impl(restored_key)), "rbg")
    np.testing.assert_array_equal(
        jax.random.key_data(restored_key), jax.random.key_data(saved_key)
    )
    # The restored state draws what the saved one would have.
    np.testing.assert_array_equal(
        f.apply(params, restored, None, x)[0],
        f.apply(params, state, None, x)[0],
    )

  def test_loading_never_unpickles(self):
    checkpoints.save(
        self.workdir, 3, {"params": {"w": {"b": np.arange(3.0)}}}, {"seed": 1}
    )

    def refuse(*args, **kwargs):
      raise AssertionError("a checkpoint load unpickled something")

    with (
        mock.patch.object(pickle, "load", refuse),
        mock.patch.object(pickle, "loads", refuse),
        mock.patch.object(pickle, "Unpickler", refuse),
    ):
      ckpt = checkpoints.load(checkpoints.latest(self.workdir))
    self.assertEqual(ckpt.tree("params")["w"]["b"].tolist(), [0.0, 1.0, 2.0])
    self.assertEqual(ckpt.config, {"seed": 1})

  def test_restore_without_checkpoint_names_the_directory(self):
    with self.assertRaisesRegex(
        FileNotFoundError,
        f"no checkpoint in '{checkpoints.checkpoint_dir(self.workdir)}'",
    ):
      _run_main(workdir=self.workdir, restore=True, **_TINY)

  def test_reverse_task_is_solved_and_answers_stop_at_the_end_marker(self):
    printed = _run_main(
        workdir=self.workdir,
        **dict(
            _TINY_REVERSE,
            num_steps=60,
            batch_size=32,
            d_model=32,
            eval_every=60,
            log_every=30,
            eval_size=64,
        ),
    )
    self.assertRegex(
        printed,
        r"Final: step 60, held-out exact-sequence "
        r"accuracy \d\.\d{4} \(cached greedy decoding\)",
    )
    samples = [line for line in printed.splitlines() if " -> " in line]
    self.assertLen(samples, 2)
    for line in samples:
      answer = line.split(" -> ")[1].rsplit("  ", 1)[0]
      self.assertEqual(answer.index(">"), len(answer) - 1, line)
    self.assertGreaterEqual(float(self._rows()[-1]["eval_accuracy"]), 0.98)

  def test_help_lists_every_launcher_flag_in_one_group(self):
    text = train_lm.grouped_help()
    headings = [l for l in text.splitlines() if l.endswith(" flags:")]
    self.assertEqual(
        headings,
        [
            "Model flags:",
            "Data flags:",
            "Training flags:",
            "Outputs flags:",
            "Distributed flags:",
        ],
    )
    grouped = [n for _, names in train_lm.FLAG_GROUPS for n in names]
    defined = {
        f.name
        for f in flags.FLAGS.get_flags_for_module(train_lm.__name__)
        if f.name != "workdir"  # The alias of --output_dir.
    }
    self.assertCountEqual(grouped, defined)
    self.assertIn("  --d_model: Width of the residual stream.", text)
    self.assertIn("  --output_dir (alias --workdir): ", text)

  def test_cpu_run_prints_no_backend_or_log_lines(self):
    # A real process, as a user starts it: absl's INFO lines (JAX probing
    # for a TPU, orbax) would appear here if the launcher did not quiet them.
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(root, "examples", "train_lm.py"),
            "--show_bindings",
            "--num_layers=1",
            "--d_model=16",
            "--num_heads=2",
            "--seq_len=16",
        ],
        cwd=root,
        env=dict(os.environ, JAX_PLATFORMS=""),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    output = result.stdout + result.stderr
    self.assertTrue(
        output.startswith("Training model (hke.transform):\n"), output[:300]
    )
    self.assertNotIn("Unable to initialize backend", output)
    self.assertNotRegex(output, r"(?m)^[IWEF]\d{4} ")

  def test_show_bindings_prints_every_request_and_its_handler(self):
    printed = _run_main(show_bindings=True, **_TINY)
    self.assertIn("side input 'attn_mask'", printed)
    self.assertIn("side output 'block_stats'", printed)
    self.assertIn("next_token", printed)
    self.assertIn("WithHaikuRandom", printed)
    self.assertIn("WithFunctionalLocalState", printed)

  def test_too_many_devices_is_an_error_with_the_fix(self):
    with self.assertRaisesRegex(
        ValueError,
        "--num_devices=99 but this process " r"has \d+ local devices",
    ):
      _run_main(workdir=self.workdir, **dict(_TINY, num_devices=99))

  def test_batch_not_divisible_by_devices_is_an_error(self):
    with self.assertRaisesRegex(
        ValueError, "--batch_size=9 is not a multiple of the 2 devices"
    ):
      _run_main(workdir=self.workdir, **dict(_TINY, batch_size=9))


if __name__ == "__main__":
  absltest.main()
