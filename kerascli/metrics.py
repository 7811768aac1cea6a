"""Metrics: each returns (sum over the batch, count) so epochs average exactly over samples.

``accuracy`` follows Keras: with categorical_crossentropy it compares argmaxes
of predictions and one-hot targets, with sparse_categorical_crossentropy the
argmax against integer labels, with binary_crossentropy predictions
thresholded at 0.5. With mean_squared_error it is argmax accuracy when the
output has several units and thresholded accuracy when it has one.
"""

from __future__ import annotations

import numpy as np

from kerascli.config.params import Param
from kerascli.errors import ConfigError, DataError
from kerascli.registry import METRICS


def divide_no_nan(a, b):
    """a / b, 0 where b is 0 (Keras' divide_no_nan), for the rates of counts."""
    a = np.asarray(a, np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=np.asarray(b) != 0)


class Metric:
    host_only = False  # computed on host arrays (a plugin's function): a device backend cannot run it
    PARAMS: dict[str, Param] = {}  # Keras' constructor arguments (``metrics: [{type: ..., ...}]``)
    # A metric that is not a mean over samples (precision, AUC) sums a vector of counts over the batches
    # instead (``update`` returns it) and turns the sums into its value with ``result``.
    counts = False

    def __init__(self, name: str, config: dict | None = None):
        self.name = name
        self.config = {key: param.default for key, param in self.PARAMS.items()}
        self.config.update((k, v) for k, v in (config or {}).items() if k not in ("type", "name"))

    @staticmethod
    def check(config: dict) -> str | None:
        """What is wrong with resolved arguments (as ``key: message``), or None."""
        return None

    def update(self, ops, pred: np.ndarray, t: np.ndarray) -> tuple[float, int]:
        raise NotImplementedError

    def result(self, sums: np.ndarray) -> float:
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


class TopKCategoricalAccuracy(Metric):
    """Keras' top_k_categorical_accuracy: the target class is among the k highest predictions (ties with the
    k-th count as in), against one-hot targets."""

    PARAMS = {"k": Param("int", 5, min=1)}

    def _class_ids(self, t):
        return t.argmax(axis=1)

    def update(self, ops, pred, t):
        p, labels = ops.to_host(pred), self._class_ids(ops.to_host(t))
        target = p[np.arange(len(p)), labels]
        above = (p > target[:, None]).sum(axis=1)  # classes predicted higher than the target
        return float((above < self.config["k"]).sum()), len(p)


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    """The same against integer class ids."""

    def _class_ids(self, t):
        return t.astype(np.int64)


class _Confusion(Metric):
    """Keras' Precision and Recall: predictions above ``thresholds`` (0.5; with ``top_k``, any) count as
    positive, targets that are not zero are positive; ``top_k`` keeps only each row's k highest
    predictions, ``class_id`` one column.
    Counts (true positives, false positives, false negatives) are summed over every value of the epoch."""

    PARAMS = {"thresholds": Param("float", None, nullable=True, doc="one threshold (default 0.5)"),
              "top_k": Param("int", None, min=1, nullable=True),
              "class_id": Param("int", None, min=0, nullable=True)}
    counts = True

    def update(self, ops, pred, t):
        p, t = ops.to_host(pred), ops.to_host(t)
        c = self.config
        if c["top_k"] is not None:  # all but the k highest of each row: never positive
            k = min(c["top_k"], p.shape[1])
            keep = np.zeros(p.shape, bool)
            np.put_along_axis(keep, np.argsort(-p, axis=1, kind="stable")[:, :k], True, axis=1)
            p = np.where(keep, p, -np.inf)
        if c["class_id"] is not None:
            if c["class_id"] >= p.shape[1]:
                raise DataError(f"metric {self.name!r}: class_id {c['class_id']} but the output has {p.shape[1]} "
                                "units")
            p, t = p[:, c["class_id"]], t[:, c["class_id"]]
        default = 0.5 if c["top_k"] is None else -np.inf  # as Keras: with top_k, every kept value is positive
        predicted = p > (default if c["thresholds"] is None else c["thresholds"])
        actual = t != 0
        return np.array([(predicted & actual).sum(), (predicted & ~actual).sum(), (~predicted & actual).sum()],
                        np.float64), len(pred)


class Precision(_Confusion):
    def result(self, sums):
        tp, fp, _ = sums
        return float(tp / (tp + fp)) if tp + fp else 0.0


class Recall(_Confusion):
    def result(self, sums):
        tp, _, fn = sums
        return float(tp / (tp + fn)) if tp + fn else 0.0


