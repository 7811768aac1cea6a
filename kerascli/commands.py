"""What each CLI subcommand does, between parsing (cli.py) and the library.

Every step that can fail on bad input (config, model shapes, weights, data)
runs before a run directory is created, so a failed start leaves nothing
behind; a run directory without summary.json is a run that did not finish.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import sys
import time

import numpy as np
from rich.console import Console

from kerascli import __version__, plugins
from kerascli.callbacks import (
    FirstBatchTimer,
    GracefulStop,
    MetricsWriter,
    ModelCheckpoint,
    TrainingInterrupted,
    UserCallback,
)
from kerascli.config import apply_overrides, load_config_file, resolve_config
from kerascli.config.loader import LoadedConfig
from kerascli.config.schema import RUN_NAME_RE, RUN_NAME_RULE, RunSpec
from kerascli.data.fingerprint import changed_files, fingerprints
from kerascli.data.pipeline import SPLITS, Split, outside_data, prepare_arrays
from kerascli.errors import CheckpointError, ConfigError, DataError, KerascliError
from kerascli.predictions import (
    class_ids,
    class_names_for,
    fit_to_input,
    prediction_csv,
    read_inputs,
    read_named_inputs,
)
from kerascli.registry import CALLBACKS
from kerascli.reports import write_reports
from kerascli.runs.atomic import atomic_write, atomic_write_text
from kerascli.runs.checkpoint import (
    Checkpoint,
    apply_training_state,
    apply_weights,
    load_checkpoint,
)
from kerascli.runs.lock import RunLock
from kerascli.runs.manage import write_status
from kerascli.runs.resume import check_same_run, newest_good_checkpoint
from kerascli.runs.rundir import create_run_dir, write_metrics_csv
from kerascli.train import distributed
from kerascli.train.loop import TrainingDiverged
from kerascli.train.session import (
    Session,
    adapt_layers,
    build_session,
    load_data,
    load_initial_weights,
    per_output,
    use_threads,
)
from kerascli.ui.progress import PlainProgress, TerminalProgress, print_results
from kerascli.ui.report import run_confusion, write_pictures, write_report
from kerascli.ui.summary import summary_text

EVAL_BATCH = 256


def load_spec(config_path: str, overrides: list[str], name: str | None = None) -> RunSpec:
    loaded = apply_overrides(load_config_file(config_path), list(overrides))
    if name is not None:
        if not RUN_NAME_RE.match(name):
            raise ConfigError(f"--name {name!r} {RUN_NAME_RULE}")
        loaded.data["name"] = name
        loaded.overridden[("name",)] = f"--name {name}"
    return resolve_config(loaded)


def _dump_yaml(data: dict) -> str:
    import yaml

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)


# ------------------------------------------------------------------ train
def train(config_path: str, overrides: list, name: str | None, runs_dir: str, quiet: bool,
          console: Console, resume: str | None = None, run_dir: str | None = None) -> str:
    """Train into a new run directory under ``runs_dir``; with ``resume`` ("yes" or "auto") continue
    ``run_dir`` (default runs_dir/<name>) from its newest good checkpoint."""
    started = time.perf_counter()
    world = distributed.world()  # one of several processes under mpiexec / srun, else None
    spec = load_spec(config_path, overrides, name)
    check_callbacks_installed(spec)
    if world is not None:
        check_distributable(spec)
        world.by_parts = distributed.updates_by_parts(spec)
    session = build_session(spec, initial_weights=False, storage=world)
    splits = load_data(session)
    if world is not None:
        world.deterministic = spec.train["deterministic"]
        session.trainer.parallel = distributed.DataParallel(world, session.model, session.trainer.objective,
                                                            spec.seed)
        if not world.leader:  # rank 0 alone has a run directory; the others train with it
            follow(world, spec, session, splits)
            return run_dir or os.path.join(runs_dir, spec.name)
    data_files = fingerprints(spec.data)
    trainer, model = session.trainer, session.model
    config = spec.to_dict()
    if resume and run_dir is None:
        run_dir = os.path.join(runs_dir, spec.name)
    check_free_space(runs_dir, model)

    ckpt = None
    if resume:
        if resume == "auto":
            make_dirs(os.path.join(run_dir, "checkpoints"))  # a requeued job's first start creates it
        elif not os.path.isdir(run_dir):
            raise ConfigError(f"nothing to resume: no run directory at {run_dir} (use --resume auto to start fresh "
                              "then)")
        lock = RunLock(run_dir).acquire()
    else:
        adapt_layers(session, splits)
        load_initial_weights(session)
        run_dir = create_run_dir(runs_dir, spec.name)
        lock = RunLock(run_dir).acquire()
    try:
        if resume:
            ckpt = find_resume_point(run_dir, resume)
            if ckpt is not None:
                recorded = ckpt.state.get("threads")
                if spec.train["deterministic"] and not spec.train["threads"] and recorded:
                    use_threads(session, recorded)  # threads: 0 resumes on the count the run used
                check_same_run(ckpt.config, config, ckpt, trainer.threads)
                check_data_unchanged(ckpt, data_files, "resuming would train on other data; start a new run "
                                                       "(without --resume) to train on the new files")
                plugins.check_unchanged(ckpt.plugins, spec.plugins + spec.entry_point_plugins,
                                        "resuming would mix two versions of its code")
                if not session.standardizer.same_as(ckpt.arrays):
                    raise DataError(f"{ckpt.path}: the training split's preprocessing statistics differ from the "
                                    "run's; resuming would train on other inputs; start a new run")
                check_writable(run_dir)
                if run_is_complete(run_dir, ckpt, spec):
                    if world is not None:
                        world.agree_to_start(distributed.NOTHING_TO_DO)
                    console.print(f"{run_dir} is already complete ({ckpt.epoch}/{spec.train['epochs']} epochs); "
                                  f"nothing to do. To train longer: kerascli resume {shlex.quote(run_dir)} --set "
                                  f"train.epochs={spec.train['epochs'] * 2}", highlight=False, soft_wrap=True)
                    return run_dir
            else:
                adapt_layers(session, splits)
                load_initial_weights(session)
                check_writable(run_dir)
        try:
            return _train_in(run_dir, spec, session, splits, data_files, config, ckpt, quiet, console, started)
        except TrainingInterrupted as exc:  # (how a run stopped, for kerascli runs list)
            write_status(run_dir, "interrupted", str(exc))
            raise
        except BaseException as exc:
            write_status(run_dir, "failed", f"{type(exc).__name__}: {exc}")
            raise
    finally:
        lock.release()


def _train_in(run_dir, spec, session, splits, data_files, config, ckpt, quiet, console, started) -> str:
    trainer, model = session.trainer, session.model
    for note in session.notes:  # only now: a refused start says one thing
        _warn(note)
    atomic_write_text(os.path.join(run_dir, "config.yaml"), _dump_yaml(config))
    atomic_write_text(os.path.join(run_dir, "model_summary.txt"), summary_text(model, spec.name))

    rich = console.is_terminal and not quiet
    c = spec.checkpoint
    checkpoint = ModelCheckpoint(os.path.join(run_dir, "checkpoints"), config, c["monitor"], c["mode"],
                                 c["every_steps"], c["every_seconds"], c["keep"], data=data_files,
                                 plugins=spec.plugin_records(), inputs=session.input_entries())
    metrics = MetricsWriter(os.path.join(run_dir, "metrics.csv"))
    first_batch = FirstBatchTimer()
    stop = GracefulStop(checkpoint)
    # the config's callbacks (EarlyStopping, ReduceLROnPlateau, plugins') see each epoch's end before the
    # checkpoint is written, so what they changed (a learning rate, their counters) is in it
    configured = list(spec.callbacks)
    if spec.train["tensorboard"] and not any(c["type"] == "TensorBoard" for c in configured):
        configured.append({"type": "TensorBoard", "log_dir": "tensorboard", "histogram_freq": 0,
                           "update_freq": "epoch", "write_steps_per_second": False})
    callbacks = [first_batch, metrics] + [
        UserCallback(CALLBACKS.get(c["type"])({k: v for k, v in c.items() if k != "type"}), i, run_dir,
                     checkpoint.save)
        for i, c in enumerate(configured)] + [checkpoint, stop]
    parallel = trainer.parallel
    if parallel is not None:  # then the other ranks take the state all that left
        parallel.world.pending_signal = lambda: stop.received or 0
        callbacks.append(distributed.SyncFromLeader(parallel.world))
    epochs = spec.train["epochs"]
    if not quiet:
        callbacks.append(TerminalProgress(console, epochs, compiling=not model.ops.kernels_on_disk()) if rich
                         else PlainProgress(console, epochs))
    if ckpt is not None:
        restore(trainer, ckpt, callbacks)
        write_metrics_csv(metrics.path, metrics.history)  # drop rows of epochs the checkpoint had not reached
    else:
        trainer.epoch = spec.train["initial_epoch"]  # Keras' initial_epoch: the first epochs count as done
    if not quiet:
        console.print(f"run directory: {run_dir}", highlight=False)
        if ckpt is not None:
            console.print(f"resuming from {ckpt.path}: epoch {trainer.epoch + 1}, step {trainer.step_in_epoch}",
                          highlight=False)
        sizes = ", ".join(f"{k} {v.size_text}" for k, v in splits.items())
        console.print(f"samples: {sizes}", highlight=False)

    stop.install()
    try:
        terminated = fit_with_rollback(spec, trainer, splits, callbacks, checkpoint)
        if parallel is not None:  # the rest (final evaluation, summary) is rank 0's alone
            parallel.world.finished, trainer.parallel = True, None
        if not terminated and trainer.optimizer.finalize(model.param_buffer):
            checkpoint.save(checkpoint.last_path)  # use_ema: the final weights are the average, as Keras
    except TrainingInterrupted as exc:
        hint = f"resume with: kerascli resume {shlex.quote(run_dir)}"  # a command to paste, also for 'my run'
        raise TrainingInterrupted(exc.signum, trainer, exc.path, hint=hint) from None
    except OSError as exc:
        raise KerascliError(
            f"could not write to {run_dir}: {exc.strerror or exc}; training stopped at epoch {trainer.epoch + 1}, "
            f"step {trainer.step_in_epoch}; the checkpoints already written are intact"
        ) from None
    finally:
        stop.uninstall()
        for cb in callbacks:  # a live progress display must give the terminal back, also on errors
            if isinstance(cb, TerminalProgress):
                cb.close()
    history = metrics.history
    train_seconds = sum(row["seconds"] for row in history)

    # final evaluation with the best checkpoint: what evaluate/predict on this run will use
    which = "best" if os.path.exists(checkpoint.best_path) else "last"
    apply_weights(model, load_checkpoint(os.path.join(run_dir, "checkpoints", f"{which}.npz")).weights(), which)
    evaluation = {split: trainer.evaluate(splits[split], EVAL_BATCH) for split in SPLITS if split in splits}
    write_reports(run_dir, trainer, {s: splits[s] for s in SPLITS if s in splits},
                  per_output(spec.compile, model.outputs)[2], EVAL_BATCH, session.class_names)
    trainable, fixed = model.count_params()
    summary = {
        "name": spec.name,
        "run_dir": os.path.abspath(run_dir),
        "status": "completed",
        "terminated": terminated,  # why training ended early (TerminateOnNaN), else null
        "epochs": len(history),
        "resumed_from": ckpt.path if ckpt is not None else None,
        "monitor": checkpoint.monitor,
        "best_epoch": checkpoint.best_epoch,
        "best_value": checkpoint.best,
        "final_epoch": {k: v for k, v in history[-1].items() if k != "epoch"} if history else {},
        "evaluation": {"checkpoint": which, **evaluation},
        "params": {"trainable": trainable, "non_trainable": fixed, "total": trainable + fixed},
        "data_files": data_files,
        "plugins": spec.plugin_records(),
        "preprocessing": session.standardizer.summary(),
        "encoding": session.encoding.as_dict() if session.encoding is not None else None,
        "backend": model.ops.describe(),
        "wall_seconds": time.perf_counter() - started,
        "train_seconds": train_seconds,
        "train_samples_per_second": (spec.train["steps_per_epoch"] * spec.train["batch_size"]
                                     if spec.train["steps_per_epoch"] else splits["train"].samples)
        * len(history) / max(train_seconds, 1e-9),
        "time_to_first_batch_seconds": first_batch.seconds,
        "distributed": None if parallel is None else parallel.world.describe(),
        "versions": {"kerascli": __version__, "numpy": np.__version__, "numba": _numba_version(),
                     "python": platform.python_version()},
        "command": sys.argv,
    }
    # what to look at: curves.png, confusion_matrix.png (matplotlib) and report.html; summary.json last
    confusion = run_confusion(trainer, {s: splits[s] for s in SPLITS if s in splits}, session.class_names,
                              EVAL_BATCH)
    note = write_pictures(run_dir, confusion)
    write_report(run_dir, summary, confusion)
    atomic_write_text(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2) + "\n")
    if note and not quiet:
        Console(stderr=True, highlight=False).print(f"note: {note}", soft_wrap=True, markup=False)
    epoch = checkpoint.best_epoch if which == "best" else len(history)
    print_results(console, evaluation, f"{which} checkpoint, epoch {epoch}", rich)
    console.print(f"saved to {run_dir}", highlight=False)
    return run_dir


def run_is_complete(run_dir: str, ckpt: Checkpoint, spec: RunSpec) -> bool:
    """Every epoch trained and the summary written (a run killed before its summary is finished on resume)."""
    done = ckpt.epoch >= spec.train["epochs"] and not ckpt.state.get("step_in_epoch")
    return done and os.path.exists(os.path.join(run_dir, "summary.json"))


def check_data_unchanged(ckpt: Checkpoint, current: dict, consequence: str, force: bool = False) -> None:
    problems = changed_files(ckpt.data, current)
    if not problems:
        return
    if force:
        for problem in problems:
            _warn(f"{problem}; going on (--force)")
        return
    raise DataError(f"{problems[0]}: {consequence}" + (f" ({len(problems) - 1} more files changed)"
                                                       if len(problems) > 1 else ""))


def make_dirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise KerascliError(f"cannot create {path}: {exc.strerror}") from None


MAX_ROLLBACKS = 3


def fit_with_rollback(spec: RunSpec, trainer, splits, callbacks, checkpoint: ModelCheckpoint) -> str | None:
    """fit; with train.on_nan: rollback, a NaN/Inf loss sends training back to the last epoch
    checkpoint (last.npz) with the learning rate halved, at most MAX_ROLLBACKS times; with a
    TerminateOnNaN callback it ends training (returned: why it stopped early)."""
    rollbacks = 0
    # data-parallel: every rank sees the loss diverge at the same step; rank 0 decides and tells the others
    tell = trainer.parallel.world.broadcast_code if trainer.parallel is not None else (lambda code: code)
    while True:
        try:
            _fit(spec, trainer, splits, callbacks)
            return None
        except TrainingDiverged as exc:
            if any(c["type"] == "TerminateOnNaN" for c in spec.callbacks):
                if not os.path.exists(checkpoint.last_path):
                    tell(distributed.GIVE_UP)
                    raise TrainingDiverged(f"{exc}; TerminateOnNaN: nothing to end with (no epoch finished "
                                           "yet)") from None
                tell(distributed.TERMINATED)
                _warn(f"{exc}; TerminateOnNaN: training ends here, the results are the checkpoints'")
                return f"{exc} (TerminateOnNaN)"
            if spec.train["on_nan"] != "rollback":
                tell(distributed.GIVE_UP)
                raise
            if rollbacks == MAX_ROLLBACKS or not os.path.exists(checkpoint.last_path):
                tell(distributed.GIVE_UP)
                why = "no epoch checkpoint yet" if rollbacks < MAX_ROLLBACKS else f"{MAX_ROLLBACKS} rollbacks"
                raise TrainingDiverged(f"{exc}; not rolling back ({why})") from None
            tell(distributed.REFIT)  # the others take the restored state when training starts again
            restore(trainer, load_checkpoint(checkpoint.last_path), callbacks)
            trainer.optimizer.learning_rate_scale /= 2
            rollbacks += 1
            _warn(f"{exc}; rolled back to the end of epoch {trainer.epoch} with learning rate "
                  f"{trainer.optimizer.learning_rate:g}")


def _fit(spec: RunSpec, trainer, splits, callbacks) -> None:
    # overflow on the way to a NaN loss is reported by the loop, naming the step, not as numpy warnings
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        t = spec.train
        trainer.fit(splits, t["epochs"], t["batch_size"], t["shuffle"], spec.seed, callbacks,
                    t["validation_freq"], t["steps_per_epoch"], t["validation_steps"])


def check_callbacks_installed(spec: RunSpec) -> None:
    """A callback that writes through an optional package (TensorBoard) says so before anything is made."""
    types = [c["type"] for c in spec.callbacks] + (["TensorBoard"] if spec.train["tensorboard"] else [])
    for name in types:
        check = getattr(CALLBACKS.get(name), "check_installed", None)
        if check is not None:
            check()


def check_distributable(spec: RunSpec) -> None:
    """Data-parallel training keeps its sums on the host: the cpu and reference backends."""
    if spec.train["backend"] not in ("cpu", "reference"):
        raise ConfigError(f"data-parallel training over MPI runs on the cpu or reference backend, not "
                          f"{spec.train['backend']}", key="train.backend",
                          where=spec.source.where(("train", "backend")) if spec.source else None)


def follow(world, spec: RunSpec, session: Session, splits: dict) -> None:
    """A rank other than 0 of a data-parallel run: train on its part of every batch, taking the training
    state from rank 0 at the start and after each epoch, and rank 0's decision when the loss diverges."""
    trainer = session.trainer
    stop = GracefulStop(None)
    world.pending_signal = lambda: stop.received or 0
    callbacks = [stop, distributed.SyncFromLeader(world)]
    stop.install()
    try:
        while True:
            try:
                _fit(spec, trainer, splits, callbacks)
                return
            except distributed.NothingToDo:
                return
            except TrainingDiverged:
                decision = world.broadcast_code()
                if decision == distributed.TERMINATED:
                    return
                if decision != distributed.REFIT:
                    raise
    finally:
        stop.uninstall()


