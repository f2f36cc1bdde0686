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
"""Checks that the Bazel BUILD files still describe the Python files.

Run from anywhere:

  python tools/check_build_files.py [--root DIR]

It fails (exit status 1, one line per problem) when

- a module of `hk_effects/` (any of `LIBRARY_DIRS`) is in no `py_library`,
- a `*_test.py` in `tests/` or a folder under it (or `examples/`,
  `benchmarks/`, `tools/`) has no `py_test`,
- a launcher (a file with an `if __name__ == "__main__":` block) in
  `examples/`, `benchmarks/` or `tools/` has no `py_binary`, and any other
  module there or in `tests/` is in no target,
- a target names a source file that does not exist,
- a `*_test.py` lacks `if __name__ == "__main__": absltest.main()` (its
  py_test would run nothing and pass),
- a target imports a project module that its `deps` leave out (Bazel would
  fail with an ImportError), or lists a dep no BUILD file defines.

The fix is nearly always `python tools/gen_build_files.py`, which writes the
BUILD files from the imports. Imports Python cannot see statically (a module
loaded by path, a data file read at run time) are declared in the source with
`# bazel-deps: //pkg:target` and `# bazel-data: //pkg:target` comment lines.

This module is also the one model of the layout that the generator shares.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import pathlib
import re
import sys

# Directories whose modules are each a py_library, imported by dotted path.
LIBRARY_DIRS = (
    "hk_effects",
    "hk_effects/handlers",
    "hk_effects/_src",
    "hk_effects/_src/haiku",
    "hk_effects/_src/core",
    "hk_effects/_src/effects",
    "hk_effects/_src/effects/random",
    "hk_effects/_src/effects/side_input",
    "hk_effects/_src/effects/side_output",
    "hk_effects/_src/effects/local_state",
    "hk_effects/_src/inspect",
    "hk_effects/_src/nn",
)
# Directories of tests, launchers and their helpers. Python puts a script's
# own directory first on sys.path, so their files import siblings by bare
# name (`from test_utils import ...`); their targets carry imports = ["."].
SCRIPT_DIRS = ("tests", "examples", "benchmarks", "tools")
# The tests mirror the package in folders under tests/ (`tests/core`,
# `tests/effects/random`, ..., `tests/integration`, `tests/tooling`), each a
# BUILD package found by walking tests/; their files import the shared helpers
# of tests/ (`test_utils`, `conftest`) by bare name, as pytest and Bazel put
# tests/ on sys.path. Left out, with the reason:
NOT_BAZEL_TEST_DIRS = {
    # mypy reads pyproject.toml and the package from the source tree.
    "tests/tooling/typing": "runs mypy on the checkout, not on runfiles",
}
REGENERATE = "run `python tools/gen_build_files.py`"
# What files load at run time without saying so in `# bazel-deps:` and
# `# bazel-data:` lines of their own (their authors may move them there):
# path -> those lines.
RUNTIME_INPUTS = {
    "tests/tooling/bazel_test_sh_test.py": "# bazel-data: //tools:all_files",
    "tests/tooling/doctest_test.py": (
        "# bazel-data: " + " ".join(f"//{d}:all_files" for d in LIBRARY_DIRS)
    ),
    # It runs README.md's snippets and those moved to docs/ pages, which
    # import hk_effects, and checks the README's links.
    "tests/tooling/readme_test.py": (
        "# bazel-deps: //hk_effects\n"
        "# bazel-data: //:README.md //:.ci/run //:docs_pages"
    ),
    "tests/integration/user_defined_effect_test.py": (
        "# bazel-data: //examples:custom_effect"
    ),
}

_DIRECTIVE = re.compile(r"^#\s*bazel-(deps|data):\s*(.+)$", re.MULTILINE)
_PY_RULES = ("py_library", "py_binary", "py_test")


@dataclasses.dataclass(frozen=True)
class SourceFile:
  """A Python file of the project and the target it must belong to.

  Attributes:
    path: path relative to the project root, e.g. `hk_effects/binding.py`.
    rule: `py_library`, `py_binary` or `py_test`.
    label: the target's full label, e.g. `//hk_effects:binding`.
    deps: full labels of the project targets its imports need.
    data: full labels from `# bazel-data:` lines.
    has_main: whether it has an `if __name__ == "__main__":` block.
    lazy_deps: labels imported only inside functions that would close a
      dependency cycle, which Bazel cannot build; whoever calls those
      functions depends on both ends (`benchmarks/models.py` loads
      `penzai_model`, which imports `models`, only when asked to).
  """

  path: pathlib.PurePosixPath
  rule: str
  label: str
  deps: tuple[str, ...]
  data: tuple[str, ...]
  has_main: bool
  lazy_deps: tuple[str, ...] = ()

  @property
  def package(self) -> str:
    return str(self.path.parent)

  @property
  def target_name(self) -> str:
    return self.label.rsplit(":", 1)[1]


@dataclasses.dataclass(frozen=True)
class Target:
  """A py_* rule read from a BUILD file; None where not a plain literal."""

  rule: str
  label: str
  srcs: tuple[str, ...] | None
  deps: tuple[str, ...] | None


def label_of(path: pathlib.PurePosixPath) -> str:
  """The label of the target that holds `path`; a package's `__init__.py`
  is the target named after the package, so `//hk_effects` is the facade."""
  package = str(path.parent)
  name = path.parent.name if path.name == "__init__.py" else path.stem
  if path.name == "__init__.py" and "_src" in path.parts:
    # A private package's module may share its name (effects/random/random.py).
    name = "package"
  return f"//{package}:{name}"


def normalize_label(label: str, package: str) -> str:
  """`:x` -> `//package:x` and `//a/b` -> `//a/b:b`."""
  if label.startswith(":"):
    return f"//{package}{label}"
  if label.startswith("//") and ":" not in label:
    return f"{label}:{label.rsplit('/', 1)[-1]}"
  return label


def short_label(label: str, package: str) -> str:
  """The shortest spelling of `label` inside `package` (buildifier style)."""
  target_package, name = label[2:].split(":")
  if target_package == package:
    return f":{name}"
  if target_package.rsplit("/", 1)[-1] == name:
    return f"//{target_package}"
  return label


def _is_launcher(tree: ast.Module) -> bool:
  for node in tree.body:
    if (
        isinstance(node, ast.If)
        and isinstance(node.test, ast.Compare)
        and isinstance(node.test.left, ast.Name)
        and node.test.left.id == "__name__"
    ):
      return True
  return False


def _rule_for(path: pathlib.PurePosixPath, has_main: bool) -> str:
  if str(path.parent) in LIBRARY_DIRS or path.name == "__init__.py":
    return "py_library"
  if path.name.endswith("_test.py"):
    return "py_test"
  return "py_binary" if has_main else "py_library"


def _imported_names(
    tree: ast.AST, lazy: bool = False
) -> list[tuple[str, bool]]:
  """(dotted name an import may load, whether it waits for a call)."""
  names = []
  for node in ast.iter_child_nodes(tree):
    if isinstance(node, ast.Import):
      names.extend((alias.name, lazy) for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
      # `from a import b` loads `a.b` when b is a module, else just `a`.
      names.extend(
          (f"{node.module}.{alias.name}", lazy) for alias in node.names
      )
    else:
      inside_function = isinstance(
          node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
      )
      names.extend(_imported_names(node, lazy or inside_function))
  return names


def _resolve(
    root: pathlib.Path, name: str, importer: pathlib.PurePosixPath
) -> pathlib.PurePosixPath | None:
  """The project file a dotted import name loads, or None if third-party."""
  parts = name.split(".")
  top_dirs = {d.split("/")[0] for d in LIBRARY_DIRS + SCRIPT_DIRS}
  if parts[0] in top_dirs:
    bases = [pathlib.PurePosixPath()]
  elif is_script_dir(str(importer.parent)):
    # A sibling first, as Python finds it; then a script directory the file
    # put on sys.path itself (a test of an example launcher).
    bases = [importer.parent] + [pathlib.PurePosixPath(d) for d in SCRIPT_DIRS]
  else:
    return None
  for base in bases:
    for length in range(len(parts), 0, -1):
      candidate = base.joinpath(*parts[:length])
      for path in (candidate.with_suffix(".py"), candidate / "__init__.py"):
        if (root / path).is_file():
          return path
  return None


def scan(root: pathlib.Path, path: pathlib.PurePosixPath) -> SourceFile:
  """Reads one Python file: its rule, label, project deps and data."""
  text = (root / path).read_text(encoding="utf-8")
  tree = ast.parse(text, filename=str(path))
  label = label_of(path)
  deps, lazy_deps = set(), set()
  for name, lazy in _imported_names(tree):
    resolved = _resolve(root, name, path)
    if resolved is not None and label_of(resolved) != label:
      (lazy_deps if lazy else deps).add(label_of(resolved))
  data = set()
  directives = text + "\n" + RUNTIME_INPUTS.get(str(path), "")
  for kind, labels in _DIRECTIVE.findall(directives):
    normalized = {normalize_label(l, str(path.parent)) for l in labels.split()}
    (deps if kind == "deps" else data).update(normalized)
  has_main = _is_launcher(tree)
  return SourceFile(
      path,
      _rule_for(path, has_main),
      label,
      tuple(sorted(deps)),
      tuple(sorted(data)),
      has_main,
      tuple(sorted(lazy_deps - deps)),
  )


def is_script_dir(package: str) -> bool:
  """Whether `package` holds scripts: one of SCRIPT_DIRS or under tests/."""
  return package in SCRIPT_DIRS or package.startswith("tests/")


def test_dirs(root: pathlib.Path) -> list[str]:
  """The folders under tests/ that hold Python files, sorted."""
  found = {
      str(path.parent.relative_to(root))
      for path in (root / "tests").glob("*/**/*.py")
  }
  return sorted(found - set(NOT_BAZEL_TEST_DIRS))


def package_dirs(root: pathlib.Path) -> list[str]:
  """The BUILD packages that exist under `root`, in a fixed order."""
  dirs = [d for d in LIBRARY_DIRS + SCRIPT_DIRS if (root / d).is_dir()]
  if "tests" in dirs:
    at = dirs.index("tests") + 1
    dirs[at:at] = test_dirs(root)
  return dirs


def source_files(root: pathlib.Path) -> list[SourceFile]:
  """Every Python file that must belong to a target, scanned."""
  files = []
  for package in package_dirs(root):
    for path in sorted((root / package).glob("*.py")):
      files.append(scan(root, path.relative_to(root)))
  graph = {f.label: set(f.deps) for f in files}
  # A lazy import becomes a dep unless it would close a cycle.
  for source in files:
    for dep in source.lazy_deps:
      if source.label not in _reachable(graph, dep):
        graph[source.label].add(dep)
  return [
      dataclasses.replace(
          f,
          deps=tuple(sorted(graph[f.label])),
          lazy_deps=tuple(sorted(set(f.lazy_deps) - graph[f.label])),
      )
      for f in files
  ]


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
  seen, stack = set(), [start]
  while stack:
    label = stack.pop()
    if label not in seen:
      seen.add(label)
      stack.extend(graph.get(label, ()))
  return seen


def _cycles(files: list[SourceFile]) -> list[str]:
  """Each label that depends on itself through its deps."""
  graph = {f.label: set(f.deps) for f in files}
  return [
      label
      for label in sorted(graph)
      if any(label in _reachable(graph, d) for d in graph[label])
  ]


def _literal_strings(node: ast.expr | None) -> tuple[str, ...] | None:
  try:
    value = ast.literal_eval(node) if node is not None else []
  except ValueError:
    return None
  return tuple(value) if isinstance(value, (list, tuple)) else None


def read_targets(build_file: pathlib.Path, package: str) -> list[Target]:
  """The py_* rules of one BUILD file (Starlark parses as Python here)."""
  tree = ast.parse(
      build_file.read_text(encoding="utf-8"), filename=str(build_file)
  )
  targets = []
  for node in tree.body:
    call = node.value if isinstance(node, ast.Expr) else None
    if not (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id in _PY_RULES
    ):
      continue
    kwargs = {k.arg: k.value for k in call.keywords}
    name = ast.literal_eval(kwargs["name"])
    deps = _literal_strings(kwargs.get("deps"))
    if deps is not None:
      deps = tuple(normalize_label(d, package) for d in deps)
    targets.append(
        Target(
            call.func.id,
            f"//{package}:{name}",
            _literal_strings(kwargs.get("srcs")),
            deps,
        )
    )
  return targets


def _missing_target_problem(source: SourceFile) -> str:
  build = f"{source.package}/BUILD"
  return (
      f"{source.path} is in no {source.rule} of {build}; {REGENERATE}, "
      f'or add {source.rule}(name = "{source.target_name}", '
      f'srcs = ["{source.path.name}"], ...) to {build}.'
  )


def find_problems(root: pathlib.Path) -> list[str]:
  """Every way the BUILD files under `root` disagree with the Python files."""
  problems = []
  targets: dict[str, Target] = {}
  owner: dict[tuple[str, str], Target] = {}
  unbuilt = set()
  for package in package_dirs(root):
    build_file = root / package / "BUILD"
    if not build_file.is_file():
      unbuilt.add(package)
      if any((root / package).glob("*.py")):
        problems.append(
            f"{package}/ has Python files but no {package}/BUILD; {REGENERATE}."
        )
      continue
    for target in read_targets(build_file, package):
      targets[target.label] = target
      for src in target.srcs or ():
        if not (root / package / src).is_file():
          problems.append(
              f"{target.label} names {package}/{src}, which does not exist; "
              f"delete it from {package}/BUILD or {REGENERATE}."
          )
        owner[(package, src)] = target

  sources = source_files(root)
  for label in _cycles(sources):
    problems.append(
        f"{label} imports itself through a cycle of module-level imports, "
        "which Bazel cannot build; move one of those imports into the "
        "function that needs it."
    )
  for source in sources:
    if source.rule == "py_test" and not source.has_main:
      problems.append(
          f'{source.path} has no `if __name__ == "__main__": '
          "absltest.main()`, so its py_test would run no test and pass; "
          "add that block at its end."
      )
    if source.package in unbuilt:
      continue
    target = owner.get((source.package, source.path.name))
    if target is None or target.rule != source.rule:
      problems.append(_missing_target_problem(source))
      continue
    for dep in source.deps:
      if target.deps is not None and dep not in target.deps:
        problems.append(
            f"{target.label} imports {dep} but its deps leave it out (Bazel "
            f"would fail with an ImportError); {REGENERATE}."
        )

  for path in RUNTIME_INPUTS:
    if (root / path.split("/")[0]).is_dir() and not (root / path).is_file():
      problems.append(
          "RUNTIME_INPUTS in tools/check_build_files.py names "
          f"{path}, which does not exist; update or delete it."
      )

  for target in targets.values():
    for dep in target.deps or ():
      if dep.startswith("//") and dep not in targets:
        problems.append(
            f"{target.label} depends on {dep}, which no BUILD file defines; "
            f"{REGENERATE}."
        )
  return problems


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument(
      "--root",
      type=pathlib.Path,
      default=pathlib.Path(__file__).resolve().parent.parent,
      help=(
          "project root holding WORKSPACE (default: this file's parent's "
          "parent)"
      ),
  )
  args = parser.parse_args(argv)
  problems = find_problems(args.root)
  for problem in problems:
    print(problem)
  if not problems:
    count = len(source_files(args.root))
    print(f"BUILD files describe all {count} Python files.")
  return 1 if problems else 0


if __name__ == "__main__":
  sys.exit(main())
