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
"""A user-defined effect, written only with the public base classes.

The effect is the one in ``examples/custom_effect.py`` (the README's
"writing a new effect" section, imported here rather than copied): a multiplier that a handler supplies to
layers deep inside a model. The tests run it end to end, under ``jax.jit``,
Haiku's control flow and beside the shipped handlers, and run the example.
"""

from __future__ import annotations

import os
import subprocess
import sys

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from examples.custom_effect import MultiplierEffect
from examples.custom_effect import MultiplierRequest
from examples.custom_effect import WithMultiplier
import hk_effects as hke

_REPO_ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..")
)


class ScaledLinear(hk.Module):
  """A linear layer scaled by the multiplier tagged ``tag``."""

  def __init__(self, size: int, tag: str = "gain", name: str | None = None):
    super().__init__(name=name)
    self.size = size
    self.gain = MultiplierRequest(tag)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.gain.scale(hk.Linear(self.size, name="linear")(x))


def _two_layers(x):
  return ScaledLinear(2, name="outer")(ScaledLinear(3, name="inner")(x))


_X = jnp.arange(4.0).reshape(1, 4)


class UserDefinedEffectTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.f = hke.transform(
        WithMultiplier.handling(_two_layers, "gain"), apply_rng=False
    )
    self.params = self.f.init(jax.random.key(0), (_X, 1.0))

  def test_scales_every_layer_by_the_handled_factor(self):
    p = self.params
    inner = (_X @ p["inner/linear"]["w"] + p["inner/linear"]["b"][None]) * 3.0
    expected = (
        inner @ p["outer/linear"]["w"] + p["outer/linear"]["b"][None]
    ) * 3.0
    np.testing.assert_allclose(self.f.apply(p, (_X, 3.0)), expected, rtol=1e-6)

  def test_jit_with_a_traced_factor_equals_eager(self):
    jitted = jax.jit(self.f.apply)
    for factor in (0.5, 2.0):
      np.testing.assert_array_equal(
          jitted(self.params, (_X, jnp.float32(factor))),
          self.f.apply(self.params, (_X, jnp.float32(factor))),
      )

  def test_grad_with_respect_to_the_factor(self):
    def out(factor):
      return self.f.apply(self.params, (_X, factor)).sum()

    # Biases are zero at init, so the output is quadratic in the factor.
    np.testing.assert_allclose(
        jax.grad(out)(2.0), 2 * 2.0 * out(1.0), rtol=1e-5
    )

  def test_works_inside_hk_scan_and_hk_vmap(self):
    def body(x):
      layer = ScaledLinear(4, name="shared")
      scanned = hk.scan(lambda c, _: (layer(c), None), x, None, length=2)[0]
      return scanned, hk.vmap(layer, split_rng=False)(x)

    f = hke.transform(WithMultiplier.handling(body, "gain"), apply_rng=False)
    params = f.init(jax.random.key(0), (_X, 1.0))
    scanned, vmapped = f.apply(params, (_X, 2.0))
    w = params["shared/linear"]["w"]
    np.testing.assert_allclose(scanned, _X @ w @ w * 4.0, rtol=1e-5)
    np.testing.assert_allclose(vmapped, _X @ w * 2.0, rtol=1e-5)

  def test_nests_with_a_shipped_handler(self):
    def body(x):
      return hke.Dropout(0.5)(ScaledLinear(8, name="inner")(x))

    handled = hke.handlers.WithFrozenRandomState.handling(
        WithMultiplier.handling(body, "gain"), jax.random.key(1)
    )
    f = hke.transform(handled, apply_rng=False)
    params = f.init(jax.random.key(0), (_X, 1.0))
    out1, out2 = f.apply(params, (_X, 1.0)), f.apply(params, (_X, 2.0))
    np.testing.assert_allclose(out2, 2.0 * out1, rtol=1e-6)
    self.assertGreater(int((out1 == 0.0).sum()), 0)

  def test_other_tags_stay_unhandled_and_the_error_names_them(self):
    def body(x):
      return ScaledLinear(2, tag="other", name="odd")(x)

    f = hke.transform(WithMultiplier.handling(body, "gain"), apply_rng=False)
    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"Unhandled MultiplierEffect: module 'odd', attribute 'gain' holds "
        r"MultiplierRequest\(tag='other'\)",
    ):
      f.init(jax.random.key(0), (_X, 1.0))

  def test_bindings_and_free_effect_types_see_the_new_effect(self):
    handler = WithMultiplier.handling(_two_layers, "gain", handler_id="mul")
    table = hke.bindings(handler)((_X, 1.0))
    self.assertEqual(
        [(r.module_path, r.handler_id) for r in table.rows],
        [("inner", "mul"), ("outer", "mul")],
    )
    self.assertEqual(hke.free_effect_types(_two_layers)(_X), [MultiplierEffect])

  def test_runtime_impl_used_after_the_handler_returned_raises(self):
    leaked = []

    class Leaks(hk.Module):

      def __init__(self):
        super().__init__(name="leaks")
        self.gain = MultiplierRequest("gain")

      def __call__(self, x):
        leaked.append(self.gain)
        return x

    f = hke.transform(
        WithMultiplier.handling(lambda x: Leaks()(x), "gain"), apply_rng=False
    )
    f.apply({}, (_X, 1.0))
    with self.assertRaisesRegex(
        hke.UnhandledEffectError, "module 'leaks', attribute 'gain'"
    ):
      leaked[-1].scale(_X)

  def test_example_script_runs_and_prints_the_scaled_outputs(self):
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        PYTHONPATH=os.pathsep.join(
            [_REPO_ROOT, os.environ.get("PYTHONPATH", "")]
        ),
    )
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(_REPO_ROOT, "examples", "custom_effect.py"),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    self.assertIn("MultiplierRequest(tag='gain')", out)
    by_gain = {}
    for line in out.splitlines():
      if line.startswith("gain "):
        gain, values = line[len("gain ") :].split(":")
        by_gain[float(gain)] = np.array(values.strip(" []").split(), np.float32)
    self.assertEqual(sorted(by_gain), [1.0, 2.0])
    # Two scaled layers: doubling the gain quadruples the output.
    np.testing.assert_allclose(by_gain[2.0], 4.0 * by_gain[1.0], rtol=1e-5)


if __name__ == "__main__":
  absltest.main()
