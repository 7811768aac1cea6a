"""Reading the inputs to predict on, and writing predictions: the file formats of ``kerascli predict``."""

from __future__ import annotations

import csv
import io
import math
import os

import numpy as np

from kerascli.data.datasets import check_values, read_numeric_csv
from kerascli.data.npyfile import check_npy, check_npz, load_npz_arrays
from kerascli.errors import DataError


def read_inputs(path: str, key: str | None, drop_column: str | None, delimiter: str = ",",
                encoding=None) -> np.ndarray:
    """The inputs to predict on; a .csv of a run trained on a table is read through its column ``encoding``
    (columns by name, categories one-hot as in training)."""
    ext = os.path.splitext(path)[1].lower()
    if not os.path.isfile(path):
        raise DataError(f"input file not found: {path}")
    if ext == ".csv" and encoding is not None and encoding.features:
        from kerascli.data.table import read_table

        return read_table(path, delimiter, drop_column, encoding=encoding, option="--delimiter")[0]
    if ext == ".csv":
        header, values = read_numeric_csv(path, delimiter, option="--delimiter")
        if header and drop_column and drop_column in header:
            values = np.delete(values, header.index(drop_column), axis=1)
        return values
    if ext not in (".npy", ".npz"):
        raise DataError(f"{path}: input must be .npy, .npz or .csv")
    try:
        if ext == ".npy":
            check_npy(path)
            return np.load(path, allow_pickle=False)
        names = list(check_npz(path))
        chosen = key or ("x" if "x" in names else names[0] if len(names) == 1 else None)
        if chosen is None or chosen not in names:
            raise DataError(f"{path}: choose the input array with --key (arrays: {', '.join(names) or 'none'})")
        return load_npz_arrays(path, [chosen], found=names)[chosen]
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read without pickle ({exc})") from None


def fit_to_input(x: np.ndarray, input_shape: tuple, path: str) -> np.ndarray:
    check_values(x, path, "inputs", unit="row")
    if x.ndim == 0:
        raise DataError(f"{path}: expected one row per sample, got a scalar")
    if len(x) == 0:
        raise DataError(f"{path}: no samples to predict (0 rows)")
    per_sample, expected = math.prod(x.shape[1:]), math.prod(input_shape)
    if tuple(x.shape[1:]) != tuple(input_shape):
        if per_sample == expected:
            x = x.reshape((len(x),) + tuple(input_shape))  # flat rows (e.g. from CSV) of an image model
        else:
            raise DataError(
                f"{path}: samples have shape {tuple(x.shape[1:])} ({per_sample} values) but the model "
                f"takes {tuple(input_shape)} ({expected} values)"
            )
    return x


def output_columns(classification: bool, classes_only: bool, units: int, names: list[str] | None = None
                   ) -> list[str]:
    """CSV header of predictions: class ids (and, where the run has class ``names``, the class name), then
    one probability (or output) per unit, named by class id or name. One sigmoid unit is the probability
    of class 1, so its column is prob_1."""
    if not classification:
        return [f"output_{i}" for i in range(units)]
    head = ["class"] + (["class_name"] if names else [])
    if classes_only:
        return head
    labels = names or [str(i) for i in range(max(units, 2))]
    return head + ([f"prob_{labels[1]}"] if units == 1 else [f"prob_{labels[i]}" for i in range(units)])


def read_named_inputs(path: str, names: list[str]) -> dict[str, np.ndarray]:
    """A multi-input model's inputs: the arrays of an .npz file named like the model's inputs."""
    if not os.path.isfile(path):
        raise DataError(f"input file not found: {path}")
    if os.path.splitext(path)[1].lower() != ".npz":
        raise DataError(f"{path}: a model with inputs {', '.join(names)} reads an .npz with arrays of those names")
    return load_npz_arrays(path, names, purpose=" for the model's input of that name")


def class_ids(probs: np.ndarray) -> np.ndarray:
    """Class ids from probabilities: threshold 0.5 for one sigmoid unit, else the largest."""
    return (probs[:, 0] > 0.5).astype(np.int64) if probs.shape[1] == 1 else probs.argmax(axis=1)


def class_names_for(names: list[str] | None, units: int) -> list[str] | None:
    """``names`` where there is one per class of an output of ``units`` units (one sigmoid unit: two
    classes), else None: a model whose units are not the data's classes is named by id."""
    return names if names is not None and len(names) == (2 if units == 1 else units) else None


def prediction_csv(probs: np.ndarray, ids: np.ndarray | None, classes_only: bool, names: list[str] | None) -> str:
    """The CSV text of predictions: class ids (and names) where ``ids`` are given, then the outputs."""
    text = io.StringIO()
    out = csv.writer(text, lineterminator="\n")  # (quotes a class name holding a comma)
    out.writerow(output_columns(ids is not None, classes_only, probs.shape[1], names))
    for i in range(len(probs)):
        row = [] if ids is None else [str(int(ids[i]))] + ([names[ids[i]]] if names else [])
        if not classes_only:
            row += [f"{v:.8g}" for v in probs[i]]
        out.writerow(row)
    return text.getvalue()
