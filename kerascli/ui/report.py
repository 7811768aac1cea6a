"""What a finished run leaves to look at: curves.png and confusion_matrix.png (through matplotlib, where
installed) and report.html, one self-contained page (inline CSS and SVG, no scripts, nothing fetched):
results, curves, confusion matrix and per-class metrics, the model, the config, versions and timing."""

from __future__ import annotations

import json
import os
from html import escape

from kerascli.runs.atomic import atomic_write_text
from kerascli.ui import charts

PLOTS_NOTE = "curves.png and confusion_matrix.png need matplotlib: pip install 'kerascli[plots]' (report.html has them)"


def run_confusion(trainer, splits: dict, class_names, batch_size: int):
    """(matrix, class names, split name, output) of the first classification output on the test split (else
    val, else train), or None for a model without one."""
    from kerascli.predictions import class_names_for
    from kerascli.reports import confusion

    objective, model = trainer.objective, trainer.model
    output = next((o for o in objective.outputs if objective.classification(o)), None)
    split_name = next((s for s in ("test", "val", "train") if s in splits), None)
    if output is None or split_name is None:
        return None
    units = model.output_shapes[output][0]
    classes = 2 if units == 1 else units
    names = class_names_for(class_names, units) or [str(c) for c in range(classes)]
    matrix = confusion(trainer, splits[split_name], output, classes, batch_size)
    return matrix, names, split_name, output if len(objective.outputs) > 1 else None


def write_pictures(run_dir: str, confusion) -> str | None:
    """curves.png and, for a classifier, confusion_matrix.png; returns a note where matplotlib is missing."""
    if not charts.have_matplotlib():
        return PLOTS_NOTE
    charts.curves_png(os.path.join(run_dir, "curves.png"), {"run": charts.read_history(run_dir)})
    if confusion is not None:
        matrix, names, split, _ = confusion
        charts.confusion_png(os.path.join(run_dir, "confusion_matrix.png"), matrix, names,
                             f"confusion matrix ({split} split)")
    return None


CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px auto; max-width: 1100px; color: #222;
       padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; border-bottom: 1px solid #ddd; padding-bottom: 4px;
  margin-top: 28px; }
.sub { color: #666; } .charts { display: flex; flex-wrap: wrap; gap: 12px; }
table { border-collapse: collapse; margin: 8px 0; } th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; } th { background: #f4f6fb; }
pre { background: #f7f7f7; padding: 10px; overflow-x: auto; font-size: 12px; }
"""


def _table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        return f"{v:.4f}" if isinstance(v, float) else escape(str(v))

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def report_html(run_dir: str, summary: dict, confusion) -> str:
    from kerascli.reports import report_rows

    history = charts.read_history(run_dir)
    name = summary.get("name", os.path.basename(run_dir))
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(name)} - kerascli "
             f"run</title><style>{CSS}</style></head><body>",
             f"<h1>{escape(name)}</h1><div class=\"sub\">{escape(summary.get('status', ''))}, "
             f"{summary.get('epochs', 0)} epochs, {summary.get('wall_seconds', 0):.1f} s &middot; "
             f"{escape(summary.get('run_dir', run_dir))}</div>"]
    evaluation = {k: v for k, v in (summary.get("evaluation") or {}).items() if isinstance(v, dict)}
    if evaluation:
        metrics = list(next(iter(evaluation.values())))
        which = (summary.get("evaluation") or {}).get("checkpoint", "")
        parts.append(f"<h2>Results ({escape(str(which))} checkpoint)</h2>")
        parts.append(_table(["split"] + metrics, [[s] + [v.get(m, "") for m in metrics] for s, v in evaluation.items()]))
    if history:
        parts.append("<h2>Training curves</h2><div class=\"charts\">" + "".join(charts.curves_svg({"run": history}))
                     + "</div>")
    if confusion is not None:
        matrix, names, split, output = confusion
        parts.append(f"<h2>Confusion matrix and per-class metrics ({escape(split)} split"
                     f"{', output ' + escape(output) if output else ''})</h2>")
        parts.append("<div class=\"charts\">" + charts.confusion_svg(matrix.tolist(), names) + "</div>")
        rows = report_rows(matrix)
        for row in rows[: len(names)]:
            row["class"] = names[int(row["class"])]
        parts.append(_table(["class", "precision", "recall", "f1", "support"],
                            [[r[k] for k in ("class", "precision", "recall", "f1", "support")] for r in rows]))
    for title, filename in (("Model", "model_summary.txt"), ("Config", "config.yaml")):
        path = os.path.join(run_dir, filename)
        if os.path.exists(path):
            with open(path) as f:
                parts.append(f"<h2>{title}</h2><pre>{escape(f.read())}</pre>")
    facts = [["kerascli / numpy / numba / Python", " / ".join(str(v) for v in (summary.get("versions") or {}).values())],
             ["backend", json.dumps(summary.get("backend"))],
             ["wall time", f"{summary.get('wall_seconds', 0):.1f} s"],
             ["training time", f"{summary.get('train_seconds', 0):.1f} s"],
             ["training samples per second", f"{summary.get('train_samples_per_second', 0):,.0f}"],
             ["time to the first batch", f"{summary.get('time_to_first_batch_seconds') or 0:.2f} s"],
             ["parameters", json.dumps(summary.get("params"))],
             ["best epoch", f"{summary.get('best_epoch')} ({summary.get('monitor')} {summary.get('best_value')})"],
             ["command", " ".join(summary.get("command") or [])]]
    if summary.get("distributed"):
        facts.append(["data-parallel", json.dumps(summary["distributed"])])
    for path, info in (summary.get("data_files") or {}).items():
        facts.append([f"data: {path}", f"{info.get('bytes', '')} bytes, sha256 {info.get('sha256', '')}"])
    parts.append("<h2>Run</h2>" + _table(["", ""], facts))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(run_dir: str, summary: dict, confusion) -> str:
    path = os.path.join(run_dir, "report.html")
    atomic_write_text(path, report_html(run_dir, summary, confusion))
    return path
