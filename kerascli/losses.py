"""Losses with Keras' definitions (mean over the batch; BCE and MSE also over the last axis).

When the model's last activation is the one a loss pairs with (softmax for the
cross-entropies, sigmoid for binary cross-entropy), the model hands over
pre-activation values and the loss uses the fused, numerically stable kernel:
no log of a rounded-to-zero probability, and a gradient of simply
``probs - targets``. Otherwise it follows Keras on probabilities, clipping to
``[1e-7, 1 - 1e-7]``.
"""

from __future__ import annotations

import numpy as np

from kerascli.errors import DataError
from kerascli.ops.contract import SIGMOID, SOFTMAX
from kerascli.registry import LOSSES

EPSILON = 1e-7  # Keras' backend epsilon


class Loss:
    name = ""
    fuses: int | None = None  # activation code of the fused path
    classification = False

    def targets(self, y: np.ndarray, units: int, dtype) -> np.ndarray:
        """Convert labels as stored in a dataset into what forward/backward take."""
        raise NotImplementedError

    def forward(self, ops, out, t, fused: bool):
        """(loss per sample, predictions) where predictions are post-activation outputs."""
        raise NotImplementedError

    def backward(self, ops, out, pred, t, scale: float, fused: bool):
        raise NotImplementedError


def _class_ids(y: np.ndarray, units: int, loss: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{loss} expects one integer class id per sample, got labels of shape {y.shape}")
    if not np.all(np.equal(np.mod(y, 1), 0)):
        raise DataError(f"{loss} expects integer class ids, got fractional labels such as {y[np.mod(y, 1) != 0][0]}")
    ids = y.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= units):
        raise DataError(
            f"labels range over {ids.min()}..{ids.max()} but the model's output has {units} units "
            f"(classes 0..{units - 1}); set the last layer's units to the number of classes"
        )
    return ids


def _dense_targets(y: np.ndarray, units: int, dtype, loss: str) -> np.ndarray:
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[1] != units:
        raise DataError(f"{loss}: targets of shape {y.shape} do not match the model output of {units} units")
    return y.astype(dtype)


@LOSSES.register("categorical_crossentropy", "CategoricalCrossentropy", "cce")
class CategoricalCrossentropy(Loss):
    name = "categorical_crossentropy"
    fuses = SOFTMAX
    classification = True

    def targets(self, y, units, dtype):
        if y.ndim == 2 and y.shape[1] == units and units > 1:
            return y.astype(dtype)  # already one-hot (or soft) targets
        if y.ndim == 2 and y.shape[1] > 1:
            raise DataError(f"{self.name}: one-hot targets have {y.shape[1]} columns but the model's output has "
                            f"{units} units; set the last layer's units to {y.shape[1]}")
        ids = _class_ids(y, units, self.name)
        onehot = np.zeros((len(ids), units), dtype=dtype)
        onehot[np.arange(len(ids)), ids] = 1
        return onehot

    def forward(self, ops, out, t, fused):
        if fused:
            return ops.softmax_cross_entropy(out, t)
        return ops.categorical_cross_entropy(out, t, EPSILON), out

    def backward(self, ops, out, pred, t, scale, fused):
        if fused:
            return ops.softmax_cross_entropy_grad(pred, t, scale)
        return ops.categorical_cross_entropy_grad(out, t, EPSILON, scale)


@LOSSES.register("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy", "scce")
class SparseCategoricalCrossentropy(Loss):
    name = "sparse_categorical_crossentropy"
    fuses = SOFTMAX
    classification = True

    def targets(self, y, units, dtype):
        return _class_ids(y, units, self.name)

    def forward(self, ops, out, t, fused):
        if fused:
            return ops.sparse_softmax_cross_entropy(out, t)
        return ops.categorical_cross_entropy(out, ops.one_hot(t, out.shape[1], out.dtype), EPSILON), out

    def backward(self, ops, out, pred, t, scale, fused):
        if fused:
            return ops.sparse_softmax_cross_entropy_grad(pred, t, scale)
        return ops.categorical_cross_entropy_grad(out, ops.one_hot(t, out.shape[1], out.dtype), EPSILON, scale)


@LOSSES.register("binary_crossentropy", "BinaryCrossentropy", "bce")
class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"
    fuses = SIGMOID
    classification = True

    def targets(self, y, units, dtype):
        t = _dense_targets(y, units, dtype, self.name)
        if t.size and (t.min() < 0 or t.max() > 1):
            raise DataError(f"{self.name} expects targets in [0, 1], got values from {t.min()} to {t.max()}")
        return t

    def forward(self, ops, out, t, fused):
        if fused:
            return ops.sigmoid_binary_cross_entropy(out, t)
        return ops.binary_cross_entropy(out, t, EPSILON), out

    def backward(self, ops, out, pred, t, scale, fused):
        if fused:
            return ops.sigmoid_binary_cross_entropy_grad(pred, t, scale)
        return ops.binary_cross_entropy_grad(out, t, EPSILON, scale)


@LOSSES.register("mean_squared_error", "MeanSquaredError", "mse")
class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def targets(self, y, units, dtype):
        return _dense_targets(y, units, dtype, self.name)

    def forward(self, ops, out, t, fused):
        return ops.mean_squared_error(out, t), out

    def backward(self, ops, out, pred, t, scale, fused):
        return ops.mean_squared_error_grad(out, t, scale)
