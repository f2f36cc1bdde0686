#!/usr/bin/env bash
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
# Rewrites the tree into the project's style; tools/lint.sh then passes
# unless something needs a hand fix. Settings live in pyproject.toml.
#
#   tools/format.sh            # the whole repository
#   tools/format.sh FILE...    # only these files
#
# Needs the lint extra: pip install -e ".[lint]".
set -euo pipefail
cd "$(dirname "$0")/.."

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(.)
fi

# License headers on new files (idempotent).
python tools/add_license_headers.py
# ruff's safe fixes first (import order, unused imports), then the layout:
# pyink would undo nothing ruff does, and reflows what ruff's fixes leave.
ruff check --fix --quiet "${targets[@]}" || true
pyink --quiet "${targets[@]}"
# A removed unused import removes a Bazel dep.
python tools/gen_build_files.py > /dev/null
