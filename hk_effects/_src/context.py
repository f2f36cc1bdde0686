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
"""Every piece of per-thread state hk_effects keeps, in one place.

Each feature that remembers what is running (handler scopes entered,
module calls bound, path keys' loop frames, side-output collectors waiting)
declares one *slot* here: a plain class holding its state for one thread,
read as ``CONTEXT.<slot>``. With the package's one ``threading.local`` here,
the ``declare`` calls show all hidden state, and ``reset()`` clears it at
once (a thread left in a bad state by an interrupted trace).

Example:

>>> from hk_effects._src import context
>>> class _Calls:
...   def __init__(self):
...     self.running = []
>>> context.declare("doc_calls", _Calls)
>>> context.CONTEXT.doc_calls.running.append("call")
>>> with context.pushed(context.CONTEXT.doc_calls.running, "inner"):
...   context.CONTEXT.doc_calls.running
['call', 'inner']
>>> context.reset()
>>> context.CONTEXT.doc_calls.running
[]
>>> context.undeclare("doc_calls")
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Iterator

_SLOTS: dict[str, Callable[[], Any]] = {}


class _Context(threading.local):
  """Per-thread: one attribute per declared slot, made on first use."""

  def __getattr__(self, name: str) -> Any:
    # Only reached when this thread has not used the slot yet.
    try:
      factory = _SLOTS[name]
    except KeyError:
      raise AttributeError(
          f"hk_effects' context has no slot {name!r}; declared slots: "
          f"{sorted(_SLOTS)}. Declare it with context.declare({name!r}, "
          "StateClass) in the module that owns it."
      ) from None
    value = factory()
    setattr(self, name, value)
    return value


CONTEXT: Any = _Context()


def declare(name: str, factory: Callable[[], Any]) -> None:
  """Declares slot ``name``: ``CONTEXT.<name>`` is ``factory()`` per thread."""
  known = _SLOTS.get(name)
  if known is not None and known is not factory:
    raise ValueError(
        f"context slot {name!r} is already declared by {known!r}; choose "
        f"another name for the state of {factory!r}."
    )
  _SLOTS[name] = factory


def undeclare(name: str) -> None:
  """Removes slot ``name`` (and this thread's state in it)."""
  _SLOTS.pop(name, None)
  CONTEXT.__dict__.pop(name, None)


def reset() -> None:
  """Forgets this thread's state in every slot (fresh on next use)."""
  for name in list(CONTEXT.__dict__):
    delattr(CONTEXT, name)


@contextlib.contextmanager
def pushed(stack: list[Any], item: Any) -> Iterator[Any]:
  """Appends ``item`` to ``stack`` for the duration of the block.

  Removes that very item on exit even if inner code left others behind (a
  trace interrupted by an exception), so one failure never shifts another
  feature's stack.
  """
  stack.append(item)
  try:
    yield item
  finally:
    for index in range(len(stack) - 1, -1, -1):
      if stack[index] is item:
        del stack[index]
        break
