"""The ``kerascli`` command. Subcommands import their machinery only when run,
so ``kerascli --help`` answers without loading numpy-heavy modules or Numba."""

from __future__ import annotations

import json
import os
import sys

import click

from kerascli import __version__


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)  # a long path in a log stays on one line


def _run(ctx: click.Context, action) -> None:
    """Run ``action``; turn expected errors into one message and an exit code.

    ``--debug`` (before or after the command name, or KERASCLI_DEBUG=1) adds the traceback; the
    message and the exit code stay the same, so a script sees the same result either way.
    """
    debug = (ctx.find_root().params.get("debug") or ctx.params.get("debug")
             or os.environ.get("KERASCLI_DEBUG") == "1")
    try:
        action()
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the one place that decides how errors look
        from kerascli.errors import KerascliError

        known = isinstance(exc, KerascliError)
        code = exc.exit_code if known else 1
        # one of several MPI ranks (kerascli.train.distributed): which rank speaks, and whether the whole job ends
        world = getattr(sys.modules.get("kerascli.train.distributed"), "current", lambda: None)()
        speak, abort, rank = True, False, ""
        if world is not None:
            speak, abort = world.on_error(exc, code)
            rank = f"rank {world.rank}: " if not world.leader else ""
        if debug and speak:
            import traceback

            traceback.print_exc()
        if speak:
            hint = "" if debug else " (run with --debug for a traceback)"
            click.echo(f"error: {rank}{exc}" if known else f"internal error: {rank}{type(exc).__name__}: {exc}{hint}",
                       err=True)
        if abort:
            world.abort(code)
        sys.exit(code)


def _threads_override(threads: int | None, backend: str | None = None) -> list:
    """--threads N (and --backend B) as overrides that messages attribute to the option, not to a --set
    never typed."""
    found = [] if threads is None else [(f"train.threads={threads}", f"--threads {threads}")]
    return found + ([] if backend is None else [(f"train.backend={backend}", f"--backend {backend}")])


set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a config key, value parsed as YAML (repeatable), e.g. train.epochs=5.")
threads_option = click.option("--threads", type=click.IntRange(min=0), default=None,
                              help="Threads for kernels and BLAS (0: every core; default: the config's train.threads).")
which_option = click.option("--checkpoint", "which", type=click.Choice(["best", "last"]), default="best",
                            show_default=True, help="Which checkpoint of a run directory to use.")
debug_option = click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
backend_option = click.option("--backend", type=click.Choice(["cpu", "cuda", "auto", "reference"]), default=None,
                              help="Where kernels run (default: the config's train.backend); cuda needs an "
                                   "NVIDIA GPU and kerascli[cuda].")


