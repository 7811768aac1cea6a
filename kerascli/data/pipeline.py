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
    x: object  # features: an array, or a dict of arrays by model input name
    y: object  # targets as the losses take them: an array, or a dict by model output name

    def __len__(self) -> int:
        return len(next(iter(self.x.values())) if isinstance(self.x, dict) else self.x)


def take(a, index):
    """``a[index]`` for an array or for every array of a dict."""
    return {k: v[index] for k, v in a.items()} if isinstance(a, dict) else a[index]


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


def by_name(value, names: list[str], what: str, source: str) -> dict:
    """A dataset's features or labels as a dict by the model's input or output names."""
    if not isinstance(value, dict):
        if len(names) == 1:
            return {names[0]: value}
        raise DataError(f"{source}: the model has {what}s {', '.join(names)} but the dataset gives one array; name "
                        f"its arrays after them (e.g. npz: x: [{', '.join(names)}])")
    missing = [n for n in names if n not in value]
    if missing:
        raise DataError(f"{source}: no array for model {what} {missing[0]!r} (the dataset has: "
                        f"{', '.join(value)})")
    return {n: value[n] for n in names}


def prepare_splits(data_spec: dict, seed: int, model, objective, dtype) -> dict[str, Split]:
    """Load the dataset, check it against the model's inputs and outputs, and return the non-empty splits."""
    features, targets, n = prepare_arrays(*load_raw(data_spec), model, objective, dtype,
                                          f"dataset {data_spec['dataset']!r}")
    out = {}
    for name, idx in split_indices(n, data_spec, seed).items():
        if len(idx):
            out[name] = Split(take(features, idx), take(targets, idx))
    return out


def prepare_arrays(x, y, model, objective, dtype, source: str):
    """Features and labels (as loaded) checked against the model's inputs and outputs: (features, targets
    as the losses take them, sample count)."""
    xs = by_name(x, list(model.input_shapes), "input", source)
    ys = by_name(y, list(model.outputs), "output", source)
    lengths = {len(a) for a in list(xs.values()) + list(ys.values())}
    if len(lengths) != 1:
        raise DataError(f"{source}: its arrays have different numbers of samples ({sorted(lengths)})")
    for name, shape in model.input_shapes.items():
        check_input_shape(xs[name], shape, source if len(xs) == 1 else f"{source}, input {name!r}")
        xs[name] = xs[name].astype(dtype, copy=False)
    units = {o: model.output_shapes[o][0] for o in model.outputs}
    targets = objective.targets(ys if objective.multi else ys[model.outputs[0]], units, dtype)
    features = xs if len(xs) > 1 else next(iter(xs.values()))
    return features, targets, lengths.pop()


def outside_data(path: str, x_key: str | None, y_key: str | None, labels: str | None, label_column: str,
                 delimiter: str):
    """(features, labels) from a file that was not part of training: an .npz (arrays ``x_key`` and ``y_key``,
    default x and y), a .csv/.tsv with a label column, or an .npy of features with ``labels`` (.npy) beside."""
    from kerascli.errors import ConfigError

    ext = path.lower().rsplit(".", 1)[-1] if "." in path else ""
    if ext == "npz":
        return DATASETS.get("npz").load({"path": path, "x": x_key or "x", "y": y_key or "y"})
    if ext in ("csv", "tsv"):
        return DATASETS.get("csv").load({"path": path, "label_column": label_column,
                                         "delimiter": "\t" if ext == "tsv" and delimiter == "," else delimiter})
    if ext == "npy":
        if not labels:
            raise ConfigError(f"--data {path}: an .npy holds features only; name the labels with --labels FILE.npy")
        return DATASETS.get("npy").load({"x": path, "y": labels})
    raise ConfigError(f"--data {path}: expected an .npz, .npy, .csv or .tsv file")


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, 2, epoch]).permutation(n)


def batches(split: Split, batch_size: int, order: np.ndarray | None = None):
    """Yield (x, y) batches of ``split`` (in ``order``, which may cover part of it); the last may be smaller."""
    n = len(split) if order is None else len(order)
    for start in range(0, n, batch_size):
        index = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        yield take(split.x, index), take(split.y, index)
