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
"""Tests of hk_effects/recording.py: inspection passes record each request's
protocol calls (how often, with what shapes) without running the model's
effects for real."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
import jax.numpy as jnp

import hk_effects as hke
from hk_effects._src.inspect import recording


class _TellsTwice(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.out = hke.SideOutputRequest("t")
    self.scale = hke.SideInputRequest("m")

  def __call__(self, x):
    self.out.tell(x)
    self.out.tell(jnp.stack([x, x]))
    return x * self.scale.ask()


def _handled():
  f = hke.handlers.CollectingSideOutputs.handling(
      lambda x: _TellsTwice(name="twice")(x), tag="t"
  )
  return hke.handlers.WithConstantSideInputs.handling(
      f, {"m": jnp.float32(3.0)}
  )


class RecordingTest(absltest.TestCase):

  def test_signature_counts_calls_and_keeps_shapes(self):
    text = str(hke.effect_signature(_handled())(jnp.ones([2])))
    [row] = [line for line in text.splitlines() if "tells" in line]
    self.assertIn("tells 't' x2:", row)
    self.assertIn("float32[2,2]", row)
    self.assertIn("float32[2] ", row.replace(",", " "))
    self.assertIn("needs 'm': float32[]", text)

  def test_recording_is_off_outside_a_pass(self):
    self.assertFalse(recording.recording_calls_now())
    hke.effect_signature(_handled())(jnp.ones([2]))
    self.assertFalse(recording.recording_calls_now())


if __name__ == "__main__":
  absltest.main()
