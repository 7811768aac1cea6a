"""Keras' callbacks for the ``callbacks:`` section (EarlyStopping, ReduceLROnPlateau, LearningRateScheduler,
ModelCheckpoint, CSVLogger, TerminateOnNaN), with Keras 3's arguments, defaults and rules. They are written
on the same public hooks as a plugin's callback (kerascli.api.Callback) and keep their counters in
checkpoints, so a resumed run stops, lowers the rate or writes where it would have."""

from __future__ import annotations

import math
import os
import string

from kerascli.api import Callback
from kerascli.callbacks import resolve_mode
from kerascli.config.params import Param

MODE = Param("str", "auto", choices=("auto", "min", "max"), doc="auto: max for accuracies, min otherwise")


class _Monitor(Callback):
    """Keras' MonitorCallback: an improvement is beating the best by more than min_delta."""

    def on_train_begin(self, logs=None):
        self.mode = resolve_mode(self.config["monitor"], self.config["mode"])
        self.best = None
        self.wait = 0

    def improved(self, value: float, reference) -> bool:
        if reference is None:
            return True
        delta = abs(self.config["min_delta"])
        return value + delta < reference if self.mode == "min" else value - delta > reference

    def current(self, logs):
        return (logs or {}).get(self.config["monitor"])


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved for ``patience`` epochs (counted from ``start_from_epoch``;
    with ``baseline``, improvements must also beat it). The best epoch's weights are always in
    checkpoints/best.npz, which the run's results, evaluate and predict use; ``restore_best_weights``
    insists that best.npz is chosen by this callback's monitor (the config check enforces it)."""

    PARAMS = {
        "monitor": Param("str", "val_loss"),
        "min_delta": Param("float", 0.0),
        "patience": Param("int", 0, min=0),
        "mode": MODE,
        "baseline": Param("float", None, nullable=True),
        "start_from_epoch": Param("int", 0, min=0),
        "restore_best_weights": Param("bool", False),
    }

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.stopped_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value, c = self.current(logs), self.config
        keras_epoch = epoch - 1  # Keras counts epochs from 0; kerascli's hooks from 1
        if value is None or keras_epoch < c["start_from_epoch"]:
            return
        self.wait += 1
        if self.improved(value, self.best):
            self.best = value
            if c["baseline"] is None or self.improved(value, c["baseline"]):
                self.wait = 0
            return
        if self.wait >= c["patience"] and keras_epoch > 0:
            self.stopped_epoch = epoch
            self.stop_training = True

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "stopped_epoch": self.stopped_epoch}

    def set_state(self, state):
        self.best, self.wait, self.stopped_epoch = state["best"], state["wait"], state["stopped_epoch"]


class LearningRateScheduler(Callback):
    """At the start of each epoch, set the learning rate to ``schedule`` (a learning-rate schedule, as in
    compile.optimizer.learning_rate) taken at the epoch's index, counted from 0 as Keras does:
    ``{type: PiecewiseConstantDecay, boundaries: [9, 19], values: [0.1, 0.01, 0.001]}`` gives 0.1 for
    epochs 1-10. Needs a constant learning_rate in the optimizer, as ReduceLROnPlateau."""

    PARAMS = {"schedule": Param("schedule")}

    def on_train_begin(self, logs=None):
        from kerascli.registry import SCHEDULES

        config = self.config["schedule"]
        self.schedule = SCHEDULES.get(config["type"])({k: v for k, v in config.items() if k != "type"})

    def on_epoch_begin(self, epoch, logs=None):
        self.model.optimizer.set_learning_rate(self.schedule(epoch - 1))


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by ``factor`` (not below ``min_lr``) when ``monitor`` has not improved
    for ``patience`` epochs, then wait ``cooldown`` epochs before counting again. Needs a constant
    learning_rate (a schedule already decides it, as in Keras)."""

    PARAMS = {
        "monitor": Param("str", "val_loss"),
        "factor": Param("float", 0.1, min=0.0, exclusive_min=True, max=0.999999, doc="< 1"),
        "patience": Param("int", 10, min=0),
        "mode": MODE,
        "min_delta": Param("float", 1e-4),
        "cooldown": Param("int", 0, min=0),
        "min_lr": Param("float", 0.0, min=0.0),
    }

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.cooldown_counter = 0

    def on_epoch_end(self, epoch, logs=None):
        value, c = self.current(logs), self.config
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.improved(value, self.best):
            self.best, self.wait = value, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= c["patience"]:
                optimizer = self.model.optimizer
                old = optimizer.learning_rate
                if old > c["min_lr"]:
                    optimizer.set_learning_rate(max(old * c["factor"], c["min_lr"]))
                    self.cooldown_counter, self.wait = c["cooldown"], 0

    def get_state(self):
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def set_state(self, state):
        self.best, self.wait, self.cooldown_counter = state["best"], state["wait"], state["cooldown_counter"]


def _in_run(callback, path: str) -> str:
    """A callback's output path: relative paths are taken inside the run directory."""
    return path if os.path.isabs(path) else os.path.join(callback.run_dir, path)


