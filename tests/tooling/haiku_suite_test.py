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
"""Tests of tools/haiku_suite.py's selection and comparison logic.

These never run Haiku's suite: the comparison is fed made-up outcomes, and
the plugin that records outcomes runs once, in plain mode, on a small test
file written here.
"""

# The transforms-mode test's subprocess imports hk_effects:
# bazel-deps: //hk_effects

from __future__ import annotations

import io
import pathlib
import sys
import tempfile
import textwrap

from absl.testing import absltest

_ROOT = pathlib.Path(__file__).resolve().parents[2]

# The tools are scripts, imported by bare name as their siblings do.
sys.path.insert(0, str(_ROOT / "tools"))
import haiku_suite as hs  # pylint: disable=g-import-not-at-top,wrong-import-position

_CHANGED = {
    "plain": [],
    "imported": ["hk.scan", "hk.vmap"],
    "transforms": ["hk.scan", "hk.vmap", *hs.TRANSFORM_NAMES],
}


def _results(**outcomes_per_mode):
  return {
      mode: hs.ModeResult(mode, dict(outcomes), changed=list(_CHANGED[mode]))
      for mode, outcomes in outcomes_per_mode.items()
  }


_A = "a_test.py::ATest::test_one"
_B = "a_test.py::ATest::test_two"
_P = "b_test.py::BTest::test_param"


class MatchesTest(absltest.TestCase):

  def test_exact_id(self):
    self.assertTrue(hs.matches(_A, _A))
    self.assertFalse(hs.matches(_A + "_more", _A))
    self.assertFalse(hs.matches(_A, _A + "_more"))

  def test_star_is_a_prefix(self):
    # absltest names parameterised cases test_name_<case>.
    self.assertTrue(hs.matches(_P + "_nets.MLP", _P + "_*"))
    self.assertFalse(hs.matches(_P, _P + "_*"))
    self.assertTrue(hs.matches(_A, "a_test.py::ATest::*"))
    self.assertFalse(hs.matches(_P, "a_test.py::*"))

  def test_lookup_gives_the_reason(self):
    table = {"a_test.py::*": "slow"}
    self.assertEqual(hs.lookup(_B, table), "slow")
    self.assertIsNone(hs.lookup(_P, table))


