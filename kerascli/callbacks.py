"""Callbacks of a training run: metrics.csv, epoch and step checkpoints, stopping on signals, timing."""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time

from kerascli.errors import KerascliError
from kerascli.runs.checkpoint import save_checkpoint
from kerascli.runs.rundir import write_metrics_csv
from kerascli.train.loop import Callback


def process_age() -> float:
    """Seconds since this process started (from /proc, 10 ms resolution; 0 where unavailable)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return 0.0


class FirstBatchTimer(Callback):
    """Records how long after the process started the first training batch finished."""

    def __init__(self):
        self.seconds: float | None = None

    def on_batch_end(self, step, logs):
        if self.seconds is None:
            self.seconds = process_age()


class MetricsWriter(Callback):
    """Rewrites metrics.csv atomically after every epoch, so it is current if the job dies."""

    def __init__(self, path: str):
        self.path = path
        self.history: list[dict] = []

    state_key = "metrics"

    def get_state(self):
        return self.history

    def set_state(self, state):
        self.history = [dict(row) for row in state]

    def on_epoch_end(self, epoch, logs):
        self.history.append({"epoch": epoch, **logs})
        write_metrics_csv(self.path, self.history)


# in a monitored name: mode auto is max (Keras' metrics whose direction is "up")
HIGHER_IS_BETTER = ("acc", "precision", "recall", "auc", "sensitivity", "specificity", "f1", "fbeta", "r2", "cosine", "iou")


def resolve_mode(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if any(word in monitor for word in HIGHER_IS_BETTER) else "min"


class ModelCheckpoint(Callback):
    """Epoch checkpoints (last.npz every epoch, best.npz when ``monitor`` improves) and step
    checkpoints (step-<global step>.npz every ``every_steps`` steps or ``every_seconds``
    seconds, the newest ``keep`` kept). Every file carries the full training state."""

    state_key = "checkpoint"

    def __init__(self, folder: str, config: dict, monitor: str, mode: str, every_steps: int = 0,
                 every_seconds: float = 0.0, keep: int = 3, data: dict | None = None, plugins: list | None = None,
                 inputs: dict | None = None):
        self.folder = folder
        self.config = config
        self.data = data  # fingerprints of the data files, stored in every checkpoint
        self.plugins = plugins  # the plugins the run uses, with their source's SHA-256
        self.inputs = inputs  # how raw inputs become the model's (statistics, column encoding): entries
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.every_steps, self.every_seconds, self.keep = every_steps, every_seconds, keep
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.trainer = None
        self._last_save = time.monotonic()

    def get_state(self):
        return {"best": self.best, "best_epoch": self.best_epoch}

    def set_state(self, state):
        self.best, self.best_epoch = state["best"], state["best_epoch"]

    @property
    def last_path(self) -> str:
        return os.path.join(self.folder, "last.npz")

    @property
    def best_path(self) -> str:
        return os.path.join(self.folder, "best.npz")

    def step_path(self, global_step: int) -> str:
        return os.path.join(self.folder, f"step-{global_step:09d}.npz")

    def on_train_begin(self, trainer):
        self.trainer = trainer
        self._last_save = time.monotonic()
        for name in os.listdir(self.folder):  # half-written files of a killed process
            if name.startswith(".") and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.folder, name))

    def improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def save(self, path: str, weights_only: bool = False) -> None:
        t = self.trainer
        save_checkpoint(path, t.model, None if weights_only else t.optimizer, self.config, t.epoch, t.snapshot(),
                        self.data, self.plugins, self.inputs)
        self._last_save = time.monotonic()

    def save_step(self) -> str:
        """Write a step checkpoint now and drop the oldest beyond ``keep``."""
        path = self.step_path(self.trainer.global_step)
        self.save(path)
        steps = sorted(f for f in os.listdir(self.folder) if f.startswith("step-") and f.endswith(".npz"))
        for old in steps[: -self.keep]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.folder, old))
        return path

    def on_batch_end(self, step, logs):
        due = self.every_steps and self.trainer.global_step % self.every_steps == 0
        due = due or (self.every_seconds and time.monotonic() - self._last_save >= self.every_seconds)
        if due:
            self.save_step()

    def on_epoch_end(self, epoch, logs):
        value = logs.get(self.monitor)
        better = value is not None and self.improved(value)
        if better:
            self.best, self.best_epoch = value, epoch
        self.save(self.last_path)
        if better:
            self.save(self.best_path)


class GracefulStop(Callback):
    """On SIGINT, SIGTERM or SIGUSR1: finish the step, write a step checkpoint, stop.

    The handlers only set a flag, so a step is never cut in half; a second
    signal of the same kind while stopping is ignored.
    """

    SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")

    def __init__(self, checkpoint: ModelCheckpoint | None):
        self.checkpoint = checkpoint  # None on the ranks other than 0 of a data-parallel run: rank 0 writes it
        self.received: int | None = None
        self._previous: dict = {}
        self.trainer = None

    def _handle(self, signum, frame):
        self.received = self.received or signum

    def install(self) -> None:
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def on_train_begin(self, trainer):
        self.trainer = trainer

    def on_batch_end(self, step, logs):
        parallel = self.trainer.parallel
        # data-parallel: every rank stops after the step in which any rank had a signal
        signum = parallel.world.agreed_signal if parallel is not None else self.received
        if signum:
            path = self.checkpoint.save_step() if self.checkpoint is not None else None
            raise TrainingInterrupted(signum, self.trainer, path)


class TrainingInterrupted(KerascliError):
    """Training stopped on a signal after writing a checkpoint; exit code 128 + signal number."""

    def __init__(self, signum: int, trainer, path: str, hint: str = ""):
        self.signum, self.path = signum, path
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(
            f"stopped by {name} at epoch {trainer.epoch + 1}, step {trainer.step_in_epoch} "
            f"(global step {trainer.global_step}); "
            + (f"checkpoint written to {path}" if path else "rank 0 wrote the checkpoint") + (f"; {hint}" if hint else "")
        )


class UserCallback(Callback):
    """A plugin's callback (kerascli.api.Callback) with Keras' hooks, driven by the training events."""

    def __init__(self, callback, index: int = 0, run_dir: str | None = None, save=None):
        self.callback = callback
        self.trainer = None
        self.state_key = f"callbacks/{index}/{type(callback).__name__}"  # its state, in checkpoints
        self._resumed = None
        callback.run_dir, callback._write_checkpoint = run_dir, save  # where it may write; how it writes checkpoints

    def get_state(self):
        return self.callback.get_state()

    def set_state(self, state) -> None:
        self._resumed = state  # handed over after on_train_begin, which resets a Keras callback

    def on_train_begin(self, trainer):
        self.trainer = trainer
        trainer.model.optimizer = trainer.optimizer  # Keras' self.model.optimizer
        self.callback.model = trainer.model
        self.callback.on_train_begin({})
        if self._resumed is not None:
            self.callback.set_state(self._resumed)
            self._resumed = None

    def on_epoch_begin(self, epoch, steps):
        self.callback.on_epoch_begin(epoch, {})

    def on_batch_end(self, step, logs):
        self.callback.on_train_batch_end(step, dict(logs))

    def on_epoch_end(self, epoch, logs):
        self.callback.on_epoch_end(epoch, dict(logs))
        if self.callback.stop_training:
            self.trainer.stop_training = True

    def on_train_end(self, logs):
        self.callback.on_train_end(dict(logs))
