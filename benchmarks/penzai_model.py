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
"""The benchmark transformer in Penzai v1 with its data effects.

Needs the optional ``bench`` extra (``pip install penzai``). The model is
built from ``pz.nn`` layers on named axes, as Penzai's own Gemma model is,
and handled by ``WithSideInputsFromInputTuple`` (the mask),
``WithRandomKeyFromArg`` (dropout keys), ``CollectingSideOutputs``
(``TellIntermediate`` after every block) and ``handle_local_states`` (a
per-block counter).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from penzai.deprecated.v1 import pz

from benchmarks import models


@pz.pytree_dataclass
class Counter(pz.Layer):
  """Identity layer that increments a local-state counter on every call."""

  count: pz.de.LocalStateEffect = dataclasses.field(
      default_factory=lambda: pz.de.InitialLocalStateRequest(
          models._zero_count, category=models.COUNTER
      )
  )  # pylint: disable=protected-access

  def __call__(self, x: Any) -> Any:
    self.count.set(self.count.get() + 1)
    return x


def _affine(
    prefix: str, inputs: dict[str, int], outputs: dict[str, int]
) -> pz.nn.Affine:
  return pz.nn.add_parameter_prefix(
      prefix, pz.nn.Affine.from_config(input_axes=inputs, output_axes=outputs)
  )


def _layer_norm(prefix: str) -> pz.nn.LayerNorm:
  return pz.nn.add_parameter_prefix(
      prefix,
      pz.nn.LayerNorm.from_config(
          {"embedding": models.D_MODEL}, epsilon=models.LN_EPS
      ),
  )


def _attention() -> pz.nn.Attention:
  heads = {
      "heads": models.NUM_HEADS,
      "projection": models.D_MODEL // models.NUM_HEADS,
  }
  embedding = {"embedding": models.D_MODEL}
  scale = jnp.asarray(heads["projection"] ** -0.5, jnp.float32)
  return pz.nn.Attention(
      input_to_query=pz.nn.Sequential(
          [_affine("query", embedding, heads), pz.nn.ConstantRescale(by=scale)]
      ),
      input_to_key=_affine("key", embedding, heads),
      input_to_value=_affine("value", embedding, heads),
      query_key_to_attn=pz.nn.Sequential([
          pz.nn.NamedEinsum(
              (
                  {"seq": "tq", "heads": "h", "projection": "p"},
                  {"seq": "tkv", "heads": "h", "projection": "p"},
              ),
              {"seq": "tq", "heads": "h", "kv_seq": "tkv"},
          ),
          pz.nn.ApplyAttentionMask.from_config(
              mask_tag=models.MASK_TAG, masked_out_value=models.MASKED_OUT
          ),
          pz.nn.Softmax("kv_seq"),
      ]),
      attn_value_to_output=pz.nn.Sequential([
          pz.nn.NamedEinsum(
              (
                  {"seq": "tq", "heads": "h", "kv_seq": "tkv"},
                  {"seq": "tkv", "heads": "h", "projection": "p"},
              ),
              {"seq": "tq", "heads": "h", "projection": "p"},
          ),
          _affine("output", heads, embedding),
      ]),
  )


def _block(i: int) -> pz.nn.Sequential:
  embedding = {"embedding": models.D_MODEL}
  block = pz.nn.Sequential([
      pz.nn.Residual(
          pz.nn.Sequential([
              _layer_norm("ln_attention"),
              pz.nn.add_parameter_prefix("attention", _attention()),
              pz.nn.StochasticDropout(models.DROPOUT_RATE),
          ])
      ),
      pz.nn.Residual(
          pz.nn.Sequential([
              _layer_norm("ln_mlp"),
              _affine("mlp_in", embedding, {"neurons": models.MLP_HIDDEN}),
              pz.nn.Elementwise(jax.nn.gelu),
              _affine("mlp_out", {"neurons": models.MLP_HIDDEN}, embedding),
              pz.nn.StochasticDropout(models.DROPOUT_RATE),
          ])
      ),
      pz.de.TellIntermediate.from_config(tag=models.OUTPUT_TAG),
      Counter(),
  ])
  return pz.nn.add_parameter_prefix(f"block_{i}", block)


def _initialized(layer: Any) -> Any:
  """``layer`` with its parameters filled from their shapes.

  Penzai's eager ``initialize_parameters`` runs op by op; values do not
  matter to the benchmark.
  """
  init_key = jax.random.key(1)
  return (
      layer.select()
      .at_instances_of(pz.nn.UninitializedParameter)
      .apply(
          lambda p: p.initialize_with_value(
              models.materialize(jax.eval_shape(p.initializer, init_key))
          )
      )
  )


@functools.lru_cache(maxsize=None)
def _initialized_block(i: int) -> pz.nn.Sequential:
  # Penzai layers are immutable PyTrees, so the models of several depths in
  # one benchmark run share their first blocks instead of rebuilding them.
  return _initialized(_block(i))


def handled_model(depth: int) -> tuple[Any, dict]:
  """The initialized, handled model and its initial local states."""
  model = pz.nn.Sequential(
      [_initialized_block(i) for i in range(depth)]
      + [_initialized(_layer_norm("ln_final"))]
  )
  pz.nn.check_no_duplicated_parameters(model)
  handled = pz.de.WithSideInputsFromInputTuple.handling(
      model, tags=[models.MASK_TAG]
  )
  handled = pz.de.CollectingSideOutputs.handling(handled)
  handled = pz.de.WithRandomKeyFromArg.handling(handled)
  return pz.de.handle_local_states(handled, category=models.COUNTER)


def make_step() -> Callable[..., Any]:
  """A fresh ``step(model, states, key, x, mask)`` function."""

  def step(model, states, key, x, mask):
    x = pz.nx.wrap(x).tag("batch", "seq", "embedding")
    mask = pz.nx.wrap(mask[:, 0]).tag("batch", "seq", "kv_seq")
    (out, told), states = model(((((x, mask), key)), states))
    return (
        out.unwrap("batch", "seq", "embedding"),
        [t.value.unwrap("batch", "seq", "embedding") for t in told],
    ), states

  return step
