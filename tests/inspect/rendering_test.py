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
"""Binding tables render with one colour per effect protocol."""

from absl.testing import absltest
import jax.numpy as jnp
import treescope

import hk_effects as hke


def _table():
  def forward(x):
    return hke.Dropout(0.5)(hke.ApplyAttentionMask("m")(x))

  model = hke.handlers.WithConstantSideInputs.handling(
      hke.handlers.WithHaikuRandom.handling(forward), {"m": jnp.ones(3, bool)}
  )
  return hke.bindings(model)(jnp.ones(3))


class RenderingTest(absltest.TestCase):

  def test_effect_colours_are_distinct(self):
    self.assertNotEqual(
        hke.effect_colour(hke.RandomEffect),
        hke.effect_colour(hke.SideInputEffect),
    )

  def test_treescope_rows_carry_their_effect_colour(self):
    html = treescope.render_to_html(_table().rows, compressed=False)
    for protocol in (hke.RandomEffect, hke.SideInputEffect):
      self.assertIn(hke.effect_colour(protocol), html)

  def test_html_table_colours_rows_and_marks_unhandled(self):
    table = _table()
    html = table._repr_html_()
    self.assertIn(hke.effect_colour(hke.RandomEffect), html)
    self.assertIn(hke.effect_colour(hke.SideInputEffect), html)
    unhandled = hke.bindings(lambda x: hke.Dropout(0.5)(x))(jnp.ones(3))
    self.assertIn("color:#b00", unhandled._repr_html_())


if __name__ == "__main__":
  absltest.main()
