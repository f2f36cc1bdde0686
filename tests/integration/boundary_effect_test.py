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
"""The user-defined effect of examples/boundary_effect.py crosses Haiku's
loops: totals told inside hk.scan, hk.vmap, hk.remat and hk.layer_stack
equal those of the unrolled model, under jax.jit too."""

from __future__ import annotations

import os
import subprocess
import sys

from absl.testing import absltest
from absl.testing import parameterized
import conftest  # pylint: disable=unused-import  # Key-reuse checker, alone.
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from examples.boundary_effect import SummingTotals
from examples.boundary_effect import TotalRequest
import hk_effects as hke
from hk_effects._src.haiku import haiku_internals

X = jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)


class Adds(hk.Module):
  """Adds its input (times ``scale``) to the total "t"."""

  def __init__(self, scale=1.0, name=None):
    super().__init__(name=name)
    self.t = TotalRequest("t")
    self.scale = scale

  def __call__(self, x):
    self.t.add(x * self.scale)
    return x + 1


def _totals(forward, jit):
  f = hke.transform(SummingTotals.handling(forward), apply_rng=False)
  params = f.init(jax.random.key(0), X)
  apply = jax.jit(f.apply) if jit else f.apply
  return apply(params, X)


# Each: the model with a wrapper, and the total it must give.
_CASES = {
    "scan": (
        lambda x: hk.scan(lambda c, _: (Adds()(c), None), x, None, length=3)[0],
        float(X.sum() * 3 + 3 * X.size),
    ),
    "vmap": (lambda x: hk.vmap(Adds(), split_rng=False)(x), float(X.sum())),
    "remat": (lambda x: hk.remat(Adds(2.0))(x), float(2 * X.sum())),
    "layer_stack": (
        lambda x: hk.layer_stack(2)(lambda h: Adds()(h))(x),
        float(X.sum() * 2 + X.size),
    ),
    "scan_in_vmap": (
        lambda x: hk.vmap(
            lambda row: hk.scan(
                lambda c, _: (Adds()(c), None), row, None, length=2
            )[0],
            split_rng=False,
        )(x),
        float(X.sum() * 2 + X.size),
    ),
}


class BoundaryEffectTest(parameterized.TestCase):

  @parameterized.product(case=sorted(_CASES), jit=(False, True))
  def test_totals_cross_the_wrapper(self, case, jit):
    forward, want = _CASES[case]
    _, totals = _totals(forward, jit)
    np.testing.assert_allclose(float(totals["t"]), want, rtol=1e-6)

  def test_equals_the_unrolled_model(self):
    def unrolled(x):
      adds = Adds()
      for _ in range(3):
        x = adds(x)
      return x

    scanned = _CASES["scan"][0]
    out_a, totals_a = _totals(unrolled, jit=False)
    out_b, totals_b = _totals(scanned, jit=True)
    np.testing.assert_allclose(out_a, out_b)
    np.testing.assert_allclose(totals_a["t"], totals_b["t"], rtol=1e-6)

  def test_a_bypassed_scan_is_refused(self):
    scan = haiku_internals.original("scan")
    forward = lambda x: scan(lambda c, _: (Adds()(c), None), x, None, length=2)[
        0
    ]
    with self.assertRaisesRegex(
        hke.BoundaryBypassError, "TotalRequest 't' at module 'adds"
    ):
      _totals(forward, jit=False)

  def test_a_branch_is_refused_with_the_fix(self):
    forward = lambda x: hk.cond(x[0, 0] > 0, Adds(), lambda v: v, x)
    with self.assertRaisesRegex(ValueError, "inside hk.cond.*after it"):
      _totals(forward, jit=False)

  def test_the_example_runs(self):
    script = os.path.join(
        os.path.dirname(__file__), "..", "..", "examples", "boundary_effect.py"
    )
    out = subprocess.run(
        [sys.executable, script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
    )
    self.assertRegex(out.stdout, r"active units over 4 calls: \d+ of 32")


if __name__ == "__main__":
  absltest.main()
