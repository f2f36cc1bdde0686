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
"""Tests of _src/haiku/boundaries.py and haiku_internals.py (issue 16).

Haiku's wrappers are boundaries effects cross; a wrapper reached through a
reference to Haiku's original (taken before ``import hk_effects``) is one
hk_effects never sees, and an effect that needs the boundary must then fail
loudly rather than repeat a key or drop a value; effects Haiku threads
itself (its rng sequence, its state) stay right.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from absl.testing import absltest
from absl.testing import parameterized
import conftest  # pylint: disable=unused-import  # Key-reuse checker, alone.
import haiku as hk
from haiku._src import stateful
import jax
import jax.numpy as jnp
import numpy as np
from test_utils import DrawKey

import hk_effects as hke
from hk_effects._src.haiku import haiku_internals

H = hke.handlers
ORIGINAL = {
    name: haiku_internals.original(name)
    for name in (
        "scan",
        "vmap",
        "remat",
        "fori_loop",
        "while_loop",
        "cond",
        "switch",
    )
}


def _rows(keys):
  return {tuple(np.asarray(k).ravel()) for k in np.asarray(keys).reshape(-1, 2)}


class Counter(hk.Module):

  def __init__(self):
    super().__init__(name="counter")
    self.count = hke.InitialLocalStateRequest(lambda: jnp.zeros([]), "c")

  def __call__(self, x):
    self.count.set(self.count.get() + 1)
    return x


def _scan_with(scan, body_module):
  def forward(x):
    module = body_module()
    return scan(lambda c, _: (c, module(x)), 0, None, length=3)[1]

  return forward


class OneObjectPerNameTest(absltest.TestCase):

  def test_public_and_private_names_are_one_object(self):
    for name in (
        "scan",
        "vmap",
        "remat",
        "fori_loop",
        "while_loop",
        "cond",
        "switch",
        "grad",
        "value_and_grad",
        "eval_shape",
    ):
      self.assertIs(getattr(hk, name), getattr(stateful, name), name)
    self.assertIsNot(hk.scan, ORIGINAL["scan"])

  def test_haikus_require_split_rng_advice_reaches_hk_vmap(self):
    f = hk.transform(lambda x: hk.vmap(lambda v: v * 2)(x))
    with self.assertRaisesRegex(TypeError, "split_rng"):
      f.apply({}, None, jnp.ones(2))
    hk.vmap.require_split_rng = False
    try:
      np.testing.assert_array_equal(f.apply({}, None, jnp.ones(2)), [2, 2])
    finally:
      hk.vmap.require_split_rng = True


class BypassTest(parameterized.TestCase):

  def test_path_keys_in_a_bypassed_scan_raise(self):
    f = hke.transform(
        H.WithHaikuRandom.handling(
            _scan_with(ORIGINAL["scan"], lambda: DrawKey(name="draw")),
            path_keys=True,
        )
    )
    with self.assertRaisesRegex(
        hke.BoundaryBypassError,
        r"'rng' of module 'draw'.*did not see entered.*from haiku import "
        "scan.*Import hk_effects before",
    ):
      f.apply({}, jax.random.key(0), 0.0)

  def test_path_keys_in_hk_scan_are_distinct(self):
    f = hke.transform(
        H.WithHaikuRandom.handling(
            _scan_with(hk.scan, lambda: DrawKey(name="draw")), path_keys=True
        )
    )
    self.assertLen(_rows(f.apply({}, jax.random.key(0), 0.0)), 3)

  def test_private_stateful_scan_is_the_boundary_too(self):
    f = hke.transform(
        H.WithHaikuRandom.handling(
            _scan_with(stateful.scan, lambda: DrawKey(name="draw")),
            path_keys=True,
        )
    )
    self.assertLen(_rows(f.apply({}, jax.random.key(0), 0.0)), 3)

  def test_split_rng_members_of_a_bypassed_vmap_raise_under_path_keys(self):
    def forward(x):
      return ORIGINAL["vmap"](
          lambda v: DrawKey(name="draw")(v), split_rng=True
      )(x)

    f = hke.transform(H.WithHaikuRandom.handling(forward, path_keys=True))
    with self.assertRaises(hke.BoundaryBypassError):
      f.apply({}, jax.random.key(0), jnp.zeros(4))

  @parameterized.parameters(
      "scan", "remat", "cond", "switch", "fori_loop", "while_loop", "vmap"
  )
  def test_a_tell_in_a_bypassed_wrapper_blames_the_bypass(self, name):
    probe = lambda v: hke.TellIntermediate("t")(v)
    use = {
        "scan": lambda x: ORIGINAL["scan"](
            lambda c, _: (c, probe(x)), 0, None, length=2
        )[1],
        "remat": lambda x: ORIGINAL["remat"](probe)(x),
        "cond": lambda x: ORIGINAL["cond"](x[0] > 0, probe, probe, x),
        "switch": lambda x: ORIGINAL["switch"](0, [probe, probe], x),
        "fori_loop": lambda x: ORIGINAL["fori_loop"](
            0, 2, lambda i, v: probe(v), x
        ),
        "while_loop": lambda x: ORIGINAL["while_loop"](
            lambda v: v[0] < 3.0, lambda v: probe(v) + 1, x
        ),
        "vmap": lambda x: ORIGINAL["vmap"](probe, split_rng=False)(x),
    }[name]
    f = hke.transform(H.CollectingSideOutputs.handling(use), apply_rng=False)
    with self.assertRaisesRegex(
        hke.BoundaryBypassError,
        "'t' at module 'tell_intermediate', attribute 'intermediate'.*did "
        "not see entered",
    ):
      f.apply({}, jnp.ones(2))

  def test_sequence_keys_in_a_bypassed_scan_stay_distinct(self):
    # Haiku threads its rng sequence through its own scan: nothing to do.
    f = hke.transform(
        H.WithHaikuRandom.handling(
            _scan_with(ORIGINAL["scan"], lambda: DrawKey(name="draw"))
        )
    )
    self.assertLen(_rows(f.apply({}, jax.random.key(0), 0.0)), 3)

  def test_local_state_in_a_bypassed_scan_keeps_every_update(self):
    f = hke.transform_with_state(
        H.handle_local_states(_scan_with(ORIGINAL["scan"], Counter))
    )
    params, state = f.init(None, 0.0)
    _, state = f.apply(params, state, None, 0.0)
    self.assertEqual(float(state["~local_state/c"]["counter:count"]), 3.0)

  def test_reference_taken_before_import_in_a_fresh_process(self):
    script = textwrap.dedent("""
        import jax, jax.numpy as jnp
        from haiku import scan  # Before hk_effects: Haiku's original.
        import haiku as hk
        import hk_effects as hke

        class Draw(hk.Module):
          def __init__(self):
            super().__init__(name="draw")
            self.rng = hke.RandomRequest()
          def __call__(self):
            return jax.random.key_data(self.rng.next_key())

        def forward(x):
          d = Draw()
          return scan(lambda c, _: (c, d()), 0, None, length=3)[1]

        f = hke.transform(hke.handlers.WithHaikuRandom.handling(
            forward, path_keys=True))
        try:
          f.apply({}, jax.random.key(0), 0.0)
        except hke.BoundaryBypassError as e:
          print("refused:", str(e)[:60])
        """)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    self.assertIn(
        "refused: A path-keyed draw of request 'rng' of module",
        out.stdout,
        out.stderr[-2000:],
    )


class VersionTest(absltest.TestCase):

  def test_unsupported_haiku_is_refused_naming_the_range(self):
    with self.assertRaisesRegex(
        ImportError, r"dm-haiku>=0.0.17,<0.0.18.*0\.0\.9"
    ):
      haiku_internals.check_version("0.0.9")

  def test_installed_haiku_is_supported(self):
    haiku_internals.check_version(hk.__version__)


class BoundaryEffectTest(absltest.TestCase):

  def test_register_refuses_what_is_not_a_boundary_effect(self):
    with self.assertRaisesRegex(TypeError, "BoundaryEffect instance.*3"):
      hke.boundaries.register(3)

  def test_hooks_of_the_earlier_protocol_name_their_replacement(self):
    replacements = {
        "wants_member": (
            r"use wants_index, which now also asks for the "
            r"member index under hk.vmap"
        ),
        "needs_carry": r"use overriding outputs",
        "retracing": r"use Body.attempt",
    }
    for hook, replacement in replacements.items():
      with (
          self.subTest(hook),
          self.assertRaisesRegex(
              TypeError,
              rf"Old defines {hook}\(\), a hook BoundaryEffect no "
              rf"longer has; {replacement}",
          ),
      ):
        type("Old", (hke.BoundaryEffect,), {hook: lambda self, b: True})

  def test_an_effect_that_overrides_outputs_carries_them(self):
    class Count(hke.BoundaryEffect):
      on = False
      totals: list = []

      def active(self):
        return self.on

      def outputs(self, boundary, state):
        return jnp.ones([])

      def exit(self, boundary, state, outputs):
        self.totals.append(outputs)

    effect = hke.boundaries.register(Count())
    try:
      effect.on = True
      f = hk.transform(
          lambda x: hk.scan(lambda c, _: (c, None), x, None, length=3)[0]
      )
      f.apply({}, None, jnp.zeros([]))
    finally:
      hke.boundaries.unregister(effect)
    [stacked] = effect.totals
    self.assertEqual(stacked.shape, (3,))


class CarriesTest(absltest.TestCase):

  def test_strings_become_members_and_still_compare_equal(self):
    boundary = hke.boundaries.Boundary("hk.scan", "stacked")
    self.assertIs(boundary.carries, hke.boundaries.Carries.STACKED)
    self.assertEqual(boundary.carries, "stacked")
    self.assertTrue(boundary.is_loop)
    self.assertFalse(boundary.is_branch)

  def test_only_selected_and_carried_outputs_must_agree(self):
    agreeing = [c.value for c in hke.boundaries.Carries if c.agrees]
    self.assertEqual(agreeing, ["selected", "carried"])

  def test_a_misspelt_carries_names_the_value_and_the_choices(self):
    with self.assertRaisesRegex(
        ValueError,
        r"Boundary 'hk.scan': carries='stack' is not one of \['stacked', "
        r"'batched', 'unchanged', 'selected', 'carried'\]",
    ):
      hke.boundaries.Boundary("hk.scan", "stack")


if __name__ == "__main__":
  absltest.main()