class TrainCommand(click.Command):
    """``--resume`` takes an optional value (``auto``); anything else after it is the next argument,
    so ``train --resume cfg.yaml`` means ``train cfg.yaml --resume``."""

    def parse_args(self, ctx, args):
        fixed = []
        for i, arg in enumerate(args):
            follower = args[i + 1] if i + 1 < len(args) else None
            fixed.append("--resume=yes" if arg == "--resume" and follower not in ("auto", "yes") else arg)
        return super().parse_args(ctx, fixed)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kerascli")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """Train Keras-style models from YAML configs."""


@cli.command(cls=TrainCommand)
@click.argument("config", type=click.Path())
@set_option
@click.option("--name", default=None, help="Run name (default: the config's name, else the file name).")
@click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
              help="Folder that holds run directories.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the final results.")
@threads_option
@backend_option
@click.option("--resume", type=click.Choice(["yes", "auto"]), is_flag=False, flag_value="yes", default=None,
              help="Continue RUNS_DIR/NAME from its newest good checkpoint; '--resume auto' starts fresh when "
                   "there is nothing to resume (for requeued jobs).")
@debug_option
@click.pass_context
def train(ctx, config, overrides, name, runs_dir, quiet, threads, backend, resume, debug):
    """Train the model described by CONFIG; results go to RUNS_DIR/NAME/."""

    def action():
        from kerascli import commands

        if not quiet:
            _download_bars()
        commands.train(config, list(overrides) + _threads_override(threads, backend), name, runs_dir, quiet, _console(),
                       resume=resume)

    _run(ctx, action)


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path())
@set_option
@click.option("--quiet", "-q", is_flag=True, help="Print only the final results.")
@threads_option
@backend_option
@debug_option
@click.pass_context
def resume(ctx, run_dir, overrides, quiet, threads, backend, debug):
    """Continue the run in directory RUN from its newest good checkpoint (train longer with
    --set train.epochs=N)."""

    def action():
        from kerascli import commands

        if not quiet:
            _download_bars()
        commands.resume_run(run_dir, list(overrides) + _threads_override(threads, backend), quiet, _console())

    _run(ctx, action)


@cli.command()
@click.argument("target", metavar="RUN_OR_CHECKPOINT", type=click.Path())
@click.option("--split", type=click.Choice(["test", "val", "train"]), default="test", show_default=True)
@which_option
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--force", is_flag=True, help="Evaluate even if a data file changed since training (with a warning).")
@click.option("--data", "data_path", default=None, type=click.Path(),
              help="Evaluate on every sample of this file instead of a split: .npz, .npy (with --labels), .csv/.tsv.")
@click.option("--key", default=None, help="With --data FILE.npz: the features array (default x).")
@click.option("--labels-key", default=None, help="With --data FILE.npz: the labels array (default y).")
@click.option("--labels", "labels_path", default=None, type=click.Path(), help="With --data FILE.npy: the labels .npy.")
@click.option("--label-column", default="label", show_default=True, help="With --data FILE.csv: the label column.")
@click.option("--delimiter", default=",", show_default=True, help="With --data FILE.csv: the column separator.")
@threads_option
@backend_option
@debug_option
@click.pass_context
def evaluate(ctx, target, split, which, as_json, force, data_path, key, labels_key, labels_path, label_column,
             delimiter, threads, backend, debug):
    """Compute loss and metrics of a trained model on a split of its data, or on a file (--data)."""

    def action():
        from kerascli import commands

        data = None if data_path is None else {
            "path": data_path, "x_key": key, "y_key": labels_key, "labels": labels_path,
            "label_column": label_column, "delimiter": delimiter}
        _download_bars()
        commands.evaluate(target, split, which, as_json, threads, _console(), force=force, backend=backend,
                          data=data)

    _run(ctx, action)


@cli.command()
@click.argument("target", metavar="RUN_OR_CHECKPOINT", type=click.Path())
@click.argument("input_path", metavar="INPUT", type=click.Path())
@click.option("-o", "--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help="Where to write predictions: .npy or .csv.")
@which_option
@click.option("--classes", "classes_only", is_flag=True, help="Write class ids only (default: probabilities; "
              "CSV output has a class column and one column per class).")
@click.option("--key", default=None, help="Array to read from an .npz input (default: x, or its only array).")
@click.option("--delimiter", default=",", show_default=True, help="Column separator of a .csv input.")
@click.option("--batch-size", default=1024, show_default=True, type=click.IntRange(min=1))
@threads_option
@backend_option
@debug_option
@click.pass_context
def predict(ctx, target, input_path, output_path, which, classes_only, key, delimiter, batch_size, threads, backend,
            debug):
    """Predict INPUT (.npy, .npz or .csv, one row per sample) with a trained model."""

    def action():
        from kerascli import commands

        commands.predict(target, input_path, output_path, which, classes_only, key, batch_size, threads,
                         _console(), delimiter=delimiter, backend=backend)

    _run(ctx, action)


@cli.command("init")
@click.argument("template", type=click.Choice(["mlp", "cnn", "rnn", "functional", "regression"]), default="mlp")
@click.option("-o", "--output", default="config.yaml", show_default=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@debug_option
@click.pass_context
def init(ctx, template, output, force, debug):
    """Write a commented starter config that trains as is: mlp, cnn, rnn, functional or regression."""

    def action():
        from kerascli import tool_commands

        tool_commands.init_config(template, output, force, _console())

    _run(ctx, action)


@cli.command("config")
@click.argument("target", metavar="CONFIG_OR_RUN", type=click.Path())
@set_option
@click.option("--json", "as_json", is_flag=True, help="Every value as {key, value, from}.")
@debug_option
@click.pass_context
def config_(ctx, target, overrides, as_json, debug):
    """Print the fully resolved config, each value with where it came from (file:line, --set, or default)."""

    def action():
        from kerascli import tool_commands

        tool_commands.show_config(target, list(overrides), as_json, _console())

    _run(ctx, action)


@cli.command("export")
@click.argument("target", metavar="RUN_OR_CHECKPOINT", type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["keras", "keras-json", "onnx"]), default="keras",
              show_default=True, help="keras: a .keras archive keras.saving.load_model opens; keras-json: what "
                                      "model.to_json() writes; onnx: an ONNX model (opset 17, any batch size).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="model.keras, model.json or model.onnx.")
@which_option
@debug_option
@click.pass_context
def export(ctx, target, fmt, output, which, debug):
    """Write a trained model for Keras (.keras needs h5py: kerascli[keras]) or ONNX (kerascli[onnx])."""

    def action():
        from kerascli import tool_commands

        tool_commands.export_model(target, fmt, output, which, _console())

    _run(ctx, action)


@cli.command("import")
@click.argument("path", metavar="MODEL.keras|MODEL.json", type=click.Path())
@click.option("--weights", "weights_path", default=None, type=click.Path(),
              help="Keras weights (.weights.h5) for a model given as JSON.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The kerascli config to write (its weights go beside it, NAME.weights.npz).")
@set_option
@debug_option
@click.pass_context
def import_(ctx, path, weights_path, output, overrides, debug):
    """Turn a Keras model (Sequential or functional) into a kerascli config and weights."""

    def action():
        from kerascli import tool_commands

        tool_commands.import_model(path, weights_path, output, list(overrides), _console())

    _run(ctx, action)


@cli.command("plot")
@click.argument("run_dirs", metavar="RUN...", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="curves.svg (drawn here) or curves.png (needs kerascli[plots]: matplotlib).")
@click.option("--metrics", default=None, help="Comma-separated: which panels (default: loss, every metric, lr).")
@debug_option
@click.pass_context
def plot(ctx, run_dirs, output, metrics, debug):
    """Loss and metric curves of one run or several overlaid (train solid, validation dashed)."""

    def action():
        from kerascli import tool_commands

        chosen = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        tool_commands.plot_runs(list(run_dirs), output, chosen, _console())

    _run(ctx, action)


@cli.command("plot-model")
@click.argument("target", metavar="CONFIG_OR_RUN", type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="model.svg (drawn here), model.dot (Graphviz text) or model.png (needs Graphviz's dot).")
@set_option
@click.option("--show-shapes", is_flag=True, help="Each layer's input and output shapes.")
@click.option("--show-dtype", is_flag=True, help="The dtype of each layer.")
@click.option("--show-layer-activations", "show_activations", is_flag=True, help="The activation of layers that have one.")
@click.option("--show-trainable", is_flag=True, help="Whether each layer is trainable.")
@click.option("--rankdir", type=click.Choice(["TB", "LR"]), default="TB", show_default=True,
              help="Top to bottom, or left to right.")
@debug_option
@click.pass_context
def plot_model(ctx, target, output, overrides, show_shapes, show_dtype, show_activations, show_trainable, rankdir,
               debug):
    """Draw the model's graph of layers (Keras' plot_model), from a config or a run directory."""

    def action():
        from kerascli import tool_commands

        options = {"show_shapes": show_shapes, "show_dtype": show_dtype, "show_activations": show_activations,
                   "show_trainable": show_trainable}
        tool_commands.plot_model(target, list(overrides), output, options, rankdir, _console())

    _run(ctx, action)


@cli.command()
@click.argument("config", metavar="CONFIG_OR_RUN", type=click.Path())
@set_option
@debug_option
@click.pass_context
def summary(ctx, config, overrides, debug):
    """Print the model's layers, output shapes and parameter counts (from a config or a run directory)."""

    def action():
        from kerascli import tool_commands

        tool_commands.summary(config, list(overrides), _console())

    _run(ctx, action)


