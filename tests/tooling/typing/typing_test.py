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
"""Users' type checkers accept the API: mypy checks user_snippet.py.

mypy reads hk_effects where Python imports it from: the checkout (an editable
install) or site-packages, where only the ``py.typed`` marker makes mypy use
its annotations. A misuse must be rejected, so the check is never vacuous.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import sysconfig
import tempfile

from absl.testing import absltest

import hk_effects as hke

_HERE = pathlib.Path(__file__).resolve().parent
_ROOT = _HERE.parents[2]
sys.path.insert(0, str(_HERE))

import user_snippet  # pylint: disable=g-import-not-at-top,wrong-import-position  # noqa: E402


def _mypy(
    path: pathlib.Path, cache_dir: str
) -> subprocess.CompletedProcess[str]:
  """Runs mypy on ``path`` with pyproject.toml's settings."""
  package_dir = pathlib.Path(hke.__file__).resolve().parent.parent
  site_dirs = {
      pathlib.Path(sysconfig.get_paths()[k]).resolve()
      for k in ("purelib", "platlib")
  }
  env = dict(os.environ)
  env.pop("MYPYPATH", None)
  if package_dir not in site_dirs:
    # A checkout: mypy must read this copy of the package, not another one.
    env["MYPYPATH"] = str(package_dir)
  config = _ROOT / "pyproject.toml"
  args = [
      sys.executable,
      "-m",
      "mypy",
      "--cache-dir",
      cache_dir,
      "--follow-imports=silent",
      str(path),
  ]
  if config.exists():
    args[3:3] = ["--config-file", str(config)]
  return subprocess.run(
      args,
      capture_output=True,
      text=True,
      timeout=600,
      check=False,
      cwd=path.parent,
      env=env,
  )


class TypingTest(absltest.TestCase):

  # mypy's cache where tools/lint.sh keeps it (the repository's .mypy_cache,
  # ignored by git): after the lint step, reading jax and hk_effects again is
  # a cache hit, and the second test reuses what the first read.
  _cache_dir = str(_ROOT / ".mypy_cache")

  def test_pytree_dataclass_is_a_dataclass_transform(self):
    self.assertIn(
        "field_specifiers",
        hke.pytree_dataclass.__dataclass_transform__,  # type: ignore[attr-defined]
    )

  def test_mypy_accepts_every_request_and_handler(self):
    out = _mypy(_HERE / "user_snippet.py", self._cache_dir)
    self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
    self.assertIn("Success", out.stdout)

  def test_mypy_rejects_a_request_with_a_misspelt_field(self):
    with tempfile.TemporaryDirectory() as tmp:
      bad = pathlib.Path(tmp) / "misuse.py"
      bad.write_text(
          "import hk_effects as hke\n"
          "hke.SideOutputRequest('acts', mdoe='last')\n"
      )
      out = _mypy(bad, self._cache_dir)
    self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
    self.assertIn('Unexpected keyword argument "mdoe"', out.stdout)

  def test_the_snippet_runs(self):
    out, told, state = user_snippet.run()
    self.assertEqual(out.shape, (2, 3))
    self.assertEqual([v.tag for v in told], ["acts"])
    self.assertEqual(int(state["~local_state/counters"]["block:count"]), 1)


if __name__ == "__main__":
  absltest.main()
