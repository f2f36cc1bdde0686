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
"""Three real Haiku models, each as its authors write it and as it is ported.

Where ``benchmarks/models.py`` builds synthetic stacks, these are the models
Haiku users have: each comes in a *plain* version (plain Haiku, the way the
model's authors write it) and an *hk_effects* version (the same model ported
the way a migrating user would, with the same module names, so it takes the
plain version's parameters and state):

* ``resnet``: the plain version is ``hk.nets.ResNet`` itself (basic blocks,
  small channels, 32x32 images), called with ``is_training=True``. The port
  rewrites its blocks so that ``is_training`` and ``test_local_stats`` are
  side inputs of a ``hk.BatchNorm`` subclass (served by
  ``WithConstantSideInputs``) and every block tells its output. ``depth`` is
  the number of blocks per group (2 is ResNet-18's layout).
* ``lm``: a pre-LN transformer language model in the style of dm-haiku's
  ``examples/transformer`` (token and learned positional
  embeddings, ``hk.MultiHeadAttention``, dropout, final LayerNorm, logits).
  The plain version threads the causal mask and the positions through every
  call as arguments and draws dropout keys with ``hk.next_rng_key()``; the
  port reads them as side inputs, draws keys from a ``hke.RandomRequest``
  (``WithHaikuRandom``) and tells each layer's residual stream. ``depth`` is
  the number of layers.
* ``lstm``: an ``hk.DeepRNN`` of LSTMs sampling ``SAMPLE_LENGTH``
  tokens through ``hk.dynamic_unroll`` (dm-haiku's ``examples/rnn``); the
  plain core draws each token's key with ``hk.next_rng_key()``, the port from
  a ``hke.RandomRequest``. ``depth`` is the number of LSTM layers.

The ports' told values are not collected in the benchmark's step (a training
or serving step does not look at them): that is the case that must cost
nothing (``tests/tooling/benchmark_structure_test.py`` checks the jaxprs are
equal). ``ported_resnet(depth, collect=True)`` and
``ported_lm(depth, collect=True)`` wrap the ports in a
``CollectingSideOutputs``, for checking what is told.
"""

from __future__ import annotations

import abc
from typing import Any, Callable

import haiku as hk
import jax
import jax.numpy as jnp

from benchmarks import models
import hk_effects as hke

Version = models.Version

RESNET, LM, LSTM = "resnet", "lm", "lstm"
PLAIN, HKE = "hand-threaded", "hk_effects"

# Depths measured by default (the targets are decided at the first), and the
# deeper ones a full run adds.
DEFAULT_DEPTHS = {RESNET: [2], LM: [4], LSTM: [2]}
FULL_DEPTHS = {RESNET: [2, 4], LM: [4, 12], LSTM: [2, 4]}

# --- ResNet -----------------------------------------------------------------

IMAGE_SIZE = 32
IMAGE_BATCH = 8
CHANNELS = (16, 32, 64, 128)
INITIAL_CHANNELS = 16
NUM_CLASSES = 10
USE_PROJECTION = (True, True, True, True)
STRIDES = (1, 2, 2, 2)
# hk.nets.ResNet's defaults, which the port repeats.
BN_CONFIG = {
    "decay_rate": 0.9,
    "eps": 1e-5,
    "create_scale": True,
    "create_offset": True,
}
BLOCK_OUTPUT_TAG = "block_output"


def resnet_inputs(seed: int = 0) -> jax.Array:
  """A batch of images ``[B, H, W, 3]``."""
  return jax.random.normal(
      jax.random.key(seed), (IMAGE_BATCH, IMAGE_SIZE, IMAGE_SIZE, 3)
  )


def plain_resnet_forward(depth: int) -> Callable[[jax.Array], jax.Array]:
  """``hk.nets.ResNet`` as shipped, in training mode."""

  def forward(images):
    net = hk.nets.ResNet(
        blocks_per_group=(depth,) * 4,
        num_classes=NUM_CLASSES,
        bn_config=dict(BN_CONFIG),
        resnet_v2=False,
        bottleneck=False,
        channels_per_group=CHANNELS,
        use_projection=USE_PROJECTION,
        initial_conv_config={"output_channels": INITIAL_CHANNELS},
        strides=STRIDES,
    )
    return net(images, is_training=True, test_local_stats=False)

  return forward


