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
"""The layering of docs/design.md, section 7 (Architecture), checked.

Every module of ``hk_effects/_src`` belongs to a layer; an import from a
higher layer fails this test with the importing file, the line and the rule
it breaks. Imports are read from the source (``ast``), lazy ones inside
functions included: a cycle hidden in a function is still a cycle.
"""

from __future__ import annotations

import ast
import pathlib
import tempfile

from absl.testing import absltest
from absl.testing import parameterized

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "hk_effects"

# Lowest first. A module may import its own layer and those before it.
LAYERS = (
    "hk_effects._src.context",
    "hk_effects._src.haiku",
    "hk_effects._src.core",
    "hk_effects._src.effects",
    "hk_effects._src.inspect",
    "hk_effects._src.nn",
    "hk_effects",  # The facade: hk_effects/__init__.py, handlers/, ...
)
# Within the effects layer each effect is its own package; one effect may
# build on another only where listed (a random key kept as local state).
EFFECT_DEPENDENCIES = {
    "random": {"local_state"},
    "side_input": set(),
    "side_output": set(),
    "local_state": set(),
}


def layer_of(module: str) -> int:
  """The index in LAYERS of the longest prefix of ``module``."""
  matches = [
      (len(prefix), index)
      for index, prefix in enumerate(LAYERS)
      if module == prefix or module.startswith(prefix + ".")
  ]
  if not matches:
    raise ValueError(f"{module} is in no layer of {LAYERS}")
  return max(matches)[1]


def effect_of(module: str) -> str | None:
  parts = module.split(".")
  if parts[:3] == ["hk_effects", "_src", "effects"] and len(parts) > 3:
    return parts[3]
  return None


def module_name(path: pathlib.Path) -> str:
  relative = path.relative_to(PACKAGE.parent).with_suffix("")
  parts = list(relative.parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def imported_modules(path: pathlib.Path) -> list[tuple[int, str]]:
  """(line, module) for each hk_effects module the file imports."""
  found = []
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
    if isinstance(node, ast.Import):
      names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom) and node.module:
      # `from pkg import mod` imports pkg.mod when mod is a module.
      submodules = [
          f"{node.module}.{alias.name}"
          for alias in node.names
          if _is_module(f"{node.module}.{alias.name}")
      ]
      names = submodules or [node.module]
    else:
      continue
    found += [(node.lineno, n) for n in names if n.startswith("hk_effects")]
  return found


def _is_module(name: str) -> bool:
  path = PACKAGE.parent / name.replace(".", "/")
  return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def violations(path: pathlib.Path) -> list[str]:
  return rule_breaks(path, module_name(path), imported_modules(path))


def rule_breaks(
    path: pathlib.Path, importer: str, imports: list[tuple[int, str]]
) -> list[str]:
  problems = []
  for line, imported in imports:
    if not imported.startswith("hk_effects._src") and importer.startswith(
        "hk_effects._src"
    ):
      problems.append(
          f"{path}:{line}: {importer} imports the facade {imported}; "
          "import the private module that defines the name instead"
      )
      continue
    if layer_of(imported) > layer_of(importer):
      problems.append(
          f"{path}:{line}: {importer} (layer "
          f"{LAYERS[layer_of(importer)]}) imports {imported} from the "
          f"higher layer {LAYERS[layer_of(imported)]}"
      )
    ours, theirs = effect_of(importer), effect_of(imported)
    if ours and theirs and ours != theirs:
      if theirs not in EFFECT_DEPENDENCIES.get(ours, set()):
        problems.append(
            f"{path}:{line}: effect {ours!r} imports effect {theirs!r} "
            f"({imported}); effects build on core, not on each other"
        )
  return problems


def _source_files() -> list[pathlib.Path]:
  return sorted(PACKAGE.rglob("*.py"))


class ArchitectureTest(parameterized.TestCase):

  @parameterized.named_parameters(
      (module_name(p).replace(".", "_"), p) for p in _source_files()
  )
  def test_imports_only_its_own_layer_or_lower(self, path):
    self.assertEqual(violations(path), [])

  def test_an_upward_import_is_reported(self):
    path = pathlib.Path("binding.py")
    problems = rule_breaks(
        path,
        "hk_effects._src.core.binding",
        [
            (3, "hk_effects._src.haiku.nesting"),
            (7, "hk_effects._src.inspect.recording"),
        ],
    )
    self.assertEqual(
        problems,
        [
            "binding.py:7: hk_effects._src.core.binding (layer "
            "hk_effects._src.core) imports hk_effects._src.inspect.recording "
            "from the higher layer hk_effects._src.inspect"
        ],
    )

  def test_one_effect_importing_another_is_reported(self):
    problems = rule_breaks(
        pathlib.Path("side_input.py"),
        "hk_effects._src.effects.side_input.side_input",
        [(9, "hk_effects._src.effects.random.random")],
    )
    self.assertLen(problems, 1)
    self.assertIn("effect 'side_input' imports effect 'random'", problems[0])

  def test_a_private_module_importing_the_facade_is_reported(self):
    problems = rule_breaks(
        pathlib.Path("layers.py"),
        "hk_effects._src.nn.layers",
        [(4, "hk_effects.handlers")],
    )
    self.assertLen(problems, 1)
    self.assertIn("imports the facade hk_effects.handlers", problems[0])

  def test_one_thread_local_in_the_package(self):
    holders = [
        str(p.relative_to(PACKAGE))
        for p in _source_files()
        if "threading.local" in p.read_text(encoding="utf-8")
    ]
    self.assertEqual(holders, ["_src/context.py"])

  def test_the_core_names_no_effect(self):
    # Code only: docstring examples may show a shipped effect in use.
    found = []
    for path in sorted((PACKAGE / "_src" / "core").rglob("*.py")):
      found += [
          f"{path.name}:{line}: {word}"
          for line, word in code_words(path)
          if any(effect in word for effect in EFFECT_WORDS)
      ]
    self.assertEqual(found, [])

  def test_an_effect_name_in_core_code_is_found(self):
    with tempfile.TemporaryDirectory() as folder:
      path = pathlib.Path(folder) / "fake.py"
      path.write_text(
          '"""Docstring naming RandomRequest is fine."""\n'
          "def f(request):\n"
          "  # A comment naming side_output is fine too.\n"
          '  return type(request).__name__ == "SideOutputRequest"\n'
      )
      self.assertEqual(code_words(path), [(4, "SideOutputRequest")])


EFFECT_WORDS = (
    "random",
    "side_input",
    "side_output",
    "local_state",
    "Random",
    "SideInput",
    "SideOutput",
    "LocalState",
)


def code_words(path: pathlib.Path) -> list[tuple[int, str]]:
  """(line, word) for every name, attribute and string constant of the code
  that names a shipped effect, docstrings left out."""
  tree = ast.parse(path.read_text(encoding="utf-8"))
  docstrings = set()
  for node in ast.walk(tree):
    if isinstance(
        node,
        (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef),
    ):
      body = node.body
      if (
          body
          and isinstance(body[0], ast.Expr)
          and isinstance(body[0].value, ast.Constant)
      ):
        docstrings.add(id(body[0].value))
  words = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Name):
      word = node.id
    elif isinstance(node, ast.Attribute):
      word = node.attr
    elif isinstance(node, ast.alias):
      word = node.name
    elif (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ):
      word = node.value
    else:
      continue
    if any(effect in word for effect in EFFECT_WORDS):
      words.append((getattr(node, "lineno", 0), word))
  return sorted(words)


if __name__ == "__main__":
  absltest.main()
