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
"""The compatibility matrix: every effect under every transform.

``MATRIX`` is the single source: it drives one test per cell (the checks
live in ``matrix_cells.py``, ``matrix_cells_wrappers.py`` and
``matrix_cells_devices.py``), and docs/control_flow.md's
table is rendered from it, so the table cannot drift from what is tested.
A "supported" cell's test checks values (distinct or identical keys, side
inputs, told values, final local states); an "error" cell's test checks that
exactly the promised error is raised.
"""

# bazel-data: //:docs_pages

from __future__ import annotations

import dataclasses
import difflib
import pathlib
import re
import unittest

from absl.testing import absltest
from absl.testing import parameterized
import chex
import conftest  # pylint: disable=unused-import  # Key-reuse checker, alone.
import matrix_cells

# Importing these registers their cells.
import matrix_cells_devices  # pylint: disable=unused-import
import matrix_cells_wrappers  # pylint: disable=unused-import

import hk_effects as hke

ROOT = pathlib.Path(__file__).resolve().parents[2]
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"
# The page that shows the table (the README links to it).
PAGE = "docs/control_flow.md"
EFFECTS = ("random", "side input", "side output", "local state")
SUPPORTED = "supported"


@dataclasses.dataclass(frozen=True)
class Error:
  """An unsupported cell: the table's reason and the error its test expects."""

  reason: str
  error: type[Exception]
  pattern: str

  def __str__(self) -> str:
    return f"error: {self.reason}"


_RAW = "raw JAX transform inside the model; use `hk.remat`"
_PER_EXAMPLE_SET = (
    "per-example `set` (Haiku state is not batched; "
    "example-independent updates work; use `hke.vmap`)"
)


class Supported(str):
  """A supported cell whose table text says more than "supported"."""


def _all(cell=SUPPORTED, **others):
  return {e: others.get(e.replace(" ", "_"), cell) for e in EFFECTS}


MATRIX: dict[str, dict[str, str | Error]] = {
    "`jax.jit`": _all(),
    "`jax.grad` / `jax.value_and_grad`": _all(),
    "`jax.vmap` over `apply`": _all(),
    "`hk.vmap(split_rng=True)`": _all(
        local_state=Error(
            _PER_EXAMPLE_SET, ValueError, "'counter:count'.*local_state_axes"
        )
    ),
    "`hk.vmap(split_rng=False)`": _all(
        local_state=Error(
            _PER_EXAMPLE_SET, ValueError, "'counter:count'.*local_state_axes"
        )
    ),
    "`hke.vmap(local_state_axes=...)`": _all(
        local_state=Supported("supported (one state per member)")
    ),
    "`hk.scan`": _all(),
    "`hk.layer_stack`": _all(),
    "`hk.fori_loop`": _all(),
    "`hk.remat`": _all(),
    "`jax.checkpoint` inside the model": _all(
        random=Error(
            _RAW,
            hke.RawTransformError,
            r"RandomEffect\.next_key\(\) at module 'noise'.*hk\.remat",
        ),
        side_output=Error(
            _RAW,
            hke.RawTransformError,
            r"SideOutputEffect\.tell\(\) at module 'report'",
        ),
        local_state=Error(
            _RAW,
            hke.RawTransformError,
            r"LocalStateEffect\.get\(\) at module 'counter'",
        ),
    ),
    "`jax.checkpoint` around `apply`": _all(),
    "`hk.cond`": _all(),
    "`hk.switch`": _all(),
    "`hk.while_loop` / `hk.fori_loop` with traced bounds": _all(
        side_output=Supported(
            "supported (`last`, `sum`; `append` is an error: no static length)"
        )
    ),
    "`jax.pmap` (and `chex.fake_pmap`)": _all(),
    "`jax.jit` with `NamedSharding` inputs": _all(),
    "`shard_map`": _all(),
}

# Rows whose transform is not jit itself also run under chex's with_jit and
# without_jit variants: each cell must hold both ways.
_OWN_COMPILATION = frozenset({
    "`jax.jit`",
    "`jax.pmap` (and `chex.fake_pmap`)",
    "`jax.jit` with `NamedSharding` inputs",
    "`shard_map`",
})

# Cells whose test started, and whose test passed, in this process.
STARTED: set[tuple[str, str]] = set()
RAN: set[tuple[str, str]] = set()


def slug(row: str, effect: str) -> str:
  """The cell's part of its test names: ``hk_scan__local_state``."""
  clean = lambda s: re.sub(r"[^a-z0-9]+", "_", s.lower()).strip("_")  # pylint: disable=unnecessary-lambda-assignment
  return f"{clean(row)}__{clean(effect)}"


