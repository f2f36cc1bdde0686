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
# The style checks CI runs (.ci/run), fastest first; each step prints its
# time. Fails on the first step that finds something. tools/format.sh fixes
# what the first three report; mypy's findings are hand fixes.
#
#   license   every source file carries the Apache-2.0 header
#   format    pyink (Google JAX style: 2-space indent, 80 columns)
#   lint      ruff (pyflakes, pycodestyle, bugbear, import order)
#   types     mypy on hk_effects/ and tests/tooling/typing/
#
# Needs the lint extra: pip install -e ".[lint]".
set -euo pipefail
cd "$(dirname "$0")/.."

step() {
  local name=$1
  shift
  local start=$SECONDS
  if ! "$@"; then
    echo "lint.sh: $name failed ($*); tools/format.sh fixes license, format" \
         "and most lint findings." >&2
    exit 1
  fi
  echo "lint.sh: $name ok ($((SECONDS - start)) s)"
}

step license python tools/add_license_headers.py --check
step format pyink --check --quiet .
step lint ruff check --quiet .
step types python -m mypy
