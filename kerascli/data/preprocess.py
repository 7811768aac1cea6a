"""Standardisation of the features: what every split, ``evaluate`` and ``predict`` apply to the inputs
before the model sees them.

In Keras' order (ImageDataGenerator.standardize): times ``rescale``; each sample minus its own mean and
divided by its own std (``samplewise_*``); then the feature-wise step, whose statistics are fitted on the
training split only (after ``rescale``, as ImageDataGenerator.fit does) and stored in every checkpoint of
the run (``_preprocessing/<input>/offset`` and ``.../scale``), so that evaluating or predicting from a
checkpoint applies exactly what training applied:

* ``data.normalize: standardize``: (x - mean) / std per feature (the last axis, as Keras' Normalization);
  a feature with no spread is divided by 1;
* ``data.normalize: minmax``: (x - min) / (max - min) per feature, into [0, 1] on the training split; a
  constant feature is divided by 1;
* ``data.augmentation.featurewise_center`` / ``featurewise_std_normalization``: ImageDataGenerator's, per
  channel: x - mean, then / (std + 1e-6) (std normalisation centres too, as Keras makes it).

Statistics are sums in float64 over the training batches (Chan's pairwise update of mean and squared
deviations), so a split given batch by batch is fitted without holding it whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kerascli.errors import CheckpointError, DataError

METHODS = ("standardize", "minmax")
KEY = "_preprocessing"
ONE_INPUT = "input"  # the stored name of a single-input model's statistics


@dataclass
class Standardizer:
    rescale: float | None = None
    samplewise_center: bool = False
    samplewise_std: bool = False
    method: str | None = None  # standardize, minmax, featurewise, or None: nothing fitted
    center: bool = False  # featurewise_center (featurewise only)
    std: bool = False  # featurewise_std_normalization (featurewise only)
    stats: dict = field(default_factory=dict)  # input name (ONE_INPUT for an array) -> (offset, scale)

    @classmethod
    def from_config(cls, data_spec: dict) -> Standardizer:
        aug = data_spec.get("augmentation") or {}
        out = cls(rescale=aug.get("rescale"),
                  samplewise_center=bool(aug.get("samplewise_center") or aug.get("samplewise_std_normalization")),
                  samplewise_std=bool(aug.get("samplewise_std_normalization")))
        if data_spec.get("normalize"):
            out.method = data_spec["normalize"]
        elif aug.get("featurewise_center") or aug.get("featurewise_std_normalization"):
            out.method, out.center, out.std = "featurewise", True, bool(aug.get("featurewise_std_normalization"))
        return out

    @property
    def active(self) -> bool:
        return self.rescale is not None or self.samplewise_center or self.method is not None

    @property
    def needs_fit(self) -> bool:
        return self.method is not None and not self.stats

    # ------------------------------------------------------------------ fitting
    def fit(self, split, batch_size: int) -> None:
        """Fit the feature-wise statistics on ``split`` (the training split), batch by batch."""
        sums: dict = {}
        for x, _, _ in split.batches(batch_size):
            for name, a in _named(x).items():
                rows = self._rows(self._rescaled(a))
                sums.setdefault(name, _Moments(rows.shape[1])).add(rows)
        if not sums:
            raise DataError("data.normalize: the training split is empty; nothing to fit the statistics on")
        self.stats = {name: self._offset_scale(m) for name, m in sums.items()}

    def _features(self, a: np.ndarray) -> int:
        """How many features ``a`` (one sample per row) has: its last axis (per channel for images; a
        (N, H, W) set of images is one channel in Keras' feature-wise step)."""
        return 1 if a.ndim < 2 or (self.method == "featurewise" and a.ndim == 3) else a.shape[-1]

    def _rows(self, a: np.ndarray) -> np.ndarray:
        """``a`` as (values, features)."""
        return a.reshape(-1, self._features(a))

    def _offset_scale(self, m: _Moments) -> tuple[np.ndarray, np.ndarray]:
        std = np.sqrt(m.m2 / m.n)
        if self.method == "minmax":
            spread = m.maximum - m.minimum
            return m.minimum, np.where(spread > 0, spread, 1.0)
        if self.method == "standardize":
            return m.mean, np.where(std > 0, std, 1.0)
        return (m.mean if self.center else np.zeros_like(m.mean)), (std + 1e-6 if self.std else np.ones_like(std))

    # ------------------------------------------------------------------ applying
    def _rescaled(self, a: np.ndarray) -> np.ndarray:
        out = np.array(a, dtype=a.dtype if a.dtype.kind == "f" else np.float32)
        if self.rescale is not None:
            out *= out.dtype.type(self.rescale)
        return out

    def apply(self, x):
        """New arrays: ``x`` (an array, or a dict of them by input name, one sample per row) standardised;
        ``x`` itself when there is nothing to do."""
        if not self.active:
            return x
        if isinstance(x, dict):
            return {name: self._apply(a, name) for name, a in x.items()}
        return self._apply(x, ONE_INPUT)

    def _apply(self, a: np.ndarray, name: str) -> np.ndarray:
        out = self._rescaled(a)
        axes = tuple(range(1, out.ndim))
        if self.samplewise_center:
            out -= out.mean(axis=axes, keepdims=True)
        if self.samplewise_std:
            out /= out.std(axis=axes, keepdims=True) + out.dtype.type(1e-6)
        if self.method is not None:
            if name not in self.stats:
                raise DataError(f"no preprocessing statistics for input {name!r} (the run has: "
                                f"{', '.join(self.stats) or 'none'})")
            offset, scale = self.stats[name]
            features = self._features(out)
            if offset.size != features:
                raise DataError(f"input {name!r} has {features} features on its last axis; the run's "
                                f"preprocessing statistics have {offset.size}")
            out -= offset.astype(out.dtype)
            out /= scale.astype(out.dtype)
        return out

    # ------------------------------------------------------------------ storing
    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted statistics as checkpoint entries."""
        out = {}
        for name, (offset, scale) in self.stats.items():
            out[f"{KEY}/{name}/offset"] = np.asarray(offset, dtype=np.float64)
            out[f"{KEY}/{name}/scale"] = np.asarray(scale, dtype=np.float64)
        return out

    def load(self, arrays: dict, source: str) -> None:
        """Take the statistics stored in a checkpoint's ``arrays``."""
        stats = {}
        for key in arrays:
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == KEY and parts[2] == "offset":
                scale = arrays.get(f"{KEY}/{parts[1]}/scale")
                if scale is None or scale.shape != arrays[key].shape or not np.all(scale != 0):
                    raise CheckpointError(f"{source}: its preprocessing statistics for {parts[1]!r} are damaged")
                stats[parts[1]] = (arrays[key].astype(np.float64), scale.astype(np.float64))
        if self.method is not None and not stats:
            raise CheckpointError(f"{source}: the run normalizes its inputs ({self.describe()}) but the "
                                  "checkpoint holds no preprocessing statistics")
        self.stats = stats

    def same_as(self, arrays: dict) -> bool:
        """Whether the stored statistics in checkpoint ``arrays`` are these (bit for bit)."""
        mine = self.arrays()
        theirs = {k: v for k, v in arrays.items() if k.startswith(KEY + "/")}
        return mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)

    def describe(self) -> str:
        if self.method == "featurewise":
            return "featurewise_center" + (" and featurewise_std_normalization" if self.std else "")
        return f"normalize: {self.method}" if self.method else "none"

    def summary(self) -> dict | None:
        """For summary.json: the method and, for up to 64 features, the statistics themselves."""
        if self.method is None:
            return None
        inputs = {}
        for name, (offset, scale) in self.stats.items():
            inputs[name] = ({"offset": offset.tolist(), "scale": scale.tolist()} if offset.size <= 64
                            else {"features": int(offset.size)})
        return {"method": self.describe(), "inputs": inputs}


