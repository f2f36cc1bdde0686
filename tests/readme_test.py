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
"""The README's commands and snippets stay true."""

import contextlib
import io
import pathlib
import re

from absl.testing import absltest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _readme_commands() -> list[str]:
  text = (ROOT / "README.md").read_text()
  block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
  return [
      line
      for line in block.splitlines()
      if line.strip() and not line.startswith("#")
  ]


class ReadmeTest(absltest.TestCase):

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
    exec(compile(snippet, "README.md", "exec"), namespace)  # pylint: disable=exec-used
    out, acts = namespace["out"], namespace["acts"]
    self.assertEqual(out.shape, (2, 8))
    self.assertLen(acts, 2)
    counters = namespace["state"]["~local_state/counters"]
    self.assertEqual(sorted(counters), ["block:steps", "block_1:steps"])

  def test_side_output_snippet_prints_what_the_readme_shows(self):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Side outputs") :]
    code, shown = re.search(
        r"```python\n(.*?)```\n```\n(.*?)```", section, re.S
    ).groups()
    preamble = (
        "import haiku as hk, jax, jax.numpy as jnp\nimport hk_effects as hke\n"
    )
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
      exec(compile(preamble + code, "README.md", "exec"), {})  # pylint: disable=exec-used
    self.assertEqual(buffer.getvalue(), shown)

  def test_interventions_snippet_prints_what_the_readme_shows(self):
    text = (ROOT / "README.md").read_text()
    section = text[
        text.index("## Interventions") : text.index("## Inspecting a model")
    ]
    code, shown = re.search(
        r"```python\n(.*?)```\n```\n(.*?)```", section, re.S
    ).groups()
    preamble = (
        "import haiku as hk, jax, jax.numpy as jnp\nimport hk_effects as hke\n"
    )
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
      exec(compile(preamble + code, "README.md", "exec"), {})  # pylint: disable=exec-used
    self.assertEqual(buffer.getvalue(), shown)

  def test_branch_and_while_loop_snippet_prints_what_the_readme_shows(self):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Side outputs in branches and while loops") :]
    code, shown = re.search(
        r"```python\n(.*?)```\n```\n(.*?)```", section, re.S
    ).groups()
    preamble = (
        "import haiku as hk, jax, jax.numpy as jnp\nimport hk_effects as hke\n"
    )
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
      exec(compile(preamble + code, "README.md", "exec"), {})  # pylint: disable=exec-used
    self.assertEqual(buffer.getvalue(), shown)
    self.assertIn("('gate_out', [0.0, 0.0], False)", shown)

  def test_per_example_state_snippet_prints_what_the_readme_shows(self):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Per-example local state: `hke.vmap`") :]
    code, shown = re.search(
        r"```python\n(.*?)```\n```\n(.*?)```", section, re.S
    ).groups()
    preamble = (
        "import haiku as hk, jax, jax.numpy as jnp\nimport hk_effects as hke\n"
    )
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
      exec(compile(preamble + code, "README.md", "exec"), {})  # pylint: disable=exec-used
    self.assertEqual(buffer.getvalue(), shown)
    self.assertEqual(shown, "[ 2. 10. 18.]\n")

  def test_what_it_catches_snippet_prints_what_the_readme_shows(self):
    text = (ROOT / "README.md").read_text()
    section = text[
        text.index("## What hk_effects catches") : text.index("## Performance")
    ]
    code, shown = re.search(
        r"```python\n(.*?)```\n```\n(.*?)```", section, re.S
    ).groups()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
      exec(compile(code, "README.md", "exec"), {})  # pylint: disable=exec-used
    self.assertEqual(buffer.getvalue(), shown)
    self.assertIn("path keys: [True, True]", shown)

  def test_new_effect_section_is_the_tested_example(self):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Writing a new effect") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    example = (ROOT / "examples" / "custom_effect.py").read_text()
    self.assertIn(code.strip(), example)


if __name__ == "__main__":
  absltest.main()
