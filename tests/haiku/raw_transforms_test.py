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
"""Tests of _src/haiku/raw_transforms.py: an effect whose data Haiku threads
(keys, local state, side outputs) used under a raw JAX transform inside a
Haiku function is refused, naming the module, the effect method and the
Haiku wrapper to use; read-only side inputs are served as they are."""

from __future__ import annotations

from absl.testing import absltest
import conftest  # pylint: disable=unused-import  # hk.vmap(split_rng=True) alone.
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke


class _Scaled(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.scale = hke.SideInputRequest("scale")

  def __call__(self, x):
    return x * self.scale.ask()


def _apply(forward, x):
  f = hke.transform(
      hke.handlers.WithConstantSideInputs.handling(
          forward, {"scale": jnp.float32(2.0)}
      )
  )
  return f.apply({}, None, x)


class _Noisy(hk.Module):

  def __init__(self, name=None):
    super().__init__(name=name)
    self.rng = hke.RandomRequest()

  def __call__(self, x):
    return x + jax.random.normal(self.rng.next_key(), x.shape)


def _apply_random(forward, x):
  f = hke.transform(hke.handlers.WithHaikuRandom.handling(forward))
  return f.apply({}, jax.random.key(0), x)


class RawTransformTest(absltest.TestCase):

  def test_raw_vmap_names_module_method_and_hk_vmap(self):
    def forward(x):
      layer = _Noisy(name="noisy")
      return jax.vmap(layer)(x)

    with self.assertRaisesRegex(
        hke.RawTransformError,
        r"RandomEffect\.next_key\(\).*'noisy'.*" r"jax\.vmap.*hk\.vmap",
    ):
      _apply_random(forward, jnp.ones([3, 2]))

  def test_raw_grad_names_hk_grad(self):
    def forward(x):
      layer = _Noisy(name="noisy")
      return jax.grad(lambda v: layer(v).sum())(x)

    with self.assertRaisesRegex(hke.RawTransformError, r"hk\.grad"):
      _apply_random(forward, jnp.ones([2]))

  def test_hk_vmap_gives_each_member_its_key(self):
    def forward(x):
      return hk.vmap(_Noisy(name="noisy"), split_rng=True)(x)

    out = np.asarray(_apply_random(forward, jnp.zeros([3, 2])))
    self.assertLen({tuple(row.round(6)) for row in out}, 3)

  def test_side_inputs_are_served_under_a_raw_vmap(self):
    def forward(x):
      return jax.vmap(_Scaled(name="scaled"))(x)

    np.testing.assert_allclose(
        _apply(forward, jnp.ones([3, 2])), np.full([3, 2], 2.0)
    )

  def test_the_haiku_wrapper_works_and_gives_the_value(self):
    def forward(x):
      layer = _Scaled(name="scaled")
      return hk.vmap(layer, split_rng=False)(x)

    np.testing.assert_allclose(
        _apply(forward, jnp.ones([3, 2])), np.full([3, 2], 2.0)
    )

  def test_raw_transform_without_effects_inside_is_fine(self):
    def forward(x):
      y = _Scaled(name="scaled")(x)
      return jax.vmap(jnp.sin)(y)

    np.testing.assert_allclose(
        _apply(forward, jnp.ones([2])), np.sin([2.0, 2.0]), rtol=1e-6
    )


if __name__ == "__main__":
  absltest.main()
