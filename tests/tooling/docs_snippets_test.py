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

The blocks of one page run in order in one namespace (``doc_snippets.py``).
Where a block is followed directly by a plain fenced block, that block is
the output the page shows, and what the code prints must equal it. The tutorial notebook
(``docs/data_effects_tutorial.md``, ``code-cell`` blocks) is executed by the
docs build instead; blocks in other languages (``shell``, ``bash``) are
commands, not run here.
"""

# bazel-deps: //hk_effects
# bazel-data: //:README.md //:docs_pages

from __future__ import annotations

import pathlib
import tempfile

from absl.testing import absltest
from absl.testing import parameterized
from doc_snippets import pages
from doc_snippets import run_page
from doc_snippets import snippets


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