class CompareTest(absltest.TestCase):

  def test_same_outcomes_are_no_regression(self):
    results = _results(
        plain={_A: "passed", _B: "skipped"},
        imported={_A: "passed", _B: "skipped"},
        transforms={_A: "passed", _B: "skipped"},
    )
    comparison = hs.compare(results, {})
    self.assertEqual(comparison.regressions, [])
    out = io.StringIO()
    self.assertEqual(hs.report(results, comparison, out=out), 0)
    self.assertIn("plain       1 passed, 1 skipped", out.getvalue())
    self.assertIn("No regressions.", out.getvalue())

  def test_passing_plainly_and_failing_elsewhere_is_a_regression(self):
    results = _results(
        plain={_A: "passed", _B: "passed", _P: "passed"},
        imported={_A: "failed", _B: "passed"},  # _P missing: not run.
        transforms={_A: "passed", _B: "error", _P: "skipped"},
    )
    results["imported"].messages[_A] = "x = 1\nE   ValueError: boom\n"
    comparison = hs.compare(results, {})
    self.assertEqual(
        [(d.mode, d.test_id, d.outcome) for d in comparison.regressions],
        [
            ("imported", _A, "failed"),
            ("imported", _P, "missing"),
            ("transforms", _B, "error"),
            ("transforms", _P, "skipped"),
        ],
    )
    out = io.StringIO()
    self.assertEqual(hs.report(results, comparison, out=out), 1)
    self.assertIn("REGRESSIONS (4)", out.getvalue())
    self.assertIn(
        f"[imported] {_A}: failed\n      E   ValueError: boom", out.getvalue()
    )

  def test_failing_plainly_is_a_warning_not_a_regression(self):
    results = _results(
        plain={_A: "failed", _B: "passed"},
        imported={_A: "failed", _B: "passed"},
    )
    comparison = hs.compare(results, {})
    self.assertEqual(comparison.regressions, [])
    self.assertEqual(comparison.plain_failures, [_A])
    out = io.StringIO()
    self.assertEqual(hs.report(results, comparison, out=out), 0)
    self.assertIn("fail without hk_effects", out.getvalue())

  def test_fixed_in_a_mode_is_no_regression(self):
    results = _results(plain={_A: "failed"}, transforms={_A: "passed"})
    self.assertEqual(hs.compare(results, {}).regressions, [])

  def test_known_differences_are_reported_and_not_fatal(self):
    known = {
        ("imported", _P + "*"): hs.HKE_REGRESSION,
        ("transforms", "a_test.py::ATest::*"): "by design",
        ("imported", _B): "fixed since",
        ("imported", "not_run_test.py::*"): "not in this selection",
    }
    results = _results(
        plain={_A: "passed", _B: "passed", _P + "_1": "passed"},
        imported={_A: "passed", _B: "passed", _P + "_1": "failed"},
        transforms={_A: "failed", _B: "passed", _P + "_1": "failed"},
    )
    comparison = hs.compare(results, known)
    # Known only in the mode it names: _P fails in transforms too.
    self.assertEqual(
        [(d.mode, d.test_id) for d in comparison.regressions],
        [("transforms", _P + "_1")],
    )
    self.assertEqual(
        [(d.mode, d.test_id, d.known) for d in comparison.known],
        [
            ("imported", _P + "_1", hs.HKE_REGRESSION),
            ("transforms", _A, "by design"),
        ],
    )
    self.assertEqual(comparison.known_now_passing, [("imported", _B)])
    out = io.StringIO()
    self.assertEqual(hs.report(results, comparison, out=out), 1)
    self.assertIn("remove them", out.getvalue())

  def test_a_mode_that_replaced_nothing_fails_the_run(self):
    results = _results(
        plain={_A: "passed"}, imported={_A: "passed"}, transforms={_A: "passed"}
    )
    results["imported"].changed = []
    out = io.StringIO()
    self.assertEqual(hs.report(results, hs.compare(results, {}), out=out), 2)
    self.assertIn(
        "Mode imported is not what it claims: importing "
        "hk_effects replaced none",
        out.getvalue(),
    )
    results["imported"].changed = ["hk.scan"]
    results["transforms"].changed = ["hk.scan", "hk.transform"]
    out = io.StringIO()
    self.assertEqual(hs.report(results, hs.compare(results, {}), out=out), 2)
    self.assertIn("only ['hk.transform'] of", out.getvalue())

  def test_a_mode_that_ran_nothing_fails_the_run(self):
    results = _results(plain={}, imported={})
    results["plain"].log_tail = "ImportError: no haiku"
    out = io.StringIO()
    self.assertEqual(hs.report(results, hs.compare(results, {}), out=out), 2)
    self.assertIn("ImportError: no haiku", out.getvalue())


class SelectionTest(absltest.TestCase):

  def test_every_exclusion_has_a_reason(self):
    for table in (hs.FILE_EXCLUSIONS, hs.TEST_EXCLUSIONS, hs.SLOW):
      for key, reason in table.items():
        self.assertTrue(reason.strip(), key)
    for (mode, key), reason in hs.KNOWN.items():
      self.assertIn(mode, hs.MODES[1:])
      self.assertTrue(reason.strip(), key)

  def test_default_files_exist_in_the_wheel_and_are_not_excluded(self):
    src = hs.haiku_tests_dir()
    for name in hs.DEFAULT_FILES:
      self.assertTrue((src / name).is_file(), name)
      self.assertNotIn(name, hs.FILE_EXCLUSIONS)

  def test_thorough_is_every_test_file_but_the_excluded(self):
    src = hs.haiku_tests_dir()
    thorough = hs.select_files(src, thorough=True)
    self.assertContainsSubset(hs.DEFAULT_FILES, thorough)
    self.assertNoCommonElements(thorough, hs.FILE_EXCLUSIONS)
    self.assertIn("conv_test.py", thorough)
    self.assertContainsSubset(hs.TEST_EXCLUSIONS, hs.deselected(True))
    self.assertNoCommonElements(hs.SLOW, hs.deselected(True))
    self.assertContainsSubset(hs.SLOW, hs.deselected(False))


class MergeTest(absltest.TestCase):

  def test_merge_joins_the_shards_of_a_mode(self):
    a = hs.ModeResult("plain", {_A: "passed"}, {}, {_A: 1.0}, [], 5.0, 10.0)
    b = hs.ModeResult(
        "plain",
        {_B: "failed"},
        {_B: "E boom"},
        {_B: 2.0},
        [],
        7.0,
        12.0,
        returncode=1,
    )
    merged = hs.merge([a, b])
    self.assertEqual(merged.outcomes, {_A: "passed", _B: "failed"})
    self.assertEqual(merged.messages, {_B: "E boom"})
    self.assertEqual(
        (merged.cpu_s, merged.wall_s, merged.returncode), (12.0, 12.0, 1)
    )


