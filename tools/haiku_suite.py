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
"""Runs Haiku's own test suite three ways: hk_effects' regression guard.

  python tools/haiku_suite.py               # the default selection (CI's)
  python tools/haiku_suite.py --thorough    # every test file the wheel ships
  python tools/haiku_suite.py --modes=plain,imported -k scan   # narrower

The dm-haiku wheel ships its tests (``haiku/_src/*_test.py``,
``haiku/_src/integration/*_test.py``). Each mode runs a selection of them in
its own pytest subprocess:

- ``plain``: Haiku's tests as they are;
- ``imported``: ``import hk_effects`` first, so its replacements of
  ``hk.scan``, ``hk.vmap``, ``hk.remat``, ``hk.cond``, ``hk.switch``,
  ``hk.fori_loop``, ``hk.while_loop``, the scan of ``hk.dynamic_unroll`` and
  the layer_stack internals are what Haiku's tests call;
- ``transforms``: also Haiku's transforms replaced by hk_effects' under every
  name Haiku's tests reach them by (``hk.transform``, ``hk.transform_with_
  state``, ``hk.multi_transform``, ``hk.multi_transform_with_state`` and the
  same attributes of ``haiku._src.transform`` / ``haiku._src.multi_transform``
  that ``haiku._src.test_utils.transform_and_run`` and the tests look up).
  Haiku's own code that calls ``haiku._src.transform.transform_with_state``
  (``hk.layer_stack``) then gets hk_effects' too.

A test that passes in ``plain`` and fails, errors, is skipped or goes missing
in another mode is a regression: the run prints it and exits with status 1.
Entries of ``KNOWN`` are differences already diagnosed: reported, not fatal
(and reported again when one starts passing, so its entry can go). Tests
that fail plainly are printed as a warning: they guard nothing.

Every test left out is listed below with its reason: ``FILE_EXCLUSIONS``
(whole files), ``TEST_EXCLUSIONS`` (single tests, in every mode), and, left
out of the default selection only (``--thorough`` runs them), ``SLOW`` and
the cases of ``SAMPLED`` tests for modules not in ``REPRESENTATIVE``.

Compiling dominates Haiku's tests, so by default ``plain`` runs first, split
over the cores, and fills JAX's persistent compilation cache (in the
temporary directory of the run); the other modes then run side by side and
reuse it. The default selection takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Mapping, Sequence

MODES = ("plain", "imported", "transforms")

# The default selection: files under haiku/_src (issue 16's list).
DEFAULT_FILES = (
    "stateful_test.py",
    "layer_stack_test.py",
    "recurrent_test.py",
    "lift_test.py",
    "module_test.py",
    "transform_test.py",
    "multi_transform_test.py",
    "random_test.py",
    "base_test.py",
    "batch_norm_test.py",
    "moving_averages_test.py",
    "mixed_precision_test.py",
    "basic_test.py",
    "attention_test.py",
    "integration/hk_transforms_test.py",
    "integration/jax_transforms_test.py",
    "integration/check_tracer_leaks_test.py",
)

# Files never run, with the reason (paths under haiku/_src).
FILE_EXCLUSIONS = {
    "integration/jax2tf_test.py": (
        "needs tensorflow (jax2tf): too heavy to install for a regression guard"
    ),
    "integration/doctest_test.py": (
        "needs tensorflow, and runs the examples "
        "of every Haiku module (minutes)"
    ),
    "no_flax_test.py": (
        "checks that flax is not imported, in a process of "
        "its own; meaningless inside a shared pytest process"
    ),
    "reshape_test.py": "imports tensorflow.compiler (not installed)",
    "data_structures_test.py": (
        "imports cloudpickle and dill (not installed; "
        "pickling is no hk_effects concern)"
    ),
    "integration/checkpoint_test.py": (
        "compares with checkpoints/*.json, which the wheel does not ship"
    ),
}

# Single tests never run, in any mode, with the reason. A key is a test id
# (path under haiku/_src :: class :: test), or a prefix of ids followed by
# "*" (see `matches`).
TEST_EXCLUSIONS: dict[str, str] = {
    "transform_test.py::TransformTest::test_with_tensorflow_dict_wrapper": (
        "needs tensorflow (tf.Module); the suite gives transform_test.py an "
        "empty stand-in module so the rest of the file imports"
    ),
}

# Left out of the default selection (to keep CI within a few minutes on 2
# cores), run by --thorough. Same key syntax as TEST_EXCLUSIONS.
_HKT = "integration/hk_transforms_test.py::HaikuTransformsTest::"
SLOW: dict[str, str] = {
    # Seconds: test time in plain mode on this project's 2-core machine,
    # compiling cold.
    _HKT
    + "test_hk_jit_*": (
        "138 s: jits each of Haiku's 45 modules twice; hk.jit is not one "
        "of the wrappers hk_effects replaces"
    ),
    _HKT
    + "test_optimize_rng_use_under_jit_*": (
        "41 s: jit of every module; optimize_rng_use is not replaced"
    ),
    "integration/jax_transforms_test.py::JaxTransformsTest::test_jit_*": (
        "29 s: raw jax.jit of every module (no Haiku wrapper involved)"
    ),
    "recurrent_test.py::ConvLSTMTest::test_connect_conv_same*": (
        "9 s of convolutions; the other ConvLSTM tests cover the unroll"
    ),
    _HKT
    + "test_fast_eval_shape_*": (
        "9 s: hk.experimental.fast_eval_shape is not replaced by hk_effects"
    ),
    "attention_test.py::MultiHeadAttentionTest::test_shapes_*": (
        "8 s of eager attention; the fast tests of the file run "
        "transform_and_run the same way"
    ),
    "attention_test.py::MultiHeadAttentionTest::test_mask_arg": (
        "2 s of eager attention (as test_shapes_*)"
    ),
    "attention_test.py::MultiHeadAttentionTest::test_different_seq_lengths": (
        "2 s of eager attention (as test_shapes_*)"
    ),
    "attention_test.py::MultiHeadAttentionTest::test_vmap": (
        "2 s; raw jax.vmap of an apply, no Haiku wrapper"
    ),
}

# Tests that run every Haiku module through one wrapper: by default only the
# cases of REPRESENTATIVE modules run (--thorough runs all 45). Compiling
# dominates them, and the other modules take the same path through the
# wrapper: per-module layers with parameters, state (BatchNorm, SpectralNorm,
# VectorQuantizerEMA), recurrent cores (unrolled inside the wrapper),
# attention.
REPRESENTATIVE = (
    "Linear",
    "Conv2D",
    "Embed",
    "LayerNorm",
    "BatchNorm",
    "SpectralNorm",
    "MultiHeadAttention",
    "nets.MLP",
    "nets.VectorQuantizerEMA",
    "Recurrent(LSTM, dynamic_unroll)",
    "Recurrent(LSTM, static_unroll)",
    "Recurrent(ResetCore, dynamic_unroll)",
)
SAMPLED: dict[str, str] = {
    _HKT
    + "test_hk_scan_": (
        "hk.scan over every module: 63 s cold; REPRESENTATIVE ones run"
    ),
    _HKT
    + "test_hk_remat_": (
        "hk.remat over every module: 50 s cold; REPRESENTATIVE ones run"
    ),
    _HKT
    + "test_vmap_": (
        "hk.vmap over the modules with an optional batch: 14 s cold"
    ),
    "integration/jax_transforms_test.py::JaxTransformsTest::test_vmap_": (
        "jax.vmap over the modules with an optional batch: 7 s cold"
    ),
}

# Differences already diagnosed, per mode: {(mode, test id or prefix): why}.
# A test listed here may fail in that mode without failing the run.
HKE_REGRESSION = "hk_effects regression, see issue 16"
_SHIM_ARTEFACT = (
    "mode artefact, not a regression: the test checks that Haiku's internal "
    "`class hk:` shims equal hk.*; this mode replaces hk.transform_with_state "
    "and leaves the shims holding Haiku's (which hke's transforms call)"
)
KNOWN: dict[tuple[str, str], str] = {
    (
        "transforms",
        (
            "integration/shim_hk_test.py::ShimHkTest::"
            "test_hk_shim_haiku._src.multi_transform"
        ),
    ): _SHIM_ARTEFACT,
    (
        "transforms",
        (
            "integration/shim_hk_test.py::ShimHkTest::"
            "test_hk_shim_haiku._src.summarise"
        ),
    ): _SHIM_ARTEFACT,
}

# Outcomes a test can have in a mode. "missing": not run at all there (its
# file failed to import, or the process crashed).
PASSED, FAILED, ERROR, SKIPPED, MISSING = (
    "passed",
    "failed",
    "error",
    "skipped",
    "missing",
)

# Stand-ins for packages Haiku's tests import and this project does not
# install. Used only when the real one is absent; each mode gets the same.
_STANDINS = {
    # dm-tree (a compiled package) is used by recurrent_test.py,
    # moving_averages_test.py, integration/common.py and (if installed)
    # haiku/_src/dot.py for the functions below; JAX's tree utilities with
    # None as a leaf (as in dm-tree) do the same there.
    "tree": (
        '''
        """dm-tree stand-in of tools/haiku_suite.py (jax.tree_util based)."""
        import jax

        def _is_none(x):
          return x is None

        def flatten(structure):
          return jax.tree_util.tree_leaves(structure, is_leaf=_is_none)

        def map_structure(fn, *structures):
          return jax.tree_util.tree_map(fn, *structures, is_leaf=_is_none)

        def _keys(path):
          return tuple(getattr(k, "key", getattr(k, "idx",
                                                 getattr(k, "name", k)))
                       for k in path)

        def map_structure_with_path(fn, *structures):
          return jax.tree_util.tree_map_with_path(
              lambda path, *xs: fn(_keys(path), *xs), *structures,
              is_leaf=_is_none)

        def flatten_with_path(structure):
          leaves = jax.tree_util.tree_leaves_with_path(structure,
                                                       is_leaf=_is_none)
          return [(_keys(path), leaf) for path, leaf in leaves]

        def assert_same_structure(a, b, check_types=True):
          del check_types
          sa = jax.tree_util.tree_structure(a, is_leaf=_is_none)
          sb = jax.tree_util.tree_structure(b, is_leaf=_is_none)
          if sa != sb:
            raise ValueError(f"Different structures: {sa} vs {sb}")
    '''
    ),
    # transform_test.py imports tensorflow at the top for its one tf.Module
    # test (excluded above); an empty module lets the others run.
    "tensorflow": (
        '''
        """Empty tensorflow stand-in of tools/haiku_suite.py."""
        def __getattr__(name):
          raise AttributeError(
              f"tensorflow.{name}: tools/haiku_suite.py gives only an empty "
              "stand-in for tensorflow; exclude the test that needs it.")
    '''
    ),
}

# The pytest plugin each subprocess loads (-p): applies the mode before any
# test module is imported and records one outcome per test id.
_PLUGIN = '''
    """Applies a tools/haiku_suite.py mode and records outcomes."""
    import json
    import os

    MODE = os.environ["HAIKU_SUITE_MODE"]
    OUT = os.environ["HAIKU_SUITE_OUT"]

    # Haiku functions hk_effects may replace on import: the plugin records
    # which ones the mode changed, so a mode that changes nothing is caught.
    WATCHED = ("scan", "map", "vmap", "remat", "cond", "switch", "fori_loop",
               "while_loop", "dynamic_unroll", "layer_stack", "lift",
               "transform", "transform_with_state", "multi_transform",
               "multi_transform_with_state")

    def _watched():
      import haiku as hk
      from haiku._src import multi_transform as hk_multi_transform
      from haiku._src import stateful
      from haiku._src import transform as hk_transform
      found = {}
      for owner, prefix in (
          (hk, "hk."), (stateful, "haiku._src.stateful."),
          (hk_transform, "haiku._src.transform."),
          (hk_multi_transform, "haiku._src.multi_transform.")):
        for name in WATCHED:
          if hasattr(owner, name):
            found[prefix + name] = getattr(owner, name)
      return found

    def _apply_mode():
      if MODE == "plain":
        return
      import hk_effects as hke  # Its replacements are installed on import.
      if MODE == "imported":
        return
      import haiku as hk
      from haiku._src import multi_transform as hk_multi_transform
      from haiku._src import transform as hk_transform
      for name in ("transform", "transform_with_state"):
        setattr(hk, name, getattr(hke, name))
        setattr(hk_transform, name, getattr(hke, name))
      for name in ("multi_transform", "multi_transform_with_state"):
        setattr(hk, name, getattr(hke, name))
        setattr(hk_multi_transform, name, getattr(hke, name))

    _before = _watched()
    _apply_mode()
    _after = _watched()
    _changed = sorted(k for k in _before if _after[k] is not _before[k])

    _outcomes = {}
    _messages = {}
    _durations = {}

    def _record(nodeid, outcome, report):
      previous = _outcomes.get(nodeid)
      if previous in ("failed", "error"):
        return
      if previous == "skipped" and outcome == "passed":
        return
      _outcomes[nodeid] = outcome
      if outcome in ("failed", "error") and report is not None:
        text = getattr(report, "longreprtext", "") or str(report.longrepr)
        _messages[nodeid] = text[-3000:]

    def pytest_runtest_logreport(report):
      _durations[report.nodeid] = (_durations.get(report.nodeid, 0.0)
                                   + report.duration)
      if report.when == "call":
        outcome = {"passed": "passed", "failed": "failed",
                   "skipped": "skipped"}[report.outcome]
        _record(report.nodeid, outcome, report)
      elif report.failed:  # setup or teardown raised
        _record(report.nodeid, "error", report)
      elif report.skipped:  # skipped in setup
        _record(report.nodeid, "skipped", report)

    def pytest_collectreport(report):
      if report.failed:
        _record(report.nodeid, "error", report)

    def pytest_sessionfinish(session, exitstatus):
      import time
      with open(OUT, "w") as f:
        json.dump({"mode": MODE, "outcomes": _outcomes,
                   "messages": _messages, "durations": _durations,
                   "changed": _changed, "cpu_s": time.process_time()}, f)

    # Exclusions: test ids, or prefixes followed by "*" (see matches).
    _DESELECT = json.loads(os.environ.get("HAIKU_SUITE_DESELECT", "[]"))

    def _matches(test_id, key):
      if key.endswith("*"):
        return test_id.startswith(key[:-1])
      return test_id == key

    # Sampling: {prefix: cases}; a test under a prefix runs only if the rest
    # of its id is one of the cases, or starts with one and "_".
    _SAMPLE = json.loads(os.environ.get("HAIKU_SUITE_SAMPLE", "{}"))

    def _sampled_out(test_id):
      for prefix, cases in _SAMPLE.items():
        if test_id.startswith(prefix):
          rest = test_id[len(prefix):]
          return not any(rest == c or rest.startswith(c + "_")
                         for c in cases)
      return False

    # Sharding: "i/n" keeps every n-th selected test from the i-th on.
    _SHARD, _SHARDS = map(int, os.environ.get("HAIKU_SUITE_SHARD",
                                              "0/1").split("/"))

    def pytest_collection_modifyitems(session, config, items):
      keep, drop = [], []
      for item in items:
        (drop if any(_matches(item.nodeid, k) for k in _DESELECT)
         or _sampled_out(item.nodeid) else keep).append(item)
      selected = keep
      keep = [item for i, item in enumerate(selected)
              if i % _SHARDS == _SHARD]
      drop += [item for i, item in enumerate(selected)
               if i % _SHARDS != _SHARD]
      if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
'''


def haiku_tests_dir() -> pathlib.Path:
  """``haiku/_src`` of the installed dm-haiku (found without importing it)."""
  import importlib.util  # pylint: disable=g-import-not-at-top

  spec = importlib.util.find_spec("haiku")
  if spec is None or not spec.submodule_search_locations:
    raise SystemExit("dm-haiku is not installed in this Python.")
  return pathlib.Path(list(spec.submodule_search_locations)[0]) / "_src"


def matches(test_id: str, key: str) -> bool:
  """Whether ``key`` names ``test_id``: the same id, or a prefix + ``*``.

  absltest's parameterised cases are ``test_name_<case>``, so
  ``"x_test.py::XTest::test_name_*"`` covers every case of ``test_name``.
  """
  if key.endswith("*"):
    return test_id.startswith(key[:-1])
  return test_id == key


def lookup(test_id: str, table: Mapping[str, str]) -> str | None:
  """The reason ``table`` gives for ``test_id``, or None."""
  for key, reason in table.items():
    if matches(test_id, key):
      return reason
  return None


def select_files(src: pathlib.Path, thorough: bool) -> list[str]:
  """Test files (paths under ``src``) of the selection, exclusions left out."""
  if thorough:
    found = sorted(
        str(p.relative_to(src))
        for p in list(src.glob("*_test.py")) + list(
            src.glob("integration/*_test.py")
        )
    )
  else:
    found = list(DEFAULT_FILES)
  return [f for f in found if f not in FILE_EXCLUSIONS]


def deselected(thorough: bool) -> dict[str, str]:
  """Test-id keys left out of this selection, with reasons."""
  keys = dict(TEST_EXCLUSIONS)
  if not thorough:
    keys.update(SLOW)
  return keys


@dataclasses.dataclass
class ModeResult:
  """The outcome of every test in one mode, and how long the mode took."""

  mode: str
  outcomes: dict[str, str]
  messages: dict[str, str] = dataclasses.field(default_factory=dict)
  durations: dict[str, float] = dataclasses.field(default_factory=dict)
  # Haiku names (hk.scan, haiku._src.transform.transform, ...) the mode
  # replaced before the tests ran.
  changed: list[str] = dataclasses.field(default_factory=list)
  cpu_s: float = 0.0  # User + system time of the pytest process.
  wall_s: float = 0.0
  returncode: int = 0
  log_tail: str = ""

  def counts(self) -> dict[str, int]:
    return dict(collections.Counter(self.outcomes.values()))


@dataclasses.dataclass
class Difference:
  """A test that passes plainly and not in ``mode``."""

  test_id: str
  mode: str
  outcome: str
  known: str | None  # KNOWN's reason when already diagnosed.
  message: str = ""


@dataclasses.dataclass
class Comparison:
  regressions: list[Difference]  # New: fail the run.
  known: list[Difference]  # Diagnosed: reported only.
  known_now_passing: list[tuple[str, str]]  # (mode, key): entry can go.
  plain_failures: list[str]  # Fail without hk_effects: no guard.
  only_in_mode: list[tuple[str, str, str]]  # (mode, id, outcome) not plain.


def compare(
    results: Mapping[str, ModeResult], known: Mapping[tuple[str, str], str]
) -> Comparison:
  """Compares every mode with ``plain``, test id by test id."""
  plain = results["plain"].outcomes
  regressions, known_diffs, plain_failures, only_in_mode = [], [], [], []
  used_known = set()
  for test_id, outcome in sorted(plain.items()):
    if outcome in (FAILED, ERROR):
      plain_failures.append(test_id)
  for mode, result in results.items():
    if mode == "plain":
      continue
    for test_id, plain_outcome in sorted(plain.items()):
      if plain_outcome != PASSED:
        continue
      outcome = result.outcomes.get(test_id, MISSING)
      if outcome == PASSED:
        continue
      reason = None
      for (known_mode, key), why in known.items():
        if known_mode == mode and matches(test_id, key):
          reason = why
          used_known.add((known_mode, key))
          break
      diff = Difference(
          test_id, mode, outcome, reason, result.messages.get(test_id, "")
      )
      (known_diffs if reason else regressions).append(diff)
    for test_id, outcome in sorted(result.outcomes.items()):
      if test_id not in plain:
        only_in_mode.append((mode, test_id, outcome))
  known_now_passing = sorted(
      (mode, key)
      for mode, key in known
      if (mode, key) not in used_known
      and mode in results
      and any(
          matches(test_id, key) and outcome == PASSED
          for test_id, outcome in results[mode].outcomes.items()
      )
  )
  return Comparison(
      regressions, known_diffs, known_now_passing, plain_failures, only_in_mode
  )


TRANSFORM_NAMES = (
    "hk.transform",
    "hk.transform_with_state",
    "hk.multi_transform",
    "hk.multi_transform_with_state",
    "haiku._src.transform.transform",
    "haiku._src.transform.transform_with_state",
    "haiku._src.multi_transform.multi_transform",
    "haiku._src.multi_transform.multi_transform_with_state",
)


def check_applied(result: ModeResult) -> str | None:
  """Why ``result``'s mode did not test what it claims, or None."""
  if not result.outcomes:
    return None  # Reported as "ran no test".
  transforms = [n for n in result.changed if n in TRANSFORM_NAMES]
  wrappers = [n for n in result.changed if n not in TRANSFORM_NAMES]
  if result.mode == "plain" and result.changed:
    return f"plain mode changed {result.changed}"
  if result.mode in ("imported", "transforms") and not wrappers:
    return (
        "importing hk_effects replaced none of Haiku's wrappers "
        "(hk.scan, hk.vmap, ...): nothing of hk_effects is under test"
    )
  if result.mode == "imported" and transforms:
    return f"importing hk_effects replaced Haiku's transforms {transforms}"
  if result.mode == "transforms" and sorted(transforms) != sorted(
      TRANSFORM_NAMES
  ):
    return (
        f"only {transforms} of {list(TRANSFORM_NAMES)} were replaced "
        "by hk_effects' transforms"
    )
  return None


