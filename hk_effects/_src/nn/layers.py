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
"""Layers built on the shipped effects."""

from __future__ import annotations

from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp

from hk_effects._src.effects.random import random
from hk_effects._src.effects.side_input import side_input
from hk_effects._src.effects.side_output import side_output


class Dropout(hk.Module):
  """Dropout whose keys come from the random effect.

  Under ``WithHaikuRandom`` it drops the units that
  ``hk.dropout(hk.next_rng_key(), rate, x)`` drops. At ``rate=0.0`` it draws
  no key, while that Haiku line still advances Haiku's key sequence, so the
  draws after it would differ from the unported model's: pass
  ``draw_at_zero_rate=True`` for parity when porting such a model.

  Args:
    rate: probability of dropping a unit, in ``[0, 1)``.
    name: Haiku module name.
    draw_at_zero_rate: draw (and discard) a key at ``rate=0.0``, as
      ``hk.dropout(hk.next_rng_key(), 0.0, x)`` does.

  Example:

  >>> import jax, jax.numpy as jnp, hk_effects as hke
  >>> f = hke.transform(hke.handlers.WithHaikuRandom.handling(
  ...     lambda x: hke.Dropout(0.5)(x)))
  >>> y = f.apply({}, jax.random.key(0), jnp.ones(1000))
  >>> set(map(float, jnp.unique(y)))
  {0.0, 2.0}
  """

  def __init__(
      self,
      rate: float,
      name: str | None = None,
      *,
      draw_at_zero_rate: bool = False,
  ):
    super().__init__(name=name)
    if not 0.0 <= rate < 1.0:
      raise ValueError(f"Dropout rate must be in [0, 1); got {rate!r}.")
    self.rate = rate
    self.draw_at_zero_rate = draw_at_zero_rate
    self.rng = random.RandomRequest()

  def __call__(self, x: jax.Array) -> jax.Array:
    if self.rate == 0.0:
      if self.draw_at_zero_rate:
        self.rng.next_key()
      return x
    keep = jax.random.bernoulli(self.rng.next_key(), 1.0 - self.rate, x.shape)
    return jnp.where(keep, x / (1.0 - self.rate), jnp.zeros_like(x))


class ApplyAttentionMask(hk.Module):
  """Masks attention logits with a boolean mask read as a side input.

  ``True`` in the mask keeps a logit; ``False`` replaces it with
  ``masked_out_value``. The mask broadcasts against the logits.

  Example:

  >>> import jax.numpy as jnp, hk_effects as hke
  >>> f = hke.transform(hke.handlers.WithConstantSideInputs.handling(
  ...     lambda x: hke.ApplyAttentionMask("mask")(x),
  ...     {"mask": jnp.array([True, False])}), apply_rng=False)
  >>> print(f.apply({}, jnp.ones(2)))
  [ 1.e+00 -1.e+09]
  """

  def __init__(
      self,
      mask_tag: Any,
      masked_out_value: float = -1e9,
      name: str | None = None,
  ):
    super().__init__(name=name)
    self.mask = side_input.SideInputRequest(mask_tag)
    self.masked_out_value = masked_out_value

  def __call__(self, logits: jax.Array) -> jax.Array:
    masked_out = jnp.asarray(self.masked_out_value, logits.dtype)
    return jnp.where(self.mask.ask(), logits, masked_out)


class TellIntermediate(hk.Module):
  """Identity layer that tells its input as a side output.

  Insert it after the layers whose outputs you want (by hand or with
  ``hke.select_calls(...).insert_after``) and collect with
  ``hke.handlers.CollectingSideOutputs``; without a collector it only returns
  its input. The request is the attribute ``intermediate``.

  Args:
    tag: the side-output tag collectors select by.
    mode: ``"append"`` (default), ``"last"`` or ``"sum"``.
    name: Haiku module name.

  Example:

  >>> import jax.numpy as jnp, hk_effects as hke
  >>> f = hke.transform(hke.handlers.CollectingSideOutputs.handling(
  ...     lambda x: hke.TellIntermediate("x")(x * 3)), apply_rng=False)
  >>> out, values = f.apply({}, jnp.ones(2))
  >>> print(values[0].path, values[0].value)
  tell_intermediate/intermediate [3. 3.]
  """

  def __init__(self, tag: Any, mode: str = "append", name: str | None = None):
    super().__init__(name=name)
    self.intermediate = side_output.SideOutputRequest(tag, mode)

  def __call__(self, x: Any) -> Any:
    return self.intermediate.tell(x)
