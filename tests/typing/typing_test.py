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
"""Type checkers accept request construction (pytree_dataclass carries
typing.dataclass_transform): mypy checks tests/typing_snippet.py."""

# bazel-data: //tests:typing_snippet

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

from absl.testing import absltest

import hk_effects as hke

_ROOT = pathlib.Path(__file__).resolve().parent.parent


class TypingTest(absltest.TestCase):

  def test_pytree_dataclass_is_a_dataclass_transform(self):
    self.assertIn("field_specifiers",
                  hke.pytree_dataclass.__dataclass_transform__)

  def test_mypy_accepts_request_construction(self):
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--ignore-missing-imports",
         "--follow-imports=silent", "--no-incremental",
         str(_ROOT / "tests" / "typing_snippet.py")],
        capture_output=True, text=True, timeout=300, check=False,
        cwd=_ROOT, env=dict(os.environ, PYTHONPATH=str(_ROOT)))
    self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
    self.assertIn("Success", out.stdout)


if __name__ == "__main__":
  absltest.main()
