"""Metrics beyond means over samples: precision, recall, AUC (summed counts, then a value) and top-k
accuracy, streamed over batches of uneven size exactly as Keras 3's metrics give them; metric arguments and
names in the config."""

import os

import numpy as np
import pytest

from kerascli.config.loader import parse_yaml_text
from kerascli.config.schema import resolve_config
from kerascli.errors import ConfigError
from kerascli.metrics import make_metric
from kerascli.ops import get_ops
from kerascli.registry import METRICS, load_builtins
from kerascli.train.loop import Totals

load_builtins()
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

BATCHES = [7, 1, 12, 5]  # uneven: the epoch value is not a mean of batch values
UNITS = 6


def keras_metrics():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras").metrics


def data(rng, sparse=False, binary=False):
    n = sum(BATCHES)
    z = rng.normal(size=(n, UNITS)) * 2
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    if binary:
        return 1 / (1 + np.exp(-z)), (rng.random((n, UNITS)) > 0.6).astype(np.float64), z
    ids = rng.integers(0, UNITS, n)
    return probs, (ids if sparse else np.eye(UNITS)[ids]), z


def ours(spec, loss, pred, t):
    """The epoch value kerascli logs for ``spec`` over BATCHES."""
    metric = make_metric(spec, loss, UNITS)
    totals = Totals(["loss", metric.name], {metric.name: metric.result} if metric.counts else None)
    ops, start = get_ops("cpu"), 0
    for size in BATCHES:
        part = slice(start, start + size)
        totals.add("loss", 0.0, size)
        totals.add(metric.name, metric.update(ops, pred[part], t[part])[0], size)
        start += size
    return totals.means()[metric.name]


def theirs(keras_cls, config, pred, t):
    metric = getattr(keras_metrics(), keras_cls)(**config)
    start = 0
    for size in BATCHES:
        metric.update_state(t[start:start + size], pred[start:start + size])
        start += size
    return float(np.asarray(metric.result()))