def filepath_fields(filepath: str) -> list[str]:
    """The ``{name}`` / ``{name:format}`` fields of a ModelCheckpoint filepath (ValueError when it is not a
    format string, or reaches into a value's attributes or items)."""
    fields = []
    for _, name, _, _ in string.Formatter().parse(filepath):
        if name is None:
            continue
        if not name or any(c in name for c in ".[]"):
            raise ValueError(f"{{{name}}} is not a plain field name")
        fields.append(name)
    return fields


class ModelCheckpoint(Callback):
    """Keras' ModelCheckpoint, writing kerascli checkpoints (.npz: weights, config and, unless
    ``save_weights_only``, the optimizer's state) to ``filepath``, a format string of ``epoch`` (from 1,
    as Keras writes it), ``batch`` (with a save_freq in batches) and logged values: ``ckpt/e{epoch:02d}-
    {val_loss:.3f}.npz``. A relative filepath is taken inside the run directory. ``save_freq``: "epoch"
    or every so many batches; ``save_best_only``: only when ``monitor`` beats the best so far (and
    ``initial_value_threshold``)."""

    PARAMS = {
        "filepath": Param("str"),
        "monitor": Param("str", "val_loss"),
        "save_best_only": Param("bool", False),
        "save_weights_only": Param("bool", False),
        "mode": MODE,
        "save_freq": Param("freq", "epoch", doc="'epoch', or every so many batches"),
        "initial_value_threshold": Param("float", None, nullable=True),
    }

    def on_train_begin(self, logs=None):
        self.mode = resolve_mode(self.config["monitor"], self.config["mode"])
        self.best = self.config["initial_value_threshold"]
        self.epoch = 1
        self.seen = 0  # batches since the start (save_freq counts them across epochs, as Keras does)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def _better(self, value) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return self.best is None or (value < self.best if self.mode == "min" else value > self.best)

    def _save_now(self, logs, batch=None):
        c = self.config
        if c["save_best_only"]:
            value = logs.get(c["monitor"])
            if not self._better(value):
                return
            self.best = value
        fields = {"epoch": self.epoch, **logs} if batch is None else {"epoch": self.epoch, "batch": batch, **logs}
        path = _in_run(self, c["filepath"].format(**fields))
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self.save_checkpoint(path, weights_only=c["save_weights_only"])

    def on_train_batch_end(self, batch, logs=None):
        freq = self.config["save_freq"]
        if freq != "epoch":
            self.seen += 1
            if self.seen % freq == 0:
                self._save_now(dict(logs or {}), batch)

    def on_epoch_end(self, epoch, logs=None):
        if self.config["save_freq"] == "epoch":
            self._save_now(dict(logs or {}))

    def get_state(self):
        return {"best": self.best, "seen": self.seen}

    def set_state(self, state):
        self.best, self.seen = state["best"], state["seen"]


class CSVLogger(Callback):
    """Keras' CSVLogger: one row per epoch (``epoch`` from 0, as Keras writes it, then the logged values
    in name order) into ``filename`` (inside the run directory when relative), separated by ``separator``;
    ``append`` keeps what the file held before training. Written whole and atomically each epoch, from
    rows kept in checkpoints, so a resumed run's file has each epoch once."""

    PARAMS = {"filename": Param("str"), "separator": Param("str", ","), "append": Param("bool", False)}

    def on_train_begin(self, logs=None):
        self.path = _in_run(self, self.config["filename"])
        self.before = ""
        if self.config["append"] and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                self.before = f.read()
        self.rows: list[dict] = []

    def on_epoch_end(self, epoch, logs=None):
        self.rows.append({"epoch": epoch - 1, **dict(logs or {})})
        self._write()

    def _write(self):
        from kerascli.runs.atomic import atomic_write_text

        sep = self.config["separator"]
        keys = ["epoch"] + sorted(k for k in self.rows[0] if k != "epoch")
        lines = [] if self.before else [sep.join(keys)]
        lines += [sep.join(_csv_value(row.get(k, "")) for k in keys) for row in self.rows]
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        atomic_write_text(self.path, self.before + "\n".join(lines) + "\n")

    def get_state(self):
        return {"before": self.before, "rows": self.rows}

    def set_state(self, state):
        self.before, self.rows = state["before"], state["rows"]


