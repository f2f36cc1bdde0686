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
"""Tests of tools/check_build_files.py: the BUILD files match the sources.

The first test checks the project itself, so a module, test or launcher
added without its Bazel target fails here (and in CI) with the fix to run.
The others build small projects in a temporary directory and check each
kind of drift the check names.
"""

# The check reads every Python and BUILD file; Bazel reruns this test when
# one changes:
# bazel-data: //:all_files

from __future__ import annotations

import pathlib
import shutil
import sys
import tempfile
import textwrap
from unittest import mock

from absl.testing import absltest

# Resolving symlinks finds the source tree under pytest, as a script, and in
# Bazel's runfiles (with --spawn_strategy=local), so the check sees the files
# a developer has, not only those Bazel was told about.
_ROOT = pathlib.Path(__file__).resolve().parents[2]


# The tools are scripts that import each other by bare name, as Python allows
# when it runs one of them.
sys.path.insert(0, str(_ROOT / "tools"))
import check_build_files  # pylint: disable=g-import-not-at-top,wrong-import-position
import gen_build_files  # pylint: disable=g-import-not-at-top,wrong-import-position

_MAIN = 'if __name__ == "__main__":\n  main()\n'


class BuildFilesTest(absltest.TestCase):

  def _project(self, files: dict[str, str]) -> pathlib.Path:
    """A project holding `files`, with BUILD files generated for them."""
    # The project's own runtime inputs name files these projects lack.
    self.enter_context(
        mock.patch.dict(check_build_files.RUNTIME_INPUTS, clear=True)
    )
    # tempfile, not absltest's create_tempdir: pytest leaves absl flags unparsed.
    root = pathlib.Path(tempfile.mkdtemp())
    self.addCleanup(shutil.rmtree, root)
    (root / "WORKSPACE").write_text("")
    for path, text in files.items():
      (root / path).parent.mkdir(parents=True, exist_ok=True)
      (root / path).write_text(textwrap.dedent(text))
    self.assertEqual(gen_build_files.main(["--root", str(root)]), 0)
    self.assertEqual(check_build_files.find_problems(root), [])
    return root

  def _small_project(self) -> pathlib.Path:
    return self._project({
        "hk_effects/__init__.py": "from hk_effects import core\n",
        "hk_effects/core.py": "import jax\n",
        "tests/core_test.py": "from hk_effects import core\n" + _MAIN,
        "examples/train.py": "import hk_effects\n" + _MAIN,
    })

  def test_project_build_files_match_its_python_files(self):
    problems = check_build_files.find_problems(_ROOT)
    self.assertEqual(problems, [], "\n".join(problems))

  def test_project_build_files_are_what_the_generator_writes(self):
    self.assertEqual(
        gen_build_files.main(["--root", str(_ROOT), "--check"]),
        0,
        "run `python tools/gen_build_files.py`",
    )

  def test_generated_targets_follow_the_imports(self):
    root = self._small_project()
    targets = {
        t.label: t
        for package in ("hk_effects", "tests", "examples")
        for t in check_build_files.read_targets(
            root / package / "BUILD", package
        )
    }
    self.assertEqual(
        targets["//hk_effects:hk_effects"].deps, ("//hk_effects:core",)
    )
    self.assertEqual(targets["//hk_effects:core"].deps, ())
    self.assertEqual(targets["//tests:core_test"].rule, "py_test")
    self.assertEqual(targets["//tests:core_test"].deps, ("//hk_effects:core",))
    self.assertEqual(targets["//examples:train"].rule, "py_binary")
    self.assertIn(
        "--xla_force_host_platform_device_count=8",
        (root / "tests" / "BUILD").read_text(),
    )

  def test_sibling_script_and_directive_imports_become_deps(self):
    root = self._project({
        "tests/helpers.py": "import numpy\n",
        "tests/a_test.py": (
            "from helpers import x\nimport train\n# bazel-deps: //tools:tool\n"
            + _MAIN
        ),
        "tools/tool.py": _MAIN,
        "examples/train.py": _MAIN,
    })
    (target,) = [
        t
        for t in check_build_files.read_targets(
            root / "tests" / "BUILD", "tests"
        )
        if t.rule == "py_test"
    ]
    self.assertEqual(
        target.deps, ("//tests:helpers", "//examples:train", "//tools:tool")
    )

  def test_tests_in_folders_import_the_shared_helpers_of_tests(self):
    root = self._project({
        "hk_effects/__init__.py": "",
        "tests/test_utils.py": "import hk_effects\n",
        "tests/core/cells.py": "import numpy\n",
        "tests/core/core_test.py": (
            "import cells\nfrom test_utils import x\n" + _MAIN
        ),
        "tests/tooling/typing/typing_test.py": "import jax\n" + _MAIN,
    })
    self.assertEqual(
        check_build_files.package_dirs(root),
        ["hk_effects", "tests", "tests/core"],
    )
    targets = {
        t.label: t
        for t in check_build_files.read_targets(
            root / "tests" / "core" / "BUILD", "tests/core"
        )
    }
    self.assertEqual(
        targets["//tests/core:core_test"].deps,
        ("//tests/core:cells", "//tests:test_utils"),
    )
    build = (root / "tests" / "core" / "BUILD").read_text()
    self.assertIn("legacy_create_init = False", build)
    self.assertIn('imports = ["."]', build)
    self.assertFalse((root / "tests" / "tooling" / "BUILD").exists())
    (root / "tests" / "core" / "side_input_test.py").write_text(_MAIN)
    (problem,) = check_build_files.find_problems(root)
    self.assertIn(
        "tests/core/side_input_test.py is in no py_test of tests/core/BUILD",
        problem,
    )

  def test_new_module_without_py_library_is_reported(self):
    root = self._small_project()
    (root / "hk_effects" / "side_output.py").write_text("import jax\n")
    self.assertEqual(
        check_build_files.find_problems(root),
        [
            "hk_effects/side_output.py is in no py_library of hk_effects/BUILD;"
            " run `python tools/gen_build_files.py`, or add py_library(name ="
            ' "side_output", srcs = ["side_output.py"], ...) to'
            " hk_effects/BUILD."
        ],
    )

  def test_new_test_without_py_test_is_reported(self):
    root = self._small_project()
    (root / "tests" / "layers_test.py").write_text(_MAIN)
    (problem,) = check_build_files.find_problems(root)
    self.assertIn(
        "tests/layers_test.py is in no py_test of tests/BUILD", problem
    )

  def test_new_launcher_without_py_binary_is_reported(self):
    root = self._small_project()
    (root / "examples" / "train_lm.py").write_text(_MAIN)
    (problem,) = check_build_files.find_problems(root)
    self.assertIn(
        "examples/train_lm.py is in no py_binary of examples/BUILD", problem
    )

  def test_target_naming_a_deleted_file_is_reported(self):
    root = self._small_project()
    (root / "examples" / "train.py").unlink()
    self.assertEqual(
        check_build_files.find_problems(root),
        [
            "//examples:train names examples/train.py, which does not exist; "
            "delete it from examples/BUILD or run `python "
            "tools/gen_build_files.py`."
        ],
    )

  def test_import_missing_from_deps_is_reported(self):
    root = self._small_project()
    (root / "hk_effects" / "extra.py").write_text("import jax\n")
    gen_build_files.main(["--root", str(root)])
    with (root / "tests" / "core_test.py").open("a") as f:
      f.write("from hk_effects import extra\n")
    (problem,) = check_build_files.find_problems(root)
    self.assertIn(
        "//tests:core_test imports //hk_effects:extra but its deps "
        "leave it out",
        problem,
    )

  def test_dep_on_undefined_target_is_reported(self):
    root = self._small_project()
    build = root / "examples" / "BUILD"
    build.write_text(
        build.read_text().replace('"//hk_effects"', '"//hk_effects:gone"')
    )
    self.assertIn(
        "//examples:train depends on //hk_effects:gone, which no BUILD file "
        "defines; run `python tools/gen_build_files.py`.",
        check_build_files.find_problems(root),
    )

  def test_package_without_build_file_is_reported(self):
    root = self._small_project()
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "trace_time.py").write_text(_MAIN)
    self.assertEqual(
        check_build_files.find_problems(root),
        [
            "benchmarks/ has Python files but no benchmarks/BUILD; run `python "
            "tools/gen_build_files.py`."
        ],
    )

  def test_test_file_without_main_block_is_reported(self):
    root = self._small_project()
    (root / "tests" / "core_test.py").write_text("import jax\n")
    self.assertEqual(
        check_build_files.find_problems(root),
        [
            'tests/core_test.py has no `if __name__ == "__main__": '
            "absltest.main()`, so its py_test would run no test and pass; add "
            "that block at its end."
        ],
    )

  def test_runtime_inputs_become_deps_and_data_and_stale_ones_are_reported(
      self,
  ):
    root = self._small_project()
    check_build_files.RUNTIME_INPUTS["tests/core_test.py"] = (
        "# bazel-deps: //hk_effects\n# bazel-data: //:README.md"
    )
    scanned = check_build_files.scan(
        root, pathlib.PurePosixPath("tests/core_test.py")
    )
    self.assertEqual(
        scanned.deps, ("//hk_effects:core", "//hk_effects:hk_effects")
    )
    self.assertEqual(scanned.data, ("//:README.md",))
    check_build_files.RUNTIME_INPUTS["tests/gone_test.py"] = ""
    self.assertIn(
        "RUNTIME_INPUTS in tools/check_build_files.py names tests/gone_test.py,"
        " which does not exist; update or delete it.",
        check_build_files.find_problems(root),
    )

  def test_lazy_import_that_closes_a_cycle_is_left_out(self):
    root = self._project({
        "benchmarks/models.py": (
            "def penzai():\n  from benchmarks import penzai_model\n"
        ),
        "benchmarks/penzai_model.py": "from benchmarks import models\n",
        "benchmarks/tables.py": (
            "def load():\n  from benchmarks import models\n"
        ),
    })
    deps = {
        t.label: t.deps
        for t in check_build_files.read_targets(
            root / "benchmarks" / "BUILD", "benchmarks"
        )
    }
    self.assertEqual(deps["//benchmarks:models"], ())
    self.assertEqual(
        deps["//benchmarks:penzai_model"], ("//benchmarks:models",)
    )
    self.assertEqual(deps["//benchmarks:tables"], ("//benchmarks:models",))

  def test_cycle_of_module_level_imports_is_reported(self):
    root = self._small_project()
    with (root / "hk_effects" / "core.py").open("a") as f:
      f.write("import hk_effects\n")
    gen_build_files.main(["--root", str(root)])
    self.assertEqual(
        check_build_files.find_problems(root),
        [
            f"{label} imports itself through a cycle of module-level imports, "
            "which Bazel cannot build; move one of those imports into the "
            "function that needs it."
            for label in ("//hk_effects:core", "//hk_effects:hk_effects")
        ],
    )

  def test_check_mode_reports_stale_build_file_and_writes_nothing(self):
    root = self._small_project()
    (root / "hk_effects" / "side_output.py").write_text("import jax\n")
    before = (root / "hk_effects" / "BUILD").read_text()
    self.assertEqual(gen_build_files.main(["--root", str(root), "--check"]), 1)
    self.assertEqual((root / "hk_effects" / "BUILD").read_text(), before)


if __name__ == "__main__":
  absltest.main()