def first_lines(message: str, n: int = 3) -> str:
  """The first ``n`` informative lines: pytest's ``E`` lines, or errors."""
  lines = [
      l
      for l in message.splitlines()
      if (l.startswith("E ") and l[1:].strip()) or "Error" in l
  ]
  return (
      "\n".join(lines[:n])
      if lines
      else "\n".join(message.strip().splitlines()[-n:])
  )


def report(
    results: Mapping[str, ModeResult], comparison: Comparison, out=sys.stdout
) -> int:
  """Prints counts and differences; returns the exit status."""
  print("Haiku's test suite, per mode:", file=out)
  for mode, result in results.items():
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.counts().items()))
    print(
        f"  {mode:<11} {counts or 'no tests'} ({result.wall_s:.0f} s wall, "
        f"{result.cpu_s:.0f} s CPU)",
        file=out,
    )
  for mode, result in results.items():
    if result.changed:
      print(f"  {mode} replaced: {', '.join(result.changed)}", file=out)
  if comparison.plain_failures:
    print(
        f"\nWarning: {len(comparison.plain_failures)} test(s) fail "
        "without hk_effects (they guard nothing; exclude them with a "
        "reason):",
        file=out,
    )
    for test_id in comparison.plain_failures:
      print(f"  {test_id}", file=out)
  if comparison.known:
    print(
        f"\nKnown differences ({len(comparison.known)}, not fatal):", file=out
    )
    for d in comparison.known:
      print(f"  [{d.mode}] {d.test_id}: {d.outcome} ({d.known})", file=out)
  if comparison.known_now_passing:
    print(
        "\nKNOWN entries that no test needs any more (remove them):", file=out
    )
    for mode, key in comparison.known_now_passing:
      print(f"  ({mode!r}, {key!r})", file=out)
  if comparison.only_in_mode:
    print("\nTests seen only outside plain (not compared):", file=out)
    for mode, test_id, outcome in comparison.only_in_mode:
      print(f"  [{mode}] {test_id}: {outcome}", file=out)
  status = 0
  if comparison.regressions:
    print(
        f"\nREGRESSIONS ({len(comparison.regressions)}): pass plainly, "
        "not in the mode shown:",
        file=out,
    )
    for d in comparison.regressions:
      print(f"  [{d.mode}] {d.test_id}: {d.outcome}", file=out)
      if d.message:
        print(textwrap.indent(first_lines(d.message), "      "), file=out)
    status = 1
  for mode, result in results.items():
    if not result.outcomes:
      print(
          f"\nMode {mode} ran no test (pytest status {result.returncode}):"
          f"\n{result.log_tail}",
          file=out,
      )
      status = 2
    elif problem := check_applied(result):
      print(f"\nMode {mode} is not what it claims: {problem}.", file=out)
      status = 2
  if status == 0:
    print("\nNo regressions.", file=out)
  return status


