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
"""Runs the ``>>>`` examples in every module of hk_effects.

Modules are found with ``pkgutil.walk_packages``, so a module added later is
covered without editing this file. As in Haiku's ``doctest_test.py``, each
module is one test case, and every public name must carry an example.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import io
import pkgutil
import textwrap
import types

from absl.testing import absltest
from absl.testing import parameterized

import hk_effects
import hk_effects.boundaries
import hk_effects.handlers


def _module_names() -> list[str]:
  names = {hk_effects.__name__}
  names.update(
      info.name
      for info in pkgutil.walk_packages(
          hk_effects.__path__, prefix=hk_effects.__name__ + "."
      )
  )
  return sorted(names)


def _public_names() -> list[tuple[str, object]]:
  """(qualified name, object) for each name the facades export."""
  exported = []
  for facade in (hk_effects, hk_effects.handlers, hk_effects.boundaries):
    for name in facade.__all__:
      value = getattr(facade, name)
      if not inspect.ismodule(value):
        exported.append((f"{facade.__name__}.{name}", value))
  return exported


def _run_examples(module) -> tuple[doctest.TestResults, str]:
  finder = doctest.DocTestFinder(exclude_empty=True)
  runner = doctest.DocTestRunner(
      optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
  )
  report = io.StringIO()
  for test in finder.find(module, module.__name__):
    runner.run(test, out=report.write)
  return runner.summarize(verbose=False), report.getvalue()


class DoctestTest(parameterized.TestCase):

  def test_finds_every_package_and_module(self):
    names = _module_names()
    self.assertContainsSubset(
        [
            "hk_effects",
            "hk_effects._src.core.binding",
            "hk_effects.handlers",
            "hk_effects._src.effects.random.random",
            "hk_effects._src.effects.side_input.side_input",
        ],
        names,
    )

  def test_a_wrong_example_is_reported(self):
    module = types.ModuleType("fake_module")
    exec(
        textwrap.dedent('''
        def double(x):
          """Doubles.

          >>> double(2)
          5
          """
          return 2 * x
        '''),
        module.__dict__,
    )
    results, report = _run_examples(module)
    self.assertEqual((results.failed, results.attempted), (1, 1))
    self.assertIn("Expected:\n    5\nGot:\n    4", report)

  @parameterized.named_parameters(
      (name.replace(".", "_"), name) for name in _module_names()
  )
  def test_examples_run(self, module_name):
    module = importlib.import_module(module_name)
    results, report = _run_examples(module)
    self.assertEqual(
        results.failed,
        0,
        f"{results.failed} docstring example(s) in "
        f"{module_name} failed:\n{report}",
    )

  def test_examples_are_found(self):
    finder = doctest.DocTestFinder(exclude_empty=True)
    examples = sum(
        len(test.examples)
        for name in ("hk_effects", "hk_effects._src.effects.random.random")
        for test in finder.find(importlib.import_module(name), name)
    )
    self.assertGreater(examples, 20)

  @parameterized.named_parameters(
      (name.replace(".", "_"), name, value) for name, value in _public_names()
  )
  def test_public_name_has_an_example(self, name, value):
    docstring = inspect.getdoc(value) or ""
    self.assertIn(
        ">>>",
        docstring,
        f"{name} has no `>>>` example in its docstring; add a short "
        "one that runs (this test runs them all).",
    )


if __name__ == "__main__":
  absltest.main()
