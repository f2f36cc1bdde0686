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
"""Checkpoints of the language-model example as safetensors files.

A checkpoint is one ``checkpoint_<step>.safetensors`` file holding named
arrays and string metadata, nothing executable: loading a file someone sent
you cannot run their code (unpickling can, which is why an old
``checkpoint.pkl`` is refused), and nothing in it names a private module of
numpy or optax, so it outlives their versions.

Each tree (params, optimizer state, local states) is flattened with JAX's
key paths; an array is stored under its part and ``jax.tree_util.keystr``
path (``params['transformer/unembed']['w']``), and the metadata holds the
path elements of every leaf in order, the step, the run's configuration and
the metric rows, as JSON. A typed PRNG key (``jax.random.key``, as
``WithStatefulRandomKey`` keeps in local state) is stored as its key data,
its implementation in the metadata, and comes back as the same typed key.
Dicts of arrays (params, Haiku state) are rebuilt
from the paths alone; other trees (optax's states) are rebuilt into a
template the caller builds afresh, whose key paths, shapes and dtypes must
match the file's.

Files are written to a temporary name and renamed, so a crash never leaves a
half-written checkpoint under a checkpoint's name.

Example:

>>> import tempfile, numpy as np
>>> workdir = tempfile.mkdtemp()
>>> _ = save(workdir, 7, {"params": {"linear": {"w": np.ones([2], np.float32)}}},
...          config={"seed": 0})
>>> ckpt = load(latest(workdir))
>>> ckpt.step, ckpt.tree("params")["linear"]["w"].tolist()
(7, [1.0, 1.0])
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import safetensors
from safetensors import numpy as safetensors_numpy

FORMAT = "hk_effects examples/train_lm checkpoint, version 1"
LEGACY_NAME = "checkpoint.pkl"
_PATTERN = re.compile(r"checkpoint_(\d+)\.safetensors")


def checkpoint_path(directory: str, step: int) -> str:
  """Where the checkpoint of ``step`` lives in ``directory``.

  Example:

  >>> checkpoint_path("out", 40)
  'out/checkpoint_00000040.safetensors'
  """
  return os.path.join(directory, f"checkpoint_{step:08d}.safetensors")


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
  """``(step, path)`` of every checkpoint in ``directory``, oldest first.

  Example:

  >>> list_checkpoints("/nonexistent")
  []
  """
  if not os.path.isdir(directory):
    return []
  found = [
      (int(m.group(1)), os.path.join(directory, name))
      for name in os.listdir(directory)
      if (m := _PATTERN.fullmatch(name))
  ]
  return sorted(found)


def latest(directory: str) -> str:
  """The path of the newest checkpoint in ``directory``.

  Raises:
    FileNotFoundError: there is none.
    ValueError: there is none but a pickled ``checkpoint.pkl`` of an older
      version of the example, which is never loaded.

  Example:

  >>> try:
  ...   latest("/nonexistent")
  ... except FileNotFoundError as e:
  ...   print("no checkpoint" in str(e))
  True
  """
  found = list_checkpoints(directory)
  if found:
    return found[-1][1]
  legacy = os.path.join(directory, LEGACY_NAME)
  if os.path.exists(legacy):
    raise ValueError(
        f"{legacy!r} is a pickle written by an older examples/train_lm.py, "
        "and it is not loaded: unpickling a file runs whatever code it "
        "names (never unpickle data you did not write yourself), and these "
        "pickles also depend on private numpy and optax module paths that "
        "change between versions. Checkpoints are now "
        "checkpoint_<step>.safetensors files; train afresh (without "
        "--restore) to write one."
    )
  raise FileNotFoundError(
      "--restore was given but there is no checkpoint "
      f"(checkpoint_<step>.safetensors) in {directory!r}; run without "
      "--restore first, or point --workdir at a run that wrote one."
  )


def _is_typed_key(value: Any) -> bool:
  dtype = getattr(value, "dtype", None)
  return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _path_json(path: tuple[Any, ...]) -> list[dict[str, Any]]:
  out = []
  for entry in path:
    if isinstance(entry, jax.tree_util.DictKey):
      if not isinstance(entry.key, str):
        raise TypeError(
            f"dict key {entry.key!r} at {jax.tree_util.keystr(path)}"
            " is not a string; checkpoints store string keys only."
        )
      out.append({"key": entry.key})
    elif isinstance(entry, jax.tree_util.SequenceKey):
      out.append({"index": entry.idx})
    elif isinstance(entry, jax.tree_util.GetAttrKey):
      out.append({"attr": entry.name})
    elif isinstance(entry, jax.tree_util.FlattenedIndexKey):
      out.append({"flat": entry.key})
    else:
      raise TypeError(
          f"unknown key path entry {entry!r} at {jax.tree_util.keystr(path)}."
      )
  return out


def save(
    directory: str,
    step: int,
    trees: Mapping[str, Any],
    config: Mapping[str, Any],
    metrics: list[dict[str, Any]] = (),
    keep: int = 0,
) -> str:
  """Writes ``trees`` as the checkpoint of ``step`` and prunes old ones.

  In a multi-process run only process 0 should call this, with arrays
  fetched to the host.

  Args:
    directory: where checkpoints live (created if missing).
    step: the training step the trees belong to.
    trees: part name (``"params"``) to a tree of arrays.
    config: JSON-serialisable settings the run must keep to restore it.
    metrics: metric rows so far (JSON-serialisable).
    keep: checkpoints to keep, newest first (0: all).

  Returns:
    The path written.

  Example:

  >>> import tempfile, numpy as np
  >>> d = tempfile.mkdtemp()
  >>> for step in (1, 2, 3):
  ...   _ = save(d, step, {"params": {"b": np.zeros([1])}}, {}, keep=2)
  >>> [s for s, _ in list_checkpoints(d)]
  [2, 3]
  """
  tensors, leaves, key_impls = {}, {}, {}
  for part, tree in trees.items():
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    leaves[part] = [_path_json(path) for path, _ in flat]
    names = [part + jax.tree_util.keystr(path) for path, _ in flat]
    values = []
    for name, (_, value) in zip(names, flat):
      if _is_typed_key(value):
        # A typed PRNG key (WithStatefulRandomKey's state) is stored as its
        # key data, with its implementation to wrap it again on load.
        key_impls[name] = str(jax.random.key_impl(value))
        value = jax.random.key_data(value)
      values.append(value)
    for name, value in zip(names, jax.device_get(values)):
      try:
        tensors[name] = np.asarray(value, order="C")
      except (TypeError, ValueError) as e:
        raise TypeError(
            f"checkpoint entry {name} ({type(value).__name__}) cannot be "
            f"stored as an array: {e}"
        ) from e
  metadata = {
      "format": FORMAT,
      "step": str(step),
      "config": json.dumps(dict(config), sort_keys=True),
      "leaves": json.dumps(leaves),
      "metrics": json.dumps(list(metrics)),
      "key_impls": json.dumps(key_impls),
  }
  os.makedirs(directory, exist_ok=True)
  path = checkpoint_path(directory, step)
  data = safetensors_numpy.save(tensors, metadata=metadata)
  with open(path + ".tmp", "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())
  os.replace(path + ".tmp", path)  # Atomic: never a half-written checkpoint.
  if keep > 0:
    for _, old in list_checkpoints(directory)[:-keep]:
      os.remove(old)
  return path


@dataclasses.dataclass(frozen=True)
class Checkpoint:
  """What ``load`` read from one checkpoint file.

  Attributes:
    path: the file.
    step: the training step.
    config: the settings saved with it.
    metrics: the metric rows saved with it.
    arrays: part name to ``[(path elements, array)]`` in flattening order.

  Example:

  >>> import tempfile, numpy as np
  >>> d = tempfile.mkdtemp()
  >>> ckpt = load(save(d, 3, {"s": {"a": np.zeros([2])}}, {"seed": 1}))
  >>> ckpt.config, list(ckpt.arrays)
  ({'seed': 1}, ['s'])
  """

  path: str
  step: int
  config: dict[str, Any]
  metrics: list[dict[str, Any]]
  arrays: dict[str, list[tuple[list[dict[str, Any]], np.ndarray]]]

  def tree(self, part: str, template: Any = None) -> Any:
    """The tree saved as ``part``.

    Args:
      part: the part's name, as given to ``save``.
      template: a tree of the same structure (e.g. a fresh
        ``optimizer.init(params)``), needed when the tree holds anything but
        dicts; its leaves' shapes and dtypes must match the file's.

    Returns:
      The tree of numpy arrays.

    Raises:
      ValueError: the file's key paths, shapes or dtypes differ from the
        template's, naming the first difference.

    Example:

    >>> import tempfile, numpy as np
    >>> d = tempfile.mkdtemp()
    >>> ckpt = load(save(d, 1, {"s": (np.ones([1]), {"a": np.zeros([])})}, {}))
    >>> ckpt.tree("s", template=(np.zeros([1]), {"a": np.ones([])}))[0].tolist()
    [1.0]
    """
    if part not in self.arrays:
      raise ValueError(
          f"{self.path} holds no {part!r} (it has {sorted(self.arrays)})."
      )
    saved = self.arrays[part]
    if template is None:
      return _nested_dicts(saved, f"{self.path} {part}")
    flat, treedef = jax.tree_util.tree_flatten_with_path(template)
    where = f"{self.path}: {part}"
    if len(flat) != len(saved):
      raise ValueError(
          f"{where} has {len(saved)} arrays but this run's "
          f"{part} has {len(flat)}; the run's configuration "
          "builds a different tree."
      )
    values = []
    for (path, like), (saved_path, value) in zip(flat, saved):
      name = jax.tree_util.keystr(path)
      if _path_json(path) != saved_path:
        raise ValueError(
            f"{where} stores {saved_path} where this run's "
            f"{part} has {name}; the trees differ."
        )
      if _is_typed_key(like) or _is_typed_key(value):
        if not (_is_typed_key(like) and _is_typed_key(value)) or (
            jax.random.key_impl(like) != jax.random.key_impl(value)
            or like.shape != value.shape
        ):
          raise ValueError(
              f"{where}{name} is {value.dtype}{list(value.shape)} but this "
              f"run's is {like.dtype}{list(jnp.shape(like))}."
          )
        values.append(value)
        continue
      like = np.asarray(like)
      if like.shape != value.shape or like.dtype != value.dtype:
        raise ValueError(
            f"{where}{name} is {value.dtype}{list(value.shape)} but this "
            f"run's is {like.dtype}{list(like.shape)}."
        )
      values.append(value)
    return jax.tree_util.tree_unflatten(treedef, values)


def _nested_dicts(saved, where: str) -> dict[str, Any]:
  root: dict[str, Any] = {}
  for path, value in saved:
    if not path or any(set(e) != {"key"} for e in path):
      raise ValueError(
          f"{where}: leaf at {path} is not in a dict of dicts; "
          "pass a template tree to rebuild it."
      )
    node = root
    for entry in path[:-1]:
      node = node.setdefault(entry["key"], {})
    node[path[-1]["key"]] = value
  return root


def load(path: str) -> Checkpoint:
  """Reads the checkpoint file at ``path`` (arrays as numpy).

  Example:

  >>> import tempfile, numpy as np
  >>> d = tempfile.mkdtemp()
  >>> load(save(d, 5, {"p": {"w": np.ones([3])}}, {})).step
  5
  """
  tensors = safetensors_numpy.load_file(path)
  with safetensors.safe_open(path, framework="numpy") as f:
    metadata = f.metadata() or {}
  if metadata.get("format") != FORMAT:
    raise ValueError(
        f"{path} is a safetensors file but not a checkpoint of "
        f"examples/train_lm.py (format {metadata.get('format')!r},"
        f" expected {FORMAT!r})."
    )
  arrays = {}
  # Files written before typed keys were stored have no "key_impls".
  key_impls = json.loads(metadata.get("key_impls", "{}"))
  for part, paths in json.loads(metadata["leaves"]).items():
    arrays[part] = []
    for p in paths:
      name = part + _keystr(p)
      value = tensors[name]
      if name in key_impls:
        value = jax.random.wrap_key_data(value, impl=key_impls[name])
      arrays[part].append((p, value))
  return Checkpoint(
      path,
      int(metadata["step"]),
      json.loads(metadata["config"]),
      json.loads(metadata["metrics"]),
      arrays,
  )


def _keystr(path: list[dict[str, Any]]) -> str:
  entries = []
  for e in path:
    if "key" in e:
      entries.append(jax.tree_util.DictKey(e["key"]))
    elif "index" in e:
      entries.append(jax.tree_util.SequenceKey(e["index"]))
    elif "attr" in e:
      entries.append(jax.tree_util.GetAttrKey(e["attr"]))
    else:
      entries.append(jax.tree_util.FlattenedIndexKey(e["flat"]))
  return jax.tree_util.keystr(tuple(entries))


def config_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any]
) -> list[str]:
  """``--name=saved`` vs ``--name=current`` for every setting that differs.

  Example:

  >>> config_differences({"d_model": 64, "seed": 0}, {"d_model": 128, "seed": 0})
  ['--d_model=64 (checkpoint) vs --d_model=128 (this run)']
  """
  names = sorted(set(saved) | set(current))
  return [
      f"--{n}={saved.get(n)} (checkpoint) vs --{n}={current.get(n)} (this run)"
      for n in names
      if saved.get(n) != current.get(n)
  ]