def restore(trainer, ckpt: Checkpoint, callbacks) -> None:
    """Put the model, optimizer, RNGs, training position and callbacks back where ``ckpt`` was taken."""
    apply_weights(trainer.model, ckpt.weights(), ckpt.path)
    apply_training_state(trainer.model, trainer.optimizer, ckpt)
    trainer.restore(ckpt.state, callbacks)


def _warn(message: str) -> None:
    Console(stderr=True, highlight=False).print(f"warning: {message}", soft_wrap=True, markup=False)


def find_resume_point(run_dir: str, resume: str) -> Checkpoint | None:
    ckpt = newest_good_checkpoint(run_dir, _warn)
    if ckpt is None and resume != "auto":
        raise ConfigError(f"nothing to resume: no usable checkpoint in {run_dir} (use --resume auto to start "
                          "fresh then)")
    return ckpt


def check_writable(run_dir: str) -> None:
    probe = os.path.join(run_dir, ".write-test")
    try:
        with open(probe, "w") as f:
            f.write("ok")
        os.unlink(probe)
    except OSError as exc:
        raise KerascliError(f"run directory {run_dir} is not writable: {exc.strerror}") from None


def check_free_space(folder: str, model) -> None:
    """Refuse to start when the disk cannot hold a few checkpoints (weights + optimizer state)."""
    need = 4 * 3 * (model.param_buffer.nbytes + model.state_buffer.nbytes) + (1 << 20)
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    free = shutil.disk_usage(existing).free
    if free < need:
        raise KerascliError(f"only {free / 2**20:.1f} MiB free under {folder}; checkpoints need about "
                            f"{need / 2**20:.1f} MiB")


