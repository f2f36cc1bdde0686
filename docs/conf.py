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
"""Sphinx configuration: the API reference from docstrings, the tutorial
notebook executed on every build.

Build (CI does, warnings as errors):
``python -m sphinx -W --keep-going -b html docs docs/_build/html``.
"""

from __future__ import annotations

import pathlib
import re

import hk_effects as hke
from hk_effects import handlers

project = "hk_effects"
author = "The hk_effects Authors"
copyright = "2026, The hk_effects Authors"  # pylint: disable=redefined-builtin
release = hke.__version__

extensions = [
    "myst_nb",  # Markdown pages and notebooks (executed below).
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # Google-style Args: / Returns: / Raises:.
]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
html_theme = "furo"
html_title = f"hk_effects {release}"

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# The tutorial runs on every build, so it can never go stale: a cell that
# raises fails the build (cells that show an error catch it themselves).
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 600
nb_execution_show_tb = True
myst_enable_extensions = ["colon_fence"]
suppress_warnings = ["mystnb.unknown_mime_type"]


def _check_api_lists_every_public_name() -> None:
  """The API page names every public name, so a new one is documented."""
  text = (pathlib.Path(__file__).parent / "api.md").read_text()
  listed = set(re.findall(r"^\s{3}(\w+)\s*$", text, re.M))
  public = {n for n in hke.__all__ if n not in ("handlers", "boundaries")}
  public |= set(handlers.__all__)
  missing = sorted(public - listed)
  if missing:
    raise RuntimeError(
        f"docs/api.md does not list {missing}: add each to the autosummary "
        "of its group."
    )


_check_api_lists_every_public_name()