class SideInputBatchNorm(hk.BatchNorm):
  """``hk.BatchNorm`` whose mode flags are side inputs rather than arguments.

  The port's one new idea: no block has to pass ``is_training`` down.
  """

  def __init__(self, name: str, **bn_config: Any):
    super().__init__(name=name, **bn_config)
    self.is_training = hke.SideInputRequest("is_training")
    self.test_local_stats = hke.SideInputRequest("test_local_stats")

  def __call__(
      self, inputs: jax.Array
  ) -> jax.Array:  # pytype: disable=signature-mismatch
    return super().__call__(
        inputs, self.is_training.ask(), self.test_local_stats.ask()
    )


class PortedBlock(hk.Module):
  """``hk.nets.ResNet.BlockV1`` (no bottleneck), flags from side inputs, its
  output told."""

  def __init__(
      self, channels: int, stride: int, use_projection: bool, name: str
  ):
    super().__init__(name=name)
    self.use_projection = use_projection
    bn_config = dict(BN_CONFIG)
    if use_projection:
      self.proj_conv = hk.Conv2D(
          channels,
          kernel_shape=1,
          stride=stride,
          with_bias=False,
          padding="SAME",
          name="shortcut_conv",
      )
      self.proj_batchnorm = SideInputBatchNorm(
          name="shortcut_batchnorm", **bn_config
      )
    self.layers = tuple(
        (
            hk.Conv2D(
                channels,
                kernel_shape=3,
                stride=stride if i == 0 else 1,
                with_bias=False,
                padding="SAME",
                name=f"conv_{i}",
            ),
            SideInputBatchNorm(name=f"batchnorm_{i}", **bn_config),
        )
        for i in range(2)
    )
    self.output = hke.SideOutputRequest(BLOCK_OUTPUT_TAG)

  def __call__(self, inputs: jax.Array) -> jax.Array:
    out = shortcut = inputs
    if self.use_projection:
      shortcut = self.proj_batchnorm(self.proj_conv(shortcut))
    for i, (conv, bn) in enumerate(self.layers):
      out = bn(conv(out))
      if i < len(self.layers) - 1:
        out = jax.nn.relu(out)
    return self.output.tell(jax.nn.relu(out + shortcut))


class PortedBlockGroup(hk.Module):
  """``hk.nets.ResNet.BlockGroup`` without the flags."""

  def __init__(
      self,
      channels: int,
      num_blocks: int,
      stride: int,
      use_projection: bool,
      name: str,
  ):
    super().__init__(name=name)
    self.blocks = [
        PortedBlock(
            channels,
            stride=1 if i else stride,
            use_projection=i == 0 and use_projection,
            name=f"block_{i}",
        )
        for i in range(num_blocks)
    ]

  def __call__(self, inputs: jax.Array) -> jax.Array:
    out = inputs
    for block in self.blocks:
      out = block(out)
    return out


class PortedResNet(hk.Module):
  """``hk.nets.ResNet`` (v1, basic blocks) as a user ports it."""

  def __init__(self, depth: int, name: str = "res_net"):
    super().__init__(name=name)
    self.initial_conv = hk.Conv2D(
        INITIAL_CHANNELS,
        kernel_shape=7,
        stride=2,
        with_bias=False,
        padding="SAME",
        name="initial_conv",
    )
    self.initial_batchnorm = SideInputBatchNorm(
        name="initial_batchnorm", **BN_CONFIG
    )
    self.block_groups = [
        PortedBlockGroup(
            CHANNELS[i],
            depth,
            STRIDES[i],
            USE_PROJECTION[i],
            name=f"block_group_{i}",
        )
        for i in range(4)
    ]
    self.logits = hk.Linear(NUM_CLASSES, w_init=jnp.zeros, name="logits")

  def __call__(self, images: jax.Array) -> jax.Array:
    out = jax.nn.relu(self.initial_batchnorm(self.initial_conv(images)))
    out = hk.max_pool(
        out, window_shape=(1, 3, 3, 1), strides=(1, 2, 2, 1), padding="SAME"
    )
    for group in self.block_groups:
      out = group(out)
    return self.logits(jnp.mean(out, axis=(1, 2)))


