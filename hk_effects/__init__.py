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
"""hk_effects: scoped side effects and state for Haiku models.

``import hk_effects as hke``. A layer says what it needs with an *effect
request* stored as an attribute; a *handler* wrapped around the forward
function serves it. Using an effect takes three steps:

1. In a module's ``__init__``, store a request:
   ``self.rng = hke.RandomRequest()`` or
   ``self.mask = hke.SideInputRequest("attn_mask")``.
2. In its methods, call the effect's protocol method as if it were handled:
   ``self.rng.next_key()``, ``self.mask.ask()``.
3. Wrap the forward function in handlers and transform it:
   ``hke.transform(hke.handlers.WithHaikuRandom.handling(forward))``.

While a handler runs, each module method call swaps the requests the handler
claims (innermost handler first) for runtime implementations until it
returns. A request nobody claims raises ``UnhandledEffectError`` naming the
module and attribute when used; ``hke.bindings(fn)(x)`` lists them beforehand.

Defining a new effect takes a protocol, a request and a handler written with
``EffectRequest``, ``EffectRuntimeImpl`` and ``EffectHandler``
(docs/concepts.md has a complete 40-line example).

Example:

>>> import haiku as hk, jax, jax.numpy as jnp
>>> import hk_effects as hke
>>> def forward(x):
...   x = hk.Linear(4)(x)
...   return hke.Dropout(0.5)(x)
>>> f = hke.transform(hke.handlers.WithHaikuRandom.handling(forward))
>>> params = f.init(jax.random.key(0), jnp.ones([2, 3]))
>>> f.apply(params, jax.random.key(1), jnp.ones([2, 3])).shape
(2, 4)
"""

from hk_effects import boundaries
from hk_effects import handlers
from hk_effects._src import wiring
from hk_effects._src.core.binding import handler_scope
from hk_effects._src.core.effect_base import effect_colour
from hk_effects._src.core.effect_base import EffectHandler
from hk_effects._src.core.effect_base import EffectRequest
from hk_effects._src.core.effect_base import EffectRuntimeImpl
from hk_effects._src.core.effect_base import HandledEffectRef
from hk_effects._src.core.effect_base import pytree_dataclass
from hk_effects._src.core.effect_base import RewritingHandler
from hk_effects._src.core.effect_base import static_field
from hk_effects._src.core.effect_base import UnhandledEffectError
from hk_effects._src.core.transform import multi_transform
from hk_effects._src.core.transform import multi_transform_with_state
from hk_effects._src.core.transform import transform
from hk_effects._src.core.transform import transform_with_state
from hk_effects._src.effects.local_state.local_state import (
    FrozenLocalStateRequest,
)
from hk_effects._src.effects.local_state.local_state import HandledLocalStateRef
from hk_effects._src.effects.local_state.local_state import (
    InitialLocalStateRequest,
)
from hk_effects._src.effects.local_state.local_state import LocalStateEffect
from hk_effects._src.effects.local_state.local_state import (
    SharedLocalStateRequest,
)
from hk_effects._src.effects.local_state.vmap_state import vmap
from hk_effects._src.effects.random.path_keys import PathKeyCollisionError
from hk_effects._src.effects.random.random import HandledRandomRef
from hk_effects._src.effects.random.random import RandomEffect
from hk_effects._src.effects.random.random import RandomRequest
from hk_effects._src.effects.random.random import TaggedRandomRequest
from hk_effects._src.effects.side_input.side_input import HandledSideInputRef
from hk_effects._src.effects.side_input.side_input import HoistedTag
from hk_effects._src.effects.side_input.side_input import SideInputEffect
from hk_effects._src.effects.side_input.side_input import SideInputRequest
from hk_effects._src.effects.side_output.side_output import HandledSideOutputRef
from hk_effects._src.effects.side_output.side_output import is_collected
from hk_effects._src.effects.side_output.side_output import SideOutputEffect
from hk_effects._src.effects.side_output.side_output import SideOutputRequest
from hk_effects._src.effects.side_output.side_output import SideOutputValue
from hk_effects._src.effects.side_output.side_output import tell
from hk_effects._src.effects.side_output.side_output_reduce import Reduce
from hk_effects._src.effects.side_output.side_output_transport import (
    SideOutputPlacementError,
)
from hk_effects._src.haiku.boundaries import BoundaryBypassError
from hk_effects._src.haiku.boundaries import BoundaryEffect
from hk_effects._src.haiku.editing import CallSelection
from hk_effects._src.haiku.editing import select_calls
from hk_effects._src.haiku.raw_transforms import RawTransformError
from hk_effects._src.inspect.inspection import bindings
from hk_effects._src.inspect.inspection import BindingTable
from hk_effects._src.inspect.inspection import free_effect_types
from hk_effects._src.inspect.signature import effect_signature
from hk_effects._src.inspect.signature import EffectSignature
from hk_effects._src.nn.attention import KVCachedAttention
from hk_effects._src.nn.layers import ApplyAttentionMask
from hk_effects._src.nn.layers import Dropout
from hk_effects._src.nn.layers import TellIntermediate

__version__ = "0.1.0"

wiring.install()

__all__ = (
    "ApplyAttentionMask",
    "BindingTable",
    "BoundaryBypassError",
    "BoundaryEffect",
    "CallSelection",
    "Dropout",
    "EffectHandler",
    "EffectRequest",
    "EffectRuntimeImpl",
    "EffectSignature",
    "FrozenLocalStateRequest",
    "HandledEffectRef",
    "HandledLocalStateRef",
    "HandledRandomRef",
    "HandledSideInputRef",
    "HandledSideOutputRef",
    "HoistedTag",
    "InitialLocalStateRequest",
    "KVCachedAttention",
    "LocalStateEffect",
    "PathKeyCollisionError",
    "RandomEffect",
    "RandomRequest",
    "RawTransformError",
    "Reduce",
    "RewritingHandler",
    "SharedLocalStateRequest",
    "SideInputEffect",
    "SideInputRequest",
    "SideOutputEffect",
    "SideOutputPlacementError",
    "SideOutputRequest",
    "SideOutputValue",
    "TaggedRandomRequest",
    "TellIntermediate",
    "UnhandledEffectError",
    "bindings",
    "boundaries",
    "effect_colour",
    "effect_signature",
    "free_effect_types",
    "handler_scope",
    "handlers",
    "is_collected",
    "multi_transform",
    "multi_transform_with_state",
    "pytree_dataclass",
    "select_calls",
    "static_field",
    "tell",
    "transform",
    "transform_with_state",
    "vmap",
)
