"""Training pictures: loss and metric curves per epoch and the confusion matrix, as SVG drawn here (for
report.html and ``kerascli plot -o FILE.svg``) or as PNG through matplotlib (``kerascli[plots]``:
curves.png and confusion_matrix.png in a run directory, ``kerascli plot -o FILE.png``)."""

from __future__ import annotations

import csv
import math
import os
from xml.sax.saxutils import escape

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf"]


def read_history(run_dir: str) -> list[dict]:
    """metrics.csv as rows of floats (an empty cell: NaN)."""
    path = os.path.join(run_dir, "metrics.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()} for row in rows]


def panels(history: list[dict]) -> list[str]:
    """What to draw, one panel each: loss, then every metric (their val_ twins share its panel), then lr."""
    names = [k for k in (history[0] if history else {}) if k not in ("epoch", "seconds", "lr")
             and not k.startswith("val_")]
    return names + (["lr"] if history and "lr" in history[0] else [])


def series_of(runs: dict[str, list[dict]], metric: str) -> list[tuple[str, list[float], list[float], bool, int]]:
    """(label, epochs, values, validation?, run number) for ``metric`` and its val_ twin in each run."""
    out = []
    for number, (name, history) in enumerate(runs.items()):
        for key, val in ((metric, False), (f"val_{metric}", True)):
            points = [(row["epoch"], row[key]) for row in history if key in row and math.isfinite(row[key])]
            if points:
                label = ("val " if val else "train ") + (metric if len(runs) == 1 else name)
                if metric == "lr":
                    label = "learning rate" if len(runs) == 1 else f"lr {name}"
                out.append((label, [p[0] for p in points], [p[1] for p in points], val, number))
    return out


# ----------------------------------------------------------------- SVG
def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if not math.isfinite(low) or not math.isfinite(high):
        return []
    if high <= low:
        return [low]
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def line_chart_svg(title: str, series: list[tuple[str, list[float], list[float], bool, int]], width: int = 420,
                   height: int = 260, log_y: bool = False) -> str:
    """A chart of the series (dashed where validation), with axes, ticks and a legend."""
    left, right, top, bottom = 56, 12, 28, 64
    w, h = width - left - right, height - top - bottom
    xs = [x for _, ex, _, _, _ in series for x in ex]
    ys = [y for _, _, vy, _, _ in series for y in vy if (y > 0 or not log_y)]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" class="chart">',
           f'<text x="{width / 2:.0f}" y="16" text-anchor="middle" font-size="13" font-weight="bold">'
           f"{escape(title)}</text>"]
    if not xs or not ys:
        out.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle">no values</text></svg>')
        return "\n".join(out)
    fy = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(fy(y) for y in ys), max(fy(y) for y in ys)
    if x1 == x0:
        x0, x1 = x0 - 0.5, x1 + 0.5
    if y1 == y0:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def px(x):
        return left + (x - x0) / (x1 - x0) * w

    def py(y):
        return top + (1 - (fy(y) - y0) / (y1 - y0)) * h

    out.append(f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fff" stroke="#999"/>')
    for t in _ticks(y0, y1):
        y = top + (1 - (t - y0) / (y1 - y0)) * h
        label = _fmt(10 ** t) if log_y else _fmt(t)
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{label}</text>')
    for t in _ticks(x0, x1):
        if abs(t - round(t)) > 1e-9:
            continue
        x = px(t)
        out.append(f'<text x="{x:.1f}" y="{top + h + 14}" text-anchor="middle">{int(round(t))}</text>')
    out.append(f'<text x="{left + w / 2:.0f}" y="{top + h + 28}" text-anchor="middle">epoch</text>')
    for i, (label, ex, vy, val, number) in enumerate(series):
        color = COLORS[number % len(COLORS)]  # a run's colour; validation dashed
        points = [(px(x), py(y)) for x, y in zip(ex, vy) if y > 0 or not log_y]
        dash = ' stroke-dasharray="5,3"' if val else ""
        text = " ".join(f"{a:.1f},{b:.1f}" for a, b in points)
        out.append(f'<polyline class="series" data-label="{escape(label)}" points="{text}" fill="none" '
                   f'stroke="{color}" stroke-width="1.6"{dash}/>')
        if len(points) == 1:
            out.append(f'<circle cx="{points[0][0]:.1f}" cy="{points[0][1]:.1f}" r="2.5" fill="{color}"/>')
        lx, ly = left + (i % 3) * (w / 3), top + h + 42 + (i // 3) * 13
        out.append(f'<line x1="{lx:.0f}" x2="{lx + 16:.0f}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}" '
                   f'stroke-width="2"{dash}/><text x="{lx + 20:.0f}" y="{ly}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def curves_svg(runs: dict[str, list[dict]], metrics: list[str] | None = None) -> list[str]:
    """One chart per panel (loss, metrics, learning rate on its own, log scale), each run's train and val."""
    first = next(iter(runs.values()))
    charts = []
    for metric in metrics or panels(first):
        series = series_of(runs, metric)
        charts.append(line_chart_svg("learning rate" if metric == "lr" else metric, series,
                                     log_y=metric == "lr" and all(v > 0 for s in series for v in s[2])))
    return charts


def side_by_side(svgs: list[str], per_row: int = 3) -> str:
    """One SVG document holding the charts in rows of ``per_row``."""
    import re

    sizes = [tuple(int(v) for v in re.search(r'width="(\d+)" height="(\d+)"', svg).groups()) for svg in svgs]
    cell_w, cell_h = max(w for w, _ in sizes), max(h for _, h in sizes)
    cols = min(per_row, len(svgs))
    rows = math.ceil(len(svgs) / cols)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{cols * cell_w}" height="{rows * cell_h}">']
    for i, svg in enumerate(svgs):
        x, y = (i % cols) * cell_w, (i // cols) * cell_h
        out.append(svg.replace("<svg ", f'<svg x="{x}" y="{y}" ', 1))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def confusion_svg(matrix, names: list[str], title: str = "confusion matrix") -> str:
    """The matrix as a heat map (rows: true class, columns: predicted), counts written in the cells."""
    n = len(names)
    cell = max(18, min(44, 360 // max(n, 1)))
    label_w = min(120, 8 + 7 * max(len(s) for s in names))
    width, height = label_w + n * cell + 20, label_w + n * cell + 44
    peak = max(1, int(max(max(row) for row in matrix)))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10" class="chart">',
           f'<text x="{width / 2:.0f}" y="14" text-anchor="middle" font-size="13" font-weight="bold">'
           f"{escape(title)}</text>"]
    top = label_w + 24
    for j, name in enumerate(names):  # predicted, along the top; true, down the side
        x = label_w + j * cell + cell / 2
        out.append(f'<text transform="translate({x:.1f},{top - 4}) rotate(-60)">{escape(name)}</text>')
        out.append(f'<text x="{label_w - 4}" y="{top + j * cell + cell / 2 + 4:.1f}" text-anchor="end">'
                   f"{escape(name)}</text>")
    for i in range(n):
        for j in range(n):
            v = int(matrix[i][j])
            shade = 1 - v / peak
            r, g, b = int(255 * (0.12 + 0.88 * shade)), int(255 * (0.35 + 0.65 * shade)), int(255 * (0.6 + 0.4 * shade))
            x, y = label_w + j * cell, top + i * cell
            ink = "#fff" if shade < 0.5 else "#000"
            out.append(f'<rect class="cell" x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({r},{g},{b})" '
                       f'stroke="#fff"/><text x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="middle" '
                       f'fill="{ink}">{v}</text>')
    out.append(f'<text x="{label_w + n * cell / 2:.0f}" y="{height - 6}" text-anchor="middle">rows: true class, '
               "columns: predicted</text></svg>")
    return "\n".join(out)


# ----------------------------------------------------------------- PNG through matplotlib
def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def curves_png(path: str, runs: dict[str, list[dict]], metrics: list[str] | None = None) -> None:
    from kerascli.runs.atomic import atomic_write

    plt = _pyplot()
    first = next(iter(runs.values()))
    names = metrics or panels(first)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.4 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, names):
        series = series_of(runs, metric)
        for label, ex, vy, val, number in series:
            ax.plot(ex, vy, linestyle="--" if val else "-", color=COLORS[number % len(COLORS)], label=label,
                    marker="." if len(ex) < 30 else None)
        if metric == "lr" and all(v > 0 for s in series for v in s[2]):
            ax.set_yscale("log")
        ax.set_title("learning rate" if metric == "lr" else metric)
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.16 if rows == 1 else 0.08, top=0.9, wspace=0.25,
                        hspace=0.45)  # (tight_layout would cost as much as the drawing)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


def confusion_png(path: str, matrix, names: list[str], title: str) -> None:
    from kerascli.runs.atomic import atomic_write

    plt = _pyplot()
    n = len(names)
    size = min(12, 2.5 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=60, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = max(1, int(max(max(row) for row in matrix)))
    if n <= 30:
        for i in range(n):
            for j in range(n):
                v = int(matrix[i][j])
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > peak / 2 else "black")
    fig.subplots_adjust(left=0.18, right=0.97, bottom=0.18, top=0.92)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
