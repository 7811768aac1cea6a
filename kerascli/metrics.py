"""Metrics: each returns (sum over the batch, count) so epochs average exactly over samples.

``accuracy`` follows Keras: with categorical_crossentropy it compares argmaxes
of predictions and one-hot targets, with sparse_categorical_crossentropy the
argmax against integer labels, with binary_crossentropy predictions
thresholded at 0.5. With mean_squared_error it is argmax accuracy when the
output has several units and thresholded accuracy when it has one.
"""

from __future__ import annotations

import numpy as np

from kerascli.errors import ConfigError
from kerascli.registry import METRICS


class Metric:
    host_only = False  # computed on host arrays (a plugin's function): a device backend cannot run it

    def __init__(self, name: str):
        self.name = name

    def update(self, ops, pred: np.ndarray, t: np.ndarray) -> tuple[float, int]:
        raise NotImplementedError


class CategoricalAccuracy(Metric):
    def update(self, ops, pred, t):
        return ops.count_argmax_agree(pred, t), len(pred)


class SparseCategoricalAccuracy(Metric):
    def update(self, ops, pred, t):
        return ops.count_argmax_hits(pred, t), len(pred)


class BinaryAccuracy(Metric):
    def update(self, ops, pred, t):
        return ops.mean_threshold_agree(pred, t, 0.5), len(pred)


class MeanAbsoluteError(Metric):
    def update(self, ops, pred, t):
        return ops.sum_row_mean_abs_error(pred, t), len(pred)


class MeanSquaredErrorMetric(Metric):
    def update(self, ops, pred, t):
        return ops.total(ops.mean_squared_error(pred, t)), len(pred)


class FunctionMetric(Metric):
    """A metric written as ``fn(y_true, y_pred)`` (kerascli.api.register_metric): per-sample values, or
    their mean as a scalar."""

    fn = None
    host_only = True

    @classmethod
    def make(cls, fn) -> type:
        return type("FunctionMetric", (cls,), {"fn": staticmethod(fn)})

    def update(self, ops, pred, t):
        values = np.asarray(self.fn(t, pred), dtype=np.float64)
        if values.ndim == 0:
            return float(values) * len(pred), len(pred)
        return float(values.reshape(len(pred), -1).mean(axis=1).sum()), len(pred)


class Accuracy(Metric):
    """Plain ``accuracy``: make_metric replaces it with the kind that matches the loss."""


def make_metric(name: str, loss_name: str, units: int) -> Metric:
    sparse_targets = loss_name == "sparse_categorical_crossentropy"
    cls = METRICS.get(name)
    if cls is Accuracy:  # pick the variant that matches the loss
        if sparse_targets or loss_name == "categorical_crossentropy" or (loss_name == "mean_squared_error" and units > 1):
            cls = CategoricalAccuracy
        else:
            cls = BinaryAccuracy
    # the two argmax accuracies differ only in how targets are stored, which the loss decides
    if cls in (CategoricalAccuracy, SparseCategoricalAccuracy):
        cls = SparseCategoricalAccuracy if sparse_targets else CategoricalAccuracy
    elif sparse_targets and cls in (BinaryAccuracy, MeanAbsoluteError, MeanSquaredErrorMetric):
        raise ConfigError(f"metric {name!r} compares predictions with targets of the same shape, but "
                          f"{loss_name} takes class ids; use accuracy, or a loss with one-hot targets",
                          key="compile.metrics")
    return cls(name)
