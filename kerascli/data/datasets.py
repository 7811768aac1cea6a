"""Dataset sources. Each returns (features, labels) as numpy arrays, one row per sample.

Files are read with ``allow_pickle=False``; a missing file, a missing array or
column, mismatched lengths or NaN/Inf features are reported as DataError.
"""

from __future__ import annotations

import csv
import os
from importlib import resources

import numpy as np

from kerascli.config.params import Param
from kerascli.data.download import RemoteFile, fetch
from kerascli.data.npyfile import check_npy, load_npz_arrays
from kerascli.errors import DataError

# Generated datasets larger than this many values are refused before anything is allocated.
MAX_SYNTHETIC_VALUES = 1 << 28


class Dataset:
    """``load(params)`` returns ``(x, y)`` arrays (one row per sample), or a batch sequence (``__len__``: the
    batches in an epoch; ``__getitem__(i)``: batch ``i`` as ``(x, y)``; optionally ``on_epoch_end()``), or,
    where the dataset has its own splits, a dict of either by split name, the names listed in ``SPLITS``."""

    PARAMS: dict[str, Param] = {}
    SPLITS: tuple[str, ...] = ()  # e.g. ("train", "val"): load() returns {"train": ..., "val": ...}

    @staticmethod
    def load(params: dict):
        raise NotImplementedError


def given_splits(dataset, params: dict) -> tuple[str, ...]:
    """The splits a dataset gives itself with these (resolved) parameters: its ``splits(params)`` where it
    has one (they depend on its arguments), else its ``SPLITS``."""
    decide = getattr(dataset, "splits", None)
    return tuple(decide(params)) if callable(decide) else tuple(getattr(dataset, "SPLITS", ()))


def check_values(a: np.ndarray, source: str, what: str, unit: str = "sample", first: int = 0) -> None:
    """One clear error for non-numeric values or NaN/Inf in ``a`` (one row per ``unit``; ``first``: the
    number of the first row). An array read from its file by rows is checked in chunks."""
    from kerascli.data.filerows import FileArray

    if a.dtype.kind not in "biuf":
        raise DataError(f"{source}: {what} must be numeric, got dtype {a.dtype}")
    if isinstance(a, FileArray):
        if a.dtype.kind == "f":
            for start, chunk in a.chunks():
                check_values(chunk, source, what, unit, start)
        return
    if a.dtype.kind == "f" and a.ndim and a.size:
        bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
        if bad.any():
            raise DataError(f"{source}: {what} contain NaN or Inf (first in {unit} {first + int(np.argmax(bad))})")


def check_features(x, y, source: str):
    """Features and labels (arrays, or dicts of arrays by name): numeric, finite, one row per sample each."""
    xs = x if isinstance(x, dict) else {"": x}
    ys = y if isinstance(y, dict) else {"": y}
    for what, arrays in (("features", xs), ("labels", ys)):
        for name, a in arrays.items():
            check_values(a, source, f"{what} {name!r}" if name else what)
    lengths = {len(a) for a in xs.values()}
    if len(lengths) > 1:
        raise DataError(f"{source}: feature arrays have different numbers of rows: {sorted(lengths)}")
    n = lengths.pop()
    for name, a in ys.items():
        if len(a) != n:
            raise DataError(f"{source}: {n} feature rows but {len(a)} labels" + (f" in {name!r}" if name else ""))
    if n == 0:
        raise DataError(f"{source}: no samples")
    return x, y


def _require_file(path: str) -> None:
    if not os.path.isfile(path):
        raise DataError(f"data file not found: {path}")


def _load_npy(path: str) -> np.ndarray:
    _require_file(path)
    check_npy(path)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: cannot read as .npy without pickle ({exc})") from None
    except OSError as exc:
        raise DataError(f"{path}: not a readable .npy file ({exc})") from None


class Digits(Dataset):
    """1,797 handwritten digits, 8x8 pixels valued 0..16 (the UCI optdigits test set)."""

    @staticmethod
    def load(params):
        with resources.files("kerascli.data").joinpath("digits.npz").open("rb") as f:
            with np.load(f, allow_pickle=False) as z:
                return z["x"], z["y"]


