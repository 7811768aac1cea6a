"""CSV/TSV tables with named columns: numeric features, categorical columns one-hot encoded, and string
labels mapped to class ids.

The encoding (which columns are features, in which order; the categories of each categorical column; the
class names) is taken from the training file, sorted so that it does not depend on row order, and stored
with the run (the checkpoint's ``_encoding``). Evaluating or predicting on another file applies the run's
encoding: columns are found by name, categories and class names map to the run's positions, and a value
the run never saw is an error naming the file, line and column.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from kerascli.errors import DataError


@dataclass
class Encoding:
    features: list[str]  # the feature columns, in the order their values are laid out
    categories: dict[str, list[str]]  # categorical column -> its categories (one-hot positions)
    classes: list[str] | None = None  # label names by class id (labels given as text), else None

    @property
    def width(self) -> int:
        """Values per sample: one per numeric column, one per category of each categorical column."""
        return sum(len(self.categories[c]) if c in self.categories else 1 for c in self.features)

    def as_dict(self) -> dict:
        return {"features": self.features, "categories": self.categories, "classes": self.classes}

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    @classmethod
    def from_json(cls, text: str, source: str) -> Encoding:
        try:
            d = json.loads(text)
            out = cls(list(d["features"]), {k: list(v) for k, v in d["categories"].items()}, d["classes"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{source}: its stored column encoding is damaged ({exc})") from None
        return out


def read_table(path: str, delimiter: str = ",", label_column: str | None = "label",
               weight_column: str | None = None, categorical=None, encoding: Encoding | None = None,
               option: str = "data.delimiter:"):
    """(features (n, width) float64, labels (n,) or None, weights (n,) or None, encoding) of a CSV with a
    header row. Without ``encoding`` it is made from this file (``categorical`` names the columns to
    one-hot encode; text labels become class ids in sorted order); with one, this file is read through it,
    and ``label_column`` may be absent (inputs to predict)."""
    from kerascli.data.datasets import delimiter_hint, number, read_csv_rows

    rows = read_csv_rows(path, delimiter)
    fresh = encoding is None  # the encoding is made from this file
    header = [h.strip() for h in rows[0]]
    if all(number(h) is not None for h in header):
        raise DataError(f"{path}: needs a header row naming the columns"
                        + (f" (label column {label_column!r})" if label_column else ""))
    rows = rows[1:]
    if not rows:
        raise DataError(f"{path}: no data rows after the header (a CSV needs one row per sample)")
    width = len(header)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise DataError(f"{path}:{i + 2}: expected {width} columns, got {len(row)}"
                            f"{delimiter_hint(row, delimiter, option)}")
    index = {name: j for j, name in enumerate(header)}
    has_label = label_column is not None and label_column in index
    if label_column is not None and not has_label and encoding is None:
        raise DataError(f"{path}: no column {label_column!r} (columns: {', '.join(header)})")
    if weight_column is not None and weight_column not in index:
        raise DataError(f"{path}: no column {weight_column!r} (columns: {', '.join(header)})")
    columns = list(zip(*rows))

    def numbers(name: str) -> np.ndarray:
        out = np.empty(len(rows))
        for i, text in enumerate(columns[index[name]]):
            value = number(text)
            if value is None:
                hint = "; if it is a category, add it to data.categorical" if fresh else ""
                raise DataError(f"{path}:{i + 2}: column {name!r}: {text!r} is not a number{hint}"
                                f"{delimiter_hint(rows[i], delimiter, option)}")
            out[i] = value
        return out

    taken = {label_column, weight_column}
    if encoding is None:
        wanted = [categorical] if isinstance(categorical, str) else list(categorical or [])
        for name in wanted:
            if name not in index:
                raise DataError(f"{path}: data.categorical names {name!r}, which is not a column (columns: "
                                f"{', '.join(header)})")
            if name in taken:
                raise DataError(f"{path}: data.categorical names {name!r}, the label or weight column")
        features = [h for h in header if h not in taken]
        categories = {name: sorted({v.strip() for v in columns[index[name]]}) for name in features if name in wanted}
        classes = None
        label_text = [v.strip() for v in columns[index[label_column]]] if has_label else []
        text = [number(v) is None for v in label_text]
        if any(text) and not all(text):  # a typo among numbers, more likely than class names that look like them
            i = text.index(True) if text.count(True) <= text.count(False) else text.index(False)
            raise DataError(f"{path}:{i + 2}: {label_text[i]!r} is {'not ' if text[i] else ''}a number, but "
                            f"most labels are{'' if text[i] else ' not'}; labels must be all numbers (class ids, "
                            "values) or all class names")
        if any(text):
            classes = sorted(set(label_text))
        encoding = Encoding(features, categories, classes)
    else:
        missing = [c for c in encoding.features if c not in index]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r}, a feature of the run (its features: "
                            f"{', '.join(encoding.features)})")
    parts = []
    for name in encoding.features:
        if name in encoding.categories:
            known = {c: k for k, c in enumerate(encoding.categories[name])}
            onehot = np.zeros((len(rows), len(known)))
            for i, text in enumerate(columns[index[name]]):
                k = known.get(text.strip())
                if k is None:
                    raise DataError(f"{path}:{i + 2}: column {name!r}: {text.strip()!r} is not one of the run's "
                                    f"categories ({', '.join(encoding.categories[name])})")
                onehot[i, k] = 1.0
            parts.append(onehot)
        else:
            parts.append(numbers(name)[:, None])
    x = np.concatenate(parts, axis=1) if parts else np.zeros((len(rows), 0))
    y = None
    if has_label:
        if encoding.classes is None:
            y = numbers(label_column)
        else:
            ids = {c: k for k, c in enumerate(encoding.classes)}
            y = np.empty(len(rows))
            for i, text in enumerate(columns[index[label_column]]):
                k = ids.get(text.strip())
                if k is None:
                    raise DataError(f"{path}:{i + 2}: label {text.strip()!r} is not a class of the run "
                                    f"({', '.join(encoding.classes)})")
                y[i] = k
    w = numbers(weight_column) if weight_column is not None else None
    return x, y, w, encoding
