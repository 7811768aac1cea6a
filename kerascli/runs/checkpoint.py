"""Checkpoints: one .npz that ``numpy.load(path)`` reads with pickle off.

Keys:

* ``<layer>/<weight>``: every weight in Keras shapes (``dense/kernel`` is
  (in, units), ``conv2d/kernel`` is (kh, kw, in, filters), BatchNormalization
  has ``gamma``, ``beta``, ``moving_mean``, ``moving_variance``);
* ``_format``: ``"kerascli-checkpoint-1"``; ``_config``: the resolved config as
  JSON text; ``_epoch``: epochs completed;
* ``_optimizer/iterations``, ``_optimizer/learning_rate`` (the rate of the next
  update), ``_optimizer/learning_rate_scale`` (what NaN rollbacks multiplied the
  configured rate or schedule by) and ``_optimizer/<slot>/<layer>/<weight>``
  (Adam's ``m`` and ``v``, SGD's ``velocity``);
* ``_rng/<layer>``: JSON text of the random generator state of each layer;
* ``_data``: JSON text of the size and SHA-256 of every data file the run
  trained on (see kerascli.data.fingerprint);
* ``_plugins``: JSON text of the plugins the run used, with the SHA-256 of
  their source (see kerascli.plugins);
* ``_state``: JSON text of the training position (epoch, step inside the
  epoch, global step, the epoch's running totals), callback state (best
  value) and the metrics history, everything an exact resume needs;
* ``_preprocessing/<input>/offset`` and ``.../scale``: the feature-wise statistics fitted on the training
  split (data.normalize, featurewise_*): inputs become (x - offset) / scale (kerascli.data.preprocess);
* ``_encoding``: JSON text of a table's column encoding (feature columns, the categories of each
  categorical column, class names; kerascli.data.table);
* ``_checksum``: SHA-256 over every other entry (name, dtype, shape, bytes),
  verified on load, so a truncated or bit-flipped file is detected.

Layer names start with a letter, so the ``_`` keys never collide with weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from kerascli.data.npyfile import check_npz
from kerascli.errors import CheckpointError, DataError
from kerascli.runs.atomic import atomic_write

FORMAT = "kerascli-checkpoint-1"


@dataclass
class Checkpoint:
    path: str
    arrays: dict[str, np.ndarray]

    def _json(self, key: str, what: str):
        if key not in self.arrays:
            return None
        try:
            return json.loads(str(self.arrays[key]))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise CheckpointError(f"{self.path}: the stored {what} is not valid JSON ({exc})") from None

    @cached_property
    def config(self) -> dict | None:
        return self._json("_config", "config")

    @cached_property
    def state(self) -> dict:
        """Training position and callback state saved with the checkpoint ({} when absent)."""
        return self._json("_state", "training state") or {}

    @cached_property
    def data(self) -> dict | None:
        """{path: {bytes, sha256}} of the run's data files (None in checkpoints that predate them)."""
        return self._json("_data", "data fingerprints")

    @cached_property
    def plugins(self) -> list | None:
        """[{spec, kind, path, sha256}] of the plugins the run used (None in checkpoints that predate them)."""
        return self._json("_plugins", "plugin list")

    @property
    def epoch(self) -> int:
        return int(self.arrays["_epoch"]) if "_epoch" in self.arrays else 0

    @property
    def global_step(self) -> int:
        return int(self.state.get("global_step", 0))

    def weights(self) -> dict[str, np.ndarray]:
        return {k: v for k, v in self.arrays.items() if not k.startswith("_")}


def checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(k for k in arrays if k != "_checksum"):
        value = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}|{value.dtype.str}|{value.shape}|".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def checkpoint_arrays(model, optimizer, config: dict, epoch: int, state: dict | None = None,
                      data: dict | None = None, plugins: list | None = None,
                      inputs: dict | None = None) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = model.host_weights()  # host copies, also of a GPU run's weights
    arrays["_format"] = np.array(FORMAT)
    arrays["_config"] = np.array(json.dumps(config))
    arrays["_epoch"] = np.array(epoch, dtype=np.int64)
    if optimizer is not None:
        arrays["_optimizer/iterations"] = np.array(optimizer.iterations, dtype=np.int64)
        arrays["_optimizer/learning_rate"] = np.array(optimizer.learning_rate, dtype=np.float64)
        arrays["_optimizer/learning_rate_scale"] = np.array(optimizer.learning_rate_scale, dtype=np.float64)
        arrays["_optimizer/accumulated"] = np.array(optimizer.accumulated, dtype=np.int64)
        for slot, flat in optimizer.slots.items():
            host = model.ops.to_host(flat)
            for key, _, spec in model.weight_items(trainable_only=True):
                arrays[f"_optimizer/{slot}/{key}"] = host[model.slices[key]].reshape(spec.shape)
    for layer in model.layers:
        if layer.rng is not None:
            arrays[f"_rng/{layer.name}"] = np.array(json.dumps(layer.rng.bit_generator.state))
    if state is not None:
        arrays["_state"] = np.array(json.dumps(state))
    if data is not None:
        arrays["_data"] = np.array(json.dumps(data))
    if plugins is not None:
        arrays["_plugins"] = np.array(json.dumps(plugins))
    arrays.update(inputs or {})  # how raw inputs become the model's (Session.input_entries)
    arrays["_checksum"] = np.array(checksum(arrays))
    return arrays


