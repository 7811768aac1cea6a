"""From a resolved data spec to train/val/test splits and shuffled batches.

Randomness is derived from the run seed with fixed stream ids, so a split or
an epoch's order can be recomputed anywhere (evaluate, predict, a resume):
the split permutation uses ``[seed, 0]``, epoch ``e`` shuffles with ``[seed, 2, e]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kerascli.errors import DataError
from kerascli.registry import DATASETS

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    x: np.ndarray
    y: np.ndarray  # targets as the loss takes them

    def __len__(self) -> int:
        return len(self.x)


def load_raw(data_spec: dict) -> tuple[np.ndarray, np.ndarray]:
    params = {k: v for k, v in data_spec.items() if k != "dataset"}
    return DATASETS.get(data_spec["dataset"]).load(params)


def split_indices(n: int, data_spec: dict, seed: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng([seed, 0]).permutation(n) if data_spec["shuffle"] else np.arange(n)
    n_test = int(round(n * data_spec["test_split"]))
    n_val = int(round(n * data_spec["validation_split"]))
    for key, count in (("validation_split", n_val), ("test_split", n_test)):
        if data_spec[key] > 0 and count == 0:  # it would silently train without one
            raise DataError(f"data.{key}: {data_spec[key]:g} of {n} samples rounds to 0 samples; use at least "
                            f"{0.5 / n:.2g} (or 0 for none)")
    if n - n_test - n_val < 1:
        raise DataError(f"{n} samples leave nothing to train on after validation/test splits")
    return {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}


def check_input_shape(x: np.ndarray, input_shape: tuple, source: str) -> None:
    if tuple(x.shape[1:]) != tuple(input_shape):
        hint = ""
        if math.prod(x.shape[1:]) == math.prod(input_shape):
            hint = f"; add a first layer {{type: Reshape, target_shape: {list(input_shape)}}} or change input_shape"
        raise DataError(
            f"{source}: samples have shape {tuple(x.shape[1:])} but the model's input_shape is {tuple(input_shape)}{hint}"
        )


def prepare_splits(data_spec: dict, seed: int, input_shape: tuple, loss, units: int, dtype) -> dict[str, Split]:
    """Load the dataset, check it against the model, and return the non-empty splits."""
    x, y = load_raw(data_spec)
    check_input_shape(x, input_shape, f"dataset {data_spec['dataset']!r}")
    x = x.astype(dtype, copy=False)
    targets = loss.targets(np.asarray(y), units, dtype)
    out = {}
    for name, idx in split_indices(len(x), data_spec, seed).items():
        if len(idx):
            out[name] = Split(x[idx], targets[idx])
    return out


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, 2, epoch]).permutation(n)


def batches(split: Split, batch_size: int, order: np.ndarray | None = None):
    """Yield (x, y) batches of ``split`` (in ``order``, which may cover part of it); the last may be smaller."""
    n = len(split) if order is None else len(order)
    for start in range(0, n, batch_size):
        if order is None:
            yield split.x[start : start + batch_size], split.y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield split.x[idx], split.y[idx]
