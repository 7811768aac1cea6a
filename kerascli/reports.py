"""Per-class reports (``metrics: [classification_report]``): precision, recall, F1 and support of each class
and the confusion matrix, written as CSV into the run directory at the end of training, for each split
evaluated there (the weights of the run's results)."""

from __future__ import annotations

import csv
import io
import os

import numpy as np

from kerascli.metrics import divide_no_nan
from kerascli.predictions import class_names_for
from kerascli.runs.atomic import atomic_write_text

REPORT = "classification_report"


def wants_report(spec_metrics) -> bool:
    return any((m if isinstance(m, str) else m.get("type")) == REPORT for m in spec_metrics)


def class_ids(ops, values, units: int) -> np.ndarray:
    """Class ids of predictions or targets: the largest column, or (one unit) above 0.5; labels as they
    are."""
    values = np.asarray(ops.to_host(values))
    if values.ndim == 1:
        return values.astype(np.int64)
    if values.shape[1] == 1:
        return (values[:, 0] > 0.5).astype(np.int64) if units == 1 else values[:, 0].astype(np.int64)
    return values.argmax(axis=1)


def confusion(trainer, split, output: str, classes: int, batch_size: int) -> np.ndarray:
    """The confusion matrix (rows: true class, columns: predicted) of ``output`` over ``split``."""
    model, ops = trainer.model, trainer.ops
    units = model.output_shapes[output][0]
    matrix = np.zeros((classes, classes), np.int64)
    for x, t, _ in ops.batches(split, model.inference_batch(batch_size)):
        out = model.predict_batch(x)
        out = out[output] if isinstance(out, dict) else out
        targets = t[output] if isinstance(t, dict) else t
        truth, predicted = class_ids(ops, targets, units), class_ids(ops, out, units)
        np.add.at(matrix, (np.clip(truth, 0, classes - 1), np.clip(predicted, 0, classes - 1)), 1)
    return matrix


def report_rows(matrix: np.ndarray) -> list[dict]:
    """scikit-learn's classification_report from a confusion matrix: per class, then macro and weighted
    averages (a class never predicted, or absent, scores 0 where its ratio is undefined)."""
    tp = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0).astype(np.float64), matrix.sum(axis=1).astype(np.float64)

    precision, recall = divide_no_nan(tp, predicted), divide_no_nan(tp, support)
    f1 = divide_no_nan(2 * precision * recall, precision + recall)
    rows = [{"class": str(c), "precision": precision[c], "recall": recall[c], "f1": f1[c], "support": int(support[c])}
            for c in range(len(tp))]
    total = support.sum()
    rows.append({"class": "macro avg", "precision": precision.mean(), "recall": recall.mean(), "f1": f1.mean(),
                 "support": int(total)})
    weights = divide_no_nan(support, np.full_like(support, total))
    rows.append({"class": "weighted avg", "precision": (precision * weights).sum(),
                 "recall": (recall * weights).sum(), "f1": (f1 * weights).sum(), "support": int(total)})
    rows.append({"class": "accuracy", "precision": "", "recall": "", "f1": tp.sum() / total if total else 0.0,
                 "support": int(total)})
    return rows


def _csv(header: list[str], rows: list[list]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")  # (quotes a class name holding a comma)
    writer.writerow(header)
    for row in rows:
        writer.writerow([repr(float(v)) if isinstance(v, (float, np.floating)) else str(v) for v in row])
    return out.getvalue()


def write_reports(run_dir: str, trainer, splits: dict, metrics: dict, batch_size: int,
                  class_names: list[str] | None = None) -> list[str]:
    """Write the reports of every output that asked for one, for every split; returns the files. Classes are
    named by ``class_names`` (a table's labels, an image folder's class folders) where the output has as
    many classes, else by id."""
    model, written = trainer.model, []
    for output, names in metrics.items():
        if not wants_report(names):
            continue
        units = model.output_shapes[output][0]
        classes = 2 if units == 1 else units
        prefix = f"{output}_" if len(metrics) > 1 else ""
        names = class_names_for(class_names, units) or [str(c) for c in range(classes)]
        for split_name, split in splits.items():
            matrix = confusion(trainer, split, output, classes, batch_size)
            rows = report_rows(matrix)
            for row in rows[:classes]:
                row["class"] = names[int(row["class"])]
            folder = os.path.join(run_dir, "reports")
            os.makedirs(folder, exist_ok=True)
            report = os.path.join(folder, f"{prefix}{split_name}_classification_report.csv")
            atomic_write_text(report, _csv(["class", "precision", "recall", "f1", "support"],
                                           [[r[k] for k in ("class", "precision", "recall", "f1", "support")]
                                            for r in rows]))
            confusion_path = os.path.join(folder, f"{prefix}{split_name}_confusion_matrix.csv")
            atomic_write_text(confusion_path, _csv(["true \\ predicted"] + names,
                                                   [[names[c]] + list(matrix[c]) for c in range(classes)]))
            written += [report, confusion_path]
    return written