class AUC(Metric):
    """Keras' AUC: true/false positives at ``num_thresholds`` evenly spaced thresholds (the first just below
    0, the last just above 1), counted over every value of the epoch (all outputs together, each counted
    with its ``label_weights`` entry; or, ``multi_label``, each output apart and their areas averaged,
    weighted by ``label_weights``), then the area under the ROC or precision-recall curve by Keras' Riemann
    sums (PR interpolation as Davis & Goadrich)."""

    PARAMS = {"num_thresholds": Param("int", 200, min=2),
              "curve": Param("str", "ROC", choices=("ROC", "PR")),
              "summation_method": Param("str", "interpolation", choices=("interpolation", "minoring", "majoring")),
              "multi_label": Param("bool", False),
              "num_labels": Param("int", None, min=1, nullable=True),
              "label_weights": Param("float_list", None, nullable=True),
              "from_logits": Param("bool", False)}
    counts = True

    def update(self, ops, pred, t):
        c, n = self.config, self.config["num_thresholds"]
        p, t = ops.to_host(pred), ops.to_host(t) != 0
        p, t = p.reshape(len(p), -1), t.reshape(len(t), -1)
        labels = p.shape[1]
        weights = np.ones(labels) if c["label_weights"] is None else np.asarray(c["label_weights"], np.float64)
        if len(weights) != labels or (c["num_labels"] is not None and c["num_labels"] != labels):
            raise DataError(f"metric {self.name!r}: the output has {labels} labels, but num_labels or label_weights "
                            "say otherwise")
        if c["from_logits"]:
            p = 1.0 / (1.0 + np.exp(-p))
        p = np.clip(p, 0.0, 1.0)
        # the bucket of each prediction: above thresholds[0..bucket] (Keras: ceil(p (n - 1)) - 1, at least 0)
        bucket = np.maximum(np.ceil(p * p.dtype.type(n - 1)) - 1, 0).astype(np.int64)
        if c["multi_label"]:  # per label (label_weights weigh the areas, not the counts)
            counts = [np.bincount(bucket[:, j][t[:, j] == side], minlength=n).astype(np.float64)
                      for side in (True, False) for j in range(labels)]
            return np.concatenate(counts), len(pred)
        entry_weights = np.broadcast_to(weights, p.shape)
        positives = np.bincount(bucket[t], weights=entry_weights[t], minlength=n)
        negatives = np.bincount(bucket[~t], weights=entry_weights[~t], minlength=n)
        return np.concatenate([positives, negatives]).astype(np.float64), len(pred)

    def result(self, sums):
        n = self.config["num_thresholds"]
        if not self.config["multi_label"]:
            return self._area(sums[:n], sums[n:])
        labels = len(sums) // (2 * n)
        positives, negatives = sums[:labels * n].reshape(labels, n), sums[labels * n:].reshape(labels, n)
        areas = np.array([self._area(positives[j], negatives[j]) for j in range(labels)])
        weights = self.config["label_weights"]
        if weights is None:
            return float(areas.mean())
        weights = np.asarray(weights, np.float64)
        return float((areas * weights).sum() / weights.sum()) if weights.sum() else 0.0

    def _area(self, positive_hist, negative_hist) -> float:
        tp = np.cumsum(positive_hist[::-1])[::-1]  # positives above each threshold
        fp = np.cumsum(negative_hist[::-1])[::-1]
        fn, tn = tp[0] - tp, fp[0] - fp

        c = self.config
        if c["curve"] == "PR" and c["summation_method"] == "interpolation":
            dtp, p = tp[:-1] - tp[1:], tp + fp
            dp = p[:-1] - p[1:]
            slope = divide_no_nan(dtp, np.maximum(dp, 0))
            intercept = tp[1:] - slope * p[1:]
            both = (p[:-1] > 0) & (p[1:] > 0)
            p_ratio = np.where(both, divide_no_nan(p[:-1], np.maximum(p[1:], 0)), 1.0)
            increments = divide_no_nan(slope * (dtp + intercept * np.log(p_ratio)), np.maximum(tp[1:] + fn[1:], 0))
            return float(increments.sum())
        recall = divide_no_nan(tp, tp + fn)
        x, y = (divide_no_nan(fp, fp + tn), recall) if c["curve"] == "ROC" else (recall, divide_no_nan(tp, tp + fp))
        if c["summation_method"] == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif c["summation_method"] == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return float(((x[:-1] - x[1:]) * heights).sum())


