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
"""Tests of _src/effects/side_output/side_output_transport.py: how told values
cross Haiku's wrappers to the collector (stacked by loops, batched by
``hk.vmap``, refused with the fix where they cannot travel)."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke


class _Tells(hk.Module):

  def __init__(self, mode="append", name=None):
    super().__init__(name=name)
    self.out = hke.SideOutputRequest("t", mode=mode)

  def __call__(self, x):
    self.out.tell(x * 2)
    return x + 1


def _collect(forward, *args):
  f = hke.transform(
      hke.handlers.CollectingSideOutputs.handling(forward, tag="t")
  )
  return f.apply({}, None, *args)


class TransportTest(absltest.TestCase):

  def test_scan_stacks_one_value_per_iteration(self):
    def forward(x):
      layer = _Tells(name="layer")
      return hk.scan(lambda c, _: (layer(c), None), x, None, length=3)[0]

    out, told = _collect(forward, jnp.float32(0.0))
    self.assertEqual(float(out), 3.0)
    [value] = told
    np.testing.assert_allclose(value.value, [0.0, 2.0, 4.0])

  def test_vmap_batches_the_value(self):
    def forward(x):
      return hk.vmap(_Tells(name="layer"), split_rng=False)(x)

    _, [value] = _collect(forward, jnp.arange(3.0))
    np.testing.assert_allclose(value.value, [0.0, 2.0, 4.0])

  def test_scan_inside_vmap_stacks_then_batches(self):
    def forward(x):
      layer = _Tells(name="layer")

      def run(x0):
        return hk.scan(lambda c, _: (layer(c), None), x0, None, length=2)[0]

      return hk.vmap(run, split_rng=False)(x)

    _, [value] = _collect(forward, jnp.array([0.0, 10.0]))
    np.testing.assert_allclose(value.value, [[0.0, 2.0], [20.0, 22.0]])

  def test_append_in_a_while_loop_names_the_fix(self):
    def forward(x):
      layer = _Tells(name="layer")
      return hk.while_loop(lambda c: c < 3, layer, x)

    with self.assertRaisesRegex(
        hke.SideOutputPlacementError, "mode='last' or mode='sum'"
    ):
      _collect(forward, jnp.float32(0.0))

  def test_sum_in_a_while_loop_is_carried(self):
    def forward(x):
      layer = _Tells(mode="sum", name="layer")
      return hk.while_loop(lambda c: c < 3, layer, x)

    out, [value] = jax.jit(lambda x: _collect(forward, x))(jnp.float32(0.0))
    self.assertEqual(float(out), 3.0)
    self.assertEqual(float(value.value), 0.0 + 2.0 + 4.0)


if __name__ == "__main__":
  absltest.main()
