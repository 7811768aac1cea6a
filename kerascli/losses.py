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

from kerascli.config.params import Param
from kerascli.errors import DataError
from kerascli.ops.contract import (
    HINGE,
    HUBER,
    KL_DIVERGENCE,
    LOG_COSH,
    MAE,
    MAPE,
    MSLE,
    POISSON,
    SIGMOID,
    SOFTMAX,
    SQUARED_HINGE,
)

EPSILON = 1e-7  # Keras' backend epsilon


class Loss:
    name = ""
    PARAMS: dict[str, Param] = {}  # Keras' constructor arguments, from the config (``loss: {type: ..., ...}``)
    host_only = False  # computed on host arrays (a plugin's function): a device backend cannot run it
    fuses: int | None = None  # activation code of the fused path
    classification = False

    def __init__(self, config: dict | None = None):
        """``config``: the resolved arguments (Keras' defaults for those not given)."""
        self.config = {name: param.default for name, param in self.PARAMS.items()}
        self.config.update((k, v) for k, v in (config or {}).items() if k != "type")

    @property
    def from_logits(self) -> bool:
        """The model gives logits (a linear last activation) and the loss applies ``fuses`` itself."""
        return bool(self.config.get("from_logits"))

    @staticmethod
    def check(config: dict) -> str | None:
        """What is wrong with resolved arguments (as ``key: message``), or None."""
        return None

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


def _check_axis(config: dict) -> str | None:
    if config.get("axis", -1) not in (-1, 1):
        return (f"axis: outputs here are (batch, units), so the classes are on axis -1 (or 1), not "
                f"{config['axis']}")
    return None


_CROSS_ENTROPY_PARAMS = {
    "from_logits": Param("bool", False, doc="the model gives logits: the loss applies softmax/sigmoid itself"),
    "label_smoothing": Param("float", 0.0, min=0.0, max=1.0),
    "axis": Param("int", -1),
}


class CategoricalCrossentropy(Loss):
    name = "categorical_crossentropy"
    PARAMS = _CROSS_ENTROPY_PARAMS
    fuses = SOFTMAX
    classification = True
    check = staticmethod(_check_axis)

    def _smoothed(self, ops, t):
        """Keras' label smoothing: targets pulled towards the uniform distribution over the classes."""
        ls = self.config.get("label_smoothing", 0.0)
        return ops.scale_shift(t, 1.0 - ls, ls / t.shape[1]) if ls else t

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
        t = self._smoothed(ops, t)
        if fused:
            return ops.softmax_cross_entropy(out, t)
        return ops.categorical_cross_entropy(out, t, EPSILON), out

    def backward(self, ops, out, pred, t, scale, fused):
        t = self._smoothed(ops, t)
        if fused:
            return ops.softmax_cross_entropy_grad(pred, t, scale)
        return ops.categorical_cross_entropy_grad(out, t, EPSILON, scale)