class _AtConstraint(Metric):
    """Keras' SensitivityAtSpecificity family: true/false positives at ``num_thresholds`` thresholds evenly
    spaced over [0, 1] (a prediction counts as positive above a threshold, so one of exactly 0 never
    does; one threshold is 0.5), summed over the epoch's values (or ``class_id``'s column), then the best
    of one rate among the thresholds where the other is at least ``value``."""

    VALUE = ""  # the name of the constraint's argument
    counts = True

    def update(self, ops, pred, t):
        p, t = ops.to_host(pred), ops.to_host(t)
        if self.config["class_id"] is not None:
            if self.config["class_id"] >= p.shape[1]:
                raise DataError(f"metric {self.name!r}: class_id {self.config['class_id']} but the output has "
                                f"{p.shape[1]} units")
            p, t = p[:, self.config["class_id"]], t[:, self.config["class_id"]]
        p, actual = np.clip(p.ravel(), 0.0, 1.0), t.ravel() != 0
        n = self.config["num_thresholds"]
        if n == 1:
            bucket = np.where(p > 0.5, 0, -1)
        else:  # Keras' buckets: above thresholds[0..bucket]; -1 for exactly 0, above none
            bucket = (np.ceil(p * p.dtype.type(n - 1)) - 1).astype(np.int64)
        counted = bucket >= 0
        return np.concatenate([np.bincount(bucket[actual & counted], minlength=n).astype(np.float64),
                               np.bincount(bucket[~actual & counted], minlength=n).astype(np.float64),
                               [actual.sum(), (~actual).sum()]]), len(pred)

    def rates(self, sums):
        n = self.config["num_thresholds"]
        tp, fp = np.cumsum(sums[:n][::-1])[::-1], np.cumsum(sums[n:2 * n][::-1])[::-1]
        fn, tn = sums[-2] - tp, sums[-1] - fp

        return {"sensitivity": divide_no_nan(tp, tp + fn), "specificity": divide_no_nan(tn, tn + fp),
                "precision": divide_no_nan(tp, tp + fp)}

    def result(self, sums):
        rates = self.rates(sums)
        constrained, dependent = rates[self.CONSTRAINED], rates[self.DEPENDENT]
        feasible = constrained >= self.config[self.VALUE]
        return float(np.where(feasible, dependent, 0.0).max(initial=0.0))


def _at_constraint(name: str, value: str, constrained: str, dependent: str) -> type:
    params = {value: Param("float", min=0.0, max=1.0), "num_thresholds": Param("int", 200, min=1),
              "class_id": Param("int", None, min=0, nullable=True)}
    return type(name, (_AtConstraint,), {"PARAMS": params, "VALUE": value, "CONSTRAINED": constrained,
                                         "DEPENDENT": dependent,
                                         "__doc__": f"Keras' {name}: the best {dependent} where {constrained} is "
                                                    f"at least ``{value}``."})


SensitivityAtSpecificity = _at_constraint("SensitivityAtSpecificity", "specificity", "specificity", "sensitivity")
SpecificityAtSensitivity = _at_constraint("SpecificityAtSensitivity", "sensitivity", "sensitivity", "specificity")
PrecisionAtRecall = _at_constraint("PrecisionAtRecall", "recall", "sensitivity", "precision")
RecallAtPrecision = _at_constraint("RecallAtPrecision", "precision", "precision", "sensitivity")


class MeanIoU(Metric):
    """Keras' MeanIoU: a confusion matrix of class ids over the epoch (targets and predictions taken as ids
    where ``sparse_y_true`` / ``sparse_y_pred``, else by their largest column; ids outside [0, num_classes)
    and ``ignore_class`` targets left out), then the mean over classes present of TP / (TP + FP + FN)."""

    PARAMS = {"num_classes": Param("int", min=1), "ignore_class": Param("int", None, nullable=True),
              "sparse_y_true": Param("bool", True), "sparse_y_pred": Param("bool", True),
              "axis": Param("int", -1)}
    counts = True

    @staticmethod
    def check(config):
        if config.get("axis") not in (-1, 1):
            return f"axis: outputs here are (batch, units), so -1 (or 1), not {config.get('axis')}"
        return None

    def update(self, ops, pred, t):
        c, k = self.config, self.config["num_classes"]
        p, t = ops.to_host(pred), ops.to_host(t)
        truth = (t if c["sparse_y_true"] else t.argmax(axis=1)).astype(np.float32).ravel()
        guess = (p if c["sparse_y_pred"] else p.argmax(axis=1)).astype(np.float32).ravel()
        keep = (truth >= 0) & (truth < k) & (guess >= 0) & (guess < k)
        if c["ignore_class"] is not None:
            keep &= truth != c["ignore_class"]
        matrix = np.zeros((k, k), np.float64)
        np.add.at(matrix, (truth[keep].astype(np.int64), guess[keep].astype(np.int64)), 1)
        return matrix.ravel(), len(pred)

    def result(self, sums):
        k = self.config["num_classes"]
        matrix = sums.reshape(k, k)
        tp = np.diag(matrix)
        denominator = matrix.sum(axis=0) + matrix.sum(axis=1) - tp
        valid = denominator > 1e-9
        iou = np.where(valid, tp / (denominator + 1e-7), 0.0)
        return float(iou.sum() / (valid.sum() + 1e-7))