CASES = [  # (our spec, Keras class, its arguments, targets: onehot / sparse / binary, from logits)
    ("precision", "Precision", {}, "binary", False),
    ({"type": "precision", "thresholds": 0.3}, "Precision", {"thresholds": 0.3}, "binary", False),
    ({"type": "precision", "top_k": 2}, "Precision", {"top_k": 2}, "onehot", False),
    ({"type": "precision", "class_id": 1}, "Precision", {"class_id": 1}, "binary", False),
    ("recall", "Recall", {}, "binary", False),
    ({"type": "recall", "top_k": 1}, "Recall", {"top_k": 1}, "onehot", False),
    ({"type": "recall", "class_id": 3, "thresholds": 0.7}, "Recall", {"class_id": 3, "thresholds": 0.7}, "binary",
     False),
    ("auc", "AUC", {}, "binary", False),
    ({"type": "auc", "curve": "PR"}, "AUC", {"curve": "PR"}, "binary", False),
    ({"type": "auc", "num_thresholds": 17, "summation_method": "minoring"}, "AUC",
     {"num_thresholds": 17, "summation_method": "minoring"}, "onehot", False),
    ({"type": "auc", "curve": "PR", "summation_method": "majoring"}, "AUC",
     {"curve": "PR", "summation_method": "majoring"}, "binary", False),
    ({"type": "auc", "from_logits": True}, "AUC", {"from_logits": True}, "binary", True),
    ({"type": "auc", "multi_label": True}, "AUC", {"multi_label": True}, "binary", False),
    ({"type": "auc", "multi_label": True, "curve": "PR", "label_weights": [1, 2, 0, 1, 3, 1]}, "AUC",
     {"multi_label": True, "curve": "PR", "label_weights": [1, 2, 0, 1, 3, 1]}, "binary", False),
    ({"type": "auc", "label_weights": [1, 0.5, 2, 1, 1, 0]}, "AUC", {"label_weights": [1, 0.5, 2, 1, 1, 0]},
     "binary", False),
    ({"type": "top_k_categorical_accuracy", "k": 2}, "TopKCategoricalAccuracy", {"k": 2}, "onehot", False),
    ("top_k_categorical_accuracy", "TopKCategoricalAccuracy", {}, "onehot", False),
    ({"type": "sparse_top_k_categorical_accuracy", "k": 1}, "SparseTopKCategoricalAccuracy", {"k": 1}, "sparse",
     False),
    ("root_mean_squared_error", "RootMeanSquaredError", {}, "binary", False),
    ("r2_score", "R2Score", {}, "binary", True),
    ({"type": "r2_score", "class_aggregation": "variance_weighted_average", "num_regressors": 2}, "R2Score",
     {"class_aggregation": "variance_weighted_average", "num_regressors": 2}, "binary", True),
    ("mean_absolute_percentage_error", "MeanAbsolutePercentageError", {}, "binary", False),
    ("mean_squared_logarithmic_error", "MeanSquaredLogarithmicError", {}, "binary", False),
    ("logcosh", "LogCoshError", {}, "binary", True),
    ("poisson", "Poisson", {}, "binary", False),
    ("kl_divergence", "KLDivergence", {}, "onehot", False),
    ("hinge", "Hinge", {}, "binary", True),
    ("squared_hinge", "SquaredHinge", {}, "binary", True),
    ("cosine_similarity", "CosineSimilarity", {}, "binary", True),
    ({"type": "f1_score", "average": "macro"}, "F1Score", {"average": "macro"}, "onehot", False),
    ({"type": "f1_score", "average": "micro", "threshold": 0.3}, "F1Score", {"average": "micro", "threshold": 0.3},
     "binary", False),
    ({"type": "fbeta_score", "average": "weighted", "beta": 2.0}, "FBetaScore", {"average": "weighted",
                                                                                 "beta": 2.0}, "onehot", False),
    ({"type": "sensitivity_at_specificity", "specificity": 0.6}, "SensitivityAtSpecificity",
     {"specificity": 0.6}, "binary", False),
    ({"type": "specificity_at_sensitivity", "sensitivity": 0.7, "num_thresholds": 13}, "SpecificityAtSensitivity",
     {"sensitivity": 0.7, "num_thresholds": 13}, "binary", False),
    ({"type": "precision_at_recall", "recall": 0.5, "class_id": 2}, "PrecisionAtRecall",
     {"recall": 0.5, "class_id": 2}, "onehot", False),
    ({"type": "recall_at_precision", "precision": 0.4, "num_thresholds": 1}, "RecallAtPrecision",
     {"precision": 0.4, "num_thresholds": 1}, "binary", False),
    ({"type": "mean_iou", "num_classes": UNITS, "sparse_y_pred": False}, "MeanIoU",
     {"num_classes": UNITS, "sparse_y_pred": False}, "sparse", False),
    ({"type": "mean_iou", "num_classes": UNITS, "sparse_y_true": False, "sparse_y_pred": False, "ignore_class": 1},
     "MeanIoU", {"num_classes": UNITS, "sparse_y_true": False, "sparse_y_pred": False, "ignore_class": 1}, "onehot",
     False),
]


@pytest.mark.parametrize("spec,keras_cls,config,targets,logits", CASES)
def test_streamed_values_match_keras(spec, keras_cls, config, targets, logits, rng):
    probs, t, z = data(rng, sparse=targets == "sparse", binary=targets == "binary")
    pred = z if logits else probs
    loss = {"onehot": "categorical_crossentropy", "sparse": "sparse_categorical_crossentropy",
            "binary": "binary_crossentropy"}[targets]
    expected = theirs(keras_cls, config, pred.astype(np.float32), t.astype(np.float32))
    assert ours(spec, loss, pred.astype(np.float32), t) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_the_top_k_kind_follows_the_loss(rng):
    """As accuracy: class ids (sparse loss) or one-hot rows, whichever name the config used."""
    probs, ids, _ = data(rng, sparse=True)
    a = ours({"type": "top_k_categorical_accuracy", "k": 2}, "sparse_categorical_crossentropy", probs, ids)
    b = ours({"type": "top_k_categorical_accuracy", "k": 2}, "categorical_crossentropy", probs, np.eye(UNITS)[ids])
    assert a == b