class KerasDataset(Dataset):
    """A dataset of keras.datasets: the same files (downloaded once, SHA-256 checked: kerascli.data.download)
    and the same train/test split, whose test part becomes the run's test split. ``FILES`` lists them."""

    FILES: tuple[RemoteFile, ...] = ()
    SPLITS = ("train", "test")


class Mnist(KerasDataset):
    """60,000 28x28 grey handwritten digits (0..255) to train on and 10,000 to test, as keras.datasets.mnist."""

    FILES = (RemoteFile("mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1", 11490434),)

    @classmethod
    def load(cls, params):
        path = fetch(cls.FILES[0])
        a = load_npz_arrays(path, ["x_train", "y_train", "x_test", "y_test"])
        return {"train": check_features(a["x_train"], a["y_train"], path),
                "test": check_features(a["x_test"], a["y_test"], f"{path} (test)")}


class FashionMnist(KerasDataset):
    """Zalando's 60,000 + 10,000 28x28 grey images of 10 kinds of clothing, as keras.datasets.fashion_mnist
    (four IDX files)."""

    FILES = tuple(RemoteFile(name, digest, size, "fashion-mnist") for name, digest, size in (
        ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148)))

    @classmethod
    def load(cls, params):
        from kerascli.data.idx import read_idx

        images, labels, test_images, test_labels = (read_idx(fetch(f)) for f in cls.FILES)
        return {"train": check_features(images, labels, cls.FILES[0].path),
                "test": check_features(test_images, test_labels, cls.FILES[2].path)}


def keras_split(x: np.ndarray, y: np.ndarray, source: str, test_split: float = 0.2, seed: int = 113) -> dict:
    """keras.datasets' split of a regression set: shuffled by numpy's legacy RandomState(seed), the first
    (1 - test_split) of it to train on (Keras' defaults: 0.2, 113)."""
    order = np.arange(len(x))
    np.random.RandomState(seed).shuffle(order)
    x, y = x[order], y[order]
    cut = int(len(x) * (1 - test_split))
    return {"train": check_features(x[:cut], y[:cut], source),
            "test": check_features(x[cut:], y[cut:], f"{source} (test)")}


class BostonHousing(KerasDataset):
    """506 Boston districts of the 1970s, 13 features, the median house value (k$) to predict, split 404/102
    as keras.datasets.boston_housing. (Keras warns against its use: one feature encodes race.)"""

    FILES = (RemoteFile("boston_housing.npz", "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5",
                        57026),)

    @classmethod
    def load(cls, params):
        path = fetch(cls.FILES[0])
        a = load_npz_arrays(path, ["x", "y"])
        return keras_split(a["x"], a["y"], path)


class CaliforniaHousing(KerasDataset):
    """20,640 California census block groups (1990), 8 features, the median house value ($) to predict, split
    80/20 as keras.datasets.california_housing; ``version: small`` takes its first 600 (Keras' stand-in for
    boston_housing)."""

    PARAMS = {"version": Param("str", "large", choices=("large", "small"))}
    FILES = (RemoteFile("california_housing.npz",
                        "1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f", 743530),)

    @classmethod
    def load(cls, params):
        path = fetch(cls.FILES[0])
        a = load_npz_arrays(path, ["x", "y"])
        x, y = (a["x"][:600], a["y"][:600]) if params["version"] == "small" else (a["x"], a["y"])
        return keras_split(x, y, path)


def _check_size(samples: int, width: int) -> None:
    if samples * width > MAX_SYNTHETIC_VALUES:
        raise DataError(f"a synthetic dataset of {samples:,} samples x {width:,} values is too large "
                        f"(limit {MAX_SYNTHETIC_VALUES:,} values)")


class SyntheticClassification(Dataset):
    """Gaussian clusters, one per class, in ``features`` dimensions."""

    PARAMS = {
        "samples": Param("int", 1000, min=2),
        "features": Param("int", 20, min=1),
        "classes": Param("int", 3, min=2),
        "spread": Param("float", 1.0, min=0.0, doc="cluster standard deviation"),
        "data_seed": Param("int", 0, min=0),
    }

    @staticmethod
    def load(params):
        _check_size(params["samples"], params["features"])
        rng = np.random.default_rng(params["data_seed"])
        centers = rng.normal(0, 3.0, size=(params["classes"], params["features"]))
        y = rng.integers(0, params["classes"], size=params["samples"])
        x = centers[y] + rng.normal(0, params["spread"], size=(params["samples"], params["features"]))
        return x.astype(np.float32), y.astype(np.int64)


