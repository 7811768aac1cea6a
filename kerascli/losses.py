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
from kerascli.ops.contract import (
    HUBER,
    LOG_COSH,
    MAE,
    MAPE,
    MSLE,
    POISSON,
    SIGMOID,
    SOFTMAX,
)

EPSILON = 1e-7  # Keras' backend epsilon


class Loss:
    name = ""
    host_only = False  # computed on host arrays (a plugin's function): a device backend cannot run it
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


class MeanSquaredError(Loss):
    name = "mean_squared_error"

    def targets(self, y, units, dtype):
        return _dense_targets(y, units, dtype, self.name)

    def forward(self, ops, out, t, fused):
        return ops.mean_squared_error(out, t), out

    def backward(self, ops, out, pred, t, scale, fused):
        return ops.mean_squared_error_grad(out, t, scale)


class FunctionLoss(Loss):
    """A loss written as ``fn(y_true, y_pred)`` over the tape's primitives (kerascli.api.register_loss): one
    value per sample (a scalar counts as their mean; more axes are averaged), gradient from the tape."""

    fn = None
    target_fn = None
    host_only = True

    @classmethod
    def make(cls, name: str, fn, targets) -> type:
        return type(f"FunctionLoss[{name}]", (cls,), {"name": name, "fn": staticmethod(fn),
                                                      "target_fn": staticmethod(targets)})

    def targets(self, y, units, dtype):
        return self.target_fn(y, units, dtype)

    def forward(self, ops, out, t, fused):
        from kerascli.graph.tape import PRIMITIVES, Tape, Var

        tape = Tape()
        pred = tape.watch(out)
        values = self.fn(t, pred)
        if not isinstance(values, Var):
            raise DataError(f"loss {self.name!r} does not depend on y_pred through kerascli.api.ops "
                            "(its gradient would be zero)")
        if values.ndim == 0:
            values = PRIMITIVES.multiply(values, float(len(out)))  # a mean: the per-sample values sum to it * n
            rows = np.full(len(out), float(values.value) / len(out))
        else:
            if values.ndim > 1:
                values = PRIMITIVES.mean(values, axis=tuple(range(1, values.ndim)))
            if values.shape != (len(out),):
                raise DataError(f"loss {self.name!r} returned shape {values.shape}; expected one value per sample "
                                f"({len(out)},) or a scalar")
            rows = values.value
        self._tape, self._values, self._pred = tape, values, pred
        return rows.astype(out.dtype, copy=False), out

    def backward(self, ops, out, pred, t, scale, fused):
        self._tape.backward(self._values, np.full(self._values.shape, scale))
        return self._pred.grad.astype(out.dtype, copy=False)


class ElementwiseLoss(Loss):
    """Keras' regression losses: the mean over the last axis of an elementwise f(y_pred, y_true)
    (kerascli.ops.contract.ELEMENT_LOSSES gives f and its derivative), targets shaped like the output."""

    code = 0
    param = 0.0  # the loss's argument, where it has one (huber's delta)

    def targets(self, y, units, dtype):
        return _dense_targets(y, units, dtype, self.name)

    def forward(self, ops, out, t, fused):
        return ops.element_loss(out, t, self.code, out.dtype.type(self.param)), out

    def backward(self, ops, out, pred, t, scale, fused):
        return ops.element_loss_grad(out, t, self.code, out.dtype.type(self.param), out.dtype.type(scale))


class MeanAbsoluteError(ElementwiseLoss):
    name, code = "mean_absolute_error", MAE


class MeanAbsolutePercentageError(ElementwiseLoss):
    name, code = "mean_absolute_percentage_error", MAPE


class MeanSquaredLogarithmicError(ElementwiseLoss):
    name, code = "mean_squared_logarithmic_error", MSLE


class Huber(ElementwiseLoss):
    name, code, param = "huber", HUBER, 1.0  # Keras' default delta


class LogCosh(ElementwiseLoss):
    name, code = "log_cosh", LOG_COSH


class Poisson(ElementwiseLoss):
    name, code = "poisson", POISSON
