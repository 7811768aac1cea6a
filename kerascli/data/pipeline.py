"""From a resolved data spec to train/val/test splits and shuffled batches.

A dataset gives arrays (one row per sample), or batches one at a time (an object with ``__len__``, the
batches in an epoch, and ``__getitem__(i)``, batch ``i`` as ``(x, y)``: Keras' PyDataset protocol), or a
dict of either by split name ("train", "val", "test"). A split of arrays is shuffled and batched by sample;
a split of batches by batch index.

Randomness is derived from the run seed with fixed stream ids, so a split or
an epoch's order can be recomputed anywhere (evaluate, predict, a resume):
the split permutation uses ``[seed, 0]``, epoch ``e`` shuffles with ``[seed, 2, e]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kerascli.data.datasets import check_features, check_values, given_splits
from kerascli.errors import DataError
from kerascli.registry import DATASETS

SPLITS = ("train", "val", "test")


class SampleSplit:
    """What a split of samples (batches cut from an order of sample positions) says about itself; the
    subclass gives ``__len__`` (samples) and ``batches``."""

    @property
    def size_text(self) -> str:
        return str(len(self))

    @property
    def samples(self) -> int:
        return len(self)

    def steps(self, batch_size: int) -> int:
        return math.ceil(len(self) / batch_size)

    def order(self, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
        """The epoch's sample order."""
        return epoch_order(len(self), seed, epoch, shuffle)

    def after(self, order: np.ndarray, steps: int, batch_size: int) -> np.ndarray:
        """What is left of ``order`` once ``steps`` batches are trained."""
        return order[steps * batch_size :]

    def segment(self, order: np.ndarray, first: int, count: int, batch_size: int) -> np.ndarray:
        """The part of ``order`` that makes batches first .. first + count - 1."""
        return order[first * batch_size : (first + count) * batch_size]

    def end_epoch(self) -> None: ...

    def batch_keys(self, batch_size: int, order=None) -> list:
        """What makes each batch (in ``order``, which may cover part of the split; the last may be smaller):
        the sample positions, a slice where there is no order. ``make_batch(key)`` makes it, on any thread."""
        n = len(self) if order is None else len(order)
        return [slice(start, start + batch_size) if order is None else order[start : start + batch_size]
                for start in range(0, n, batch_size)]

    def batches(self, batch_size: int, order=None):
        """(x, y, sample weights or None) batches (in ``order``, which may cover part of the split); the last
        may be smaller."""
        for key in self.batch_keys(batch_size, order):
            yield self.make_batch(key)


@dataclass
class Split(SampleSplit):
    x: object  # features: an array, or a dict of arrays by model input name
    y: object  # targets as the losses take them: an array, or a dict by model output name
    w: object = None  # each sample's weight (Keras' sample_weight), or None

    def __len__(self) -> int:
        return len(next(iter(self.x.values())) if isinstance(self.x, dict) else self.x)

    def head(self, batches: int, batch_size: int) -> "Split":
        """The split's first ``batches`` batches (Keras' validation_steps)."""
        part = slice(0, batches * batch_size)
        return Split(take(self.x, part), take(self.y, part), None if self.w is None else self.w[part])

    def make_batch(self, index):
        return take(self.x, index), take(self.y, index), None if self.w is None else self.w[index]


