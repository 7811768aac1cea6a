"""The commands that do not train, evaluate or predict (kerascli.commands has those): summary,
plot-model, plot, export, import, init, config and the dataset cache."""

from __future__ import annotations

import json
import os
import shlex

import numpy as np
from rich.console import Console

from kerascli.commands import _dump_yaml, _warn, checkpoint_path, load_spec
from kerascli.config import apply_overrides, load_config_file, resolve_config
from kerascli.config.loader import LoadedConfig
from kerascli.errors import CheckpointError, ConfigError
from kerascli.runs.atomic import atomic_write, atomic_write_text
from kerascli.runs.checkpoint import load_checkpoint
from kerascli.ui.summary import summary_table, totals_text


def config_of(target: str) -> str:
    """A config file, or the config.yaml of a run directory."""
    if os.path.isdir(target):
        path = os.path.join(target, "config.yaml")
        if not os.path.isfile(path):
            raise ConfigError(f"{target} is not a run directory (no config.yaml)")
        return path
    return target


def summary(config_path: str, overrides: list[str], console: Console) -> None:
    from kerascli.graph.builder import build_model

    spec = load_spec(config_of(config_path), overrides)
    model = build_model(spec.model, spec.source)
    console.print(summary_table(model, spec.name))
    console.print(totals_text(model), highlight=False)


def plot_model(target: str, overrides: list[str], output: str, options: dict, rankdir: str,
               console: Console) -> None:
    """The model as DOT, SVG or PNG (by ``output``'s extension); ``options``: show_shapes, show_dtype,
    show_activations, show_trainable."""
    from kerascli.graph.builder import build_model
    from kerascli.ui import plot_model as plot

    ext = os.path.splitext(output)[1].lower()
    if ext not in (".svg", ".png", ".dot"):
        raise ConfigError(f"-o must end in .svg, .png or .dot, got {output}")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise ConfigError(f"output folder does not exist: {folder}")
    spec = load_spec(config_of(target), overrides)
    model = build_model(spec.model, spec.source)
    boxes = plot.describe(model, dtype=spec.train["dtype"], **options)
    if ext == ".svg":
        atomic_write_text(output, plot.to_svg(boxes, spec.name, rankdir))
    elif ext == ".dot":
        atomic_write_text(output, plot.to_dot(boxes, spec.name, rankdir))
    else:
        png = plot.to_png(plot.to_dot(boxes, spec.name, rankdir))
        atomic_write(output, lambda f: f.write(png))
    console.print(f"wrote {output}", highlight=False)


def plot_runs(run_dirs: list[str], output: str, metrics: list[str] | None, console: Console) -> None:
    """Loss and metric curves of the runs, overlaid (train solid, val dashed): SVG drawn here, or PNG
    through matplotlib."""
    from kerascli.ui import charts

    ext = os.path.splitext(output)[1].lower()
    if ext not in (".svg", ".png"):
        raise ConfigError(f"-o must end in .svg or .png, got {output}")
    if ext == ".png" and not charts.have_matplotlib():
        raise ConfigError("a PNG needs matplotlib: pip install 'kerascli[plots]' (or -o FILE.svg, drawn without it)")
    runs = {}
    for run in run_dirs:
        if not os.path.isfile(os.path.join(run, "metrics.csv")):
            raise ConfigError(f"{run} is not a run directory with metrics (no metrics.csv)")
        name = os.path.basename(os.path.normpath(run))
        runs[name if name not in runs else run] = charts.read_history(run)
    known = set().union(*(charts.panels(h) for h in runs.values()))
    for metric in metrics or []:
        if metric not in known:
            raise ConfigError(f"--metrics: no {metric!r} in these runs (they have {', '.join(sorted(known))})")
    if ext == ".png":
        charts.curves_png(output, runs, metrics)
    else:
        panels = charts.curves_svg(runs, metrics)
        atomic_write_text(output, charts.side_by_side(panels))
    console.print(f"wrote {output}", highlight=False)