class PluginTest(absltest.TestCase):
  """The plugin records one outcome per test id (plain mode, no Haiku)."""

  def test_records_each_kind_of_outcome(self):
    with (
        tempfile.TemporaryDirectory() as src_dir,
        tempfile.TemporaryDirectory() as tmp_dir,
    ):
      src, tmp = pathlib.Path(src_dir), pathlib.Path(tmp_dir)
      (src / "fake_test.py").write_text(textwrap.dedent("""
          import unittest

          class FakeTest(unittest.TestCase):
            def test_passes(self):
              pass
            def test_fails(self):
              raise ValueError("boom")
            def test_skips(self):
              self.skipTest("no")
            def test_deselected(self):
              raise AssertionError("never run")

          class BrokenSetUp(unittest.TestCase):
            @classmethod
            def setUpClass(cls):
              raise RuntimeError("setup")
            def test_errors(self):
              pass
          """))
      (src / "broken_test.py").write_text("import not_a_module_anywhere\n")
      hs.write_support(tmp)
      deselect = {"fake_test.py::FakeTest::test_deselected": "reason"}
      shards = []
      for i in range(2):  # Two shards of one mode run each test once.
        proc = hs.run_mode(
            "plain",
            src,
            ["fake_test.py", "broken_test.py"],
            deselect,
            [],
            tmp,
            name=f"plain.{i}",
            shard=(i, 2),
        )
        shards.append(hs.collect("plain", proc, tmp))
    self.assertLen(shards[0].outcomes.keys() - {"broken_test.py"}, 2)
    self.assertLen(shards[1].outcomes.keys() - {"broken_test.py"}, 2)
    result = hs.merge(shards)
    self.assertEqual(
        result.outcomes,
        {
            "fake_test.py::FakeTest::test_passes": "passed",
            "fake_test.py::FakeTest::test_fails": "failed",
            "fake_test.py::FakeTest::test_skips": "skipped",
            "fake_test.py::BrokenSetUp::test_errors": "error",
            "broken_test.py": "error",
        },
        result.log_tail,
    )
    self.assertIn("boom", result.messages["fake_test.py::FakeTest::test_fails"])
    self.assertEqual(result.changed, [])

  def test_transforms_mode_installs_hkes_transforms_before_collection(self):
    with (
        tempfile.TemporaryDirectory() as src_dir,
        tempfile.TemporaryDirectory() as tmp_dir,
    ):
      src, tmp = pathlib.Path(src_dir), pathlib.Path(tmp_dir)
      # Bound at import, as Haiku's tests bind `test_utils` and friends.
      (src / "mode_test.py").write_text(textwrap.dedent("""
          import unittest
          import haiku as hk
          import jax.numpy as jnp
          from haiku._src import multi_transform
          from haiku._src import test_utils
          from haiku._src import transform
          import hk_effects as hke

          class ModeTest(unittest.TestCase):
            def test_names(self):
              assert hk.transform is hke.transform
              assert transform.transform_with_state is (
                  hke.transform_with_state)
              assert multi_transform.multi_transform is hke.multi_transform
              assert hk.multi_transform_with_state is (
                  hke.multi_transform_with_state)
            def test_transform_and_run(self):
              run = test_utils.transform_and_run(
                  lambda: hk.Linear(2)(jnp.ones([1, 3])))
              assert run().shape == (1, 2)
            def test_sampled_Linear(self):
              pass
            def test_sampled_Linear_init(self):
              pass
            def test_sampled_LinearFoo(self):
              raise AssertionError("sampled out")
            def test_sampled_Conv1D(self):
              raise AssertionError("sampled out")
          """))
      hs.write_support(tmp)
      sample = {"mode_test.py::ModeTest::test_sampled_": ("Linear",)}
      proc = hs.run_mode(
          "transforms",
          src,
          ["mode_test.py"],
          {},
          [],
          tmp,
          cache_dir=tmp / "cache",
          sample=sample,
      )
      result = hs.collect("transforms", proc, tmp)
    self.assertEqual(
        result.outcomes,
        {
            "mode_test.py::ModeTest::test_names": "passed",
            "mode_test.py::ModeTest::test_transform_and_run": "passed",
            "mode_test.py::ModeTest::test_sampled_Linear": "passed",
            "mode_test.py::ModeTest::test_sampled_Linear_init": "passed",
        },
        result.log_tail,
    )
    self.assertContainsSubset(hs.TRANSFORM_NAMES, result.changed)
    self.assertIsNone(hs.check_applied(result))


if __name__ == "__main__":
  absltest.main()
