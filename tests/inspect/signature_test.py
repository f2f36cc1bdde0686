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
"""Tests of hke.effect_signature (static effect signature, issue 10)."""

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp

import hk_effects as hke


class Block(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.mask = hke.SideInputRequest("attn_mask")
    self.cache = {
        "k": hke.InitialLocalStateRequest(
            lambda: jnp.zeros([4, 2], jnp.bfloat16), "cache", name="k_cache"
        )
    }

  def __call__(self, x):
    x = jnp.where(self.mask.ask(), x, 0.0)
    self.cache["k"].set(self.cache["k"].get())
    return hke.Dropout(0.5)(hke.TellIntermediate("acts")(x))


def _model(forward):
  model = hke.handlers.WithSideInputsFromInputTuple.handling(
      forward, tags=("attn_mask",), handler_id="inputs"
  )
  model = hke.handlers.WithHaikuRandom.handling(model, handler_id="rng")
  return hke.handlers.CollectingSideOutputs.handling(model, handler_id="out")


def _args():
  return (jnp.ones([2, 8]), jnp.ones([2, 8], bool))


class EffectSignatureTest(absltest.TestCase):

  def test_reports_each_effect_with_shapes_and_handlers(self):
    sig = hke.effect_signature(_model(lambda x: Block()(x)))(_args())
    by_attr = {(e.module_path, e.attribute_path): e for e in sig.entries}
    mask = by_attr[("block", "mask")]
    self.assertEqual(
        (mask.effect, mask.handler_id), ("SideInputEffect", "inputs")
    )
    self.assertIn("bool[2,8]", mask.detail)
    cache = by_attr[("block", "cache['k']")]
    self.assertEqual(cache.handler_id, "unhandled")
    self.assertIn("'k_cache'", cache.detail)
    self.assertIn("bfloat16[4,2]", cache.detail)
    told = by_attr[("block/tell_intermediate", "intermediate")]
    self.assertEqual(told.handler_id, "out")
    self.assertIn("'acts'", told.detail)
    self.assertIn("float32[2,8]", told.detail)
    rng = by_attr[("block/dropout", "rng")]
    self.assertEqual(rng.handler_id, "rng")
    self.assertIn("1 next_key()", rng.detail)
    self.assertEqual(
        [e.attribute_path for e in sig.unhandled()], ["cache['k']"]
    )

  def test_per_member_state_under_hke_vmap_reports_what_is_stored(self):
    class Running(hk.Module):

      def __init__(self):
        super().__init__()
        self.total = hke.InitialLocalStateRequest(
            lambda: jnp.zeros([2]), category="stats"
        )

      def __call__(self, x):
        self.total.set(self.total.get() + x)
        return x

    def forward(xs):
      return hke.vmap(
          Running(), split_rng=False, local_state_axes={"stats": 0}
      )(xs)

    model = hke.handlers.handle_local_states(forward)
    (entry,) = hke.effect_signature(model)(jnp.zeros([5, 2])).entries
    self.assertEqual(
        entry.detail,
        "state unnamed [stats]: float32[5,2] stored, float32[2] per member",
    )
    _, state = hke.transform_with_state(model).init(None, jnp.zeros([5, 2]))
    self.assertEqual(state["~local_state/stats"]["running:total"].shape, (5, 2))

  def test_shared_state_reports_one_shape(self):
    class Running(hk.Module):

      def __init__(self):
        super().__init__()
        self.total = hke.InitialLocalStateRequest(
            lambda: jnp.zeros([2]), category="stats"
        )

      def __call__(self, x):
        self.total.set(self.total.get() + x.sum(0))
        return x

    model = hke.handlers.handle_local_states(lambda x: Running()(x))
    (entry,) = hke.effect_signature(model)(jnp.zeros([5, 2])).entries
    self.assertEqual(entry.detail, "state unnamed [stats]: float32[2]")

  def test_includes_requests_reached_only_inside_control_flow(self):
    def forward(x):
      dropout = hke.Dropout(0.5)
      return hk.cond(x.sum() > 0, lambda: x, lambda: dropout(x))

    sig = hke.effect_signature(hke.handlers.WithHaikuRandom.handling(forward))(
        jnp.ones([2, 8])
    )
    self.assertIn(
        ("dropout", "rng"),
        {(e.module_path, e.attribute_path) for e in sig.entries},
    )

  def test_counts_keys_drawn(self):
    class TwoDraws(hk.Module):

      def __init__(self):
        super().__init__()
        self.rng = hke.RandomRequest()

      def __call__(self, x):
        return (
            x
            + jax.random.normal(self.rng.next_key())
            + jax.random.normal(self.rng.next_key())
        )

    sig = hke.effect_signature(
        hke.handlers.WithHaikuRandom.handling(lambda x: TwoDraws()(x))
    )(0.0)
    self.assertIn("2 next_key()", sig.entries[0].detail)

  def test_table_text_and_html(self):
    sig = hke.effect_signature(_model(lambda x: Block()(x)))(_args())
    text = str(sig)
    self.assertIn("module", text.splitlines()[0])
    self.assertLen(text.splitlines(), 2 + len(sig.entries))
    self.assertIn(hke.effect_colour(hke.RandomEffect), sig._repr_html_())

  def test_stops_at_unhandled_side_input_and_says_so(self):
    sig = hke.effect_signature(lambda x: Block()(x))(jnp.ones([2, 8]))
    self.assertIn("attn_mask", sig.stopped_at)
    self.assertIn("stopped early", str(sig))


if __name__ == "__main__":
  absltest.main()
