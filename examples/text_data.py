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
"""Real English text for the language-model example: Python's own manual.

``pydoc_data.topics`` ships with every CPython: the help texts that
``help("for")`` prints, 79 documents of the Python reference manual (about
465,000 characters, 103 distinct ones, with Python 3.11). Each character is a
token; id 0 separates documents. The split is by document and deterministic:
a document whose name has a CRC-32 that is a multiple of ten is held out
(about one character in eleven), so held-out text is never seen in training,
not even as a neighbour of a training window.

The unigram and bigram models here are the baselines the transformer's
held-out bits per character are compared with; they are fitted on the same
training split and scored on the same held-out characters.

Example:

>>> corpus = load_corpus()
>>> corpus.decode(corpus.encode("for x in y:")) == "for x in y:"
True
>>> bool(bigram_bpc(corpus) < unigram_bpc(corpus))
True
"""

from __future__ import annotations

import dataclasses
from typing import Mapping
import zlib

import numpy as np

SEPARATOR = 0
_HELD_OUT_BUCKETS = 10


def is_held_out(name: str) -> bool:
  """Whether the document called ``name`` belongs to the held-out split.

  Example:

  >>> is_held_out("floating"), is_held_out("for")
  (True, False)
  """
  return zlib.crc32(name.encode("utf-8")) % _HELD_OUT_BUCKETS == 0


@dataclasses.dataclass(frozen=True)
class Corpus:
  """Both splits as streams of character ids.

  Attributes:
    alphabet: the characters; character ``alphabet[i]`` has id ``i + 1``.
    train: ``[n]`` int32 ids of the training documents, each preceded by
      ``SEPARATOR``.
    held_out: the same for the held-out documents.
    held_out_names: names of the held-out documents, in stream order.

  Example:

  >>> c = load_corpus({"alpha": "ba", "beta": "ab"})
  >>> c.vocab_size, c.train.tolist(), c.held_out.tolist()
  (3, [0, 1, 2], [0, 2, 1])
  """

  alphabet: str
  train: np.ndarray
  held_out: np.ndarray
  held_out_names: tuple[str, ...]

  @property
  def vocab_size(self) -> int:
    """Distinct token ids: the characters and the separator."""
    return len(self.alphabet) + 1

  def encode(self, text: str) -> np.ndarray:
    """The int32 ids of ``text`` (every character must be in the alphabet).

    Example:

    >>> load_corpus({"alpha": "ba", "beta": "ab"}).encode("ba").tolist()
    [2, 1]
    """
    index = {c: i + 1 for i, c in enumerate(self.alphabet)}
    unknown = sorted(set(text) - set(index))
    if unknown:
      raise ValueError(
          f"characters {unknown!r} are not in the corpus "
          "alphabet; only text made of its characters can be "
          "encoded."
      )
    return np.array([index[c] for c in text], np.int32)

  def decode(self, ids: np.ndarray) -> str:
    """The text of ``ids``; a separator reads as a blank line.

    Example:

    >>> load_corpus({"alpha": "ba", "beta": "ab"}).decode(np.array([1, 0, 2]))
    'a\\n\\nb'
    """
    return "".join(
        "\n\n" if i == SEPARATOR else self.alphabet[i - 1]
        for i in np.asarray(ids).tolist()
    )


def load_corpus(documents: Mapping[str, str] | None = None) -> Corpus:
  """Builds the two splits of ``documents`` (default: ``pydoc_data.topics``).

  Args:
    documents: document name to text; the alphabet is every character of
      every document, so held-out text never has an unknown character.

  Returns:
    A ``Corpus``.

  Example:

  >>> c = load_corpus({"alpha": "ba", "beta": "ab", "gamma": "abba"})
  >>> c.held_out_names, c.decode(c.train)
  (('alpha',), '\\n\\nab\\n\\nabba')
  """
  if documents is None:
    from pydoc_data import topics  # pylint: disable=g-import-not-at-top

    documents = topics.topics
  alphabet = "".join(sorted(set("".join(documents.values()))))
  index = {c: i + 1 for i, c in enumerate(alphabet)}

  def stream(names):
    ids = [SEPARATOR]
    for name in names:
      ids += [index[c] for c in documents[name]] + [SEPARATOR]
    return np.array(ids[:-1], np.int32)

  names = sorted(documents)
  held = tuple(n for n in names if is_held_out(n))
  if not held or len(held) == len(names):
    raise ValueError(
        f"the split of {len(names)} documents by name holds out {len(held)}; "
        "both splits need a document (about one name in ten is held out)."
    )
  return Corpus(
      alphabet, stream(n for n in names if n not in held), stream(held), held
  )


def train_windows(
    corpus: Corpus, rng: np.random.Generator, rows: int, length: int
) -> np.ndarray:
  """``rows`` random windows of ``length + 1`` training ids (inputs, then
  the next character of each), ``[rows, length + 1]`` int32.

  Example:

  >>> c = load_corpus()
  >>> train_windows(c, np.random.default_rng(0), 2, 8).shape
  (2, 9)
  """
  starts = rng.integers(0, len(corpus.train) - length, size=rows)
  return corpus.train[starts[:, None] + np.arange(length + 1)]


def held_out_windows(
    ids: np.ndarray, length: int, multiple: int = 1
) -> tuple[np.ndarray, np.ndarray]:
  """Covers ``ids`` with windows scoring each id after the first once.

  Window ``k`` holds ids ``[k * length, (k + 1) * length]``: its inputs are
  the first ``length`` and its targets the last ``length``, so consecutive
  windows overlap by one id and every target's previous id is in its
  window. The last window is padded, and windows are added until their
  number is a multiple of ``multiple`` (the device count).

  Returns:
    ``(windows, weights)``: ``[n, length + 1]`` int32 ids and ``[n, length]``
    float32, 1.0 on real targets and 0.0 on padding.

  Example:

  >>> w, m = held_out_windows(np.arange(6), 2, multiple=2)
  >>> w.tolist(), m.tolist()
  ([[0, 1, 2], [2, 3, 4], [4, 5, 0], [0, 0, 0]], [[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
  """
  targets = len(ids) - 1
  count = -(-targets // length)
  count += -count % multiple
  padded = np.zeros(count * length + 1, np.int32)
  padded[: len(ids)] = ids
  windows = padded[np.arange(count)[:, None] * length + np.arange(length + 1)]
  weights = (np.arange(count * length) < targets).astype(np.float32)
  return windows, weights.reshape(count, length)


def unigram_bpc(corpus: Corpus) -> float:
  """Held-out bits per character of add-one smoothed character frequencies.

  Scored on every held-out id after the first, as the transformer is.

  Example:

  >>> round(unigram_bpc(load_corpus({"alpha": "ab", "beta": "aab"})), 3)
  1.515
  """
  counts = np.bincount(corpus.train, minlength=corpus.vocab_size) + 1.0
  log_p = np.log2(counts / counts.sum())
  return float(-np.mean(log_p[corpus.held_out[1:]]))


def bigram_bpc(corpus: Corpus) -> float:
  """Held-out bits per character of an add-one smoothed bigram model.

  The next character's probability given the previous one, from the
  training split's pair counts plus one.

  Example:

  >>> c = load_corpus()
  >>> 3.0 < bigram_bpc(c) < unigram_bpc(c)
  True
  """
  v = corpus.vocab_size
  counts = np.ones([v, v])
  np.add.at(counts, (corpus.train[:-1], corpus.train[1:]), 1.0)
  log_p = np.log2(counts / counts.sum(axis=1, keepdims=True))
  held = corpus.held_out
  return float(-np.mean(log_p[held[:-1], held[1:]]))
