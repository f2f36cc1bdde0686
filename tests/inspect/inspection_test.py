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
"""Tests of hke.bindings, hke.free_effect_types (_src/inspect/inspection.py)."""

from __future__ import annotations

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp

import hk_effects as hke
from hk_effects._src.core import effect_base


def _model(x):
  x = hk.Linear(2, name="proj")(x)
  x = hke.ApplyAttentionMask("mask", name="masking")(x)
  return hke.Dropout(0.5, name="drop")(x)


def _handled(random_id="rand", side_id="consts"):
  inner = hke.handlers.WithConstantSideInputs.handling(
      _model, {"mask": jnp.array([True, False])}, handler_id=side_id
  )
  return hke.handlers.WithHaikuRandom.handling(inner, handler_id=random_id)


def _rows(table):
  return [
      (r.module_path, r.attribute_path, r.request, r.handler_id)
      for r in table.rows
  ]


class BindingsTest(absltest.TestCase):

  def test_rows_name_module_attribute_request_and_handler(self):
    table = hke.bindings(_handled())(jnp.ones([1, 3]))
    self.assertEqual(
        _rows(table),
        [
            ("masking", "mask", hke.SideInputRequest("mask"), "consts"),
            ("drop", "rng", hke.RandomRequest(), "rand"),
        ],
    )
    self.assertIsNone(table.stopped_at)
    self.assertEqual(table.unhandled(), [])

  def test_inferred_handler_ids_appear_in_rows(self):
    handler = hke.handlers.WithHaikuRandom.handling(
        lambda x: hke.Dropout(0.5, name="drop")(x)
    )
    (row,) = hke.bindings(handler)(jnp.ones(2)).rows
    self.assertEqual(row.handler_id, handler.handler_id)
    self.assertTrue(row.handler_id.startswith("WithHaikuRandom_"))

  def test_unhandled_random_request_is_listed_and_the_pass_goes_on(self):
    handler = hke.handlers.WithConstantSideInputs.handling(
        _model, {"mask": jnp.array([True, False])}, handler_id="consts"
    )
    table = hke.bindings(handler)(jnp.ones([1, 3]))
    self.assertEqual(
        [r.handler_id for r in table.rows], ["consts", "unhandled"]
    )
    self.assertEqual([r.module_path for r in table.unhandled()], ["drop"])

  def test_unhandled_side_input_stops_the_pass_and_says_where(self):
    table = hke.bindings(hke.handlers.WithHaikuRandom.handling(_model))(
        jnp.ones([1, 3])
    )
    self.assertEqual(
        _rows(table),
        [("masking", "mask", hke.SideInputRequest("mask"), "unhandled")],
    )
    self.assertEqual(
        table.stopped_at,
        "module 'masking', attribute 'mask': SideInputRequest(tag='mask')",
    )
    self.assertIn("(stopped early at unhandled module 'masking'", str(table))

  def test_prints_as_an_aligned_table(self):
    self.assertEqual(
        str(hke.bindings(_handled())(jnp.ones([1, 3]))),
        "\n".join([
            "module  | attribute | request           | handler",
            "--------+-----------+-------------------+--------",
            "masking | mask      | side input 'mask' | consts",
            "drop    | rng       | random            | rand",
        ]),
    )

  def test_a_request_met_on_every_scan_iteration_is_listed_once(self):
    def forward(x):
      drop = hke.Dropout(0.5, name="drop")
      return hk.scan(lambda c, xi: (c, drop(xi)), 0, x)[1]

    table = hke.bindings(
        hke.handlers.WithHaikuRandom.handling(forward, handler_id="rand")
    )(jnp.ones([3, 2]))
    self.assertEqual(
        _rows(table), [("drop", "rng", hke.RandomRequest(), "rand")]
    )

  def test_runs_abstractly_on_shape_structs(self):
    spec = jax.ShapeDtypeStruct((1, 3), jnp.float32)
    table = hke.bindings(_handled())(spec)
    self.assertLen(table.rows, 2)

  def test_html_colours_rows_by_effect_and_marks_unhandled(self):
    table = hke.bindings(
        hke.handlers.WithConstantSideInputs.handling(
            _model, {"mask": jnp.array([True, False])}
        )
    )(jnp.ones([1, 3]))
    html = table._repr_html_()
    self.assertIn(effect_base.effect_colour(hke.SideInputEffect), html)
    self.assertIn(effect_base.effect_colour(hke.RandomEffect), html)
    self.assertIn('title="RandomEffect"', html)
    self.assertEqual(html.count("font-weight:bold"), 1)


class FreeEffectTypesTest(absltest.TestCase):

  def test_empty_when_everything_is_handled(self):
    self.assertEqual(hke.free_effect_types(_handled())(jnp.ones([1, 3])), [])

  def test_lists_each_unhandled_protocol_once_in_order(self):
    def forward(x):
      x = hke.Dropout(0.5, name="d1")(x)
      x = hke.Dropout(0.5, name="d2")(x)
      return hke.ApplyAttentionMask("mask")(x)

    self.assertEqual(
        hke.free_effect_types(forward)(jnp.ones(2)),
        [hke.RandomEffect, hke.SideInputEffect],
    )

  def test_a_model_without_requests_has_none(self):
    self.assertEqual(
        hke.free_effect_types(lambda x: hk.Linear(2)(x))(jnp.ones([1, 3])), []
    )


if __name__ == "__main__":
  absltest.main()