def resume_run(run_dir: str, overrides: list, quiet: bool, console: Console) -> str:
    """``kerascli resume RUN``: continue the run in directory RUN, wherever it lies and whatever it is
    called, from its own config.yaml (``overrides`` may lengthen it: train.epochs)."""
    config_path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(config_path):
        raise ConfigError(f"{run_dir} is not a run directory (no config.yaml)")
    return train(config_path, overrides, None, os.path.dirname(os.path.normpath(run_dir)) or ".", quiet, console,
                 resume="yes", run_dir=os.path.normpath(run_dir))


def _numba_version() -> str:
    import numba

    return numba.__version__


# ------------------------------------------------------------------ from a run or checkpoint
def checkpoint_path(target: str, which: str) -> str:
    if os.path.isdir(target):
        path = os.path.join(target, "checkpoints", f"{which}.npz")
        if not os.path.exists(path):
            if not os.path.isdir(os.path.join(target, "checkpoints")):
                raise CheckpointError(f"{target} is not a run directory (no checkpoints/ folder)")
            raise CheckpointError(f"{target} has no {which} checkpoint yet ({path})")
        return path
    if not os.path.exists(target):
        raise CheckpointError(f"no run directory or checkpoint at {target}")
    return target


def session_from_checkpoint(target: str, which: str, threads: int | None = None,
                            backend: str | None = None) -> tuple[Session, Checkpoint]:
    path = checkpoint_path(target, which)
    ckpt = load_checkpoint(path)
    config = ckpt.config
    if config is None:
        raise CheckpointError(f"{path} has no stored config (_config); load it through model.weights instead")
    spec = resolve_config(LoadedConfig(data=config, source=f"{path} (stored config)"))
    plugins.check_unchanged(ckpt.plugins, spec.plugins + spec.entry_point_plugins,
                            "its layers or losses might compute something else now")
    if threads is not None:
        spec.train["threads"] = threads
    if backend is not None:
        spec.train["backend"] = backend
    session = build_session(spec, initial_weights=False)
    apply_weights(session.model, ckpt.weights(), path)
    session.take_inputs_from(ckpt)
    return session, ckpt