def ported_resnet_forward(
    depth: int, collect: bool = False
) -> Callable[[jax.Array], Any]:
  """The port in its handler: training mode, block outputs told (collected
  only with ``collect``)."""

  def model(images):
    return PortedResNet(depth)(images)

  if collect:
    model = hke.handlers.CollectingSideOutputs.handling(model)
  return hke.handlers.WithConstantSideInputs.handling(
      model, {"is_training": True, "test_local_stats": False}
  )


def plain_resnet(depth: int) -> Version:
  """``step(params, state, rng, images)`` of ``hk.nets.ResNet``."""
  images = resnet_inputs()
  transformed = hk.transform_with_state(plain_resnet_forward(depth))
  params, state = models.materialize(
      jax.eval_shape(transformed.init, jax.random.key(1), images)
  )
  return Version(
      PLAIN,
      lambda: hk.transform_with_state(plain_resnet_forward(depth)).apply,
      (params, state, None, images),
  )


def ported_resnet(depth: int, collect: bool = False) -> Version:
  """``step(params, state, rng, images)`` of the port."""
  images = resnet_inputs()
  transformed = hke.transform_with_state(ported_resnet_forward(depth, collect))
  params, state = models.materialize(
      jax.eval_shape(transformed.init, jax.random.key(1), images)
  )
  return Version(
      HKE,
      lambda: hke.transform_with_state(
          ported_resnet_forward(depth, collect)
      ).apply,
      (params, state, None, images),
  )


# --- Transformer language model -------------------------------------------

VOCAB = 256
LM_D_MODEL = 128
LM_HEADS = 4
LM_SEQUENCE = 64
LM_BATCH = 8
LM_MAX_LENGTH = 128
LM_DROPOUT = 0.1
RESIDUAL_TAG = "residual"


