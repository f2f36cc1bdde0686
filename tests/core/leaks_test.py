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
"""No leaks, nothing lost: runtime implementations die with their handler,
calls leave no global state behind (after an exception too), and memory
stays flat over many init / apply calls (docs/design.md: S3, section 9)."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from absl.testing import absltest
from absl.testing import parameterized
import haiku as hk
import jax
import jax.numpy as jnp
from test_utils import global_state_left
from test_utils import nothing_left

import hk_effects as hke

H = hke.handlers


class Everything(hk.Module):
  """Uses all four effects; can stash its runtime implementations."""

  def __init__(
      self,
      stash: list[Any] | None = None,
      fail: bool = False,
      name: str | None = None,
  ):
    super().__init__(name=name)
    self.effects = {
        "random": hke.RandomRequest(),
        "side_input": hke.SideInputRequest("scale"),
        "side_output": hke.SideOutputRequest("out"),
        "local_state": hke.InitialLocalStateRequest(
            lambda: jnp.zeros([]), "count"
        ),
    }
    self.stash = stash
    self.fail = fail

  def __call__(self, x: jax.Array) -> jax.Array:
    effects = self.effects
    if self.stash is not None:
      self.stash.append(dict(effects))
    noise = jax.random.uniform(effects["random"].next_key(), x.shape)
    y = x * effects["side_input"].ask() + noise
    effects["side_output"].tell(y)
    effects["local_state"].set(effects["local_state"].get() + 1.0)
    if self.fail:
      raise RuntimeError("failure inside the body")
    return y


def handled(body):
  return H.WithHaikuRandom.handling(
      H.handle_local_states(
          H.CollectingSideOutputs.handling(
              H.WithConstantSideInputs.handling(body, {"scale": 2.0})
          )
      )
  )


def model(placement: str = "plain", stash=None, fail=False):
  def body(x):
    layer = Everything(stash=stash, fail=fail)
    if placement == "scan":
      return hk.scan(lambda c, xi: (c, layer(xi)), 0.0, x)[1]
    if placement == "remat":
      return hk.remat(layer)(x)
    return layer(x)

  return hke.transform_with_state(handled(body))


X = jnp.ones([3, 2])


class RuntimeImplLifetimeTest(parameterized.TestCase):

  @parameterized.parameters(
      ("random", lambda e: e.next_key()),
      ("side_input", lambda e: e.ask()),
      ("side_output", lambda e: e.tell(jnp.ones(2))),
      ("local_state", lambda e: e.get()),
      ("local_state", lambda e: e.set(jnp.zeros([]))),
  )
  def test_runtime_impl_used_after_its_handler_returned_raises(
      self, effect, use
  ):
    stash = []

    def body(x):
      out = handled(lambda y: Everything(stash=stash)(y))(x)
      use(stash[0][effect])  # The handlers have returned.
      return out

    f = hke.transform_with_state(body)
    with self.assertRaises(hke.UnhandledEffectError) as caught:
      f.init(jax.random.key(0), X[0])
    self.assertIn("was used after its handler", str(caught.exception))
    self.assertIn("do not store them", str(caught.exception))
    self.assertIn("module 'everything'", str(caught.exception))
    self.assertEqual(global_state_left(), nothing_left())

  def test_module_holds_refs_again_after_the_call(self):
    modules = []

    def body(x):
      layer = Everything()
      modules.append(layer)
      return handled(layer)(x)

    hke.transform_with_state(body).init(jax.random.key(0), X[0])
    self.assertTrue(
        all(
            isinstance(v, hke.HandledEffectRef)
            for v in modules[0].effects.values()
        )
    )


class NoGlobalStateLeftTest(parameterized.TestCase):

  @parameterized.product(
      placement=("plain", "scan", "remat"), jit=(False, True)
  )
  def test_after_init_and_apply(self, placement, jit):
    f = model(placement)
    init, apply = (
        (jax.jit(f.init), jax.jit(f.apply)) if jit else (f.init, f.apply)
    )
    params, state = init(jax.random.key(0), X)
    self.assertEqual(global_state_left(), nothing_left())
    (_, told), state = apply(params, state, jax.random.key(1), X)
    self.assertEqual(global_state_left(), nothing_left())
    # Nothing lost: one update per call, one told value (stacked in scan).
    calls = 3 if placement == "scan" else 1
    self.assertEqual(
        float(state["~local_state/count"]["everything:effects['local_state']"]),
        calls,
    )
    self.assertLen(told, 1)
    # Scan stacks the three (2,) rows it told; the others tell X at once.
    self.assertEqual(told[0].value.shape, X.shape)
    self.assertTrue(bool(jnp.all(told[0].value >= 2.0)))

  @parameterized.parameters("plain", "scan", "remat")
  def test_after_an_exception_inside_the_body(self, placement):
    f = model(placement, fail=True)
    with self.assertRaisesRegex(RuntimeError, "failure inside the body"):
      f.init(jax.random.key(0), X)
    self.assertEqual(global_state_left(), nothing_left())

  def test_after_an_unhandled_effect_error(self):
    f = hke.transform_with_state(lambda x: Everything()(x))
    with self.assertRaises(hke.UnhandledEffectError):
      f.init(jax.random.key(0), X)
    self.assertEqual(global_state_left(), nothing_left())

  def test_after_a_handler_id_collision(self):
    inner = H.WithHaikuRandom.handling(lambda x: x, handler_id="same")
    outer = H.WithHaikuRandom.handling(inner, handler_id="same")
    with self.assertRaisesRegex(ValueError, "'same'"):
      hke.transform(outer).init(jax.random.key(0), X)
    self.assertEqual(global_state_left(), nothing_left())

  def test_after_inspection(self):
    table = hke.bindings(handled(lambda x: Everything()(x)))(X)
    self.assertLen(table.rows, 4)
    self.assertEqual(global_state_left(), nothing_left())


def _traced_python_bytes(fn, warmup: int, calls: int) -> int:
  """Python heap growth over ``calls`` calls of ``fn`` after ``warmup``."""
  for _ in range(warmup):
    fn()
  gc.collect()
  tracemalloc.start()
  try:
    before = tracemalloc.take_snapshot()
    for _ in range(calls):
      fn()
    gc.collect()
    after = tracemalloc.take_snapshot()
  finally:
    tracemalloc.stop()
  return sum(s.size_diff for s in after.compare_to(before, "filename"))


class MemoryTest(absltest.TestCase):

  def test_1000_jitted_init_and_apply_calls_keep_memory_flat(self):
    f = model("scan")
    init, apply = jax.jit(f.init), jax.jit(f.apply)
    params, state = init(jax.random.key(0), X)

    def step():
      nonlocal state
      init(jax.random.key(0), X)
      (out, _), state = apply(params, state, jax.random.key(1), X)
      out.block_until_ready()

    growth = _traced_python_bytes(step, warmup=20, calls=1000)
    # A leak of one small object per call would already exceed this.
    self.assertLess(growth, 64 * 1024)
    self.assertEqual(
        float(state["~local_state/count"]["everything:effects['local_state']"]),
        3 * 1020,
    )
    self.assertEqual(global_state_left(), nothing_left())

  def test_traced_apply_calls_keep_memory_flat(self):
    # Without jit every call runs the binding machinery again.
    f = model("plain")
    params, state = f.init(jax.random.key(0), X)
    growth = _traced_python_bytes(
        lambda: f.apply(params, state, jax.random.key(1), X),
        warmup=10,
        calls=100,
    )
    self.assertLess(growth, 64 * 1024)
    self.assertEqual(global_state_left(), nothing_left())


if __name__ == "__main__":
  absltest.main()
