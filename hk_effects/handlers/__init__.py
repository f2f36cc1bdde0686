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
"""Effect handlers, one module per effect.

Example:

>>> import hk_effects as hke
>>> hke.handlers.WithHaikuRandom.effect_protocol().__name__
'RandomEffect'
"""

from hk_effects._src.effects.local_state.local_state import handle_local_states
from hk_effects._src.effects.local_state.local_state import (
    WithFunctionalLocalState,
)
from hk_effects._src.effects.local_state.local_state_rewriting import (
    embed_shared_state_requests,
)
from hk_effects._src.effects.local_state.local_state_rewriting import (
    freeze_local_states,
)
from hk_effects._src.effects.local_state.local_state_rewriting import (
    hoist_shared_state_requests,
)
from hk_effects._src.effects.random.random import tagged
from hk_effects._src.effects.random.random import untagged_only
from hk_effects._src.effects.random.random import WithFrozenRandomState
from hk_effects._src.effects.random.random import WithHaikuRandom
from hk_effects._src.effects.random.random import WithRandomKeyFromArg
from hk_effects._src.effects.random.random import WithStatefulRandomKey
from hk_effects._src.effects.side_input.side_input import (
    hoist_constant_side_inputs,
)
from hk_effects._src.effects.side_input.side_input import WithConstantSideInputs
from hk_effects._src.effects.side_input.side_input import (
    WithSideInputsFromInputTuple,
)
from hk_effects._src.effects.side_output.patching import PatchingSideOutputs
from hk_effects._src.effects.side_output.patching import perturbation_zeros
from hk_effects._src.effects.side_output.patching import PerturbingSideOutputs
from hk_effects._src.effects.side_output.side_output import (
    CollectingSideOutputs,
)

__all__ = (
    "CollectingSideOutputs",
    "PatchingSideOutputs",
    "PerturbingSideOutputs",
    "WithConstantSideInputs",
    "WithFrozenRandomState",
    "WithFunctionalLocalState",
    "WithHaikuRandom",
    "WithRandomKeyFromArg",
    "WithSideInputsFromInputTuple",
    "WithStatefulRandomKey",
    "freeze_local_states",
    "embed_shared_state_requests",
    "handle_local_states",
    "hoist_shared_state_requests",
    "hoist_constant_side_inputs",
    "perturbation_zeros",
    "tagged",
    "untagged_only",
)