def test_counts_survive_a_checkpoint(rng):
    """A mid-epoch checkpoint keeps the summed counts: the epoch value after a resume is the same."""
    probs, t, _ = data(rng, binary=True)
    metric = make_metric("auc", "binary_crossentropy", UNITS)
    results = {"auc": metric.result}
    whole, first = Totals(["loss", "auc"], results), Totals(["loss", "auc"], results)
    for totals, rows in ((whole, slice(0, 25)), (first, slice(0, 10))):
        totals.add("loss", 0.0, rows.stop)
        totals.add("auc", metric.update(get_ops("cpu"), probs[rows], t[rows])[0], rows.stop)
    resumed = Totals.from_dict(first.to_dict(), results)
    resumed.add("loss", 0.0, 15)
    resumed.add("auc", metric.update(get_ops("cpu"), probs[10:25], t[10:25])[0], 15)
    assert resumed.means() == whole.means()


def resolve(metrics, loss="binary_crossentropy", units=4):
    text = f"""
data: {{dataset: synthetic_regression, samples: 20, features: 3, outputs: {units}}}
model: {{input_shape: [3], layers: [{{type: Dense, units: {units}, activation: sigmoid}}]}}
compile: {{optimizer: adam, loss: {loss}, metrics: {metrics}}}
checkpoint: {{monitor: loss}}
"""
    return resolve_config(parse_yaml_text(text, "m.yaml"))


def test_metric_arguments_resolve_and_name_their_log_column():
    spec = resolve("[acc, {type: auc, curve: PR, name: pr_auc}, precision, {type: recall}]")
    assert spec.compile["metrics"] == [
        "accuracy", {"type": "auc", "num_thresholds": 200, "curve": "PR", "summation_method": "interpolation",
                     "multi_label": False, "num_labels": None, "label_weights": None, "from_logits": False,
                     "name": "pr_auc"},
        {"type": "precision", "thresholds": None, "top_k": None, "class_id": None},
        {"type": "recall", "thresholds": None, "top_k": None, "class_id": None}]
    spec.checkpoint["monitor"] = "val_pr_auc"
    from kerascli.config.schema import monitor_names

    assert {"pr_auc", "val_pr_auc", "precision", "recall"} <= monitor_names(spec.compile)


@pytest.mark.parametrize("metrics,message", [
    ("[auc, {type: auc, curve: PR}]", "two metrics would be logged as 'auc' (items 0 and 1); give one a name"),
    ("[{type: auc, curve: ROCC}]", "compile.metrics[0].curve: invalid value 'ROCC'; did you mean 'ROC'?"),
    ("[{type: precision, treshold: 0.2}]", "compile.metrics[0].treshold: unknown key 'treshold'"),
    ("[{curve: PR}]", "compile.metrics[0]: missing required key 'type'"),
    ("[{type: accuracy, k: 2}]", "compile.metrics[0].k: unknown key 'k'"),
    ("[f1_score]", "compile.metrics[0].average: average: kerascli logs one number per metric"),
])
def test_bad_metric_arguments_name_the_key(metrics, message):
    with pytest.raises(ConfigError) as err:
        resolve(metrics)
    assert message in str(err.value)


def test_confusion_metrics_refuse_class_ids():
    with pytest.raises(ConfigError, match="metric 'auc' compares predictions with targets of the same shape"):
        make_metric("auc", "sparse_categorical_crossentropy", UNITS)