def evaluate(target: str, split: str, which: str, as_json: bool, threads: int | None, console: Console,
             force: bool = False, backend: str | None = None, data: dict | None = None) -> dict:
    """Loss and metrics on a split of the run's data, or with ``data`` (outside_data's arguments) on every
    sample of a file that was not part of training."""
    session, ckpt = session_from_checkpoint(target, which, threads, backend)
    if data is not None:
        model, objective = session.model, session.trainer.objective
        x, y = outside_data(**data, encoding=session.encoding)
        features, targets, _ = prepare_arrays(x, y, model, objective, model.dtype, data["path"])
        split, chosen = data["path"], Split(session.standardizer.apply(features), targets)
    else:
        splits = load_data(session)
        check_data_unchanged(ckpt, fingerprints(session.spec.data), "the results would be for other data than "
                             "the run's; use --force to evaluate anyway", force)
        if split not in splits:
            raise ConfigError(f"the run has no {split!r} split (its data config gives: {', '.join(splits)})")
        chosen = splits[split]
    for note in session.notes:
        _warn(note)
    result = session.trainer.evaluate(chosen, EVAL_BATCH)
    if as_json:
        where = {"data": split} if data is not None else {"split": split}
        console.print_json(json.dumps({"checkpoint": ckpt.path, "epoch": ckpt.epoch, **where, **result}))
    else:
        print_results(console, {split: result}, f"{ckpt.path} (epoch {ckpt.epoch})", console.is_terminal)
    return result


