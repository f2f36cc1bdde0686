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
"""Checkpoints of the language-model example, on orbax-checkpoint.

Checkpoints live in ``<workdir>/checkpoints/<step>/``, written and pruned by
orbax's ``CheckpointManager`` (``max_to_keep``; a step directory is
finalised by an atomic rename, so a crash never leaves a half-written
checkpoint under a step's name). Each holds two items:

* ``arrays``: for each part (params, optimizer state, local states), its
  leaves in flattening order, under the names ``"00000"``, ``"00001"``, ...,
  in orbax's tensorstore format;
* ``meta``: JSON with the format name, the step, the run's configuration,
  the metric rows, and each part's leaf key paths.

Nothing in a checkpoint is executable: restoring one reads arrays and JSON,
never a pickle, so a checkpoint someone sent you cannot run their code (an
old ``checkpoint.pkl`` is refused for that reason), and nothing in it names
a private module of numpy or optax. Typed PRNG keys (``jax.random.key``, as
``hke.handlers.WithStatefulRandomKey`` keeps in local state) are stored as
their key data, with their implementation's name in the JSON, and come back
as the same typed keys.

Dicts of arrays (params, Haiku state) are rebuilt from the key paths alone;
other trees (optax's states) are rebuilt into a template the caller builds
afresh, whose key paths, shapes and dtypes must match the checkpoint's.

In a multi-process run every process calls ``save`` with the same host
(numpy) trees and orbax has process 0 write them; every process may
``load``.

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
import os
import re
from typing import Any, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp

FORMAT = "hk_effects examples/train_lm checkpoint, version 2 (orbax)"
LEGACY_NAME = "checkpoint.pkl"
SUBDIR = "checkpoints"
_SAFETENSORS = re.compile(r"checkpoint_(\d+)\.safetensors")


def checkpoint_dir(workdir: str) -> str:
  """The directory orbax keeps a run's checkpoints in.

  Example:

  >>> checkpoint_dir("out")
  'out/checkpoints'
  """
  return os.path.join(workdir, SUBDIR)


def checkpoint_path(workdir: str, step: int) -> str:
  """Where the checkpoint of ``step`` lives for ``workdir``.

  Example:

  >>> checkpoint_path("out", 40)
  'out/checkpoints/40'
  """
  return os.path.join(checkpoint_dir(workdir), str(step))


def _manager(directory: str, keep: int) -> ocp.CheckpointManager:
  # A manager per save: it lists the steps on disk afresh (a run may have
  # been continued, or a step removed, since the last save) and prunes to
  # `keep` after writing.
  return ocp.CheckpointManager(
      directory,
      item_names=("arrays", "meta"),
      options=ocp.CheckpointManagerOptions(
          max_to_keep=keep or None, create=True
      ),
  )


def list_checkpoints(workdir: str) -> list[tuple[int, str]]:
  """``(step, path)`` of every finished checkpoint of ``workdir``, oldest
  first.

  Example:

  >>> list_checkpoints("/nonexistent")
  []
  """
  directory = checkpoint_dir(workdir)
  if not os.path.isdir(directory):
    return []
  steps = ocp.path.step.checkpoint_steps(directory)
  return [(s, checkpoint_path(workdir, s)) for s in sorted(steps)]


def latest(workdir: str) -> str:
  """The path of the newest checkpoint of ``workdir``.

  Raises:
    FileNotFoundError: there is none.
    ValueError: there is none but a checkpoint of an older version of the
      example (a pickled ``checkpoint.pkl`` or a
      ``checkpoint_<step>.safetensors`` file), which this version does not
      read.

  Example:

  >>> try:
  ...   latest("/nonexistent")
  ... except FileNotFoundError as e:
  ...   print("no checkpoint" in str(e))
  True
  """
  found = list_checkpoints(workdir)
  if found:
    return found[-1][1]
  legacy = os.path.join(workdir, LEGACY_NAME)
  if os.path.exists(legacy):
    raise ValueError(
        f"{legacy!r} is a pickle written by an older examples/train_lm.py, "
        "and it is not loaded: unpickling a file runs whatever code it "
        "names (never unpickle data you did not write yourself), and these "
        "pickles also depend on private numpy and optax module paths that "
        "change between versions. Checkpoints are now orbax checkpoints in "
        f"{checkpoint_dir(workdir)!r}; train afresh (without --restore) to "
        "write one."
    )
  old = sorted(
      name
      for name in (os.listdir(workdir) if os.path.isdir(workdir) else ())
      if _SAFETENSORS.fullmatch(name)
  )
  if old:
    raise ValueError(
        f"{os.path.join(workdir, old[-1])!r} is a safetensors checkpoint "
        "of an older examples/train_lm.py, which this version does not "
        "read: checkpoints are now written by orbax-checkpoint into "
        f"{checkpoint_dir(workdir)!r}. Train afresh (without --restore) to "
        "write one, or continue that run with the older checkout that "
        "wrote it."
    )
  raise FileNotFoundError(
      "--restore was given but there is no checkpoint in "
      f"{checkpoint_dir(workdir)!r}; run without --restore first, or point "
      "--workdir at a run that wrote one."
  )


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


def _is_key(value: Any) -> bool:
  return isinstance(value, jax.Array) and jax.dtypes.issubdtype(
      value.dtype, jax.dtypes.prng_key
  )


def save(
    workdir: str,
    step: int,
    trees: Mapping[str, Any],
    config: Mapping[str, Any],
    metrics: list[dict[str, Any]] = (),
    keep: int = 0,
) -> str:
  """Writes ``trees`` as the checkpoint of ``step`` and prunes old ones.

  In a multi-process run every process calls this with the same trees,
  fetched to the host; process 0 writes them.

  Args:
    workdir: the run's directory; checkpoints go to its ``checkpoints/``.
    step: the training step the trees belong to.
    trees: part name (``"params"``) to a tree of arrays (numpy, or typed
      PRNG keys).
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
  arrays: dict[str, dict[str, np.ndarray]] = {}
  leaves: dict[str, list[Any]] = {}
  key_impls: dict[str, dict[str, str]] = {}
  for part, tree in trees.items():
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    leaves[part] = [_path_json(path) for path, _ in flat]
    arrays[part], key_impls[part] = {}, {}
    for i, (_, value) in enumerate(flat):
      name = f"{i:05d}"
      if _is_key(value):
        key_impls[part][name] = str(jax.random.key_impl(value))
        value = jax.random.key_data(value)
      arrays[part][name] = np.asarray(jax.device_get(value), order="C")
  meta = {
      "format": FORMAT,
      "step": step,
      "config": dict(config),
      "leaves": leaves,
      "key_impls": key_impls,
      "metrics": list(metrics),
  }
  with _manager(os.path.abspath(checkpoint_dir(workdir)), keep) as manager:
    if step in manager.all_steps():
      # A run restored at its last step rewrites that step (its evaluation
      # and decoding refresh the local states): replace it.
      manager.delete(step)
    manager.save(
        step,
        args=ocp.args.Composite(
            arrays=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)
        ),
        force=True,
    )
    manager.wait_until_finished()
  return checkpoint_path(workdir, step)


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
      like = like if _is_key(like) else np.asarray(like)
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
  """Reads the checkpoint at ``path`` (arrays as numpy, keys as typed keys).

  Example:

  >>> import tempfile, numpy as np
  >>> d = tempfile.mkdtemp()
  >>> load(save(d, 5, {"p": {"w": np.ones([3])}}, {})).step
  5
  """
  directory, step = os.path.split(os.path.abspath(path))
  meta_path = os.path.join(path, "meta", "metadata")
  if not step.isdigit() or not os.path.exists(meta_path):
    raise ValueError(
        f"{path} is not a checkpoint of examples/train_lm.py (expected an "
        "orbax step directory <workdir>/checkpoints/<step> holding 'arrays' "
        "and 'meta')."
    )
  checkpointer = ocp.Checkpointer(
      ocp.CompositeCheckpointHandler("arrays", "meta")
  )
  restored = checkpointer.restore(
      path,
      args=ocp.args.Composite(
          arrays=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()
      ),
  )
  meta = restored["meta"]
  if meta.get("format") != FORMAT:
    raise ValueError(
        f"{path} is not a checkpoint of examples/train_lm.py (format "
        f"{meta.get('format')!r}, expected {FORMAT!r})."
    )
  stored = restored["arrays"] or {}
  arrays = {}
  for part, paths in meta["leaves"].items():
    values = []
    for i, leaf_path in enumerate(paths):
      name = f"{i:05d}"
      value = np.asarray(stored[part][name])
      impl = meta["key_impls"].get(part, {}).get(name)
      if impl is not None:
        value = jax.random.wrap_key_data(value, impl=impl)
      values.append((leaf_path, value))
    arrays[part] = values
  return Checkpoint(
      path, int(meta["step"]), meta["config"], meta["metrics"], arrays
  )


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
