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
"""Tests of examples/activation_patching.py on a tiny config."""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile

from absl import flags
from absl.testing import absltest
from absl.testing import flagsaver
import numpy as np

from examples import activation_patching
from examples import lm_data

_TINY = dict(
    task="reverse",
    num_steps=4,
    batch_size=8,
    num_layers=2,
    d_model=16,
    num_heads=2,
    max_digits=3,
    eval_every=4,
    log_every=4,
    eval_size=16,
    num_samples=1,
    num_devices=1,
)


def setUpModule():
  # pytest leaves absl flags unparsed; the launcher reads them with `.value`.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


class ActivationPatchingTest(absltest.TestCase):

  def test_trains_when_missing_then_patches_and_plots(self):
    output_dir = tempfile.mkdtemp()
    out = io.StringIO()
    with (
        flagsaver.flagsaver(output_dir=output_dir, **_TINY),
        contextlib.redirect_stdout(out),
    ):
      result = activation_patching.run()
      # A second run reads the checkpoint the first one trained.
      config, _ = activation_patching.load_or_train()
    text = out.getvalue()
    clean, corrupted = result["clean"], result["corrupted"]
    self.assertIn("No checkpoint at", text)
    self.assertIn("Loaded step 4", text)
    self.assertEqual((config.num_layers, config.d_model), (2, 16))
    self.assertTrue(
        os.path.exists(os.path.join(output_dir, "activation_patching.png"))
    )
    self.assertEqual(
        result["paths"],
        [
            f"transformer/block_{i}/tell_intermediate/intermediate"
            for i in range(2)
        ],
    )
    # The inputs differ only in the last digit, just before SEP.
    (differs,) = np.flatnonzero(clean[0] != corrupted[0])
    self.assertEqual(clean[0, differs + 1], lm_data.SEP)
    # Logits at SEP read only the last block's output at SEP: patching it
    # restores everything, patching any other position of it nothing.
    query = result["query"]
    last = result["restored"][-1]
    np.testing.assert_allclose(last[query], 1.0, rtol=1e-4)
    np.testing.assert_allclose(np.delete(last, query), 0.0, atol=1e-5)
    np.testing.assert_allclose(
        np.delete(result["attribution"][-1], query), 0.0, atol=1e-6
    )
    # Before the corrupted digit nothing differs, so nothing is restored.
    np.testing.assert_allclose(result["restored"][:, :differs], 0.0, atol=1e-5)
    printed = re.search(r"block_1 +(.*)\nAttribution", text).group(1)
    self.assertEqual(float(printed.split()[query]), 1.0)


if __name__ == "__main__":
  absltest.main()
