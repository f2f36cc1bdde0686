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
"""Path keys (``path_keys=True``): one model written as a Python loop, with
``hk.scan``, ``hk.fori_loop``, ``hk.while_loop`` or ``hk.layer_stack`` draws
bit-identical keys; keys stay distinct; ill-defined coordinates raise."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

import hk_effects as hke

N = 4


class Noise(hk.Module):
  """Adds uniform noise and (unless told not to) tells the key it drew."""

  def __init__(self, tell_key=True, name=None):
    super().__init__(name=name)
    self.rng = hke.RandomRequest()
    self.tell_key = tell_key

  def __call__(self, x):
    key = self.rng.next_key()
    if self.tell_key:
      hke.tell("keys", jax.random.key_data(key))
    return x + jax.random.uniform(key, x.shape)


class Block(hk.Module):
  """Two noise layers made in the call, and a linear layer."""

  def __init__(self, tell_key=True, name=None):
    super().__init__(name=name)
    self.tell_key = tell_key

  def __call__(self, x):
    x = Noise(self.tell_key)(x)
    x = hk.Linear(x.shape[-1], w_init=hk.initializers.Identity())(x)
    return Noise(self.tell_key)(x) * 0.5


def fresh_loop(x, tell_key=True):
  for _ in range(N):
    x = Block(tell_key)(x)
  return x


def shared_loop(x):
  block = Block()
  for _ in range(N):
    x = block(x)
  return x


def scanned(x):
  block = Block()
  x, _ = hk.scan(lambda c, _: (block(c), None), x, None, length=N)
  return x


def stacked(x):
  return hk.layer_stack(N)(lambda y: Block()(y))(x)


def fori(x):
  block = Block()
  return hk.fori_loop(0, N, lambda i, c: block(c), x)


FORMS = dict(
    fresh_loop=fresh_loop,
    shared_loop=shared_loop,
    scan=scanned,
    layer_stack=stacked,
    fori_loop=fori,
)


def _run(
    forward, key=None, handler=hke.handlers.WithRandomKeyFromArg, jit=True
):
  """Output and the told keys of ``forward`` under a path-keyed handler."""
  key = jax.random.key(0) if key is None else key
  f = hke.transform(
      hke.handlers.CollectingSideOutputs.handling(
          handler.handling(forward, path_keys=True), tag="keys"
      ),
      apply_rng=False,
  )
  x = jnp.zeros(3)
  params = f.init(None, ((x, jax.random.clone(key))))
  apply = jax.jit(f.apply) if jit else f.apply
  out, told = apply(params, (x, key))
  # A loop tells one stacked value per site; a Python loop one per call.
  keys = np.concatenate(
      [np.asarray(t.value).reshape(-1, 2) for t in told] + [np.zeros((0, 2))],
      axis=0,
  )
  return np.asarray(out), keys


@functools.lru_cache(maxsize=None)
def _python_loop() -> tuple[np.ndarray, np.ndarray]:
  return _run(fresh_loop)


class FormsTest(parameterized.TestCase):

  @parameterized.named_parameters(
      *[(name, name) for name in FORMS if name != "fresh_loop"]
  )
  def test_same_numbers_as_the_python_loop(self, name):
    expected, expected_keys = _python_loop()
    out, keys = _run(FORMS[name])
    np.testing.assert_array_equal(out, expected)
    self.assertCountEqual(map(tuple, keys), map(tuple, expected_keys))

  def test_every_key_in_the_loop_is_distinct(self):
    _, keys = _python_loop()
    self.assertLen(keys, 2 * N)
    self.assertLen({tuple(k) for k in keys}, 2 * N)

  def test_without_jit_too(self):
    np.testing.assert_array_equal(
        _run(scanned, jit=False)[0], _run(fresh_loop, jit=False)[0]
    )

  def test_reverse_scan_indexes_by_position(self):
    def reversed_scan(x):
      block = Block()
      x, _ = hk.scan(
          lambda c, _: (block(c), None), x, None, length=N, reverse=True
      )
      return x

    def reversed_loop(x):
      blocks = [Block() for _ in range(N)]
      for block in reversed(blocks):
        x = block(x)
      return x

    np.testing.assert_array_equal(
        _run(reversed_scan)[0], _run(reversed_loop)[0]
    )

  def test_while_loop_matches_the_python_loop(self):
    def while_form(x):
      block = Block(tell_key=False)  # Appending in hk.while_loop is refused.
      if hk.running_init():
        return block(x)  # Haiku's idiom: hk.while_loop cannot init.
      x, _ = hk.while_loop(
          lambda c: c[1] < N, lambda c: (block(c[0]), c[1] + 1), (x, 0)
      )
      return x

    f = hke.transform(
        hke.handlers.WithRandomKeyFromArg.handling(while_form, path_keys=True),
        apply_rng=False,
    )
    g = hke.transform(
        hke.handlers.WithRandomKeyFromArg.handling(
            lambda x: fresh_loop(x, tell_key=False), path_keys=True
        ),
        apply_rng=False,
    )
    x, key = jnp.zeros(3), jax.random.key(5)
    params = f.init(None, (x, jax.random.clone(key)))
    out = jax.jit(f.apply)(params, (x, jax.random.clone(key)))
    expected = g.apply(g.init(None, (x, jax.random.clone(key))), (x, key))
    np.testing.assert_array_equal(out, expected)

  def test_nested_loops_match_nested_python_loops(self):
    class Outer(hk.Module):

      def __init__(self, scan, name=None):
        super().__init__(name=name)
        self.scan = scan

      def __call__(self, x):
        if not self.scan:
          for _ in range(3):
            x = Noise()(x)
          return x
        noise = Noise()
        x, _ = hk.scan(lambda c, _: (noise(c), None), x, None, length=3)
        return x

    def python(x):
      for _ in range(2):
        x = Outer(scan=False)(x)
      return x

    def looped(x):
      outer = Outer(scan=True)
      x, _ = hk.scan(lambda c, _: (outer(c), None), x, None, length=2)
      return x

    expected, expected_keys = _run(python)
    out, keys = _run(looped)
    np.testing.assert_array_equal(out, expected)
    self.assertCountEqual(map(tuple, keys), map(tuple, expected_keys))
    self.assertLen({tuple(k) for k in keys}, 6)

  def test_rnn_core_unrolled_in_python_or_by_dynamic_unroll(self):
    class NoisyCore(hk.RNNCore):

      def __init__(self):
        super().__init__()
        self.rng = hke.RandomRequest()

      def __call__(self, x, state):
        h = state + x + jax.random.uniform(self.rng.next_key(), x.shape)
        return h, h

      def initial_state(self, batch_size):
        del batch_size
        return jnp.zeros(3)

    def python(x):
      core, state, outs = NoisyCore(), jnp.zeros(3), []
      for _ in range(5):
        out, state = core(x, state)
        outs.append(out)
      return jnp.stack(outs)

    def unrolled(x):
      core = NoisyCore()
      return hk.dynamic_unroll(core, jnp.stack([x] * 5), jnp.zeros(3))[0]

    np.testing.assert_array_equal(_run(unrolled)[0], _run(python)[0])

  def test_calls_before_and_after_a_loop_continue_the_count(self):
    def python(x):
      noise = Noise()
      for _ in range(N + 2):
        x = noise(x)
      return x

    def looped(x):
      noise = Noise()
      x = noise(x)
      x, _ = hk.scan(lambda c, _: (noise(c), None), x, None, length=N)
      return noise(x)

    np.testing.assert_array_equal(_run(looped)[0], _run(python)[0])

  def test_branches_draw_what_a_python_if_draws(self):
    def python_if(take_first):
      def forward(x):
        noise = Noise(False)
        x = noise(x)
        x = Noise(False)(x) if take_first else noise(noise(x))
        return noise(Noise(False)(x))

      return forward

    def branching(x):
      noise = Noise(False)
      x = noise(x)
      other = Noise(False)
      x = hk.cond(x[0] > 0.5, lambda y: other(y), lambda y: noise(noise(y)), x)
      later = Noise(False)
      return noise(later(x))

    first = _run(python_if(True))[0]
    second = _run(python_if(False))[0]
    out = _run(branching)[0]
    self.assertTrue(np.array_equal(out, first) or np.array_equal(out, second))
    self.assertFalse(np.array_equal(first, second))
    switched = lambda x: hk.switch(
        0, [lambda y: Noise(False)(y), lambda y: Noise(False)(y)], x
    )
    np.testing.assert_array_equal(
        _run(switched)[0], _run(lambda x: Noise(False)(x))[0]
    )

  def test_calls_inside_remat_and_cond_keep_their_coordinates(self):
    # These layers tell nothing: only their keys are compared.
    def plain(x):
      return Noise(False)(Noise(False)(x))

    def wrapped(x):
      x = hk.remat(lambda y: Noise(False)(y))(x)
      return hk.cond(True, lambda y: Noise(False)(y), lambda y: y, x)

    np.testing.assert_array_equal(_run(wrapped)[0], _run(plain)[0])


class HandlersTest(parameterized.TestCase):

  def test_keys_depend_on_the_handler_key(self):
    a, _ = _python_loop()
    b, _ = _run(fresh_loop, key=jax.random.key(2))
    self.assertFalse(np.array_equal(a, b))

  def test_names_matter_through_their_family_only(self):
    def named(x):
      return Noise(name="noise_7")(x)

    def unnamed(x):
      return Noise()(x)

    def other(x):
      return Noise(name="other")(x)

    np.testing.assert_array_equal(_run(named)[0], _run(unnamed)[0])
    self.assertFalse(np.array_equal(_run(other)[0], _run(unnamed)[0]))

  def test_haiku_random_takes_its_root_from_apply_rng(self):
    f = hke.transform(
        hke.handlers.WithHaikuRandom.handling(scanned, path_keys=True)
    )
    g = hke.transform(
        hke.handlers.WithHaikuRandom.handling(stacked, path_keys=True)
    )
    x = jnp.zeros(3)
    pf = f.init(jax.random.key(0), x)
    pg = g.init(jax.random.key(0), x)
    a = f.apply(pf, jax.random.key(7), x)
    b = g.apply(pg, jax.random.key(7), x)
    c = f.apply(pf, jax.random.key(8), x)
    np.testing.assert_array_equal(a, b)
    self.assertFalse(np.array_equal(a, c))

  def test_frozen_and_stateful_handlers_accept_the_option(self):
    frozen = hke.transform(
        hke.handlers.WithFrozenRandomState.handling(
            scanned, jax.random.key(3), path_keys=True
        ),
        apply_rng=False,
    )
    frozen_stack = hke.transform(
        hke.handlers.WithFrozenRandomState.handling(
            stacked, jax.random.key(3), path_keys=True
        ),
        apply_rng=False,
    )
    x = jnp.zeros(3)
    np.testing.assert_array_equal(
        frozen.apply(frozen.init(None, x), x),
        frozen_stack.apply(frozen_stack.init(None, x), x),
    )
    stateful = hke.transform_with_state(
        hke.handlers.handle_local_states(
            hke.handlers.WithStatefulRandomKey.handling(
                scanned, jax.random.key(3), path_keys=True
            )
        )
    )
    params, state = stateful.init(None, x)
    a, state = stateful.apply(params, state, None, x)
    b, state = stateful.apply(params, state, None, x)
    self.assertFalse(np.array_equal(a, b))

  def test_vmap_members_differ_only_with_split_rng(self):
    def mapped(split_rng):
      def forward(x):
        return hk.vmap(lambda y: Noise()(y), split_rng=split_rng)(x)

      return forward

    f = lambda split: hke.transform(
        hke.handlers.WithRandomKeyFromArg.handling(
            mapped(split), path_keys=True
        )
    )
    x = jnp.zeros((3, 2))
    for split, distinct in ((True, 3), (False, 1)):
      t = f(split)
      # Haiku's split_rng=True splits apply's rng, so it needs one.
      params = t.init(jax.random.key(1), (x, jax.random.key(0)))
      out = jax.jit(t.apply)(params, jax.random.key(2), (x, jax.random.key(0)))
      self.assertLen({tuple(row) for row in np.asarray(out)}, distinct)

  def test_sequence_mode_is_unchanged_and_differs(self):
    seq = hke.transform(
        hke.handlers.WithRandomKeyFromArg.handling(fresh_loop), apply_rng=False
    )
    x = jnp.zeros(3)
    params = seq.init(None, (x, jax.random.key(0)))
    out = seq.apply(params, (x, jax.random.key(0)))
    self.assertFalse(np.array_equal(out, _python_loop()[0]))

  def test_path_keys_must_be_a_bool(self):
    with self.assertRaisesRegex(
        TypeError, "path_keys must be True or False; got 'yes'"
    ):
      hke.handlers.WithHaikuRandom.handling(lambda x: x, path_keys="yes")


class CollisionTest(absltest.TestCase):

  def test_a_family_called_twice_per_iteration_raises(self):
    def twice(x):
      a, b = Noise(), Noise()
      x, _ = hk.scan(lambda c, _: (b(a(c)), None), x, None, length=N)
      return x

    with self.assertRaisesRegex(
        hke.PathKeyCollisionError,
        r"'noise' \(here 'noise_1'\) are called 2 times in one iteration of "
        r"hk.scan.*Call them from one module",
    ):
      _run(twice)

  def test_a_module_called_directly_in_two_nested_loops_raises(self):
    def nested(x):
      noise = Noise()

      def outer(c, _):
        c, _ = hk.scan(lambda d, _: (noise(d), None), c, None, length=2)
        return c, None

      x, _ = hk.scan(outer, x, None, length=2)
      return x

    with self.assertRaisesRegex(
        hke.PathKeyCollisionError,
        "'noise' is called directly inside two nested loops",
    ):
      _run(nested)

  def test_a_call_after_a_loop_of_unknown_length_raises(self):
    def after_while(x):
      noise = Noise(tell_key=False)
      if hk.running_init():
        return noise(x)
      x = hk.while_loop(lambda c: c.sum() < 1.0, noise, x)
      return noise(x)

    f = hke.transform(
        hke.handlers.WithRandomKeyFromArg.handling(after_while, path_keys=True),
        apply_rng=False,
    )
    x = jnp.zeros(3)
    params = f.init(None, (x, jax.random.key(0)))
    with self.assertRaisesRegex(
        hke.PathKeyCollisionError, "after a loop of unknown length"
    ):
      f.apply(params, (x, jax.random.key(1)))

  def test_modules_that_draw_nothing_are_never_refused(self):
    def two_linears(x):
      a, b = hk.Linear(3, w_init=jnp.ones), hk.Linear(3, w_init=jnp.ones)
      x, _ = hk.scan(lambda c, _: (b(a(c)), None), x, None, length=N)
      return Noise()(x)

    out, keys = _run(two_linears)
    self.assertEqual(out.shape, (3,))
    self.assertLen(keys, 1)

  def test_raw_transforms_are_still_refused(self):
    def raw(x):
      noise = Noise()
      return jax.vmap(noise)(jnp.stack([x, x]))

    with self.assertRaises(hke.RawTransformError):
      _run(raw)


if __name__ == "__main__":
  absltest.main()
