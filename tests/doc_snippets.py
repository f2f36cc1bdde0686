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
"""Finds and runs the ``python`` code blocks of README.md and docs/*.md.

The blocks of one page run in order in one namespace, as a reader pasting
them into one session would (a later block may use an earlier block's
names), after the imports every page assumes. A plain fenced block right
after a ``python`` block is the output the page shows for it. Used by
``docs_snippets_test.py`` (every page) and ``porting_test.py`` (what the
porting guide defines).

Example::

  printed, namespace = run_page(ROOT / "docs" / "porting.md")
"""

# bazel-deps: //hk_effects
# bazel-data: //:docs_pages

from __future__ import annotations

import contextlib
import dataclasses
import io
import pathlib
import re
import sys
import types
from typing import Any

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
  """A ``python`` block: its page, first line, code and the output shown."""

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
  """The ``python`` blocks of the page at ``path``, in order."""
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