class BatchSplit:
    """A split whose batches come one at a time from the dataset (``source[i]`` for each batch index in
    ``indices``); each is checked and converted as arrays would be (``convert(x, y, where)``). Its batch
    size is the dataset's; ``train.batch_size`` bounds it, as the model's buffers were sized for it."""

    streamed = True

    def __init__(self, source, indices: np.ndarray, convert, batch_size: int, name: str):
        self.source, self.indices, self.convert = source, np.asarray(indices), convert
        self.batch_size, self.name = batch_size, name
        self.seen = 0  # samples given by the batches of the first complete pass

    @property
    def size_text(self) -> str:
        return f"{len(self.indices)} batches"

    @property
    def samples(self) -> int:
        return self.seen

    def steps(self, batch_size: int) -> int:
        return len(self.indices)

    def order(self, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
        """The epoch's batch order: positions into ``indices``."""
        return epoch_order(len(self.indices), seed, epoch, shuffle)

    def after(self, order: np.ndarray, steps: int, batch_size: int) -> np.ndarray:
        return order[steps:]

    def segment(self, order: np.ndarray, first: int, count: int, batch_size: int) -> np.ndarray:
        return order[first : first + count]

    def head(self, batches: int, batch_size: int) -> "BatchSplit":
        return BatchSplit(self.source, self.indices[:batches], self.convert, self.batch_size, self.name)

    def batch_keys(self, batch_size: int, order=None) -> list:
        return list(range(len(self.indices)) if order is None else order)

    def batches(self, batch_size: int, order=None):
        counted = order is None or len(order) == len(self.indices)
        total = 0
        for position in self.batch_keys(batch_size, order):
            x, y, w = self.make_batch(position)
            total += len(next(iter(x.values())) if isinstance(x, dict) else x)
            yield x, y, w
        if counted and not self.seen:
            self.seen = total

    def make_batch(self, position):
        """Batch ``position`` of ``indices``, from the dataset, checked and converted."""
        index = int(self.indices[position])
        where = f"{self.name}, batch {index}"
        try:
            item = self.source[index]
        except DataError:
            raise
        except Exception as exc:  # the dataset's own code: its error, named, without a traceback
            raise DataError(f"{where}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(item, tuple) or len(item) not in (2, 3):
            got = f"a tuple of {len(item)}" if isinstance(item, tuple) else type(item).__name__
            raise DataError(f"{where}: a batch must be a tuple (x, y) or (x, y, sample_weight), got {got}")
        x, y = self.convert(item[0], item[1], where)
        rows = len(next(iter(x.values())) if isinstance(x, dict) else x)
        w = sample_weights(item[2], rows, where) if len(item) == 3 else None
        if rows > self.batch_size:
            raise DataError(f"{where}: {rows} samples, more than train.batch_size {self.batch_size}, which "
                            "the model's buffers are sized for; set train.batch_size to the dataset's largest "
                            "batch")
        return x, y, w

    def end_epoch(self) -> None:
        """Keras' PyDataset hook, run after each training epoch."""
        hook = getattr(self.source, "on_epoch_end", None)
        if callable(hook):
            hook()


def made_one_at_a_time(split) -> bool:
    """Whether a split's batches are made one at a time on the host (given by the dataset, augmented, read
    from a file) rather than cut from arrays in memory (wrappers answer for the split they wrap)."""
    return any(getattr(split, flag, False) for flag in ("streamed", "augmented", "from_file"))


def take(a, index):
    """``a[index]`` for an array or for every array of a dict."""
    return {k: v[index] for k, v in a.items()} if isinstance(a, dict) else a[index]


def load_raw(data_spec: dict, encoding=None):
    """What the dataset's ``load`` returns: (x, y) arrays, a batch sequence, or a dict of them by split.
    ``encoding``: a run's stored column encoding, for the datasets that have one (CSV tables)."""
    params = {k: v for k, v in data_spec.items() if k != "dataset"}
    if encoding is not None:
        params["encoding"] = encoding
    return DATASETS.get(data_spec["dataset"]).load(params)


def dataset_encoding(data_spec: dict):
    """The column encoding of the dataset (features, categories, class names) where it has one, else None."""
    hook = getattr(DATASETS.get(data_spec["dataset"]), "encoding", None)
    return hook({k: v for k, v in data_spec.items() if k != "dataset"}) if callable(hook) else None


def is_batch_source(value) -> bool:
    """A dataset given batch by batch (Keras' PyDataset protocol: ``len`` and indexing by batch)."""
    return (not isinstance(value, (tuple, list, dict, np.ndarray)) and hasattr(value, "__len__")
            and hasattr(value, "__getitem__"))


def split_indices(n: int, data_spec: dict, seed: int, unit: str = "samples") -> dict[str, np.ndarray]:
    order = np.random.default_rng([seed, 0]).permutation(n) if data_spec["shuffle"] else np.arange(n)
    n_test = int(round(n * data_spec["test_split"]))
    n_val = int(round(n * data_spec["validation_split"]))
    for key, count in (("validation_split", n_val), ("test_split", n_test)):
        if data_spec[key] > 0 and count == 0:  # it would silently train without one
            raise DataError(f"data.{key}: {data_spec[key]:g} of {n} {unit} rounds to 0 {unit}; use at least "
                            f"{0.5 / n:.2g} (or 0 for none)")
    if n - n_test - n_val < 1:
        raise DataError(f"{n} {unit} leave nothing to train on after validation/test splits")
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


def prepare_splits(data_spec: dict, seed: int, model, objective, dtype, batch_size: int, encoding=None) -> dict:
    """Load the dataset, check it against the model's inputs and outputs, and return the non-empty splits
    (a Split of arrays, or a BatchSplit where the dataset gives batches). Splits the dataset names itself
    are taken as they are; validation_split and test_split divide its "train" part (or the whole of it).
    ``encoding``: a run's column encoding to read a table through (else the file's own)."""
    name = data_spec["dataset"]
    raw = load_raw(data_spec, encoding)
    given = given_splits(DATASETS.get(name), data_spec)
    if isinstance(raw, dict):
        if set(raw) != set(given) or "train" not in raw:
            declared = f"declares SPLITS = {tuple(given)}" if given else "declares no SPLITS"
            raise DataError(f"dataset {name!r}: load() returned the splits {', '.join(map(repr, raw))} but the "
                            f"dataset {declared}; a dataset that gives its own splits names them in SPLITS, "
                            "which must include 'train'")
        parts = raw
    elif given:
        raise DataError(f"dataset {name!r}: declares SPLITS = {tuple(given)} but load() returned one dataset, "
                        "not a dict by split name")
    else:
        parts = {"train": raw}
    out = {}
    for part, value in parts.items():
        source = f"dataset {name!r}" + (f", split {part!r}" if given else "")
        for split, found in _divide(value, source, data_spec if part == "train" else None, seed, model,
                                    objective, dtype, batch_size).items():
            out[part if split == "train" else split] = found
    return {s: out[s] for s in SPLITS if s in out}


def _divide(value, source: str, data_spec, seed, model, objective, dtype, batch_size) -> dict:
    """One part of a dataset as splits: all of it as "train", or (with ``data_spec``) train/val/test by
    its validation_split and test_split; empty splits are left out."""
    if is_batch_source(value):
        def convert(x, y, where):
            check_features(x, y, where)
            features, targets, _ = prepare_arrays(x, y, model, objective, dtype, where)
            return features, targets

        try:
            n = int(len(value))
        except Exception as exc:
            raise DataError(f"{source}: len() of its batch sequence failed ({type(exc).__name__}: {exc})") from exc
        if n < 1:
            raise DataError(f"{source}: its batch sequence has no batches")
        pick = split_indices(n, data_spec, seed, unit="batches") if data_spec else {"train": np.arange(n)}
        return {s: BatchSplit(value, idx, convert, batch_size, source) for s, idx in pick.items() if len(idx)}
    if not (isinstance(value, tuple) and len(value) in (2, 3)):
        raise DataError(f"{source}: expected (x, y) or (x, y, sample_weight) arrays or a batch sequence (with "
                        f"__len__ and __getitem__), got {type(value).__name__}")
    x, y = value[:2]
    check_features(x, y, source)
    features, targets, n = prepare_arrays(x, y, model, objective, dtype, source)
    w = sample_weights(value[2], n, source) if len(value) == 3 else None
    pick = split_indices(n, data_spec, seed) if data_spec else {"train": np.arange(n)}
    from kerascli.data.filerows import FileArray, FileSplit

    if isinstance(features, FileArray):  # splits are index arrays into the file
        return {s: FileSplit(features, take(targets, idx), None if w is None else w[idx], idx, dtype)
                for s, idx in pick.items() if len(idx)}
    return {s: Split(take(features, idx), take(targets, idx), None if w is None else w[idx])
            for s, idx in pick.items() if len(idx)}


def sample_weights(w, rows: int, source: str) -> np.ndarray:
    """Keras' sample_weight: one finite, non-negative number per sample (float64)."""
    w = np.asarray(w)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1 or len(w) != rows:
        raise DataError(f"{source}: sample weights must be one number per sample ({rows}), got shape {w.shape}")
    check_values(w, source, "sample weights")
    if w.size and w.min() < 0:
        raise DataError(f"{source}: sample weights must not be negative (got {w.min()})")
    return w.astype(np.float64)


def prepare_arrays(x, y, model, objective, dtype, source: str):
    """Features and labels (as loaded) checked against the model's inputs and outputs: (features, targets
    as the losses take them, sample count)."""
    xs = by_name(x, list(model.input_shapes), "input", source)
    ys = by_name(y, list(model.outputs), "output", source)
    lengths = {len(a) for a in list(xs.values()) + list(ys.values())}
    if len(lengths) != 1:
        raise DataError(f"{source}: its arrays have different numbers of samples ({sorted(lengths)})")
    from kerascli.data.filerows import FileArray

    for name, shape in model.input_shapes.items():
        check_input_shape(xs[name], shape, source if len(xs) == 1 else f"{source}, input {name!r}")
        if isinstance(xs[name], FileArray) and len(xs) > 1:
            xs[name] = np.asarray(xs[name])  # (only a single input is read batch by batch from its file)
        if not isinstance(xs[name], FileArray):  # a file's rows are converted batch by batch
            xs[name] = xs[name].astype(dtype, copy=False)
    units = {o: model.output_shapes[o][0] for o in model.outputs}
    targets = objective.targets(ys if objective.multi else ys[model.outputs[0]], units, dtype)
    features = xs if len(xs) > 1 else next(iter(xs.values()))
    return features, targets, lengths.pop()


def outside_data(path: str, x_key: str | None, y_key: str | None, labels: str | None, label_column: str,
                 delimiter: str, encoding=None):
    """(features, labels) from a file that was not part of training: an .npz (arrays ``x_key`` and ``y_key``,
    default x and y), a .csv/.tsv with a label column (read through the run's column ``encoding`` where it
    has one), or an .npy of features with ``labels`` (.npy) beside."""
    from kerascli.errors import ConfigError

    ext = path.lower().rsplit(".", 1)[-1] if "." in path else ""
    if ext == "npz":
        return DATASETS.get("npz").load({"path": path, "x": x_key or "x", "y": y_key or "y"})
    if ext in ("csv", "tsv"):
        return DATASETS.get("csv").load({"path": path, "label_column": label_column, "encoding": encoding,
                                         "delimiter": "\t" if ext == "tsv" and delimiter == "," else delimiter})
    if ext == "npy":
        if not labels:
            raise ConfigError(f"--data {path}: an .npy holds features only; name the labels with --labels FILE.npy")
        x, y = DATASETS.get("npy").load({"x": path, "y": labels})
        return np.asarray(x), y  # (evaluated whole, not batch by batch from its file)
    raise ConfigError(f"--data {path}: expected an .npz, .npy, .csv or .tsv file")


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    if not shuffle:
        return np.arange(n)
    return np.random.default_rng([seed, 2, epoch]).permutation(n)


def batches(split, batch_size: int, order: np.ndarray | None = None):
    """Yield (x, y, sample weights or None) batches of ``split`` (in ``order``, which may cover part of it);
    the last may be smaller."""
    return split.batches(batch_size, order)