class SyntheticSequences(Dataset):
    """Sequences whose class is a pattern somewhere in time, for recurrent models.

    Real-valued (``vocabulary: 0``): each class has a smooth prototype of ``steps`` x ``features``; a
    sample is its class's prototype rolled by a random number of steps, plus noise. Token ids (a
    ``vocabulary`` size): random ids from 1 upwards (0 is left for padding), with the class's two keywords
    (ids at the top of the vocabulary) at a random step and ``gap`` steps later: a model reading the
    sequence must carry what it saw to the last step.
    """

    PARAMS = {
        "samples": Param("int", 1000, min=2),
        "steps": Param("int", 20, min=2),
        "features": Param("int", 8, min=1, doc="values per step (real-valued sequences)"),
        "classes": Param("int", 3, min=2),
        "vocabulary": Param("int", 0, min=0, doc="0: real values; else token ids below this"),
        "noise": Param("float", 0.5, min=0.0),
        "gap": Param("int", 3, min=1, doc="steps between the two keywords (token sequences)"),
        "data_seed": Param("int", 0, min=0),
    }

    @staticmethod
    def load(params):
        p = params
        n, steps, classes = p["samples"], p["steps"], p["classes"]
        rng = np.random.default_rng(p["data_seed"])
        y = rng.integers(0, classes, size=n)
        if p["vocabulary"]:
            return SyntheticSequences._tokens(rng, y, p), y.astype(np.int64)
        _check_size(n, steps * p["features"])
        t = np.linspace(0, 2 * np.pi, steps, endpoint=False)
        freq = rng.uniform(0.5, 3.0, size=(classes, 1, p["features"]))
        phase = rng.uniform(0, 2 * np.pi, size=(classes, 1, p["features"]))
        prototypes = np.sin(freq * t[None, :, None] + phase)
        shifts = rng.integers(0, steps, size=n)
        x = np.stack([np.roll(prototypes[c], s, axis=0) for c, s in zip(y, shifts)])
        x += rng.normal(0, p["noise"], size=x.shape)
        return x.astype(np.float32), y.astype(np.int64)

    @staticmethod
    def _tokens(rng, y, p):
        n, steps, classes, vocabulary, gap = p["samples"], p["steps"], p["classes"], p["vocabulary"], p["gap"]
        keywords = 2 * classes  # the class's two keywords: ids vocabulary - 2 * classes ... vocabulary - 1
        if vocabulary < keywords + 3 or gap >= steps:
            raise ValueError(f"token sequences need vocabulary >= {keywords + 3} and gap < steps "
                             f"(got vocabulary {vocabulary}, gap {gap}, steps {steps})")
        _check_size(n, steps)
        x = rng.integers(1, vocabulary - keywords, size=(n, steps))
        first = rng.integers(0, steps - gap, size=n)
        rows = np.arange(n)
        x[rows, first] = vocabulary - keywords + 2 * y
        x[rows, first + gap] = vocabulary - keywords + 2 * y + 1
        return x.astype(np.float32)


class SyntheticRegression(Dataset):
    """y = x @ W + noise for a random W."""

    PARAMS = {
        "samples": Param("int", 1000, min=2),
        "features": Param("int", 10, min=1),
        "outputs": Param("int", 1, min=1),
        "noise": Param("float", 0.1, min=0.0),
        "data_seed": Param("int", 0, min=0),
    }

    @staticmethod
    def load(params):
        _check_size(params["samples"], params["features"] + params["outputs"])
        rng = np.random.default_rng(params["data_seed"])
        x = rng.normal(size=(params["samples"], params["features"]))
        w = rng.normal(size=(params["features"], params["outputs"]))
        y = x @ w + rng.normal(0, params["noise"], size=(params["samples"], params["outputs"]))
        return x.astype(np.float32), y.astype(np.float32)