def export_model(target: str, fmt: str, output: str, which: str, console: Console) -> None:
    """A run's (or checkpoint's) model for Keras (a .keras archive, or what model.to_json() writes) or ONNX."""
    from kerascli import exchange
    from kerascli.graph.builder import build_model

    exchange.export_path_check(output, fmt)
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise ConfigError(f"output folder does not exist: {folder}")
    path = checkpoint_path(target, which)
    ckpt = load_checkpoint(path)
    if ckpt.config is None:
        raise CheckpointError(f"{path} has no stored config (_config)")
    spec = resolve_config(LoadedConfig(data=ckpt.config, source=f"{path} (stored config)"))
    model = build_model(spec.model, spec.source)
    if fmt == "keras-json":
        atomic_write_text(output, json.dumps(exchange.keras_config(spec, model)) + "\n")
    elif fmt == "onnx":
        from kerascli.onnx_export import onnx_model

        data = onnx_model(spec, model, ckpt.weights())
        atomic_write(output, lambda f: f.write(data))
    else:
        data = exchange.keras_archive(spec, model, ckpt.weights())
        atomic_write(output, lambda f: f.write(data))
    if any(k.startswith(("_preprocessing/", "_encoding")) for k in ckpt.arrays):
        _warn("the run transforms its inputs before the model (data.normalize, feature-wise statistics, a table's "
              "encoding): the exported model expects inputs so transformed")
    console.print(f"wrote {output} ({spec.name}, {which} checkpoint, epoch {ckpt.epoch})", highlight=False)


def import_model(path: str, weights_path: str | None, output: str, overrides: list[str], console: Console) -> None:
    """A Keras model as a kerascli config (with the weights, when the file has them, in an npz beside it)."""

    from kerascli import exchange
    from kerascli.graph.builder import build_model

    if os.path.splitext(output)[1].lower() not in (".yaml", ".yml"):
        raise ConfigError(f"-o must end in .yaml, got {output}")
    from kerascli.config.schema import resolve_model_section

    keras, weights = exchange.read_keras(path, weights_path)
    config = exchange.kerascli_config(keras, path)
    loaded = apply_overrides(LoadedConfig(data=config, source=output), list(overrides))
    config = loaded.data
    model = build_model(resolve_model_section(loaded), output)  # every layer and shape checked
    arrays = exchange.weights_npz(model, weights) if weights is not None else None
    arrays = arrays or None  # a model without weights needs no file of them
    npz = os.path.splitext(output)[0] + ".weights.npz"
    if arrays is not None:
        config["model"]["weights"] = npz
    complete = all(k in config for k in ("data", "compile"))
    text = (f"# imported from {os.path.basename(path)}" + ("" if complete else "; add data: and compile: sections "
            "(see the README) to train or evaluate it") + "\n" + _dump_yaml(config))
    if arrays is not None:
        atomic_write(npz, lambda f: np.savez(f, **arrays))
    atomic_write_text(output, text)
    console.print(f"wrote {output}" + (f" and {npz}" if arrays is not None else ""), highlight=False)


TEMPLATES = ("mlp", "cnn", "rnn", "functional", "regression")


def init_config(template: str, output: str, force: bool, console: Console) -> None:
    """A commented starter config that trains as is (on data that ships with kerascli or is generated)."""
    from importlib import resources

    if os.path.exists(output) and not force:
        raise ConfigError(f"{output} exists; choose another name, or --force to replace it")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        raise ConfigError(f"output folder does not exist: {folder}")
    text = resources.files("kerascli.templates").joinpath(f"{template}.yaml").read_text()
    atomic_write_text(output, text)
    console.print(f"wrote {output} ({template}); train it with: kerascli train {shlex.quote(output)}", highlight=False)


def show_config(target: str, overrides: list[str], as_json: bool, console: Console) -> None:
    """The fully resolved config, each value with where it came from."""
    from kerascli.config.explain import explain, explain_json

    loaded = apply_overrides(load_config_file(config_of(target)), list(overrides))
    resolved = resolve_config(loaded).to_dict()
    text = explain_json(resolved, loaded) if as_json else explain(resolved, loaded)
    console.file.write(text)


def datasets_list(console: Console, as_json: bool) -> None:
    """The datasets that download: name, size, whether cached, where from."""
    import urllib.parse

    from rich.table import Table

    from kerascli.data.catalog import catalog
    from kerascli.data.download import URL_ENV, base_url, cache_dir

    rows = catalog()
    if as_json:
        console.print_json(json.dumps({"cache": cache_dir(), "url": base_url(), "datasets": rows}))
        return
    table = Table("dataset", "size", "cached", "from", box=None)
    for row in rows:
        table.add_row(row["name"], f"{row['bytes'] / 1e6:,.1f} MB", row["cached"],
                      urllib.parse.urlsplit(row["urls"][0]).netloc)
    console.print(table)
    mirror = os.environ.get(URL_ENV)
    console.print(f"cache: {os.path.join(cache_dir(), 'datasets')}  (KERASCLI_CACHE_DIR)\n"
                  + (f"from:  {mirror}  ({URL_ENV})" if mirror else f"({URL_ENV} names a mirror for them all)"),
                  highlight=False, markup=False)


def datasets_download(names: list[str], console: Console) -> None:
    """Fetch the files of each named dataset into the cache (a valid cached file is kept as it is)."""
    from kerascli.data.catalog import download

    for name, path in download(names):
        console.print(f"{name}: {path}", highlight=False)