class SparseCategoricalCrossentropy(Loss):
    """With ``ignore_class``, as Keras: samples of that label count for nothing and the batch's loss is the
    mean over the others (each kept sample weighs batch size / kept; the mask comes to the host each batch
    on a device backend)."""

    name = "sparse_categorical_crossentropy"
    PARAMS = {**{k: v for k, v in _CROSS_ENTROPY_PARAMS.items() if k != "label_smoothing"},  # as Keras
              "ignore_class": Param("int", None, nullable=True, doc="a label whose samples count for nothing")}
    fuses = SOFTMAX
    classification = True
    check = staticmethod(_check_axis)

    def targets(self, y, units, dtype):
        ignore = self.config.get("ignore_class")
        if ignore is None:
            return _class_ids(y, units, self.name)
        y = np.asarray(y)
        flat = y[:, 0] if y.ndim == 2 and y.shape[1] == 1 else y
        ids = _class_ids(np.where(flat == ignore, 0, flat), units, self.name)
        return np.where(flat == ignore, ignore, ids).astype(np.int64)

    def _masked(self, ops, t):
        """(labels with the ignored ones at 0, each sample's weight: 0 ignored, n / kept otherwise)."""
        labels = np.asarray(ops.to_host(t))
        keep = labels != self.config["ignore_class"]
        weight = np.where(keep, len(labels) / keep.sum() if keep.any() else 0.0, 0.0)
        return ops.to_device(np.where(keep, labels, 0).astype(labels.dtype)), ops.to_device(weight)

    def forward(self, ops, out, t, fused):
        ignore = self.config.get("ignore_class") is not None
        if ignore:  # (kept for backward, which follows on the same batch)
            t, weight = self._mask = self._masked(ops, t)
        if fused:
            rows, pred = ops.sparse_softmax_cross_entropy(out, t)
        else:
            rows, pred = ops.categorical_cross_entropy(out, ops.one_hot(t, out.shape[1], out.dtype), EPSILON), out
        return (ops.scale_rows(rows, weight) if ignore else rows), pred

    def backward(self, ops, out, pred, t, scale, fused):
        ignore = self.config.get("ignore_class") is not None
        if ignore:
            t, weight = self._mask
        if fused:
            grad = ops.sparse_softmax_cross_entropy_grad(pred, t, scale)
        else:
            grad = ops.categorical_cross_entropy_grad(out, ops.one_hot(t, out.shape[1], out.dtype), EPSILON, scale)
        return ops.scale_rows(grad, weight) if ignore else grad


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"
    PARAMS = _CROSS_ENTROPY_PARAMS
    fuses = SIGMOID
    classification = True
    check = staticmethod(_check_axis)

    def _smoothed(self, ops, t):
        """Keras' label smoothing: targets pulled towards 0.5."""
        ls = self.config.get("label_smoothing", 0.0)
        return ops.scale_shift(t, 1.0 - ls, 0.5 * ls) if ls else t

    def targets(self, y, units, dtype):
        t = _dense_targets(y, units, dtype, self.name)
        if t.size and (t.min() < 0 or t.max() > 1):
            raise DataError(f"{self.name} expects targets in [0, 1], got values from {t.min()} to {t.max()}")
        return t

    def forward(self, ops, out, t, fused):
        t = self._smoothed(ops, t)
        if fused:
            return ops.sigmoid_binary_cross_entropy(out, t)
        return ops.binary_cross_entropy(out, t, EPSILON), out

    def backward(self, ops, out, pred, t, scale, fused):
        t = self._smoothed(ops, t)
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

    @property
    def param(self) -> float:
        """The loss's one argument where it has one (huber's delta), else 0."""
        return float(next(iter(self.config.values()), 0.0))

    def targets(self, y, units, dtype):
        return _dense_targets(y, units, dtype, self.name)

    summed = False  # the loss sums over the last axis instead of averaging (Kullback-Leibler)

    def batch_param(self, ops, t) -> float:
        """The kernels' argument for this batch (the loss's own by default)."""
        return self.param

    def forward(self, ops, out, t, fused):
        self._param = out.dtype.type(self.batch_param(ops, t))  # (backward follows on the same batch)
        rows = ops.element_loss(out, t, self.code, self._param)
        return (ops.scale_shift(rows, out.shape[1], 0.0) if self.summed else rows), out

    def backward(self, ops, out, pred, t, scale, fused):
        scale = scale * out.shape[1] if self.summed else scale
        return ops.element_loss_grad(out, t, self.code, self._param, out.dtype.type(scale))


class MeanAbsoluteError(ElementwiseLoss):
    name, code = "mean_absolute_error", MAE


class MeanAbsolutePercentageError(ElementwiseLoss):
    name, code = "mean_absolute_percentage_error", MAPE


class MeanSquaredLogarithmicError(ElementwiseLoss):
    name, code = "mean_squared_logarithmic_error", MSLE


class Huber(ElementwiseLoss):
    name, code = "huber", HUBER
    PARAMS = {"delta": Param("float", 1.0, min=1e-12)}


class LogCosh(ElementwiseLoss):
    name, code = "log_cosh", LOG_COSH


class Poisson(ElementwiseLoss):
    name, code = "poisson", POISSON


class KLDivergence(ElementwiseLoss):
    """Keras' kl_divergence: sum over the last axis of t log(t / p), both clipped to [1e-7, 1]."""

    name, code, summed = "kl_divergence", KL_DIVERGENCE, True


class Hinge(ElementwiseLoss):
    """Keras' hinge: mean of max(1 - t p, 0); a batch whose targets are all 0 or 1 has them taken as -1
    or 1 (Keras decides it batch by batch, as here)."""

    name, code = "hinge", HINGE

    def batch_param(self, ops, t):
        host = ops.to_host(t)
        return 1.0 if np.all((host == 0) | (host == 1)) else 0.0


class SquaredHinge(Hinge):
    name, code = "squared_hinge", SQUARED_HINGE


