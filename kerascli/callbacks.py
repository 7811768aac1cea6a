"""Callbacks that write a run's files: metrics.csv every epoch, last.npz and best.npz."""

from __future__ import annotations

import math
import os

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

    def on_epoch_end(self, epoch, logs):
        self.history.append({"epoch": epoch, **logs})
        write_metrics_csv(self.path, self.history)


def resolve_mode(monitor: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor else "min"


class ModelCheckpoint(Callback):
    """Saves checkpoints/last.npz every epoch and checkpoints/best.npz when ``monitor`` improves."""

    def __init__(self, folder: str, config: dict, monitor: str, mode: str):
        self.folder = folder
        self.config = config
        self.monitor = monitor
        self.mode = resolve_mode(monitor, mode)
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.trainer = None

    @property
    def last_path(self) -> str:
        return os.path.join(self.folder, "last.npz")

    @property
    def best_path(self) -> str:
        return os.path.join(self.folder, "best.npz")

    def on_train_begin(self, trainer):
        self.trainer = trainer

    def improved(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_epoch_end(self, epoch, logs):
        model, optimizer = self.trainer.model, self.trainer.optimizer
        save_checkpoint(self.last_path, model, optimizer, self.config, epoch)
        value = logs.get(self.monitor)
        if value is not None and self.improved(value):
            self.best, self.best_epoch = value, epoch
            save_checkpoint(self.best_path, model, optimizer, self.config, epoch)