def save_checkpoint(path: str, model, optimizer, config: dict, epoch: int, state: dict | None = None,
                    data: dict | None = None, plugins: list | None = None, inputs: dict | None = None) -> None:
    arrays = checkpoint_arrays(model, optimizer, config, epoch, state, data, plugins, inputs)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path: str) -> Checkpoint:
    if not os.path.exists(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc.strerror}") from None
    if magic != b"PK\x03\x04":
        raise CheckpointError(f"{path}: not a readable .npz checkpoint (not a zip archive)")
    try:
        check_npz(path, what=".npz checkpoint")  # headers first: no allocation a forged header asks for
    except DataError as exc:
        raise CheckpointError(str(exc)) from None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise CheckpointError(f"{path}: holds object arrays that need pickle; refused") from None
        raise CheckpointError(f"{path}: not a readable .npz checkpoint ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise CheckpointError(f"{path}: not a readable .npz checkpoint ({exc})") from None
    if "_checksum" in arrays and str(arrays["_checksum"]) != checksum(arrays):
        raise CheckpointError(f"{path}: checksum mismatch: the file is corrupt")
    return Checkpoint(path, arrays)


def apply_weights(model, weights: dict[str, np.ndarray], source: str) -> None:
    """Copy weights into the model by ``<layer>/<weight>`` name; check names, shapes and values first."""
    staged = []
    for key, view, spec in model.weight_items():
        layer = key.split("/")[0]
        if key not in weights:
            have = sorted(k for k in weights if k.startswith(layer + "/"))
            hint = f" (it has {', '.join(have)})" if have else f" (it has no weights for layer {layer!r})"
            raise CheckpointError(f"{source}: missing {key!r} for layer {layer!r}{hint}")
        value = weights[key]
        if value.dtype.kind not in "biuf":
            raise CheckpointError(f"{source}: {key!r} has dtype {value.dtype}, expected numbers")
        if tuple(value.shape) != tuple(spec.shape):
            raise CheckpointError(
                f"{source}: {key!r} for layer {layer!r} has shape {tuple(value.shape)}, the model expects {tuple(spec.shape)}"
            )
        if not np.isfinite(value).all():
            raise CheckpointError(f"{source}: {key!r} contains NaN or Inf")
        staged.append((key, spec, value))
    # all checked: now copy, so a failure never leaves a half-loaded model (into host copies of the flat
    # buffers, then each buffer in one copy: one transfer each when the model lives on a GPU)
    buffers = model.host_buffers()
    for key, spec, value in staged:
        buffers["param" if spec.trainable else "state"][model.slices[key]] = value.ravel()
    model.ops.assign(model.param_buffer, buffers["param"])
    model.ops.assign(model.state_buffer, buffers["state"])


def apply_training_state(model, optimizer, ckpt: Checkpoint) -> None:
    """Restore optimizer slots and layer RNG states saved by :func:`checkpoint_arrays`."""
    arrays = ckpt.arrays
    if optimizer is not None and "_optimizer/iterations" in arrays:
        for slot, flat in optimizer.slots.items():
            host = model.ops.to_host(flat)
            for key, _, spec in model.weight_items(trainable_only=True):
                name = f"_optimizer/{slot}/{key}"
                if name not in arrays or tuple(arrays[name].shape) != tuple(spec.shape):
                    raise CheckpointError(f"{ckpt.path}: optimizer state {name!r} is missing or has the wrong shape")
                host[model.slices[key]] = arrays[name].ravel()
            model.ops.assign(flat, host)
        optimizer.iterations = int(arrays["_optimizer/iterations"])
        optimizer.accumulated = int(arrays["_optimizer/accumulated"]) if "_optimizer/accumulated" in arrays else 0
        if "_optimizer/learning_rate_scale" in arrays:
            optimizer.learning_rate_scale = float(arrays["_optimizer/learning_rate_scale"])
        elif "_optimizer/learning_rate" in arrays and optimizer.schedule is None:  # older checkpoints
            optimizer.base_learning_rate = float(arrays["_optimizer/learning_rate"])
    for layer in model.layers:
        name = f"_rng/{layer.name}"
        if layer.rng is not None and name in arrays:
            layer.rng.bit_generator.state = json.loads(str(arrays[name]))