@cli.command()
@click.argument("config", type=click.Path())
@set_option
@debug_option
@click.pass_context
def validate(ctx, config, overrides, debug):
    """Check the config, model shapes and data without training."""

    def action():
        from kerascli import commands

        _download_bars()
        commands.validate(config, list(overrides), _console())

    _run(ctx, action)


def _download_bars() -> None:
    """Downloads (a dataset by name) draw a progress bar when standard error is a terminal."""
    if sys.stderr.isatty():
        from kerascli.data import download
        from kerascli.ui.downloads import DownloadBars

        download.progress = DownloadBars()


@cli.group()
def datasets() -> None:
    """The datasets kerascli downloads (keras.datasets' files): list them, fetch them ahead."""


@datasets.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@debug_option
@click.pass_context
def datasets_list(ctx, as_json, debug):
    """Each dataset's size and whether it is in the cache."""

    def action():
        from kerascli import tool_commands

        tool_commands.datasets_list(_console(), as_json)

    _run(ctx, action)


@datasets.command("download")
@click.argument("names", metavar="NAME...", nargs=-1, required=True)
@debug_option
@click.pass_context
def datasets_download(ctx, names, debug):
    """Fetch datasets into the cache now (for a machine that will be offline)."""

    def action():
        from kerascli import tool_commands

        _download_bars()
        tool_commands.datasets_download(list(names), _console())

    _run(ctx, action)


