"""Keras-style model summary: layer (type), output shape, params; totals."""

from __future__ import annotations

import io

from rich import box
from rich.console import Console
from rich.table import Table


def _shape(shape) -> str:
    return str((None,) + tuple(shape)).replace(",)", ")")


def summary_table(model, title: str) -> Table:
    functional = any(len(n.inputs) > 1 for n in model.nodes) or any(
        n.inputs[0] != (model.nodes[i - 1].layer.name if i else next(iter(model.input_shapes)))
        for i, n in enumerate(model.nodes)
    )
    table = Table(title=f'Model: "{title}"', box=box.HEAVY_HEAD, title_justify="left")
    table.add_column("Layer (type)")
    table.add_column("Output Shape")
    table.add_column("Param #", justify="right")
    if functional:
        table.add_column("Connected to")
        for name, shape in model.input_shapes.items():
            table.add_row(f"{name} (InputLayer)", _shape(shape), "0", "-")
    for node in model.nodes:
        layer = node.layer
        params = sum(w.size for w in layer.weight_specs)
        shape = _shape(layer.output_shape)
        if layer.extra_output_shapes:  # as Keras lists a layer's several outputs (return_state)
            shape = "[" + ", ".join(_shape(s) for s in (layer.output_shape, *layer.extra_output_shapes)) + "]"
        row = [f"{layer.name} ({layer.type_name})", shape, f"{params:,}"]
        if functional:
            row.append(", ".join(node.inputs))
        table.add_row(*row)
    return table


def totals_text(model) -> str:
    trainable, fixed = model.count_params()
    return (
        f" Total params: {trainable + fixed:,}\n"
        f" Trainable params: {trainable:,}\n"
        f" Non-trainable params: {fixed:,}"
    )


def summary_text(model, title: str) -> str:
    """The summary as plain text, as written to a run's model_summary.txt."""
    buf = io.StringIO()
    console = Console(file=buf, width=100, color_system=None, force_terminal=False, legacy_windows=False)
    console.print(summary_table(model, title))
    console.print(totals_text(model), highlight=False)
    return buf.getvalue()
