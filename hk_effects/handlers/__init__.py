"""Effect handlers, one module per effect.

Example:

>>> import hk_effects as hke
>>> hke.handlers.WithHaikuRandom.effect_protocol().__name__
'RandomEffect'
"""

from hk_effects.handlers.local_state import handle_local_states
from hk_effects.handlers.local_state import WithFunctionalLocalState
from hk_effects.handlers.local_state_rewriting import embed_shared_state_requests
from hk_effects.handlers.local_state_rewriting import freeze_local_states
from hk_effects.handlers.local_state_rewriting import hoist_shared_state_requests
from hk_effects.handlers.patching import PatchingSideOutputs
from hk_effects.handlers.patching import perturbation_zeros
from hk_effects.handlers.patching import PerturbingSideOutputs
from hk_effects.handlers.random import tagged
from hk_effects.handlers.random import untagged_only
from hk_effects.handlers.random import WithFrozenRandomState
from hk_effects.handlers.random import WithHaikuRandom
from hk_effects.handlers.random import WithRandomKeyFromArg
from hk_effects.handlers.random import WithStatefulRandomKey
from hk_effects.handlers.side_input import hoist_constant_side_inputs
from hk_effects.handlers.side_input import WithConstantSideInputs
from hk_effects.handlers.side_input import WithSideInputsFromInputTuple
from hk_effects.handlers.side_output import CollectingSideOutputs

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
