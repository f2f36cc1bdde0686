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
"""Tests of _src/effects/local_state/local_state_rewriting.py: freezing local
states at given values, and what a frozen state refuses."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
import jax.numpy as jnp
import numpy as np

import hk_effects as hke


class _Counter(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.count = hke.InitialLocalStateRequest(lambda: jnp.zeros([]), "c")

  def __call__(self, x):
    value = self.count.get()
    self.count.set(value + 1)
    return x + value


def _handled():
  return hke.handlers.handle_local_states(lambda x: _Counter(name="n")(x))


class FreezeTest(absltest.TestCase):

  def test_frozen_state_refuses_a_set_and_names_the_fix(self):
    h = _handled()
    f = hke.transform_with_state(h)
    params, state = f.init(None, 1.0)
    for _ in range(3):
      _, state = f.apply(params, state, None, 1.0)
    frozen = hke.handlers.freeze_local_states(h, state)
    with self.assertRaisesRegex(
        hke.UnhandledEffectError, r"set\(\).*'n:count'.*handle_local_states"
    ):
      hke.transform(frozen).apply({}, None, 1.0)

  def test_handled_again_the_frozen_state_is_the_starting_point(self):
    h = _handled()
    f = hke.transform_with_state(h)
    params, state = f.init(None, 1.0)
    for _ in range(3):
      _, state = f.apply(params, state, None, 1.0)
    again = hke.transform_with_state(
        hke.handlers.handle_local_states(
            hke.handlers.freeze_local_states(h, state)
        )
    )
    params2, state2 = again.init(None, 1.0)
    out, state2 = again.apply(params2, state2, None, 1.0)
    np.testing.assert_allclose(out, 4.0)  # 1 + the frozen count 3.

  def test_frozen_value_feeds_a_read_only_model(self):
    h = hke.handlers.handle_local_states(lambda x: _ReadOnly(name="n")(x))
    frozen = hke.handlers.freeze_local_states(
        h, {"~local_state/c": {"n:count": jnp.float32(7.0)}}
    )
    np.testing.assert_allclose(hke.transform(frozen).apply({}, None, 1.0), 8.0)

  def test_freeze_needs_the_local_state_handler(self):
    with self.assertRaisesRegex(TypeError, "handle_local_states"):
      hke.handlers.freeze_local_states(lambda x: x, {})


class _ReadOnly(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.count = hke.InitialLocalStateRequest(lambda: jnp.zeros([]), "c")

  def __call__(self, x):
    return x + self.count.get()


if __name__ == "__main__":
  absltest.main()