def write_support(tmp: pathlib.Path) -> None:
  (tmp / "_haiku_suite_plugin.py").write_text(textwrap.dedent(_PLUGIN))
  import importlib.util  # pylint: disable=g-import-not-at-top

  for name, source in _STANDINS.items():
    if importlib.util.find_spec(name) is None:
      (tmp / f"{name}.py").write_text(textwrap.dedent(source))


def _pytest_command(
    src: pathlib.Path, files: Sequence[str], extra: Sequence[str]
) -> list[str]:
  return (
      [
          sys.executable,
          "-m",
          "pytest",
          "-q",
          "-p",
          "no:cacheprovider",
          "-p",
          "_haiku_suite_plugin",
          "--rootdir",
          str(src),
          "-o",
          "addopts=",
          "--continue-on-collection-errors",
      ]
      + [str(src / f) for f in files]
      + list(extra)
  )


def run_mode(
    mode: str,
    src: pathlib.Path,
    files: Sequence[str],
    deselect: Mapping[str, str],
    extra: Sequence[str],
    tmp: pathlib.Path,
    cache_dir: pathlib.Path | None = None,
    sample: Mapping[str, Sequence[str]] | None = None,
    name: str | None = None,
    shard: tuple[int, int] = (0, 1),
) -> subprocess.Popen:
  """Starts one mode's pytest subprocess (see ``collect``).

  With ``cache_dir``, the modes share JAX's persistent compilation cache:
  compiling dominates Haiku's tests, and the modes compile the same
  programs (hk_effects' wrappers give Haiku's HLO), so a mode run after
  ``plain`` takes about half as long. ``name`` (default: the mode) names
  the files the subprocess writes in ``tmp``. ``shard=(i, n)`` runs every
  n-th selected test from the i-th on (shards of one mode together run
  each test once).
  """
  name = name or mode
  cmd = _pytest_command(src, files, extra)
  env = dict(os.environ)
  if cache_dir is not None:
    env.update(
        JAX_COMPILATION_CACHE_DIR=str(cache_dir),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
  env.update(
      HAIKU_SUITE_MODE=mode,
      HAIKU_SUITE_OUT=str(tmp / f"{name}.json"),
      HAIKU_SUITE_DESELECT=json.dumps(sorted(deselect)),
      HAIKU_SUITE_SAMPLE=json.dumps(dict(sample or {})),
      HAIKU_SUITE_SHARD=f"{shard[0]}/{shard[1]}",
      PYTHONPATH=os.pathsep.join(
          [str(tmp)] + [p for p in [env.get("PYTHONPATH")] if p]
      ),
      JAX_PLATFORMS=env.get("JAX_PLATFORMS", "cpu"),
      XLA_FLAGS=env.get(
          "XLA_FLAGS", "--xla_force_host_platform_device_count=8"
      ),
  )
  log = open(tmp / f"{name}.log", "w")  # pylint: disable=consider-using-with
  proc = subprocess.Popen(
      cmd, cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT
  )
  proc.log = log
  proc.started = time.monotonic()
  proc.name = name
  return proc


def collect(mode: str, proc: subprocess.Popen, tmp: pathlib.Path) -> ModeResult:
  """Waits for one mode's subprocess and reads what it recorded."""
  returncode = proc.wait()
  wall = time.monotonic() - proc.started
  proc.log.close()
  name = getattr(proc, "name", mode)
  log_tail = "\n".join((tmp / f"{name}.log").read_text().splitlines()[-30:])
  path = tmp / f"{name}.json"
  if not path.exists():
    return ModeResult(
        mode, {}, wall_s=wall, returncode=returncode, log_tail=log_tail
    )
  data = json.loads(path.read_text())
  return ModeResult(
      mode,
      data["outcomes"],
      data["messages"],
      data["durations"],
      data["changed"],
      data["cpu_s"],
      wall,
      returncode,
      log_tail,
  )


def merge(parts: Sequence[ModeResult]) -> ModeResult:
  """One mode's result from the results of its shards."""
  merged = ModeResult(parts[0].mode, {})
  for part in parts:
    merged.outcomes.update(part.outcomes)
    merged.messages.update(part.messages)
    merged.durations.update(part.durations)
    merged.changed = sorted(set(merged.changed) | set(part.changed))
    merged.cpu_s += part.cpu_s
    merged.wall_s = max(merged.wall_s, part.wall_s)
    merged.returncode = max(merged.returncode, part.returncode)
    merged.log_tail += part.log_tail
  return merged


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
  )
  parser.add_argument(
      "--thorough",
      action="store_true",
      help="every test file of the wheel, SLOW tests too",
  )
  parser.add_argument(
      "--modes",
      default=",".join(MODES),
      help="comma-separated subset of "
      + ", ".join(MODES)
      + " (plain is always run: the others compare to it)",
  )
  parser.add_argument(
      "--jobs",
      type=int,
      default=min(3, os.cpu_count() or 1),
      help="pytest processes at once (default: min(3, CPUs))",
  )
  parser.add_argument(
      "-k",
      dest="keyword",
      default=None,
      help="pytest -k expression, to narrow the selection",
  )
  parser.add_argument(
      "--files",
      default=None,
      help=(
          "comma-separated test files under haiku/_src instead of the selection"
      ),
  )
  parser.add_argument(
      "--no-compilation-cache",
      dest="cache",
      action="store_false",
      help=(
          "each mode compiles for itself (by default plain "
          "runs first and the others reuse its compiled "
          "programs from JAX's persistent cache)"
      ),
  )
  parser.add_argument(
      "--keep",
      action="store_true",
      help="keep the temporary directory (logs, outcomes)",
  )
  args = parser.parse_args(argv)

  modes = ["plain"] + [m for m in args.modes.split(",") if m and m != "plain"]
  unknown = set(modes) - set(MODES)
  if unknown:
    parser.error(f"unknown mode(s) {sorted(unknown)}; choose from {MODES}")
  src = haiku_tests_dir()
  files = (
      args.files.split(",") if args.files else select_files(src, args.thorough)
  )
  extra = ["-k", args.keyword] if args.keyword else []
  deselect = deselected(args.thorough)

  tmp = pathlib.Path(tempfile.mkdtemp(prefix="haiku_suite_"))
  write_support(tmp)
  print(
      f"Running {len(files)} Haiku test file(s) in modes "
      f"{', '.join(modes)} ({len(deselect)} test key(s) excluded, "
      f"{len(FILE_EXCLUSIONS)} file(s)); logs in {tmp}",
      flush=True,
  )
  started = time.monotonic()
  jobs = max(1, args.jobs)
  cache_dir = tmp / "jax_cache" if args.cache else None
  sample = {} if args.thorough else {p: REPRESENTATIVE for p in SAMPLED}
  # Phases of (mode, shard) tasks, each phase run `jobs` at a time. With
  # the compilation cache, plain runs first (in `jobs` shards, so every
  # core compiles) and the other modes then reuse what it compiled.
  n = jobs if args.cache else 1
  plain_tasks = [("plain", (i, n)) for i in range(n)]
  other_tasks = [(m, (0, 1)) for m in modes if m != "plain"]
  phases = (
      [plain_tasks, other_tasks] if args.cache else [plain_tasks + other_tasks]
  )
  parts: dict[str, list[ModeResult]] = collections.defaultdict(list)
  for phase in phases:
    pending = list(enumerate(phase))
    running: list[tuple[str, subprocess.Popen]] = []
    while pending or running:
      while pending and len(running) < jobs:
        i, (mode, shard) = pending.pop(0)
        running.append((
            mode,
            run_mode(
                mode,
                src,
                files,
                deselect,
                extra,
                tmp,
                cache_dir,
                sample,
                name=f"{mode}.{i}",
                shard=shard,
            ),
        ))
      done = [(m, p) for m, p in running if p.poll() is not None]
      for mode, proc in done:
        running.remove((mode, proc))
        parts[mode].append(collect(mode, proc, tmp))
      if not done:
        time.sleep(0.5)
  results = {m: merge(parts[m]) for m in modes}
  status = report(results, compare(results, KNOWN))
  print(f"Total wall time {time.monotonic() - started:.0f} s.")
  if not args.keep and status == 0:
    shutil.rmtree(tmp)
  return status


if __name__ == "__main__":
  sys.exit(main())