class FBetaScore(Metric):
    """Keras' FBetaScore: each row's prediction is its largest value (``threshold`` none) or every value
    above ``threshold``; true/false positives and false negatives summed per class over the epoch (over
    everything for ``micro``), then F-beta per class averaged (``macro``), weighted by support
    (``weighted``) or from the pooled counts (``micro``). Keras' default ``average`` (none) gives one value
    per class, which a log column cannot hold: it is refused, naming the choices."""

    PARAMS = {"average": Param("str", None, nullable=True, choices=("micro", "macro", "weighted")),
              "beta": Param("float", 1.0, min=0.0, exclusive_min=True),
              "threshold": Param("float", None, nullable=True)}
    counts = True

    @staticmethod
    def check(config):
        if config.get("average") is None:
            return ("average: kerascli logs one number per metric; set average: macro, micro or weighted (Keras' "
                    "default, none, gives one score per class)")
        return None

    def update(self, ops, pred, t):
        p, t = ops.to_host(pred).astype(np.float64), ops.to_host(t).astype(np.float64)
        if self.config["threshold"] is None:
            predicted = (p >= p.max(axis=1, keepdims=True)) & (np.abs(p) > 1e-9)
        else:
            predicted = p > self.config["threshold"]
        predicted = predicted.astype(np.float64)
        axis = None if self.config["average"] == "micro" else 0
        counts = [np.atleast_1d((predicted * t).sum(axis=axis)), np.atleast_1d((predicted * (1 - t)).sum(axis=axis)),
                  np.atleast_1d(((1 - predicted) * t).sum(axis=axis)), np.atleast_1d(t.sum(axis=axis))]
        return np.concatenate(counts), len(pred)

    def result(self, sums):
        tp, fp, fn, support = np.split(sums, 4)
        eps, beta2 = 1e-7, self.config.get("beta", 1.0) ** 2
        precision, recall = tp / (tp + fp + eps), tp / (tp + fn + eps)
        score = precision * recall / (beta2 * precision + recall + eps) * (1 + beta2)
        if self.config["average"] == "weighted":
            return float((score * support / (support.sum() + eps)).sum())
        return float(score.mean())


class F1Score(FBetaScore):
    """FBetaScore with beta 1."""

    PARAMS = {k: v for k, v in FBetaScore.PARAMS.items() if k != "beta"}


class ElementMetric(Metric):
    """A loss's per-sample value, averaged over the epoch's samples (Keras' metric twins of the regression
    losses: mean_absolute_percentage_error, logcosh, ...), from the same kernels as the loss."""

    loss = ""  # the registered loss whose values these are

    def __init__(self, name: str, config: dict | None = None):
        from kerascli.registry import LOSSES

        super().__init__(name, config)
        self._loss = LOSSES.get(self.loss)()

    def update(self, ops, pred, t):
        rows, _ = self._loss.forward(ops, pred, t, False)
        return ops.total(rows), len(pred)


def _element_metric(name: str, loss: str) -> type:
    return type(name, (ElementMetric,), {"loss": loss, "__doc__": f"Keras' {name}: the {loss} loss per sample, "
                                                                   "averaged over the epoch."})


MeanAbsolutePercentageError = _element_metric("MeanAbsolutePercentageError", "mean_absolute_percentage_error")
MeanSquaredLogarithmicError = _element_metric("MeanSquaredLogarithmicError", "mean_squared_logarithmic_error")
LogCoshError = _element_metric("LogCoshError", "log_cosh")
PoissonMetric = _element_metric("Poisson", "poisson")
KLDivergenceMetric = _element_metric("KLDivergence", "kl_divergence")
HingeMetric = _element_metric("Hinge", "hinge")
SquaredHingeMetric = _element_metric("SquaredHinge", "squared_hinge")


class CosineSimilarity(Metric):
    """Keras' cosine_similarity metric: the cosine of the angle between each target and prediction row
    (both L2-normalised, zero rows left at zero), averaged over the epoch's samples."""

    def update(self, ops, pred, t):
        p, t = ops.to_host(pred).astype(np.float64), ops.to_host(t).astype(np.float64)

        def unit(a):
            return a / np.sqrt(np.maximum((a * a).sum(axis=1, keepdims=True), 1e-12))

        return float((unit(p) * unit(t)).sum()), len(p)


