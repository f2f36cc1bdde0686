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
"""Tests of the base types (_src/core/effect_base.py)."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import textwrap
from typing import Protocol

from absl.testing import absltest
import haiku as hk
import jax
import jax.numpy as jnp

import hk_effects as hke
from hk_effects._src.core import effect_base

# Handlers whose ids a fresh process prints, one per line. Bodies are
# module-level functions, as in user code.
_ID_SCRIPT = textwrap.dedent("""
    import jax, hk_effects as hke
    def forward(x):
      return x
    h = hke.handlers
    handlers = [
        h.WithHaikuRandom.handling(forward),
        h.WithHaikuRandom.handling(forward, hole_predicate=h.tagged("a", "b")),
        h.WithFrozenRandomState.handling(forward, jax.random.key(0), 3),
        h.WithConstantSideInputs.handling(forward, {"mask": 1.0}),
        h.WithSideInputsFromInputTuple.handling(forward, ("a", "b")),
        h.WithHaikuRandom.handling(
            h.WithConstantSideInputs.handling(forward, {"mask": 1.0})),
    ]
    for handler in handlers:
      print(handler.handler_id)
""")


_REPO_ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..")
)


def _forward(x):
  return x


def _other_forward(x):
  return x


class EffectRequestTest(absltest.TestCase):

  def test_missing_non_protocol_attribute_is_an_attribute_error(self):
    with self.assertRaisesRegex(
        AttributeError, "'RandomRequest' object has no attribute 'nxt_key'"
    ):
      hke.RandomRequest().nxt_key()  # pylint: disable=expression-not-assigned

  def test_protocol_method_of_an_unhandled_request_suggests_a_handler(self):
    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"SideInputRequest\(tag='m'\)\.ask\(\) was called.*"
        r"WithConstantSideInputs\.handling\(forward, \{tag: value\}\)",
    ):
      hke.SideInputRequest("m").ask()

  def test_hasattr_copy_and_pickle_see_a_plain_dataclass(self):
    request = hke.TaggedRandomRequest("noise")
    self.assertFalse(hasattr(request, "__array__"))
    self.assertEqual(copy.deepcopy(request), request)
    self.assertEqual(pickle.loads(pickle.dumps(request)), request)

  def test_requests_are_pytree_nodes_with_static_tags(self):
    request = hke.SideInputRequest("mask")
    leaves, treedef = jax.tree_util.tree_flatten(request)
    self.assertEqual(leaves, [])
    self.assertEqual(jax.tree_util.tree_unflatten(treedef, []), request)
    self.assertNotEqual(
        jax.tree_util.tree_structure(hke.SideInputRequest("a")),
        jax.tree_util.tree_structure(hke.SideInputRequest("b")),
    )

  def test_requests_are_frozen(self):
    with self.assertRaises(AttributeError):
      hke.SideInputRequest("mask").tag = "other"


class HandledEffectRefTest(absltest.TestCase):

  def test_missing_non_protocol_attribute_is_an_attribute_error(self):
    ref = hke.HandledEffectRef(hke.RandomRequest(), handler_id="h")
    with self.assertRaisesRegex(AttributeError, "no attribute 'tag'"):
      ref.tag  # pylint: disable=pointless-statement

  def test_protocol_method_outside_its_handler_names_the_handler(self):
    ref = hke.HandledRandomRef(hke.RandomRequest(), handler_id="rand")
    with self.assertRaisesRegex(
        hke.UnhandledEffectError, "handler 'rand', which is not running"
    ):
      ref.next_key()

  def test_ref_keeps_its_request_as_a_child_and_id_as_metadata(self):
    ref = hke.HandledSideInputRef(hke.SideInputRequest("m"), handler_id="h")
    mapped = jax.tree_util.tree_map(lambda x: x, ref)
    self.assertEqual(mapped, ref)
    self.assertEqual(ref.effect_protocol(), hke.SideInputEffect)


class PytreeDataclassTest(absltest.TestCase):

  def test_static_fields_are_metadata_and_others_children(self):
    @hke.pytree_dataclass
    class Scaled:
      value: jax.Array
      name: str = hke.static_field()

    doubled = jax.tree_util.tree_map(lambda v: v * 2, Scaled(jnp.ones(2), "a"))
    self.assertEqual(doubled.name, "a")
    self.assertEqual(doubled.value.tolist(), [2.0, 2.0])
    self.assertEqual(jax.jit(lambda s: s)(doubled).name, "a")


class EffectRuntimeImplTest(absltest.TestCase):

  def test_without_a_scope_it_is_always_alive(self):
    effect_base.EffectRuntimeImpl(scope=None, site=None).check_alive()

  def test_a_user_effect_gets_the_guards_without_calling_them(self):
    # `ask` calls no guard itself; the base class runs them before its body.
    class Forty(Protocol):

      def ask(self) -> int:
        ...

    @hke.pytree_dataclass
    class FortyRequest(hke.EffectRequest):

      @classmethod
      def effect_protocol(cls):
        return Forty

    class FortyImpl(hke.EffectRuntimeImpl):

      def ask(self):
        return 40

    class WithForty(hke.EffectHandler):

      @classmethod
      def effect_protocol(cls):
        return Forty

      def claims(self, request):
        return isinstance(request, FortyRequest)

      def runtime_impl(self, scope, ref, site):
        return FortyImpl(scope, site)

      def __call__(self, arg):
        with hke.handler_scope(self):
          return self.body(arg)

    leaked = []

    class Leaks(hk.Module):

      def __init__(self):
        super().__init__(name="leaks")
        self.forty = FortyRequest()

      def __call__(self, x):
        leaked.append(self.forty)
        return x + self.forty.ask()

    f = hke.transform(
        WithForty(lambda x: Leaks()(x), handler_id="forty"), apply_rng=False
    )
    self.assertEqual(f.apply({}, 2), 42)
    self.assertIsInstance(leaked[-1], FortyImpl)
    with self.assertRaisesRegex(
        hke.UnhandledEffectError,
        r"^The runtime implementation for module 'leaks', attribute 'forty' "
        r"was used after its handler 'forty' returned\. Runtime "
        r"implementations live only for one call; do not store them\.$",
    ):
      leaked[-1].ask()
    # Without `refuses_raw_transforms` a raw transform may serve it (as a
    # side input); with it, the guard names the effect and the method.
    vmapped = lambda x: jax.vmap(Leaks())(x)
    f = hke.transform(WithForty(vmapped, handler_id="forty"), apply_rng=False)
    self.assertEqual(f.apply({}, jnp.zeros([2])).tolist(), [40.0, 40.0])

    class RefusingImpl(hke.EffectRuntimeImpl):
      refuses_raw_transforms = True

      def ask(self):
        return 40

    WithForty.runtime_impl = lambda self, scope, ref, site: RefusingImpl(
        scope, site
    )
    with self.assertRaisesRegex(
        hke.RawTransformError,
        r"^Forty\.ask\(\) at module 'leaks', attribute 'forty' ran under a "
        r"raw JAX transform \(jax\.vmap\).*hk\.vmap\.$",
    ):
      f.apply({}, jnp.zeros([2]))


class DefaultsTest(absltest.TestCase):

  def test_a_protocol_keyword_and_the_handler_defaults(self):
    class Seven(Protocol):

      def ask(self) -> int:
        ...

    @hke.pytree_dataclass
    class SevenRequest(hke.EffectRequest, protocol=Seven):
      pass

    class SevenImpl(hke.EffectRuntimeImpl):

      def ask(self):
        return 7

    class WithSeven(hke.EffectHandler, protocol=Seven):

      def runtime_impl(self, scope, ref, site):
        return SevenImpl(scope, site)

    self.assertIs(SevenRequest.effect_protocol(), Seven)
    handler = WithSeven.handling(lambda x: x, handler_id="seven")
    self.assertIs(handler.effect_protocol(), Seven)
    self.assertEqual(handler.handler_id, "seven")
    self.assertTrue(handler.claims(SevenRequest()))
    self.assertFalse(handler.claims(hke.RandomRequest()))
    self.assertEqual(handler(3), 3)

  def test_a_class_naming_no_protocol_says_how_to_name_one(self):
    class Nameless(hke.EffectRequest):
      pass

    with self.assertRaisesRegex(
        TypeError,
        r"Nameless names no effect protocol: declare it as `class "
        r"Nameless\(EffectRequest, protocol=P\)`",
    ):
      Nameless.effect_protocol()


class HandlerIdTest(absltest.TestCase):

  def test_ids_are_the_same_in_two_fresh_processes(self):
    outputs = []
    for hash_seed in ("1", "2"):
      env = dict(os.environ, PYTHONHASHSEED=hash_seed, JAX_PLATFORMS="cpu")
      outputs.append(
          subprocess.run(
              [sys.executable, "-c", _ID_SCRIPT],
              env=env,
              check=True,
              cwd=_REPO_ROOT,
              capture_output=True,
              text=True,
          ).stdout.split()
      )
    self.assertLen(outputs[0], 6)
    self.assertEqual(outputs[0], outputs[1])
    self.assertLen(set(outputs[0]), 6)
    self.assertTrue(outputs[0][0].startswith("WithHaikuRandom_"))

  def test_ids_differ_for_different_configurations(self):
    h = hke.handlers
    key = jax.random.key(0)
    handlers = [
        h.WithHaikuRandom.handling(_forward),
        h.WithHaikuRandom.handling(_other_forward),
        h.WithHaikuRandom.handling(_forward, hole_predicate=h.tagged("a")),
        h.WithHaikuRandom.handling(_forward, hole_predicate=h.tagged("b")),
        h.WithRandomKeyFromArg.handling(_forward),
        h.WithFrozenRandomState.handling(_forward, key),
        h.WithFrozenRandomState.handling(_forward, key, starting_offset=1),
        h.WithConstantSideInputs.handling(_forward, {"a": 1.0}),
        h.WithConstantSideInputs.handling(_forward, {"b": 1.0}),
        h.WithConstantSideInputs.handling(
            _forward, {"a": 1.0}, keep_unused=True
        ),
        h.WithSideInputsFromInputTuple.handling(_forward, ("a",)),
        h.WithSideInputsFromInputTuple.handling(_forward, ("a", "b")),
    ]
    ids = [handler.handler_id for handler in handlers]
    self.assertLen(set(ids), len(ids))

  def test_ids_are_the_same_for_the_same_configuration(self):
    first = hke.handlers.WithConstantSideInputs.handling(_forward, {"a": 1.0})
    second = hke.handlers.WithConstantSideInputs.handling(_forward, {"a": 2.0})
    self.assertEqual(first.handler_id, second.handler_id)

  def test_explicit_id_is_kept(self):
    self.assertEqual(
        hke.handlers.WithHaikuRandom.handling(
            _forward, handler_id="mine"
        ).handler_id,
        "mine",
    )


class ErrorModuleTest(absltest.TestCase):

  def test_public_errors_show_the_public_module(self):
    self.assertEqual(hke.UnhandledEffectError.__module__, "hk_effects")
    self.assertEqual(hke.RawTransformError.__module__, "hk_effects")


if __name__ == "__main__":
  absltest.main()
