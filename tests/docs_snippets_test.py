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
"""Every ``python`` code block of README.md and docs/*.md runs.

The blocks of one page run in order in one namespace, as a reader pasting
them into one session would (a later block may use an earlier block's
names), after the imports every page assumes. Where a block is followed
directly by a plain fenced block, that block is the output the page shows,
and what the code prints must equal it. The tutorial notebook
(``docs/data_effects_tutorial.md``, ``code-cell`` blocks) is executed by the
docs build instead; blocks in other languages (``shell``, ``bash``) are
commands, not run here.
"""

# bazel-deps: //hk_effects
# bazel-data: //:README.md //:docs_pages

from __future__ import annotations

import contextlib
import dataclasses
import io
import pathlib
import re
import sys
import tempfile
import types
from typing import Any

from absl.testing import absltest
from absl.testing import parameterized
import jax

ROOT = pathlib.Path(__file__).resolve().parent.parent
PREAMBLE = (
    "from typing import Any, Protocol\n"
    "import haiku as hk, jax, jax.numpy as jnp\n"
    "import hk_effects as hke\n"
)
# A ```python block, then optionally the ``` block right after it.
_BLOCK = re.compile(
    r"^```python\n(?P<code>.*?)^```\n(?:```\n(?P<shown>.*?)^```\n)?",
    re.S | re.M,
)


@dataclasses.dataclass(frozen=True)
class Snippet:
  page: str
  line: int
  code: str
  shown: str | None


def pages() -> list[pathlib.Path]:
  """README.md and every Markdown page of docs/ that is not a notebook."""
  docs = sorted((ROOT / "docs").glob("*.md"))
  return [ROOT / "README.md"] + [
      p for p in docs if not p.read_text().startswith("---\njupytext:")
  ]


def snippets(path: pathlib.Path) -> list[Snippet]:
  text = path.read_text()
  page = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name
  found = []
  for m in _BLOCK.finditer(text):
    line = text.count("\n", 0, m.start("code")) + 1
    found.append(Snippet(page, line, m.group("code"), m.group("shown")))
  return found


def run_page(
    path: pathlib.Path,
) -> tuple[list[tuple[Snippet, str]], dict[str, Any]]:
  """Runs a page's snippets in order.

  Returns:
    (snippet, what it printed) for each, and the namespace they ran in (for
    tests that go on to check what a page defines).
  """
  # A module of its own, registered while it runs: dataclasses defined in a
  # snippet look their module up in sys.modules.
  module = types.ModuleType(f"_snippets_of_{path.stem}")
  sys.modules[module.__name__] = module
  try:
    namespace = module.__dict__
    exec(compile(PREAMBLE, "preamble", "exec"), namespace)  # pylint: disable=exec-used
    printed = []
    for snippet in snippets(path):
      # Blank lines first, so a traceback's line numbers are the page's.
      source = "\n" * (snippet.line - 1) + snippet.code
      buffer = io.StringIO()
      # A page may apply two models to one key to compare them (the porting
      # guide does): a reuse by design, which the suite's checker would stop.
      with contextlib.redirect_stdout(buffer), jax.debug_key_reuse(False):
        exec(compile(source, snippet.page, "exec"), namespace)  # pylint: disable=exec-used
      printed.append((snippet, buffer.getvalue()))
    return printed, namespace
  finally:
    del sys.modules[module.__name__]


class DocsSnippetsTest(parameterized.TestCase):

  def test_finds_the_pages_and_their_snippets(self):
    names = [p.name for p in pages()]
    self.assertIn("README.md", names)
    self.assertIn("porting.md", names)
    self.assertNotIn("data_effects_tutorial.md", names)
    with_output = [s for p in pages() for s in snippets(p) if s.shown]
    self.assertGreaterEqual(len(with_output), 13)

  def test_reads_a_block_and_the_output_right_after_it(self):
    with tempfile.TemporaryDirectory() as directory:
      page = pathlib.Path(directory) / "page.md"
      page.write_text(
          "```python\nprint(1)\n```\n```\n1\n```\n\ntext\n\n```python\n"
          "x = 2\n```\n\n```\nnot output: a blank line before\n```\n"
      )
      found = snippets(page)
    self.assertEqual(
        [(s.line, s.code, s.shown) for s in found],
        [(2, "print(1)\n", "1\n"), (11, "x = 2\n", None)],
    )

  @parameterized.named_parameters(
      (p.stem if p.parent.name == "docs" else "readme", p) for p in pages()
  )
  def test_page_runs_and_prints_what_it_shows(self, path):
    for snippet, printed in run_page(path)[0]:
      if snippet.shown is not None:
        self.assertEqual(
            printed,
            snippet.shown,
            f"{snippet.page}, the block at line {snippet.line} printed "
            "something other than the output shown below it.",
        )


if __name__ == "__main__":
  absltest.main()