def lm_inputs(seed: int = 0) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Tokens ``[B, T]``, positions ``[B, T]`` and a causal mask
  ``[B, 1, T, T]``."""
  tokens = jax.random.randint(
      jax.random.key(seed), (LM_BATCH, LM_SEQUENCE), 0, VOCAB
  )
  positions = jnp.broadcast_to(jnp.arange(LM_SEQUENCE), tokens.shape)
  causal = jnp.tril(jnp.ones((LM_SEQUENCE, LM_SEQUENCE), bool))
  mask = jnp.broadcast_to(causal, (LM_BATCH, 1, LM_SEQUENCE, LM_SEQUENCE))
  return tokens, positions, mask


def _lm_layer_norm(name: str) -> hk.LayerNorm:
  return hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name=name)


class DenseBlock(hk.Module):
  """The MLP of a transformer layer (``examples/transformer``'s)."""

  def __call__(self, x: jax.Array) -> jax.Array:
    init = hk.initializers.VarianceScaling(1.0)
    x = hk.Linear(4 * LM_D_MODEL, w_init=init, name="linear_0")(x)
    return hk.Linear(LM_D_MODEL, w_init=init, name="linear_1")(jax.nn.gelu(x))


def _attention(num_layers: int) -> hk.MultiHeadAttention:
  return hk.MultiHeadAttention(
      num_heads=LM_HEADS,
      key_size=LM_D_MODEL // LM_HEADS,
      w_init=hk.initializers.VarianceScaling(2 / num_layers),
      name="attention",
  )


class PlainEmbedding(hk.Module):
  """Token plus learned positional embeddings, positions as an argument."""

  def __call__(self, tokens: jax.Array, positions: jax.Array) -> jax.Array:
    embed = hk.Embed(VOCAB, LM_D_MODEL, name="tokens")(tokens)
    table = hk.get_parameter(
        "positional_embeddings",
        [LM_MAX_LENGTH, LM_D_MODEL],
        init=hk.initializers.TruncatedNormal(0.02),
    )
    return embed + table[positions]


class PlainTransformer(hk.Module):
  """The pre-LN stack with mask argument and ``hk.next_rng_key()``."""

  def __init__(self, num_layers: int, name: str = "transformer"):
    super().__init__(name=name)
    self.num_layers = num_layers

  def __call__(self, h: jax.Array, mask: jax.Array) -> jax.Array:
    for i in range(self.num_layers):
      with hk.experimental.name_scope(f"layer_{i}"):
        normed = _lm_layer_norm("ln_attention")(h)
        attended = _attention(self.num_layers)(normed, normed, normed, mask)
        h = h + hk.dropout(hk.next_rng_key(), LM_DROPOUT, attended)
        dense = DenseBlock(name="mlp")(_lm_layer_norm("ln_mlp")(h))
        h = h + hk.dropout(hk.next_rng_key(), LM_DROPOUT, dense)
    return _lm_layer_norm("ln_final")(h)


def plain_lm_forward(depth: int) -> Callable[..., jax.Array]:
  """``(tokens, positions, mask) -> logits``."""

  def forward(tokens, positions, mask):
    h = PlainEmbedding(name="embedding")(tokens, positions)
    h = PlainTransformer(depth)(h, mask)
    return hk.Linear(VOCAB, name="logits")(h)

  return forward


class PortedEmbedding(hk.Module):
  """The embedding with positions read as a side input."""

  def __init__(self, name: str | None = None):
    super().__init__(name=name)
    self.positions = hke.SideInputRequest("positions")

  def __call__(self, tokens: jax.Array) -> jax.Array:
    embed = hk.Embed(VOCAB, LM_D_MODEL, name="tokens")(tokens)
    table = hk.get_parameter(
        "positional_embeddings",
        [LM_MAX_LENGTH, LM_D_MODEL],
        init=hk.initializers.TruncatedNormal(0.02),
    )
    return embed + table[self.positions.ask()]


class PortedTransformer(hk.Module):
  """The stack with the mask a side input, keys from a random request and
  each layer's residual stream told."""

  def __init__(self, num_layers: int, name: str = "transformer"):
    super().__init__(name=name)
    self.num_layers = num_layers
    self.mask = hke.SideInputRequest("mask")
    self.rng = hke.RandomRequest()
    self.residual = hke.SideOutputRequest(RESIDUAL_TAG)

  def __call__(self, h: jax.Array) -> jax.Array:
    mask = self.mask.ask()
    for i in range(self.num_layers):
      with hk.experimental.name_scope(f"layer_{i}"):
        normed = _lm_layer_norm("ln_attention")(h)
        attended = _attention(self.num_layers)(normed, normed, normed, mask)
        h = h + hk.dropout(self.rng.next_key(), LM_DROPOUT, attended)
        dense = DenseBlock(name="mlp")(_lm_layer_norm("ln_mlp")(h))
        h = h + hk.dropout(self.rng.next_key(), LM_DROPOUT, dense)
        self.residual.tell(h)
    return _lm_layer_norm("ln_final")(h)


def ported_lm_forward(depth: int, collect: bool = False) -> Callable[..., Any]:
  """The port in its handlers, called with ``(tokens, positions, mask)``."""

  def model(tokens):
    h = PortedEmbedding(name="embedding")(tokens)
    h = PortedTransformer(depth)(h)
    return hk.Linear(VOCAB, name="logits")(h)

  if collect:
    model = hke.handlers.CollectingSideOutputs.handling(model)
  model = hke.handlers.WithHaikuRandom.handling(model)
  return hke.handlers.WithSideInputsFromInputTuple.handling(
      model, tags=("positions", "mask")
  )


def plain_lm(depth: int) -> Version:
  """``step(params, rng, tokens, positions, mask)``."""
  args = lm_inputs()
  params = models.materialize(
      jax.eval_shape(
          hk.transform(plain_lm_forward(depth)).init, jax.random.key(1), *args
      )
  )
  return Version(
      PLAIN,
      lambda: hk.transform(plain_lm_forward(depth)).apply,
      (params, jax.random.key(2), *args),
  )


def ported_lm(depth: int, collect: bool = False) -> Version:
  """``step(params, rng, tokens, positions, mask)`` of the port."""
  args = lm_inputs()
  params = models.materialize(
      jax.eval_shape(
          hke.transform(ported_lm_forward(depth, collect)).init,
          jax.random.key(1),
          args,
      )
  )

  def make_step():
    apply = hke.transform(ported_lm_forward(depth, collect)).apply

    def step(params, rng, tokens, positions, mask):
      return apply(params, rng, (tokens, positions, mask))

    return step

  return Version(HKE, make_step, (params, jax.random.key(2), *args))


# --- LSTM sampler -----------------------------------------------------------

LSTM_VOCAB = 64
LSTM_HIDDEN = 128
LSTM_BATCH = 8
SAMPLE_LENGTH = 32
TEMPERATURE = 1.0


def lstm_inputs(seed: int = 0) -> jax.Array:
  """The first token of each sample, ``[B]``."""
  return jax.random.randint(jax.random.key(seed), (LSTM_BATCH,), 0, LSTM_VOCAB)


class _SamplingCore(hk.RNNCore):
  """Embeds the previous token, steps the LSTMs, samples the next token."""

  def __init__(self, depth: int, name: str = "sampler"):
    super().__init__(name=name)
    self.embed = hk.Embed(LSTM_VOCAB, LSTM_HIDDEN, name="embed")
    self.core = hk.DeepRNN(
        [hk.LSTM(LSTM_HIDDEN, name=f"lstm_{i}") for i in range(depth)],
        name="deep_rnn",
    )
    self.readout = hk.Linear(LSTM_VOCAB, name="readout")

  @abc.abstractmethod
  def _key(self) -> jax.Array:
    """The key this step samples its token with."""

  def initial_state(self, batch_size: int | None) -> Any:
    """Token 0 and the LSTMs' zero state."""
    return jnp.zeros([batch_size], jnp.int32), self.core.initial_state(
        batch_size
    )

  def start(self, tokens: jax.Array) -> Any:
    """The state whose previous tokens are ``tokens`` (``[B]``)."""
    return tokens, self.core.initial_state(tokens.shape[0])

  def __call__(self, unused_input: jax.Array, state: Any):
    del unused_input
    token, core_state = state
    out, core_state = self.core(self.embed(token), core_state)
    logits = self.readout(out) / TEMPERATURE
    token = jax.random.categorical(self._key(), logits)
    return token, (token, core_state)


class PlainSamplingCore(_SamplingCore):
  """Keys from ``hk.next_rng_key()``."""

  def _key(self) -> jax.Array:
    return hk.next_rng_key()


class PortedSamplingCore(_SamplingCore):
  """Keys from a random request."""

  def __init__(self, depth: int, name: str = "sampler"):
    super().__init__(depth, name=name)
    self.rng = hke.RandomRequest()

  def _key(self) -> jax.Array:
    return self.rng.next_key()


def _sample_forward(core_cls: type[_SamplingCore], depth: int):
  def forward(tokens):
    core = core_cls(depth)
    steps = jnp.zeros([SAMPLE_LENGTH, tokens.shape[0]])
    samples, _ = hk.dynamic_unroll(core, steps, core.start(tokens))
    return samples

  return forward


def plain_lstm_forward(depth: int) -> Callable[[jax.Array], jax.Array]:
  """``first tokens [B] -> samples [SAMPLE_LENGTH, B]``."""
  return _sample_forward(PlainSamplingCore, depth)


def ported_lstm_forward(depth: int) -> Callable[[jax.Array], jax.Array]:
  """The port under ``WithHaikuRandom``."""
  return hke.handlers.WithHaikuRandom.handling(
      _sample_forward(PortedSamplingCore, depth)
  )


def plain_lstm(depth: int) -> Version:
  """``step(params, rng, tokens)``."""
  tokens = lstm_inputs()
  params = models.materialize(
      jax.eval_shape(
          hk.transform(plain_lstm_forward(depth)).init,
          jax.random.key(1),
          tokens,
      )
  )
  return Version(
      PLAIN,
      lambda: hk.transform(plain_lstm_forward(depth)).apply,
      (params, jax.random.key(2), tokens),
  )


def ported_lstm(depth: int) -> Version:
  """``step(params, rng, tokens)`` of the port."""
  tokens = lstm_inputs()
  params = models.materialize(
      jax.eval_shape(
          hke.transform(ported_lstm_forward(depth)).init,
          jax.random.key(1),
          tokens,
      )
  )
  return Version(
      HKE,
      lambda: hke.transform(ported_lstm_forward(depth)).apply,
      (params, jax.random.key(2), tokens),
  )


BUILDERS: dict[str, dict[str, Callable[[int], Version]]] = {
    RESNET: {PLAIN: plain_resnet, HKE: ported_resnet},
    LM: {PLAIN: plain_lm, HKE: ported_lm},
    LSTM: {PLAIN: plain_lstm, HKE: ported_lstm},
}
