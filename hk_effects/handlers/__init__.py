"""Effect handlers, one module per effect.

Example:

>>> import hk_effects as hke
>>> hke.handlers.WithHaikuRandom.effect_protocol().__name__
'RandomEffect'
"""

from hk_effects.handlers.random import tagged
from hk_effects.handlers.random import untagged_only
from hk_effects.handlers.random import WithFrozenRandomState
from hk_effects.handlers.random import WithHaikuRandom
from hk_effects.handlers.random import WithRandomKeyFromArg
from hk_effects.handlers.side_input import hoist_constant_side_inputs
from hk_effects.handlers.side_input import WithConstantSideInputs
from hk_effects.handlers.side_input import WithSideInputsFromInputTuple

__all__ = (
    "WithConstantSideInputs",
    "WithFrozenRandomState",
    "WithHaikuRandom",
    "WithRandomKeyFromArg",
    "WithSideInputsFromInputTuple",
    "hoist_constant_side_inputs",
    "tagged",
    "untagged_only",
)