class NpzFile(Dataset):
    """Arrays in one .npz file: ``x`` and ``y`` name them (default ``x`` and ``y``). A model with several
    inputs or outputs takes a list of names, which must be its input (or output) names. ``x_test`` and
    ``y_test`` (and ``x_val``, ``y_val``) name arrays of the file's own test (validation) split, as
    keras.datasets gives (x_train, y_train), (x_test, y_test)."""

    PARAMS = {"path": Param("path"), "x": Param("names", "x"), "y": Param("names", "y"),
              "x_val": Param("names", None, nullable=True), "y_val": Param("names", None, nullable=True),
              "x_test": Param("names", None, nullable=True), "y_test": Param("names", None, nullable=True),
              "sample_weight": Param("str", None, nullable=True, doc="array of one weight per training sample")}
    ROLES = {"train": ("x", "y"), "val": ("x_val", "y_val"), "test": ("x_test", "y_test")}

    @classmethod
    def check(cls, params: dict) -> str | None:
        for x, y in list(cls.ROLES.values())[1:]:
            if (params[x] is None) != (params[y] is None):
                given, missing = (x, y) if params[x] is not None else (y, x)
                return f"{missing}: {given} names the split's features, {missing} must name its labels"
        return None

    @classmethod
    def splits(cls, params: dict) -> tuple[str, ...]:
        own = tuple(s for s, (x, _) in cls.ROLES.items() if s != "train" and params.get(x) is not None)
        return ("train",) + own if own else ()

    @classmethod
    def load(cls, params):
        path = params["path"]
        _require_file(path)
        roles = [r for s, r in cls.ROLES.items() if s == "train" or params.get(r[0]) is not None]
        names = [n for pair in roles for role in pair for n in np.atleast_1d(params[role]).tolist()]
        weights = params.get("sample_weight")
        arrays = load_npz_arrays(path, list(dict.fromkeys(names + ([weights] if weights else []))))

        def pick(names):  # one array, or a dict of them for a model with several inputs or outputs
            return {n: arrays[n] for n in names} if isinstance(names, list) else arrays[names]

        parts = {split: check_features(pick(params[x]), pick(params[y]), f"{path} ({split})" if split != "train"
                                       else path)
                 for split, (x, y) in cls.ROLES.items() if (x, y) in roles}
        if weights:  # the training arrays' (the file's own validation and test splits are unweighted)
            parts["train"] = parts["train"] + (arrays[weights],)
        return parts if len(parts) > 1 else parts["train"]


class NpyPair(Dataset):
    """Features and labels in two .npy files."""

    PARAMS = {"x": Param("path"), "y": Param("path")}

    @staticmethod
    def load(params):
        """The features are read from the file batch by batch (kerascli.data.filerows), never whole."""
        from kerascli.data.filerows import open_npy

        _require_file(params["x"])
        x = open_npy(params["x"]) or _load_npy(params["x"])
        return check_features(x, _load_npy(params["y"]), params["x"])


class IdxFiles(Dataset):
    """MNIST's IDX files (plain or .gz): ``x`` the images, ``y`` the labels, and optionally ``x_test`` and
    ``y_test``, the file pair of the data's own test split (MNIST's t10k files), as keras.datasets splits
    them. Plain image files are read batch by batch (kerascli.data.filerows), never whole."""

    PARAMS = {"x": Param("path"), "y": Param("path"),
              "x_test": Param("path", None, nullable=True), "y_test": Param("path", None, nullable=True)}

    @classmethod
    def check(cls, params: dict) -> str | None:
        if (params["x_test"] is None) != (params["y_test"] is None):
            given, missing = ("x_test", "y_test") if params["x_test"] is not None else ("y_test", "x_test")
            return f"{missing}: {given} names the test split's images, {missing} must name its labels"
        return None

    @classmethod
    def splits(cls, params: dict) -> tuple[str, ...]:
        return ("train", "test") if params.get("x_test") else ()

    @classmethod
    def load(cls, params):
        from kerascli.data.idx import read_idx

        def pair(x, y):
            images, labels = read_idx(params[x], by_rows=True), read_idx(params[y])
            if labels.ndim != 1:
                raise DataError(f"{params[y]}: labels must be one value per sample, got shape {labels.shape}")
            return check_features(images, labels, params[x])

        train = pair("x", "y")
        return {"train": train, "test": pair("x_test", "y_test")} if params.get("x_test") else train


