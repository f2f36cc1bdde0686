"""Must type-check (tests/typing_test.py runs mypy on it): requests are
dataclass constructors to type checkers."""

import hk_effects as hke

side_output = hke.SideOutputRequest("acts", mode="last")
side_input = hke.SideInputRequest("mask")
tagged = hke.TaggedRandomRequest("noise")
state = hke.InitialLocalStateRequest(lambda: 0, "counters", name="n")
shared = hke.SharedLocalStateRequest("n", "counters")
frozen = hke.FrozenLocalStateRequest(1.0, "counters")
untagged = hke.RandomRequest()
tag: str = side_output.tag
