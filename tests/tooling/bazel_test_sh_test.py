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
"""Tests of tools/bazel_test.sh's checks on the Python it is given.

Only the refusals are tested here: a real run installs Bazel and runs every
test target, which CI does once (see `.ci/run`).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile

from absl.testing import absltest

_SCRIPT = (
    pathlib.Path(__file__).resolve().parents[2] / "tools" / "bazel_test.sh"
)


class BazelTestScriptTest(absltest.TestCase):

  def _venv(self, python: str | None) -> pathlib.Path:
    """A directory shaped like a venv whose bin/python runs `python`."""
    venv = pathlib.Path(tempfile.mkdtemp())
    self.addCleanup(shutil.rmtree, venv)
    if python is not None:
      (venv / "bin").mkdir()
      (venv / "bin" / "python").write_text(f"#!/bin/sh\n{python}\n")
      (venv / "bin" / "python").chmod(0o755)
    return venv

  def _run(self, venv: pathlib.Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    return subprocess.run(
        ["bash", str(_SCRIPT), str(venv), "//tests:none"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

  def test_venv_without_python_is_refused_with_the_usage(self):
    venv = self._venv(python=None)
    result = self._run(venv)
    self.assertEqual(result.returncode, 2)
    self.assertIn(f"no Python at '{venv}/bin/python'", result.stderr)
    self.assertIn("tools/bazel_test.sh /path/to/venv", result.stderr)

  def test_python_without_jax_is_refused_with_the_install_command(self):
    venv = self._venv(python="exit 1")
    result = self._run(venv)
    self.assertEqual(result.returncode, 2)
    self.assertIn(
        f"{venv}/bin/python cannot import absl, chex, haiku and jax",
        result.stderr,
    )
    self.assertIn("-m pip install -e '.[test,examples]'", result.stderr)


if __name__ == "__main__":
  absltest.main()