class HostLoss(Loss):
    """A loss computed in numpy on the host: its per-sample values and its gradient together (``evaluate``
    in float64), each batch's outputs brought to the host for it on a device backend (a copy each way,
    per step: correct, not fast). For the losses Keras defines row by row (categorical hinge, cosine
    similarity, the focal cross-entropies)."""

    def evaluate(self, p: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(loss per row, its gradient with respect to ``p``) in float64."""
        raise NotImplementedError

    def forward(self, ops, out, t, fused):
        p = np.asarray(ops.to_host(out), np.float64)
        rows, self._grad = self.evaluate(p, np.asarray(ops.to_host(t), np.float64))
        return ops.to_device(rows.astype(out.dtype)), out

    def backward(self, ops, out, pred, t, scale, fused):
        return ops.to_device((self._grad * scale).astype(out.dtype))


class CategoricalHinge(HostLoss):
    """Keras' categorical_hinge: max(max over wrong classes of p - p of the true class + 1, 0), one-hot
    targets (class ids converted)."""

    name = "categorical_hinge"
    classification = True
    targets = CategoricalCrossentropy.targets

    def evaluate(self, p, t):
        positive = (t * p).sum(axis=1)
        others = (1 - t) * p
        worst = others.argmax(axis=1)
        margin = others[np.arange(len(p)), worst] - positive + 1
        grad = -t.copy()
        grad[np.arange(len(p)), worst] += 1 - t[np.arange(len(p)), worst]
        return np.maximum(margin, 0), grad * (margin > 0)[:, None]


class CosineSimilarity(HostLoss):
    """Keras' cosine_similarity loss: minus the cosine between target and prediction rows (each divided by
    its norm, at least sqrt(1e-12)): -1 where they point the same way."""

    name = "cosine_similarity"
    PARAMS = {"axis": Param("int", -1)}
    check = staticmethod(_check_axis)

    def targets(self, y, units, dtype):
        return _dense_targets(y, units, dtype, self.name)

    def evaluate(self, p, t):
        t_unit = t / np.sqrt(np.maximum((t * t).sum(axis=1, keepdims=True), 1e-12))
        squared = (p * p).sum(axis=1, keepdims=True)
        norm = np.sqrt(np.maximum(squared, 1e-12))
        cosine = (t_unit * p).sum(axis=1, keepdims=True) / norm
        # d/dp of -(t_unit . p) / |p|; where |p| is held at its floor only the first term remains
        grad = -(t_unit / norm - np.where(squared > 1e-12, cosine * p / norm ** 2, 0.0))
        return -cosine[:, 0], grad


def _smoothing(t, label_smoothing, towards):
    return t * (1.0 - label_smoothing) + label_smoothing * towards if label_smoothing else t


class BinaryFocalCrossentropy(HostLoss):
    """Keras' binary_focal_crossentropy: binary cross-entropy (on probabilities clipped to [1e-7, 1 - 1e-7])
    times (1 - p_t)^gamma, p_t the probability given to the target; with apply_class_balancing, times alpha
    for targets 1 and 1 - alpha for 0; mean over the last axis."""

    name = "binary_focal_crossentropy"
    PARAMS = {"apply_class_balancing": Param("bool", False), "alpha": Param("float", 0.25, min=0.0, max=1.0),
              "gamma": Param("float", 2.0, min=0.0), **_CROSS_ENTROPY_PARAMS}
    classification = True
    check = staticmethod(_check_axis)
    targets = BinaryCrossentropy.targets

    def evaluate(self, z, t):
        c = self.config
        t = _smoothing(t, c["label_smoothing"], 0.5)
        p = 1 / (1 + np.exp(-z)) if c["from_logits"] else z
        pc = np.clip(p, EPSILON, 1 - EPSILON)
        bce = -(t * np.log(pc) + (1 - t) * np.log(1 - pc))
        d_bce = np.where((p > EPSILON) & (p < 1 - EPSILON), -(t / pc - (1 - t) / (1 - pc)), 0.0)
        away = 1 - (t * p + (1 - t) * (1 - p))  # 1 - p_t
        gamma = c["gamma"]
        factor = away ** gamma
        d_factor = -(2 * t - 1) * gamma * np.power(away, gamma - 1, out=np.zeros_like(away), where=away > 0)
        weight = t * c["alpha"] + (1 - t) * (1 - c["alpha"]) if c["apply_class_balancing"] else 1.0
        values = weight * factor * bce
        grad = weight * (d_factor * bce + factor * d_bce)
        if c["from_logits"]:
            grad = grad * p * (1 - p)
        units = z.shape[1]
        return values.mean(axis=1), grad / units


class CategoricalFocalCrossentropy(HostLoss):
    """Keras' categorical_focal_crossentropy: predictions (softmax of logits with from_logits) divided by
    their row sum and clipped to [1e-7, 1 - 1e-7], then sum of alpha (1 - q)^gamma (-t log q) over classes;
    one-hot targets (class ids converted)."""

    name = "categorical_focal_crossentropy"
    PARAMS = {"alpha": Param("float", 0.25, min=0.0), "gamma": Param("float", 2.0, min=0.0),
              **_CROSS_ENTROPY_PARAMS}
    classification = True
    check = staticmethod(_check_axis)
    targets = CategoricalCrossentropy.targets

    def evaluate(self, z, t):
        c = self.config
        t = _smoothing(t, c["label_smoothing"], 1.0 / z.shape[1])
        if c["from_logits"]:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            p = e / e.sum(axis=1, keepdims=True)
        else:
            p = z
        total = p.sum(axis=1, keepdims=True)
        q_raw = p / total
        q = np.clip(q_raw, EPSILON, 1 - EPSILON)
        gamma, alpha = c["gamma"], c["alpha"]
        away = 1 - q
        factor = away ** gamma
        values = (alpha * factor * (-t * np.log(q))).sum(axis=1)
        d_q = alpha * (gamma * np.power(away, gamma - 1, out=np.zeros_like(away), where=away > 0) * t * np.log(q)
                       - factor * t / q)
        d_q = d_q * ((q_raw > EPSILON) & (q_raw < 1 - EPSILON))
        # through q = p / sum(p): dq_j/dp_k = (delta_jk - q_j) / sum(p)
        d_p = (d_q - (d_q * q_raw).sum(axis=1, keepdims=True)) / total
        if c["from_logits"]:  # through the softmax: dp_j/dz_k = p_j (delta_jk - p_k)
            d_p = p * (d_p - (d_p * p).sum(axis=1, keepdims=True))
        return values, d_p


def _check_overlap_axis(config: dict) -> str | None:
    if config.get("axis") not in (None, -1, 1):
        return (f"axis: none (over the whole batch, Keras' default) or -1 (per sample), not {config['axis']}: "
                "outputs here are (batch, units)")
    return None


class Tversky(HostLoss):
    """Keras' tversky: 1 - TP / (TP + alpha FP + beta FN + 1e-7), with TP = sum(t p), FP = sum(t (1 - p)),
    FN = sum((1 - t) p) over the whole batch (``axis`` none, Keras' default: one value for the batch, which
    every sample carries) or over each sample (``axis`` -1)."""

    name = "tversky"
    PARAMS = {"alpha": Param("float", 0.5), "beta": Param("float", 0.5), "axis": Param("int", None, nullable=True)}
    check = staticmethod(_check_overlap_axis)

    def targets(self, y, units, dtype):
        return _dense_targets(y, units, dtype, self.name)

    def weights(self):
        return self.config["alpha"], self.config["beta"]

    def evaluate(self, p, t):
        alpha, beta = self.weights()
        whole = self.config["axis"] is None
        axis, keep = (None, False) if whole else (1, True)
        tp = (t * p).sum(axis=axis, keepdims=keep)
        fp, fn = (t * (1 - p)).sum(axis=axis, keepdims=keep), ((1 - t) * p).sum(axis=axis, keepdims=keep)
        d = tp + alpha * fp + beta * fn + EPSILON
        value = 1 - tp / d
        grad = -(t * d - tp * (t - alpha * t + beta * (1 - t))) / d ** 2
        if whole:  # every sample carries the batch's value: the sum of rows is n times it
            return np.full(len(p), value), grad * len(p)
        return value[:, 0], grad


class Dice(Tversky):
    """Keras' dice: 1 - 2 sum(t p) / (sum(t) + sum(p) + 1e-7), over the whole batch (``axis`` none, Keras'
    default) or each sample (-1)."""

    name = "dice"
    PARAMS = {"axis": Param("int", None, nullable=True)}

    def evaluate(self, p, t):
        whole = self.config["axis"] is None
        axis, keep = (None, False) if whole else (1, True)
        overlap = (t * p).sum(axis=axis, keepdims=keep)
        total = t.sum(axis=axis, keepdims=keep) + p.sum(axis=axis, keepdims=keep) + EPSILON
        value = 1 - 2 * overlap / total
        grad = -2 * (t * total - overlap) / total ** 2
        if whole:
            return np.full(len(p), value), grad * len(p)
        return value[:, 0], grad