def _cases(jit_variants: bool):
  return [
      (slug(row, effect), row, effect)
      for row, cells in MATRIX.items()
      for effect in cells
      if (row not in _OWN_COMPILATION) == jit_variants
  ]


def render_table() -> str:
  """The docs table: rows are transforms, columns the four effects."""
  lines = [
      "| transform | " + " | ".join(EFFECTS) + " |",
      "| --- |" + " --- |" * len(EFFECTS),
  ]
  for row, cells in MATRIX.items():
    lines.append(
        f"| {row} | " + " | ".join(str(cells[e]) for e in EFFECTS) + " |"
    )
  return "\n".join(lines)


def docs_block() -> str:
  return f"{START}\n{render_table()}\n{END}"


class CellTest(chex.TestCase):
  """One test per MATRIX cell."""

  def _check(self, row: str, effect: str, wrap) -> None:
    STARTED.add((row, effect))
    expected = MATRIX[row][effect]
    check = matrix_cells.CELLS[(row, effect)]
    if isinstance(expected, Error):
      with self.assertRaisesRegex(expected.error, expected.pattern):
        check(self, wrap)
    else:
      check(self, wrap)
    RAN.add((row, effect))

  @chex.variants(with_jit=True, without_jit=True)
  @parameterized.named_parameters(*_cases(jit_variants=True))
  def test_cell(self, row, effect):
    self._check(row, effect, self.variant)

  @parameterized.named_parameters(*_cases(jit_variants=False))
  def test_cell_once(self, row, effect):
    self._check(row, effect, lambda f: f)


class CoverageTest(absltest.TestCase):
  """Every MATRIX cell has a check, and its test ran and passed."""

  def test_every_cell_has_a_check_and_every_check_a_cell(self):
    cells = {(row, e) for row, effects in MATRIX.items() for e in effects}
    self.assertEqual(
        set(matrix_cells.CELLS) - cells,
        set(),
        "checks registered for cells MATRIX does not list",
    )
    self.assertEqual(
        cells - set(matrix_cells.CELLS),
        set(),
        "MATRIX cells without a check in matrix_cells*.py",
    )
    for effects in MATRIX.values():
      self.assertEqual(tuple(effects), EFFECTS)

  def test_every_cell_test_ran_and_passed(self):
    # In a full run the cell tests ran before this class (file order for
    # pytest, name order for absltest); in a filtered run, run the rest now.
    names = unittest.TestLoader().getTestCaseNames(CellTest)
    by_slug = {}
    for name in names:
      match = re.fullmatch(
          r"test_cell(?:_once)?_(.+?)(?:__with_jit|__without_jit)?", name
      )
      by_slug.setdefault(match.group(1), []).append(name)
    missing = [
        (row, e)
        for row, effects in MATRIX.items()
        for e in effects
        if (row, e) not in STARTED
    ]
    result = unittest.TestResult()
    for row, effect in missing:
      self.assertIn(
          slug(row, effect),
          by_slug,
          f"no test method for cell ({row}, {effect})",
      )
      for name in by_slug[slug(row, effect)]:
        CellTest(name).run(result)
    problems = [
        f"{test.id()}: {trace}"
        for test, trace in result.failures + result.errors
    ]
    self.assertEqual(problems, [])
    failed = [
        c
        for row, effects in MATRIX.items()
        for c in ((row, e) for e in effects)
        if c not in RAN
    ]
    self.assertEqual(failed, [], "cells whose test failed (see above)")


class ReadmeTableTest(absltest.TestCase):

  def test_table_renders_one_row_per_transform(self):
    lines = render_table().splitlines()
    self.assertLen(lines, 2 + len(MATRIX))
    self.assertEqual(
        lines[0],
        "| transform | random | side input | side output | local state |",
    )
    self.assertIn(
        "| `hk.cond` | supported | supported | supported | supported |", lines
    )

  def test_docs_table_matches_matrix(self):
    text = (ROOT / PAGE).read_text(encoding="utf-8")
    expected = docs_block()
    found = re.search(re.escape(START) + ".*?" + re.escape(END), text, re.S)
    if found is None:
      self.fail(
          f"{PAGE} has no {START} ... {END} section. Add this "
          f"block (it is rendered from MATRIX in {__file__}):\n\n"
          f"{expected}\n"
      )
    if found.group(0) != expected:
      diff = "\n".join(
          difflib.unified_diff(
              found.group(0).splitlines(),
              expected.splitlines(),
              PAGE,
              "rendered from MATRIX",
              lineterm="",
          )
      )
      self.fail(
          f"{PAGE}'s support matrix differs from MATRIX in "
          f"{__file__}; replace the section with the rendered one:\n"
          f"{diff}\n\nRendered section:\n{expected}\n"
      )


if __name__ == "__main__":
  absltest.main()
