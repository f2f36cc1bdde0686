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
"""Tests of _src/haiku/haiku_internals.py: the one module that reaches into
``haiku._src``: the version check, one object per replaced wrapper, and the
shortcut past Haiku's interceptor chain."""

from __future__ import annotations

from unittest import mock

from absl.testing import absltest
import haiku as hk
from haiku._src import module as hk_module
from haiku._src import stateful
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke
from hk_effects._src.haiku import haiku_internals as hki


class VersionTest(absltest.TestCase):

  def test_supported_version_passes(self):
    hki.check_version("0.0.17")

  def test_unsupported_version_names_the_range(self):
    with self.assertRaisesRegex(ImportError, "0.0.9.*>=0.0.17,<0.0.18"):
      hki.check_version("0.0.9")


class ReplacedWrappersTest(absltest.TestCase):

  def test_one_object_under_every_name(self):
    for name in ("scan", "vmap", "remat", "cond", "while_loop"):
      self.assertIs(getattr(hk, name), getattr(stateful, name))
      self.assertIsNot(hki.original(name), getattr(hk, name))

  def test_haikus_flag_on_vmap_reaches_the_one_vmap(self):
    self.assertIs(hk.vmap.require_split_rng, stateful.vmap.require_split_rng)


class InterceptorShortcutTest(absltest.TestCase):
  """Haiku's chain (a MethodContext per method call) runs only when a user's
  interceptor is on the stack, and then in hk_effects' form (a context for
  the user's interceptors only); results are Haiku's either way."""

  def _apply_counting_contexts(self, forward):
    f = hke.transform(forward)
    x = jnp.ones([1, 3])
    params = f.init(None, x)
    made = []
    original = hk_module.MethodContext

    class Counting(original):  # pylint: disable=too-few-public-methods

      def __new__(cls, *args, **kwargs):
        made.append(kwargs.get("method_name"))
        return original.__new__(original, *args, **kwargs)

    with mock.patch.object(hk_module, "MethodContext", Counting):
      out = f.apply(params, None, x)
    return out, made

  def test_alone_haikus_chain_does_not_run(self):
    out, made = self._apply_counting_contexts(
        lambda x: hk.Linear(2, w_init=jnp.ones)(x)
    )
    np.testing.assert_allclose(out, [[3.0, 3.0]])
    self.assertEqual(made, [])

  def test_with_a_users_interceptor_haikus_chain_runs(self):
    def noop(next_fun, args, kwargs, context):
      del context
      return next_fun(*args, **kwargs)

    def forward(x):
      with hk.intercept_methods(noop):
        return hk.Linear(2, w_init=jnp.ones)(x)

    out, made = self._apply_counting_contexts(forward)
    np.testing.assert_allclose(out, [[3.0, 3.0]])
    self.assertEqual(made, ["__init__", "__call__"])

  def test_users_interceptors_run_in_haikus_order_with_ours_inside(self):
    calls = []

    def named(tag, scale):
      def interceptor(next_fun, args, kwargs, context):
        calls.append((tag, context.method_name, type(context.module).__name__))
        if context.method_name != "__call__":
          return next_fun(*args, **kwargs)
        # Changes the input on the way in and the output on the way out.
        return scale * next_fun(args[0] + 1.0, **kwargs)

      return interceptor

    class Noisy(hk.Module):

      def __init__(self, name=None):
        super().__init__(name=name)
        self.rng = hke.RandomRequest()

      def __call__(self, x):
        return x + 0.0 * jax.random.uniform(self.rng.next_key())

    def forward(x):
      with hk.intercept_methods(named("outer", 2.0)):
        with hk.intercept_methods(named("inner", 10.0)):
          return Noisy()(x)

    f = hke.transform(hke.handlers.WithHaikuRandom.handling(forward))
    out = f.apply({}, jax.random.key(0), jnp.zeros([]))
    # inner sees outer's +1 and adds its own; outer scales inner's output.
    self.assertEqual(float(out), 2.0 * 10.0 * 2.0)
    self.assertEqual(
        calls,
        [
            ("outer", "__init__", "Noisy"),
            ("inner", "__init__", "Noisy"),
            ("outer", "__call__", "Noisy"),
            ("inner", "__call__", "Noisy"),
        ],
    )

  def test_users_interceptor_may_short_circuit(self):
    def constant(next_fun, args, kwargs, context):
      if context.method_name == "__call__":
        return jnp.full([1, 2], 7.0)
      return next_fun(*args, **kwargs)

    def forward(x):
      with hk.intercept_methods(constant):
        return hke.Dropout(0.5)(hk.Linear(2, w_init=jnp.ones)(x))

    f = hke.transform(hke.handlers.WithHaikuRandom.handling(forward))
    x = jnp.ones([1, 3])
    params = hke.transform(
        hke.handlers.WithHaikuRandom.handling(
            lambda x: hke.Dropout(0.5)(hk.Linear(2, w_init=jnp.ones)(x))
        )
    ).init(jax.random.key(0), x)
    np.testing.assert_array_equal(
        f.apply(params, jax.random.key(1), x), [[7.0, 7.0]]
    )


if __name__ == "__main__":
  absltest.main()