class RootMeanSquaredError(Metric):
    """Keras' root_mean_squared_error: the square root of the mean squared error over every value of the
    epoch (not a mean of batch values)."""

    counts = True

    def update(self, ops, pred, t):
        p, t = ops.to_host(pred).astype(np.float64), ops.to_host(t).astype(np.float64)
        return np.array([((p - t) ** 2).sum(), p.size], np.float64), len(pred)

    def result(self, sums):
        total, count = sums
        return float(np.sqrt(total / count)) if count else 0.0


class R2Score(Metric):
    """Keras' r2_score: 1 - residual / total sum of squares per output, from sums over the epoch, then
    averaged over outputs (``uniform_average``), weighted by their variance
    (``variance_weighted_average``); ``num_regressors`` > 0 adjusts it."""

    PARAMS = {"class_aggregation": Param("str", "uniform_average",
                                         choices=("uniform_average", "variance_weighted_average")),
              "num_regressors": Param("int", 0, min=0)}
    counts = True

    def update(self, ops, pred, t):
        p, t = ops.to_host(pred).astype(np.float64), ops.to_host(t).astype(np.float64)
        p, t = p.reshape(len(p), -1), t.reshape(len(t), -1)
        # per output: sum of targets, of their squares, of squared residuals; then the sample count
        return np.concatenate([t.sum(axis=0), (t * t).sum(axis=0), ((t - p) ** 2).sum(axis=0), [len(t)]]), len(t)

    def result(self, sums):
        k = (len(sums) - 1) // 3
        total_sum, squared_sum, residual, n = sums[:k], sums[k:2 * k], sums[2 * k:3 * k], sums[-1]
        if not n:
            return 0.0
        total = squared_sum - total_sum * (total_sum / n)
        with np.errstate(divide="ignore", invalid="ignore"):
            raw = 1 - residual / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.config["class_aggregation"] == "uniform_average":
            score = raw.mean()
        else:
            score = (total * raw).sum() / total.sum()
        p, values = self.config["num_regressors"], n * k  # Keras counts values here, not samples
        if 0 < p < values - 1:
            score = 1 - (1 - score) * (values - 1) / (values - p - 1)
        return float(score)


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


class ClassificationReport(Metric):
    """``classification_report``: no column of its own; at the end of training the run directory gets each
    class's precision, recall, F1 and support and the confusion matrix (kerascli/reports.py)."""

    report = True


class Accuracy(Metric):
    """Plain ``accuracy``: make_metric replaces it with the kind that matches the loss."""


def metric_name(spec) -> str:
    """The name a resolved metric is logged under: its own, or a mapping's ``name`` (default its type)."""
    return spec if isinstance(spec, str) else spec.get("name") or spec["type"]


def make_metric(spec, loss_name: str, units: int) -> Metric:
    """The metric a resolved spec (a name, or a mapping with 'type' and arguments) gives for targets as
    ``loss_name`` takes them."""
    name, kind = metric_name(spec), spec if isinstance(spec, str) else spec["type"]
    sparse_targets = loss_name == "sparse_categorical_crossentropy"
    cls = METRICS.get(kind)
    if cls is Accuracy:  # pick the variant that matches the loss
        if sparse_targets or loss_name == "categorical_crossentropy" or (loss_name == "mean_squared_error" and units > 1):
            cls = CategoricalAccuracy
        else:
            cls = BinaryAccuracy
    # the two argmax accuracies (and the two top-k ones) differ only in how targets are stored, which the
    # loss decides
    if cls in (CategoricalAccuracy, SparseCategoricalAccuracy):
        cls = SparseCategoricalAccuracy if sparse_targets else CategoricalAccuracy
    elif cls in (TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy):
        cls = SparseTopKCategoricalAccuracy if sparse_targets else TopKCategoricalAccuracy
    elif sparse_targets and (cls in (BinaryAccuracy, MeanAbsoluteError, MeanSquaredErrorMetric, Precision, Recall,
                                     AUC, CosineSimilarity, RootMeanSquaredError, R2Score, FBetaScore, F1Score)
                             or issubclass(cls, _AtConstraint)
                             or issubclass(cls, ElementMetric)):
        raise ConfigError(f"metric {name!r} compares predictions with targets of the same shape, but "
                          f"{loss_name} takes class ids; use accuracy, or a loss with one-hot targets",
                          key="compile.metrics")
    return cls(name, spec if isinstance(spec, dict) else None)