def test_every_metric_has_a_test():
    tested = {spec if isinstance(spec, str) else spec["type"] for spec, *_ in CASES}
    tested = {METRICS.canonical(name) for name in tested}
    simple = {"accuracy", "categorical_accuracy", "sparse_categorical_accuracy", "binary_accuracy",
              "mean_absolute_error", "mean_squared_error"}  # tests/test_losses.py
    simple.add("classification_report")  # test_a_run_writes_its_reports
    assert set(METRICS.builtin_names()) == tested | simple


def test_a_run_logs_and_monitors_them(tmp_path, write_config):
    from click.testing import CliRunner

    from kerascli.cli import cli

    config = write_config("""
        name: m
        data: {dataset: synthetic_classification, samples: 120, features: 4, classes: 3, validation_split: 0.25}
        model: {input_shape: [4], layers: [{type: Dense, units: 3, activation: softmax}]}
        compile:
          optimizer: {type: adam, learning_rate: 0.05}
          loss: categorical_crossentropy
          metrics: [{type: auc, name: roc}, {type: top_k_categorical_accuracy, k: 2}]
        train: {epochs: 2, batch_size: 16}
        checkpoint: {monitor: val_roc}
    """)
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    header = (tmp_path / "m" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:4] == ["epoch", "loss", "roc", "top_k_categorical_accuracy"]
    assert "val_roc" in header


def test_classification_report_from_a_confusion_matrix():
    from kerascli.reports import report_rows

    matrix = np.array([[5, 1, 0], [2, 3, 0], [0, 0, 0]])  # class 2 never seen nor predicted
    rows = {r["class"]: r for r in report_rows(matrix)}
    assert rows["0"]["precision"] == pytest.approx(5 / 7) and rows["0"]["recall"] == pytest.approx(5 / 6)
    assert rows["1"]["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert rows["2"]["precision"] == rows["2"]["f1"] == 0 and rows["2"]["support"] == 0
    assert rows["accuracy"]["f1"] == pytest.approx(8 / 11) and rows["macro avg"]["support"] == 11
    assert rows["weighted avg"]["recall"] == pytest.approx(8 / 11)  # support-weighted recall is accuracy


def test_a_run_writes_its_reports(tmp_path, write_config):
    """Per split, the report and the confusion matrix of the results' weights; the macro F1 in it is the
    f1_score metric the run logged (checked against Keras above)."""
    import csv
    import json

    from click.testing import CliRunner

    from kerascli.cli import cli

    config = write_config("""
        name: r
        data: {dataset: synthetic_classification, samples: 150, features: 4, classes: 3, test_split: 0.3}
        model: {input_shape: [4], layers: [{type: Dense, units: 3, activation: softmax}]}
        compile:
          optimizer: {type: adam, learning_rate: 0.05}
          loss: categorical_crossentropy
          metrics: [classification_report, {type: f1_score, average: macro}]
        train: {epochs: 2, batch_size: 16}
    """)
    result = CliRunner().invoke(cli, ["train", config, "--runs-dir", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    reports = tmp_path / "r" / "reports"
    assert sorted(os.listdir(reports)) == ["test_classification_report.csv", "test_confusion_matrix.csv",
                                           "train_classification_report.csv", "train_confusion_matrix.csv"]
    rows = {r["class"]: r for r in csv.DictReader(open(reports / "test_classification_report.csv"))}
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert float(rows["macro avg"]["f1"]) == pytest.approx(summary["evaluation"]["test"]["f1_score"], abs=1e-5)
    matrix = [r for r in csv.reader(open(reports / "test_confusion_matrix.csv"))]
    assert matrix[0] == ["true \\ predicted", "0", "1", "2"] and sum(int(v) for r in matrix[1:] for v in r[1:]) == 45
    header = (tmp_path / "r" / "metrics.csv").read_text().splitlines()[0]
    assert "classification_report" not in header
