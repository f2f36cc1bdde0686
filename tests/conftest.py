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
"""Test-wide settings: 8 simulated CPU devices and strict JAX.

Strict: rank promotion and key reuse raise.

XLA_FLAGS must be set before jax is imported anywhere; pytest imports this
file first. `.ci/run` sets it too, for runs outside pytest.

The tests live in folders that mirror the package (`core/`, `effects/random/`,
..., `integration/`, `tooling/`) and import the shared helpers next to this
file (`test_utils`, `doc_snippets`, `conftest` itself) by bare name, so this
folder goes on `sys.path` (Bazel: the helpers' `imports = ["."]`). pytest
imports each test file by its bare name too: basenames stay unique.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
  sys.path.insert(0, _HERE)

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

jax.config.update("jax_numpy_rank_promotion", "raise")

# A handler that hands out one key twice fails a test: JAX marks a key used
# once a random function consumes it and raises KeyReuseError on the next use.
# Tests feed each init/apply a fresh key; where one value must be fed twice on
# purpose (determinism checks) they pass `jax.random.clone(key)`.
jax.config.update("jax_debug_key_reuse", True)

# JAX 0.10's key-reuse checker has no rule for the `stack` primitive
# (`jnp.stack`), so it marks every stacked key array as already used. Haiku's
# `hk.next_rng_keys` stacks its keys, and `hk.vmap(split_rng=True)` uses it:
# each vmapped body would fail on its first key. Stacking takes its inputs and
# gives fresh keys, exactly the rule JAX has for `concatenate`; with it the
# checker still catches a reuse inside `hk.vmap`. Skipped once JAX has a rule.
from jax._src.lax import lax as _lax  # pylint: disable=g-import-not-at-top,wrong-import-position
from jax.experimental.key_reuse import _core as _key_reuse  # pylint: disable=g-import-not-at-top,wrong-import-position

if _lax.stack_p not in _key_reuse.key_reuse_signatures:

  @_key_reuse.dynamic_key_reuse_signature
  def _stack_signature(eqn):
    return _key_reuse.KeyReuseSignature(
        *(_key_reuse.Sink(i) for i in range(len(eqn.invars))),
        _key_reuse.Source(0),
    )

  _key_reuse.key_reuse_signatures[_lax.stack_p] = _stack_signature

# Hypothesis profiles: "ci" (the default) keeps the property tests bounded;
# `pytest --hypothesis-profile=thorough` runs many more examples.
import datetime  # pylint: disable=g-import-not-at-top,wrong-import-position

import hypothesis  # pylint: disable=g-import-not-at-top,wrong-import-position

hypothesis.settings.register_profile(
    "ci",
    max_examples=40,
    deadline=datetime.timedelta(seconds=30),
    derandomize=True,
    database=None,
    print_blob=True,
)
hypothesis.settings.register_profile(
    "thorough", max_examples=5000, deadline=None, print_blob=True
)
hypothesis.settings.load_profile("ci")