class SweepGroup(click.Group):
    """``kerascli sweep FILE`` runs the sweep (``run`` is implied); ``kerascli sweep status FILE`` reports."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@cli.group(cls=SweepGroup)
def sweep() -> None:
    """Hyperparameter sweeps: kerascli sweep SWEEP.yaml [--workers N] [--trial K]; kerascli sweep status
    SWEEP.yaml."""


runs_dir_option = click.option("--runs-dir", default="runs", show_default=True, type=click.Path(file_okay=False),
                               help="Folder that holds the sweep's folder (one run directory per trial).")


@sweep.command("run")
@click.argument("sweep_file", metavar="SWEEP", type=click.Path())
@runs_dir_option
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Trials run at once, each in a process of its own (the cores are split among them).")
@click.option("--trial", type=click.IntRange(min=0), default=None,
              help="Run trial K only (a job array task: --trial $SLURM_ARRAY_TASK_ID).")
@debug_option
@click.pass_context
def sweep_run(ctx, sweep_file, runs_dir, workers, trial, debug):
    """Run the sweep's trials that have not finished; rerun to go on after an interruption."""

    def action():
        from kerascli import sweep as sweeps

        sys.exit(sweeps.run_sweep(sweeps.load_sweep(sweep_file), runs_dir, workers, trial, _console()))

    _run(ctx, action)


@sweep.command("status")
@click.argument("sweep_file", metavar="SWEEP", type=click.Path())
@runs_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the trials as JSON.")
@debug_option
@click.pass_context
def sweep_status(ctx, sweep_file, runs_dir, as_json, debug):
    """How many trials finished, run, failed or were stopped early, and the leaderboard."""

    def action():
        from kerascli import sweep as sweeps

        sweeps.status(sweeps.load_sweep(sweep_file), runs_dir, _console(), as_json)

    _run(ctx, action)


