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
# Runs the Bazel test targets offline against a virtual environment's Python.
#
#   tools/bazel_test.sh [VENV] [BAZEL_ARGS_OR_TARGETS...]   (default: //...)
#
# VENV is a virtual environment holding jax, dm-haiku, chex and absl-py (e.g.
# the one `pip install -e ".[test,examples]"` filled); without it, $VIRTUAL_ENV,
# else the python3 on PATH. Installs Debian's Bazel 4.2.3 (bazel-bootstrap and
# bazel-platforms) with apt-get when `bazel` is missing: package registries are
# the only network these machines reach, and nothing else is downloaded.
# Writes .bazelrc.user (git ignored) so that later plain `bazel test` runs use
# the same Python and the local stand-ins of third_party/bazel/.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
START=$SECONDS

if [[ $# -gt 0 && -d "$1" ]]; then
  PYTHON="$(cd "$1" && pwd)/bin/python"
  shift
elif [[ -n "${VIRTUAL_ENV:-}" ]]; then
  PYTHON="$VIRTUAL_ENV/bin/python"
else
  PYTHON="$(command -v python3 || true)"
fi
if [[ ! -x "$PYTHON" ]]; then
  echo "bazel_test.sh: no Python at '${PYTHON}'; pass the virtual environment" \
       "as the first argument: tools/bazel_test.sh /path/to/venv" >&2
  exit 2
fi
if ! "$PYTHON" -c "import absl, chex, haiku, jax" 2>/dev/null; then
  echo "bazel_test.sh: $PYTHON cannot import absl, chex, haiku and jax;" \
       "install the project into it first:" \
       "$PYTHON -m pip install -e '.[test,examples]'" >&2
  exit 2
fi

if ! command -v bazel >/dev/null || [[ ! -d /usr/share/bazel/platforms ]]; then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "bazel_test.sh: installing Debian's bazel-bootstrap and bazel-platforms"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
    bazel-bootstrap bazel-platforms >/dev/null
fi

# Bazel 4 takes only absolute paths for --override_repository, so they are
# written here rather than in .bazelrc (which try-imports this file).
STAND_INS="$ROOT/third_party/bazel"
cat > .bazelrc.user <<EOF
# Written by tools/bazel_test.sh; machine-local, not committed.
build --python_path=$PYTHON
build --override_repository=rules_cc=$STAND_INS/rules_cc
build --override_repository=rules_java=$STAND_INS/rules_java
build --override_repository=remote_coverage_tools=$STAND_INS/remote_coverage_tools
build --override_repository=platforms=/usr/share/bazel/platforms
query --override_repository=rules_cc=$STAND_INS/rules_cc
query --override_repository=rules_java=$STAND_INS/rules_java
query --override_repository=remote_coverage_tools=$STAND_INS/remote_coverage_tools
query --override_repository=platforms=/usr/share/bazel/platforms
EOF

if [[ $# -eq 0 ]]; then set -- //...; fi
echo "bazel_test.sh: bazel test $* with $PYTHON"
status=0
bazel test "$@" || status=$?
echo "bazel_test.sh: exit status $status after $((SECONDS - START)) s"
exit "$status"
