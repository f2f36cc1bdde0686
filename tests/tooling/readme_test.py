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
"""The README's commands and snippets stay true, and the snippets that
moved from it to docs/ pages keep what they showed."""

import contextlib
import io
import pathlib
import re

from absl.testing import absltest
from absl.testing import parameterized

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
  text = (ROOT / "README.md").read_text()
  block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
  return [
      line
      for line in block.splitlines()
      if line.strip() and not line.startswith("#")
  ]


class ReadmeTest(parameterized.TestCase):

  def test_opens_with_two_commands(self):
    commands = _readme_commands()
    self.assertLen(commands, 2)
    self.assertIn("examples/train_lm.py", commands[0])
    self.assertIn("pytest", commands[1])

  def test_ci_runs_the_readme_test_command_verbatim(self):
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    self.assertIn(_readme_commands()[1], ci_lines)

  def test_twenty_line_example_runs(self):
    text = (ROOT / "README.md").read_text()
    snippet = re.search(
        r"## In 20 lines\n\n```python\n(.*?)```", text, re.S
    ).group(1)
    self.assertLessEqual(len(snippet.strip().splitlines()), 30)
    namespace = {}
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
      exec(compile(snippet, "README.md", "exec"), namespace)  # pylint: disable=exec-used
    shown = re.search(
        r"## In 20 lines\n\n```python\n.*?```\n```\n(.*?)```", text, re.S
    ).group(1)
    self.assertEqual(buffer.getvalue(), shown)
    out, acts = namespace["out"], namespace["acts"]
    self.assertEqual(out.shape, (2, 8))
    self.assertLen(acts, 2)
    counters = namespace["state"]["~local_state/counters"]
    self.assertEqual(sorted(counters), ["block:steps", "block_1:steps"])

  def test_readme_is_short_and_its_links_resolve(self):
    text = (ROOT / "README.md").read_text()
    self.assertLessEqual(len(text.splitlines()), 250)
    links = re.findall(r"\]\(((?!https?:)[^)#]+)\)", text)
    self.assertIn("docs/porting.md", links)
    missing = [link for link in links if not (ROOT / link).exists()]
    self.assertEqual(missing, [], "README.md links to missing files")

  def test_readme_states_no_machine_load(self):
    text = (ROOT / "README.md").read_text()
    for phrase in ("load average", "agents", "shared the machine"):
      self.assertNotIn(phrase, text)

  @parameterized.named_parameters(
      ("side_outputs", "interventions.md", "## Side outputs", None, None),
      (
          "interventions",
          "interventions.md",
          "## Interventions",
          None,
          "block_1/residual True",
      ),
      (
          "branches",
          "control_flow.md",
          "## Side outputs in branches and while loops",
          None,
          "('gate_out', [0.0, 0.0], False)",
      ),
      ("per_example_state", "vmap.md", "# Per-example", None, "[ 2. 10. 18.]"),
      (
          "four_ways",
          "control_flow.md",
          "## Loops, stacks and raw transforms",
          None,
          "path keys: [True, True]",
      ),
  )
  def test_moved_snippet_prints_what_its_page_shows(
      self, page, heading, end, expected
  ):
    # These snippets lived in the README; docs_snippets_test runs every
    # page, and this keeps the claims each one was kept for.
    text = (ROOT / "docs" / page).read_text()
    section = text[text.index(heading) : text.index(end) if end else None]
    code, shown = re.search(
        r"```python\n(.*?)```\n```\n(.*?)```", section, re.S
    ).groups()
    preamble = (
        "import haiku as hk, jax, jax.numpy as jnp\nimport hk_effects as hke\n"
    )
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
      exec(compile(preamble + code, page, "exec"), {})  # pylint: disable=exec-used
    self.assertEqual(buffer.getvalue(), shown)
    if expected:
      self.assertIn(expected, shown)

  def test_new_effect_section_is_the_tested_example(self):
    text = (ROOT / "docs" / "concepts.md").read_text()
    section = text[text.index("## Writing a new effect") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    example = (ROOT / "examples" / "custom_effect.py").read_text()
    self.assertIn(code.strip(), example)


if __name__ == "__main__":
  absltest.main()