@cli.group()
def runs() -> None:
    """The runs under a runs directory: list them, show one, compare them, remove them."""


def _print_runs(rows: list[dict]) -> None:
    from rich.table import Table

    table = Table("run", "started", "status", "epochs", "best", "wall time", box=None)
    for r in rows:
        best = f"{r['monitor']} {r['best']:.4g}" if r["best"] is not None else "-"
        wall = f"{r['wall_seconds']:.0f} s" if r["wall_seconds"] is not None else "-"
        table.add_row(r["name"], r["started"], r["status"], str(r["epochs"]), best, wall)
    _console().print(table)


@runs.command("list")
@click.option("--runs-dir", default="runs", show_default=True, help="Where the runs are.")
@click.option("--json", "as_json", is_flag=True, help="Print the runs as JSON (for scripts).")
@debug_option
@click.pass_context
def runs_list(ctx, runs_dir, as_json, debug):
    """Each run's name, start, status (running, completed, interrupted, failed), epochs, best monitored
    value and wall time."""

    def action():
        from kerascli.runs.manage import list_runs

        rows = list_runs(runs_dir)
        if as_json:
            _console().print_json(json.dumps(rows))
        else:
            _print_runs(rows)

    _run(ctx, action)


@runs.command("show")
@click.argument("run_dir", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@debug_option
@click.pass_context
def runs_show(ctx, run_dir, as_json, debug):
    """One run: its status (with why it stopped), its numbers and its summary."""

    def action():
        from kerascli.runs.manage import show

        info = show(run_dir)
        if as_json:
            _console().print_json(json.dumps(info))
            return
        _print_runs([info])
        if info["message"]:
            click.echo(f"stopped: {info['message']}")
        click.echo(f"config: {info['config']}")
        summary = info["summary"] or {}
        for split, values in (summary.get("evaluation") or {}).items():
            if isinstance(values, dict):
                click.echo(f"{split}: " + ", ".join(f"{k} {v:.4g}" for k, v in values.items()))

    _run(ctx, action)


@runs.command("compare")
@click.argument("run_dirs", metavar="RUN RUN...", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON.")
@debug_option
@click.pass_context
def runs_compare(ctx, run_dirs, as_json, debug):
    """The config keys that differ between runs, and their results side by side."""

    if len(run_dirs) < 2:
        raise click.UsageError("give two runs or more")

    def action():
        from rich.table import Table

        from kerascli.runs.manage import compare

        out = compare(list(run_dirs))
        if as_json:
            _console().print_json(json.dumps(out, default=str))
            return
        table = Table("config", *out["runs"], box=None)
        for key, values in out["config"].items():
            table.add_row(key, *(str(v) for v in values))
        if not out["config"]:
            table.add_row("(the same)", *("" for _ in out["runs"]))
        table.add_section()
        table.add_row("status", *out["status"])
        for name, values in out["results"].items():
            table.add_row(name, *("-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
                                  for v in values))
        _console().print(table)

    _run(ctx, action)


@runs.command("rm")
@click.argument("run_dirs", metavar="RUN...", nargs=-1, required=True)
@click.option("--yes", is_flag=True, help="Remove without asking.")
@debug_option
@click.pass_context
def runs_rm(ctx, run_dirs, yes, debug):
    """Remove run directories (not one that is training now)."""

    def action():
        from kerascli.runs.manage import is_run_dir, remove

        for run_dir in run_dirs:
            if not yes and is_run_dir(run_dir) and not click.confirm(f"remove {run_dir}?", default=False):
                click.echo(f"kept {run_dir}")
                continue
            remove(run_dir)
            click.echo(f"removed {run_dir}")

    _run(ctx, action)


def main() -> None:
    cli(prog_name="kerascli")


if __name__ == "__main__":
    main()
