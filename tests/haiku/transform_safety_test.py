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
"""Effects under raw JAX transforms inside a model fail loudly (issue 10).

Haiku threads its state and rng only through its own wrappers. An effect
whose data changes during a call (a random stream, a local state, told side
outputs) must therefore refuse to run under the raw ``jax.*`` equivalent,
naming the module, the attribute, the effect and the Haiku wrapper to use.
Side inputs are read-only values, so they work anywhere.
"""

from absl.testing import absltest
from absl.testing import parameterized
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke


class UsesEffect(hk.Module):
  """Runs its effect inside ``raw`` (a raw JAX transform of a function)."""

  def __init__(self, effect, raw, name="user"):
    super().__init__(name=name)
    self.effect = effect
    self.raw = raw
    self.rng = hke.RandomRequest()
    self.scale = hke.SideInputRequest("scale")
    self.report = hke.SideOutputRequest("report")
    self.count = hke.InitialLocalStateRequest(lambda: jnp.zeros([]), "c")

  def _use(self, x):
    if self.effect == "random":
      return x + jax.random.normal(self.rng.next_key(), x.shape)
    if self.effect == "side_input":
      return x * self.scale.ask()
    if self.effect == "side_output":
      self.report.tell(x)
      return x
    self.count.set(self.count.get() + 1)
    return x

  def __call__(self, x):
    return self.raw(self._use, x)


def _scan(f, x):
  return jax.lax.scan(lambda c, xi: (c, f(xi)), 0.0, x)[1]


def _fori(f, x):
  return jax.lax.fori_loop(0, 1, lambda i, y: f(y), x)


RAW = {
    "jax.lax.scan": _scan,
    "jax.vmap": lambda f, x: jax.vmap(f)(x),
    "jax.lax.cond": lambda f, x: jax.lax.cond(x.sum() > 0, f, lambda y: y, x),
    "jax.lax.fori_loop": _fori,
    "jax.checkpoint": lambda f, x: jax.checkpoint(f)(x),
}
WRAPPER_HINT = {
    "jax.lax.scan": "hk.scan",
    "jax.vmap": "hk.vmap",
    "jax.lax.cond": "hk.cond",
    "jax.lax.fori_loop": "hk.fori_loop",
    "jax.checkpoint": "hk.remat",
}


def _handled(effect, raw):
  def forward(x):
    return UsesEffect(effect, raw)(x)

  model = hke.handlers.WithHaikuRandom.handling(forward)
  model = hke.handlers.WithConstantSideInputs.handling(
      model, {"scale": 3.0}, keep_unused=True
  )
  model = hke.handlers.CollectingSideOutputs.handling(model)
  model = hke.handlers.handle_local_states(model)
  return hke.transform_with_state(model)


def _run(effect, raw):
  f = _handled(effect, raw)
  x = jnp.ones([2, 3])
  params, state = f.init(jax.random.key(0), x)
  return f.apply(params, state, jax.random.key(1), x)


class RawTransformTest(parameterized.TestCase):

  @parameterized.product(
      effect=("random", "side_output", "local_state"), raw=tuple(RAW)
  )
  def test_stateful_effects_refuse_raw_transforms(self, effect, raw):
    with self.assertRaises(
        (hke.RawTransformError, hke.SideOutputPlacementError)
    ) as caught:
      _run(effect, RAW[raw])
    message = str(caught.exception)
    self.assertIn("'user'", message)
    # The message names the Haiku wrapper to use instead.
    self.assertIn(WRAPPER_HINT[raw].split(".")[1], message)

  @parameterized.parameters(*RAW)
  def test_side_inputs_work_under_raw_transforms(self, raw):
    (out, told), _ = _run("side_input", RAW[raw])
    self.assertEmpty(told)
    np.testing.assert_allclose(out, 3.0 * np.ones([2, 3]))

  def test_jit_of_whole_apply_is_not_a_raw_transform(self):
    f = _handled("random", lambda g, x: g(x))
    x = jnp.ones([2, 3])
    params, state = f.init(jax.random.key(0), x)
    (eager, _), _ = f.apply(params, state, jax.random.key(1), x)
    (jitted, _), _ = jax.jit(f.apply)(params, state, jax.random.key(1), x)
    # Same keys; XLA may fuse the normal sampler differently (1 ulp).
    np.testing.assert_allclose(eager, jitted, rtol=1e-6)

  def test_message_names_effect_and_attribute(self):
    with self.assertRaisesRegex(
        hke.RawTransformError,
        r"RandomEffect\.next_key\(\).*'user'.*'rng'" r".*jax\.vmap.*hk\.vmap",
    ):
      _run("random", RAW["jax.vmap"])


if __name__ == "__main__":
  absltest.main()