class _Moments:
    """Running count, mean, sum of squared deviations, min and max per feature, in float64."""

    def __init__(self, features: int):
        self.n = 0
        self.mean = np.zeros(features)
        self.m2 = np.zeros(features)
        self.minimum = np.full(features, np.inf)
        self.maximum = np.full(features, -np.inf)

    def add(self, rows: np.ndarray) -> None:
        if not len(rows):
            return
        rows = rows.astype(np.float64, copy=False)
        k = len(rows)
        mean = rows.mean(axis=0)
        m2 = ((rows - mean) ** 2).sum(axis=0)
        delta = mean - self.mean
        total = self.n + k
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.n * k / total)
        self.n = total
        self.minimum = np.minimum(self.minimum, rows.min(axis=0))
        self.maximum = np.maximum(self.maximum, rows.max(axis=0))


def _named(x) -> dict:
    return x if isinstance(x, dict) else {ONE_INPUT: x}


def standardized_split(split, standardizer: Standardizer):
    """``split`` with its features standardised: a copy of an array split; a split given batch by batch
    standardises each batch as it comes."""
    if hasattr(split, "x"):
        return type(split)(standardizer.apply(split.x), split.y, split.w)
    return StandardizedBatches(split, standardizer)


class StandardizedBatches:
    """A split given batch by batch whose batches come out standardised; everything else is the split's."""

    def __init__(self, split, standardizer: Standardizer):
        self.split, self.standardizer = split, standardizer

    def __getattr__(self, name):
        return getattr(self.split, name)

    def head(self, batches: int, batch_size: int):
        return StandardizedBatches(self.split.head(batches, batch_size), self.standardizer)

    def batch_keys(self, batch_size: int, order=None) -> list:
        return self.split.batch_keys(batch_size, order)

    def make_batch(self, key):
        x, y, w = self.split.make_batch(key)
        return self.standardizer.apply(x), y, w

    def batches(self, batch_size: int, order=None):
        for x, y, w in self.split.batches(batch_size, order):  # (the split's own loop: it may count samples)
            yield self.standardizer.apply(x), y, w
