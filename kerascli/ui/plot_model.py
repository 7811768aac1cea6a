"""The model as a picture (Keras' ``plot_model``): Graphviz DOT text, an SVG drawn here, or a PNG through
Graphviz's ``dot`` where it is installed.

The SVG is a layered drawing of the graph, no external program needed: each layer sits one rank below the
furthest of its inputs, layers within a rank are ordered to put them near what they connect to (barycentre
sweeps), and a connection that skips ranks runs through a bend point in each rank it crosses, so branches,
skips and merges stay visible without crossing boxes.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from kerascli.errors import ConfigError

FONT = 12  # px
CHAR = 7.0  # px per character, for box widths (monospace)
LINE = 16  # px per text line
PAD = 8  # px inside a box
GAP = 30  # px between boxes of a rank
RANK_GAP = 40  # px between ranks


@dataclass
class Box:
    name: str
    lines: list[str]
    inputs: list[str] = field(default_factory=list)
    dummy: bool = False  # a bend point of a connection that skips ranks
    rank: int = 0
    order: float = 0.0
    x: float = 0.0  # centre
    y: float = 0.0  # centre
    width: float = 0.0
    height: float = 0.0


def _shape(shape) -> str:
    return str((None,) + tuple(shape)).replace(",)", ")")


def describe(model, show_shapes: bool, show_dtype: bool, show_activations: bool, dtype: str,
             show_trainable: bool = False) -> list[Box]:
    """A box per model input and layer, with the lines Keras' plot_model shows for the options."""
    from kerascli.graph.names import producer
    from kerascli.ops.contract import ACTIVATION_TABLE, LINEAR

    names = {a.code: a.name for a in ACTIVATION_TABLE}
    boxes = []
    for name, shape in model.input_shapes.items():
        lines = [f"{name} (InputLayer)"]
        if show_dtype:
            lines.append(f"dtype: {dtype}")
        if show_shapes:
            lines.append(f"output: {_shape(shape)}")
        boxes.append(Box(name, lines))
    for node in model.nodes:
        layer = node.layer
        lines = [f"{layer.name} ({layer.type_name})"]
        act = getattr(layer, "activation", None)
        if show_activations and isinstance(act, int) and act != LINEAR and act in names:
            lines.append(f"activation: {names[act]}")
        if show_trainable:
            lines.append(f"trainable: {'yes' if layer.trainable else 'no'}")
        if show_dtype:
            lines.append(f"dtype: {dtype}")
        if show_shapes:
            given = layer.input_shape if layer.n_inputs == 0 else [layer.input_shape, *layer.extra_input_shapes]
            lines.append(f"input: {', '.join(_shape(s) for s in given)}")
            lines.append(f"output: {', '.join(_shape(s) for s in [layer.output_shape, *layer.extra_output_shapes])}")
        # an arrow from the layer a state output (lstm[1]) comes from, once
        boxes.append(Box(layer.name, lines, list(dict.fromkeys(producer(s) for s in node.inputs))))
    return boxes


# ----------------------------------------------------------------- DOT
def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(boxes: list[Box], title: str, rankdir: str = "TB") -> str:
    out = [f"digraph {_dot_quote(title)} {{", f"  rankdir={rankdir};",
           '  node [shape=box, style="rounded", fontname="monospace", fontsize=11];']
    for box in boxes:
        label = "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in box.lines)
        out.append(f'  {_dot_quote(box.name)} [label="{label}"];')
    for box in boxes:
        for src in box.inputs:
            out.append(f"  {_dot_quote(src)} -> {_dot_quote(box.name)};")
    out.append("}")
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------- layout
def layout(boxes: list[Box], rankdir: str = "TB", sweeps: int = 8) -> tuple[list[Box], list[list[str]]]:
    """Place the boxes; returns every box (bend points added) and each connection as the names it passes
    through, source first."""
    by_name = {b.name: b for b in boxes}
    for box in boxes:  # model.nodes are in topological order, after the inputs
        box.rank = 1 + max((by_name[s].rank for s in box.inputs), default=-1)
    placed = list(boxes)
    paths = []
    for box in boxes:
        for src in box.inputs:
            path, prev = [src], by_name[src]
            for r in range(prev.rank + 1, box.rank):
                dummy = Box(f"{src}->{box.name}#{r}", [], [prev.name], dummy=True, rank=r)
                placed.append(dummy)
                by_name[dummy.name] = dummy
                path.append(dummy.name)
                prev = dummy
            path.append(box.name)
            paths.append(path)
    ranks: dict[int, list[Box]] = {}
    for i, box in enumerate(placed):
        box.order = i
        ranks.setdefault(box.rank, []).append(box)
    down: dict[str, list[str]] = {}
    up: dict[str, list[str]] = {}
    for path in paths:
        for a, b in zip(path, path[1:]):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)

    def reorder(rank_ids, neighbours):
        for r in rank_ids:
            row = ranks[r]
            for box in row:
                near = [by_name[n].order for n in neighbours.get(box.name, [])]
                box.order = sum(near) / len(near) if near else box.order
            row.sort(key=lambda b: b.order)
            for i, box in enumerate(row):
                box.order = i

    for row in ranks.values():
        for i, box in enumerate(row):
            box.order = i
    for sweep in range(sweeps):  # barycentres from the rank above, then from the rank below
        reorder(sorted(ranks)[1:], up) if sweep % 2 == 0 else reorder(sorted(ranks)[-2::-1], down)

    horizontal = rankdir == "LR"
    for box in placed:
        if box.dummy:
            box.width = box.height = 0.0
        else:
            text_w = max(len(line) for line in box.lines) * CHAR + 2 * PAD
            text_h = len(box.lines) * LINE + 2 * PAD
            box.width, box.height = text_w, text_h
    # across a rank: boxes side by side (TB) or stacked (LR), centred; along the ranks: one after another
    along = 0.0
    for r in sorted(ranks):
        row = ranks[r]
        depth = max((b.height if not horizontal else b.width) for b in row) or 0.0
        sizes = [(b.width if not horizontal else b.height) for b in row]
        span = sum(sizes) + GAP * (len(row) - 1)
        at = -span / 2
        for box, size in zip(row, sizes):
            across = at + size / 2
            at += size + GAP
            if horizontal:
                box.x, box.y = along + depth / 2, across
            else:
                box.x, box.y = across, along + depth / 2
        along += depth + RANK_GAP
    return placed, paths