def read_csv_rows(path: str, delimiter: str) -> list[list[str]]:
    """The non-empty rows of a CSV file, as text."""
    _require_file(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [row for row in csv.reader(f, delimiter=delimiter) if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot read CSV ({exc})") from None
    if not rows:
        raise DataError(f"{path}: empty CSV file")
    return rows


def read_numeric_csv(path: str, delimiter: str = ",",
                     option: str = "delimiter") -> tuple[list[str] | None, np.ndarray]:
    """(header or None, float array). A first row that is not all numbers is the header.

    ``option`` is how the user sets the delimiter where this is read (named in the hint when the file
    looks separated by something else)."""
    rows = read_csv_rows(path, delimiter)
    header = None
    try:
        [float(v) for v in rows[0]]
    except ValueError:
        header = [h.strip() for h in rows[0]]
        rows = rows[1:]
    if not rows:
        raise DataError(f"{path}: no data rows after the header (a CSV needs one row per sample)")
    width = len(header) if header else len(rows[0])
    values = np.empty((len(rows), width), dtype=np.float64)
    for i, row in enumerate(rows):
        line = i + (2 if header else 1)
        if len(row) != width:
            hint = delimiter_hint(row, delimiter, option)
            raise DataError(f"{path}:{line}: expected {width} columns, got {len(row)}{hint}")
        try:
            values[i] = [float(v) for v in row]
        except ValueError:
            bad = next(v for v in row if number(v) is None)
            hint = delimiter_hint(row, delimiter, option)
            raise DataError(f"{path}:{line}: {bad!r} is not a number{hint}") from None
    return header, values


def delimiter_hint(row: list[str], delimiter: str, option: str) -> str:
    """'; the file looks ';'-separated: set delimiter: ';'' when another separator is all over the row."""
    text = delimiter.join(row)
    for other in (";", "\t", "|", ","):
        if other != delimiter and text.count(other) >= max(1, len(row)):
            shown = "'\\t'" if other == "\t" else repr(other)
            return f"; the file looks {shown}-separated: set {option} {shown}"
    return ""


def number(text: str) -> float | None:
    """The number a CSV field holds, or None."""
    try:
        return float(text)
    except ValueError:
        return None


class CsvFile(Dataset):
    """A CSV with a header row; the label column is named, every other column is a feature; the columns
    named in ``categorical`` are one-hot encoded, and text labels become class ids (kerascli.data.table)."""

    PARAMS = {
        "path": Param("path"),
        "label_column": Param("str", "label"),
        "delimiter": Param("str", ","),
        "sample_weight_column": Param("str", None, nullable=True, doc="a column of one weight per sample"),
        "categorical": Param("names", None, nullable=True, doc="columns of categories, one-hot encoded"),
    }
    _ENCODINGS: dict = {}  # the encoding each file was last read with, by (file, its arguments)

    @staticmethod
    def _key(params) -> tuple:
        path = params["path"]
        stat = os.stat(path) if os.path.exists(path) else None
        categorical = params.get("categorical")
        return (path, stat and stat.st_mtime_ns, stat and stat.st_size, params["delimiter"],
                params["label_column"], params.get("sample_weight_column"),
                tuple([categorical] if isinstance(categorical, str) else categorical or ()))

    @classmethod
    def load(cls, params):
        """``params["encoding"]`` (not a config key: a run's stored Encoding) reads the file through it."""
        from kerascli.data.table import read_table

        path = params["path"]
        x, y, w, encoding = read_table(path, params["delimiter"], params["label_column"],
                                       params.get("sample_weight_column"), params.get("categorical"),
                                       params.get("encoding"))
        if y is None:
            raise DataError(f"{path}: no column {params['label_column']!r} (the labels)")
        if params.get("encoding") is None:
            cls._ENCODINGS[cls._key(params)] = encoding
        x, y = check_features(x, y, path)
        return (x, y) if w is None else (x, y, w)

    @classmethod
    def encoding(cls, params):
        """The file's column encoding (features, categories, class names), to store with a run."""
        key = cls._key(params)
        if key not in cls._ENCODINGS:
            cls.load(params)
        return cls._ENCODINGS[key]