def _csv_value(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


class TerminateOnNaN(Callback):
    """Keras' TerminateOnNaN: a NaN or infinite loss ends training without an error (exit 0); the run's
    results come from its last good checkpoints, and summary.json says where it stopped. (Without it, the
    same loss stops the run with an error, or rolls back with ``train.on_nan: rollback``.) The training
    command acts on it: the loss is checked where it is computed, before any callback sees it."""


class TensorBoard(Callback):
    """Keras' TensorBoard: event files that TensorBoard reads, under ``log_dir`` (inside the run directory
    when relative), as Keras lays them out: ``train/`` with ``epoch_loss``, ``epoch_<metric>`` and
    ``epoch_learning_rate`` per epoch (steps count epochs from 0, as Keras), ``validation/`` with the val_
    values under the same names; with ``update_freq`` "batch" or N, ``batch_<name>`` every N batches in
    ``train/`` (steps count batches over the whole run); with ``histogram_freq`` N, a histogram of every
    weight (``<layer>/<weight>/histogram``) every N epochs; ``write_steps_per_second`` adds
    ``epoch_steps_per_second``. Written by tensorboardX (``pip install 'kerascli[tensorboard]'``). A resumed
    run adds event files to the same folders, its steps following on."""

    PARAMS = {
        "log_dir": Param("str", "logs"),
        "histogram_freq": Param("int", 0, min=0, doc="weight histograms every N epochs (0: none)"),
        "update_freq": Param("update_freq", "epoch", doc="'epoch', 'batch', or every so many batches"),
        "write_steps_per_second": Param("bool", False),
    }

    @staticmethod
    def check_installed() -> None:
        """Before a run directory is made: the event-file writer is importable."""
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            from kerascli.errors import ConfigError

            raise ConfigError("TensorBoard event files need tensorboardX: pip install 'kerascli[tensorboard]'",
                              key="callbacks") from None

    def on_train_begin(self, logs=None):
        import time

        from tensorboardX import SummaryWriter

        folder = _in_run(self, self.config["log_dir"])
        # a file of its own per start (a resume in the same second must not overwrite the last one's)
        suffix = f".{os.getpid()}.{time.time_ns()}.v2"
        self.writers = {part: SummaryWriter(os.path.join(folder, part), filename_suffix=suffix)
                        for part in ("train", "validation")}
        if not hasattr(self, "step"):
            self.step = 0  # batches trained over the run (kept in checkpoints)
        freq = self.config["update_freq"]
        self.every = 1 if freq == "batch" else (freq if isinstance(freq, int) else 0)
        self._epoch_steps, self._epoch_started = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        import time

        self._epoch_steps, self._epoch_started = 0, time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        self._epoch_steps += 1
        if self.every and self.step % self.every == 0:
            for name, value in (logs or {}).items():
                self.writers["train"].add_scalar(f"batch_{name}", float(value), self.step)

    def on_epoch_end(self, epoch, logs=None):
        import time

        step = epoch - 1  # Keras counts epochs from 0
        for name, value in (logs or {}).items():
            if name == "seconds" or not isinstance(value, (int, float)):
                continue
            if name == "lr":
                self.writers["train"].add_scalar("epoch_learning_rate", float(value), step)
            elif name.startswith("val_"):
                self.writers["validation"].add_scalar(f"epoch_{name[4:]}", float(value), step)
            else:
                self.writers["train"].add_scalar(f"epoch_{name}", float(value), step)
        if self.config["write_steps_per_second"] and self._epoch_started is not None:
            seconds = max(time.perf_counter() - self._epoch_started, 1e-9)
            self.writers["train"].add_scalar("epoch_steps_per_second", self._epoch_steps / seconds, step)
        freq = self.config["histogram_freq"]
        if freq and epoch % freq == 0:
            for key, values in self.model.get_weights().items():
                self.writers["train"].add_histogram(f"{key}/histogram", values, step)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()

    def get_state(self):
        return {"step": self.step}

    def set_state(self, state):
        self.step = state["step"]