# ------------------------------------------------------------------ predict
def predict(target: str, input_path: str, output_path: str, which: str, classes_only: bool, key: str | None,
            batch_size: int, threads: int | None, console: Console, delimiter: str = ",", backend: str | None = None):
    out_ext = os.path.splitext(output_path)[1].lower()
    if out_ext not in (".npy", ".csv", ".npz"):
        raise ConfigError(f"output must end in .npy, .csv or .npz, got {output_path}")
    if os.path.exists(output_path) and os.path.exists(input_path) and os.path.samefile(output_path, input_path):
        raise ConfigError(f"-o {output_path} is the input file; writing there would destroy it")
    session, ckpt = session_from_checkpoint(target, which, threads, backend)
    model, spec, objective = session.model, session.spec, session.trainer.objective
    if len(model.outputs) > 1 and out_ext != ".npz":
        raise ConfigError(f"this model has outputs {', '.join(model.outputs)}: write them to an .npz (one array per "
                          f"output), not {out_ext}")
    if len(model.input_shapes) > 1:
        x = {name: fit_to_input(a, model.input_shapes[name], f"{input_path}: {name}").astype(model.dtype, copy=False)
             for name, a in read_named_inputs(input_path, list(model.input_shapes)).items()}
        if len({len(a) for a in x.values()}) > 1:
            raise DataError(f"{input_path}: the input arrays have different numbers of rows")
    else:
        (input_shape,) = model.input_shapes.values()
        x = read_inputs(input_path, key, spec.data.get("label_column", "label"), delimiter, session.encoding)
        x = fit_to_input(x, input_shape, input_path).astype(model.dtype, copy=False)
    if classes_only and not all(objective.classification(o) for o in model.outputs):
        raise ConfigError("--classes needs a classification model; this one is trained with "
                          f"{spec.compile['loss']}")
    folder = os.path.dirname(os.path.abspath(output_path))
    if not os.path.isdir(folder):
        raise DataError(f"output folder does not exist: {folder}")
    for note in session.notes:
        _warn(note)
    predicted = session.trainer.predict(session.standardizer.apply(x), batch_size)
    outputs = predicted if isinstance(predicted, dict) else {model.outputs[0]: predicted}
    count = len(next(iter(outputs.values())))
    if out_ext == ".npz":
        arrays = {o: class_ids(p) if classes_only else p for o, p in outputs.items()}
        atomic_write(output_path, lambda f: np.savez(f, **arrays))
    else:
        probs = outputs[model.outputs[0]]
        classification = objective.classification(model.outputs[0])
        ids = class_ids(probs) if classification else None
        if out_ext == ".npy":
            result = ids if classes_only else probs
            atomic_write(output_path, lambda f: np.save(f, result))
        else:
            names = class_names_for(session.class_names, probs.shape[1]) if classification else None
            atomic_write_text(output_path, prediction_csv(probs, ids, classes_only, names))
    console.print(f"wrote {count} predictions to {output_path}", highlight=False)
    return predicted


# ------------------------------------------------------------------ validate
def _shapes(model) -> str:
    if len(model.outputs) == 1:
        return str(model.output_shape)
    return ", ".join(f"{o} {shape}" for o, shape in model.output_shapes.items())


def validate(config_path: str, overrides: list[str], console: Console) -> None:
    spec = load_spec(config_path, overrides)
    session = build_session(spec)
    splits = load_data(session)
    trainable, fixed = session.model.count_params()
    sizes = ", ".join(f"{k} {v.size_text}" for k, v in splits.items())
    console.print(f"{config_path}: OK ({spec.name}: {trainable + fixed:,} params, output "
                  f"{_shapes(session.model)}, samples: {sizes})", highlight=False)
