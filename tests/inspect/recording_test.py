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
"""Tests of _src/inspect/recording.py: inspection passes record each request's
protocol calls (how often, with what shapes) without running the model's
effects for real."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
import jax.numpy as jnp

import hk_effects as hke
from hk_effects._src import context
from hk_effects._src.core import binding
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
    observed = lambda: [
        s.observer for s in context.CONTEXT.binding.effect_scopes
    ]
    self.assertEqual(observed(), [])
    hke.effect_signature(_handled())(jnp.ones([2]))
    self.assertEqual(observed(), [])

  def test_a_recorder_keeps_one_row_per_site_and_handler(self):
    rows = []
    recorder = recording.Recorder(rows)
    site = binding.Site("mlp/~/linear", "rng")
    request = hke.RandomRequest()
    for _ in range(3):
      recorder.bound(site, request, "rng")
    recorder.bound(site, request, "other")
    self.assertEqual(
        [(r.module_path, r.attribute_path, r.handler_id) for r in rows],
        [("mlp/~/linear", "rng", "rng"), ("mlp/~/linear", "rng", "other")],
    )

  def test_a_recorder_stops_the_pass_at_an_unclaimed_use(self):
    site = binding.Site("block", "mask")
    with self.assertRaises(recording.StopInspection) as raised:
      recording.Recorder([]).unhandled_use(site, hke.SideInputRequest("m"))
    self.assertEqual(raised.exception.site, site)


if __name__ == "__main__":
  absltest.main()
