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
"""Tests of examples/seed_tutorial.py: each section runs and shows its point."""

from __future__ import annotations

import contextlib
import io

from absl.testing import absltest

from examples import seed_tutorial


class SeedTutorialTest(absltest.TestCase):

  def _quiet(self, fn):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
      return fn(), out.getvalue()

  def test_runs_start_to_finish_printing_every_section(self):
    _, printed = self._quiet(lambda: seed_tutorial.main(["seed_tutorial"]))
    for number in range(1, 8):
      self.assertIn(f"=== {number}.", printed)

  def test_intermediates_come_from_every_linear_in_call_order(self):
    paths, _ = self._quiet(seed_tutorial.capturing_intermediates)
    self.assertEqual(
        paths,
        [
            "hidden/tell_intermediate/intermediate",
            "output/tell_intermediate/intermediate",
        ],
    )

  def test_side_input_mask_hides_the_future(self):
    scores, _ = self._quiet(seed_tutorial.side_inputs)
    self.assertEqual(scores[0, 1], float("-inf"))
    self.assertAlmostEqual(float(scores[0, 0]), 1.4, places=5)

  def test_side_outputs_sum_to_a_positive_penalty(self):
    total, printed = self._quiet(seed_tutorial.side_outputs)
    self.assertGreater(total, 0.0)
    self.assertIn("first/penalty", printed)

  def test_random_handlers_keep_their_promises(self):
    results, _ = self._quiet(seed_tutorial.random_handlers)
    self.assertEqual(set(results.values()), {True})

  def test_counters_count_applies(self):
    counts, _ = self._quiet(seed_tutorial.local_states)
    self.assertEqual(counts, {"after:count": 3, "before:count": 3})

  def test_shared_state_sees_both_layers(self):
    total, _ = self._quiet(seed_tutorial.shared_states)
    self.assertEqual(total, 6.0)

  def test_unfrozen_states_go_on_from_the_frozen_values(self):
    highest, _ = self._quiet(seed_tutorial.freezing_states)
    self.assertEqual(highest, 3.0)


if __name__ == "__main__":
  absltest.main()
