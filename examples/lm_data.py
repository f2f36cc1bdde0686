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
"""A synthetic task for the language-model example: reverse a digit string.

Each example is one token sequence, left-padded so that every prompt ends at
the same position (which lets a whole batch be decoded in lockstep)::

  PAD ... PAD BOS d_1 ... d_n SEP | d_n ... d_1 EOS PAD ... PAD
  <------------ prompt ------------> <---------- answer --------->

The prompt holds ``max_digits + 2`` tokens and the answer ``max_digits + 1``.
The answer's ``k``-th token is the prompt token mirrored around ``SEP``, so
the task needs attention (a copy from a distance) and the padding mask (pad
keys must not be read). A deterministic hash of the digits puts one sequence
in ten into a held-out set the training batches never contain.

Example:

>>> import numpy as np
>>> batch = make_batch(np.random.default_rng(0), 2, max_digits=3)
>>> batch.tokens.shape, batch.prompt_length
((2, 9), 5)
"""

from __future__ import annotations

import dataclasses

import numpy as np

PAD, BOS, SEP, EOS = 0, 1, 2, 3
FIRST_DIGIT = 4
VOCAB_SIZE = FIRST_DIGIT + 10
_HELD_OUT_BUCKETS = 10


@dataclasses.dataclass(frozen=True)
class Batch:
  """A batch of full sequences (prompt and answer) as int32 numpy arrays.

  Attributes:
    tokens: ``[batch, 2 * max_digits + 3]`` token ids.
    lengths: ``[batch]`` number of digits of each example.
    prompt_length: tokens in every (left-padded) prompt.

  Example:

  >>> import numpy as np
  >>> b = make_batch(np.random.default_rng(0), 4, max_digits=5)
  >>> b.answer.shape
  (4, 6)
  """

  tokens: np.ndarray
  lengths: np.ndarray
  prompt_length: int

  @property
  def prompt(self) -> np.ndarray:
    """The prompt part, ``[batch, prompt_length]``."""
    return self.tokens[:, : self.prompt_length]

  @property
  def answer(self) -> np.ndarray:
    """The answer part, reversed digits then ``EOS`` then padding."""
    return self.tokens[:, self.prompt_length :]


def sequence_length(max_digits: int) -> int:
  """Tokens in a full example: prompt plus answer.

  Example:

  >>> sequence_length(8)
  19
  """
  return 2 * max_digits + 3


def is_held_out(digits: np.ndarray, lengths: np.ndarray) -> np.ndarray:
  """Whether each digit string belongs to the held-out evaluation set.

  Args:
    digits: ``[batch, max_digits]`` digits (0-9) left-aligned; entries past
      each length are ignored.
    lengths: ``[batch]`` number of digits.

  Returns:
    ``[batch]`` booleans, true for about one string in ten.

  Example:

  >>> import numpy as np
  >>> is_held_out(np.array([[1, 2], [1, 2]]), np.array([2, 1])).dtype
  dtype('bool')
  """
  valid = np.arange(digits.shape[1])[None, :] < lengths[:, None]
  weights = np.array([(31**i) % 1009 for i in range(digits.shape[1])])
  code = (np.where(valid, digits + 1, 0) * weights).sum(axis=1) + 7 * lengths
  return code % 1009 % _HELD_OUT_BUCKETS == 0


def _draw(rng: np.random.Generator, n: int, max_digits: int):
  lengths = rng.integers(1, max_digits + 1, size=n)
  digits = rng.integers(0, 10, size=(n, max_digits))
  return digits, lengths


def _encode(digits: np.ndarray, lengths: np.ndarray, max_digits: int):
  batch = digits.shape[0]
  prompt_length = max_digits + 2
  tokens = np.full((batch, sequence_length(max_digits)), PAD, np.int32)
  for row, (d, n) in enumerate(zip(digits, lengths)):
    start = prompt_length - n - 2
    tokens[row, start] = BOS
    tokens[row, start + 1 : start + 1 + n] = d[:n] + FIRST_DIGIT
    tokens[row, prompt_length - 1] = SEP
    tokens[row, prompt_length : prompt_length + n] = d[:n][::-1] + FIRST_DIGIT
    tokens[row, prompt_length + n] = EOS
  return tokens


def make_batch(
    rng: np.random.Generator,
    batch_size: int,
    max_digits: int,
    held_out: bool = False,
) -> Batch:
  """Draws ``batch_size`` examples from the training or held-out split.

  Args:
    rng: numpy random generator (advanced in place).
    batch_size: number of examples.
    max_digits: longest digit string; lengths are uniform in
      ``[1, max_digits]``.
    held_out: draw from the held-out split instead of the training split.

  Returns:
    A ``Batch``.

  Example:

  >>> import numpy as np
  >>> b = make_batch(np.random.default_rng(1), 3, max_digits=4, held_out=True)
  >>> bool(is_held_out(digits_of(b), b.lengths).all())
  True
  """
  if max_digits < 1:
    raise ValueError(f"max_digits must be at least 1; got {max_digits}.")
  chosen_digits, chosen_lengths = [], []
  remaining = batch_size
  while remaining > 0:
    digits, lengths = _draw(rng, 2 * remaining + 16, max_digits)
    keep = is_held_out(digits, lengths) == held_out
    chosen_digits.append(digits[keep][:remaining])
    chosen_lengths.append(lengths[keep][:remaining])
    remaining -= len(chosen_lengths[-1])
  digits = np.concatenate(chosen_digits)
  lengths = np.concatenate(chosen_lengths).astype(np.int32)
  return Batch(_encode(digits, lengths, max_digits), lengths, max_digits + 2)


def digits_of(batch: Batch) -> np.ndarray:
  """The left-aligned digit strings (0-9) of a batch, ``[batch, max_digits]``.

  Example:

  >>> import numpy as np
  >>> b = make_batch(np.random.default_rng(0), 2, max_digits=3)
  >>> bool(is_held_out(digits_of(b), b.lengths).any())
  False
  """
  max_digits = batch.prompt_length - 2
  out = np.zeros((len(batch.lengths), max_digits), np.int64)
  for row, n in enumerate(batch.lengths):
    start = batch.prompt_length - n - 1
    out[row, :n] = batch.tokens[row, start : start + n] - FIRST_DIGIT
  return out


def answer_mask(batch: Batch) -> np.ndarray:
  """Which answer positions count: the reversed digits and the ``EOS``.

  Example:

  >>> import numpy as np
  >>> b = make_batch(np.random.default_rng(0), 1, max_digits=3)
  >>> int(answer_mask(b).sum()) == int(b.lengths[0]) + 1
  True
  """
  return batch.answer != PAD


def exact_match(predicted_answer: np.ndarray, batch: Batch) -> np.ndarray:
  """Per example, whether every counted answer token was predicted exactly.

  Tokens after the ``EOS`` are ignored (decoding may go on past it).

  Example:

  >>> import numpy as np
  >>> b = make_batch(np.random.default_rng(0), 2, max_digits=3)
  >>> exact_match(b.answer, b).tolist()
  [True, True]
  """
  mask = answer_mask(batch)
  return np.all((predicted_answer == batch.answer) | ~mask, axis=1)


def render(tokens: np.ndarray) -> str:
  """A human-readable string of one token sequence.

  Example:

  >>> render(np.array([PAD, BOS, 5, 6, SEP, 6, 5, EOS]))
  '_ < 1 2 | 2 1 >'
  """
  names = {PAD: "_", BOS: "<", SEP: "|", EOS: ">"}
  return " ".join(names.get(int(t), str(int(t) - FIRST_DIGIT)) for t in tokens)