# ----------------------------------------------------------------- SVG
def to_svg(boxes: list[Box], title: str, rankdir: str = "TB") -> str:
    placed, paths = layout(boxes, rankdir)
    by_name = {b.name: b for b in placed}
    margin = 20.0
    left = min(b.x - b.width / 2 for b in placed) - margin
    top = min(b.y - b.height / 2 for b in placed) - margin
    right = max(b.x + b.width / 2 for b in placed) + margin
    bottom = max(b.y + b.height / 2 for b in placed) + margin
    width, height = right - left, bottom - top
    horizontal = rankdir == "LR"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="{left:.1f} {top:.1f} {width:.1f} {height:.1f}" font-family="monospace" font-size="{FONT}">',
           f"<title>{escape(title)}</title>",
           '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
           'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>']

    def port(box: Box, toward: Box, leaving: bool) -> tuple[float, float]:
        """Where a connection leaves or enters ``box``: on the side facing the next rank, as close to
        ``toward`` (the other end of the segment) as the side allows, so segments stay short and clear."""
        if horizontal:
            half = box.height / 2 - PAD
            return (box.x + (box.width / 2 if leaving else -box.width / 2),
                    min(max(toward.y, box.y - half), box.y + half))
        half = box.width / 2 - PAD
        return (min(max(toward.x, box.x - half), box.x + half),
                box.y + (box.height / 2 if leaving else -box.height / 2))

    for path in paths:
        boxes_on = [by_name[n] for n in path]
        points = [port(boxes_on[0], boxes_on[1], True)] + [(b.x, b.y) for b in boxes_on[1:-1]] + \
                 [port(boxes_on[-1], boxes_on[-2], False)]
        text = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        out.append(f'<polyline class="edge" data-from="{escape(path[0])}" data-to="{escape(path[-1])}" '
                   f'points="{text}" fill="none" stroke="#555" stroke-width="1.2" marker-end="url(#arrow)"/>')
    for box in placed:
        if box.dummy:
            continue
        x0, y0 = box.x - box.width / 2, box.y - box.height / 2
        out.append(f'<g class="node" data-name="{escape(box.name)}">')
        out.append(f'<rect x="{x0:.1f}" y="{y0:.1f}" width="{box.width:.1f}" height="{box.height:.1f}" rx="6" '
                   'fill="#f4f6fb" stroke="#3b4a6b"/>')
        for i, line in enumerate(box.lines):
            weight = ' font-weight="bold"' if i == 0 else ""
            out.append(f'<text x="{box.x:.1f}" y="{y0 + PAD + (i + 0.75) * LINE:.1f}" text-anchor="middle"'
                       f"{weight}>{escape(line)}</text>")
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_png(dot_text: str) -> bytes:
    """PNG bytes from Graphviz's dot."""
    program = shutil.which("dot")
    if program is None:
        raise ConfigError("a PNG needs Graphviz's dot program, which is not installed (apt install graphviz, brew "
                          "install graphviz, conda install graphviz); -o FILE.svg or FILE.dot need nothing")
    done = subprocess.run([program, "-Tpng"], input=dot_text.encode(), capture_output=True, timeout=120)
    if done.returncode or not done.stdout.startswith(b"\x89PNG"):
        raise ConfigError(f"Graphviz's dot failed (exit {done.returncode}): "
                          f"{done.stderr.decode(errors='replace').strip()[:300]}")
    return done.stdout
