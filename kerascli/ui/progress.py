"""Training progress: a live bar for the current epoch on a terminal, one plain line per epoch everywhere."""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

from kerascli.train.loop import Callback


def format_logs(logs: dict, keys: list[str] | None = None) -> str:
    parts = []
    for key, value in logs.items():
        if keys is not None and key not in keys:
            continue
        if key == "seconds":
            parts.append(f"{value:.2f}s")
        elif key == "lr":
            parts.append(f"lr={value:g}")
        else:
            parts.append(f"{key}={value:.4f}")
    return " ".join(parts)


def epoch_line(epoch: int, epochs: int, logs: dict) -> str:
    """The line a finished epoch leaves behind, the epoch number first so narrow terminals keep it."""
    return f"epoch {epoch}/{epochs} {format_logs(logs)}"


class PlainProgress(Callback):
    """One line per epoch: readable in CI and cluster logs."""

    def __init__(self, console: Console, epochs: int):
        self.console, self.epochs = console, epochs

    def on_epoch_end(self, epoch, logs):
        self.console.print(epoch_line(epoch, self.epochs, logs), highlight=False, soft_wrap=True)


class TerminalProgress(Callback):
    """On a terminal: one live bar for the epoch in progress (batches, ETA, ms/step, running loss and
    metrics), and each finished epoch printed once as a plain line above it, as Keras does.

    The bar is a single line rewritten in place (carriage return, clear to end of line), cut to the
    terminal's width so it never wraps, and redrawn at most REFRESH_HZ times a second; between redraws
    a batch costs one clock read. Nothing accumulates on screen, so a run of any length neither
    scrolls a live region nor slows down as it grows.
    """

    REFRESH_HZ = 10
    BAR_WIDTH = 20

    def __init__(self, console: Console, epochs: int, compiling: bool = False):
        self.console, self.epochs = console, epochs
        self.file = console.file
        self.compiling = compiling  # the first batch waits for Numba to compile kernels
        self.cold = compiling  # ... and the first epoch's validation for the inference kernels
        self.epoch, self.steps, self.step = 0, 0, 0
        self.epoch_started = self.last_draw = 0.0
        self.first_step = 0  # where a resumed epoch started, for the rate
        self.live = False

    # ---------------------------------------------------------- events
    def on_epoch_begin(self, epoch, steps):
        self.epoch, self.steps = epoch, steps
        self.step = self.first_step = 0
        self.epoch_started = time.monotonic()
        self.logs: dict = {}
        if self.compiling:
            self._draw(f"Epoch {epoch}/{self.epochs} 0/{steps} compiling kernels (first run only, cached afterwards)")
        elif self.epoch_started - self.last_draw >= 1.0 / self.REFRESH_HZ:
            self._draw(f"Epoch {epoch}/{self.epochs} {self._bar(0)} 0/{steps}")

    def on_batch_end(self, step, logs):
        now = time.monotonic()
        if self.step == 0 and step > 1:
            self.first_step = step - 1  # resumed in the middle of the epoch
        if self.compiling:  # the rate and the ETA count from the first compiled batch on
            self.compiling, self.first_step, self.epoch_started = False, step, now
        self.step, self.logs = step, logs
        if now - self.last_draw >= 1.0 / self.REFRESH_HZ or (self.cold and step == self.steps):
            self._draw(self._status(now))

    def on_epoch_end(self, epoch, logs):
        self.cold = False
        self.file.write(("\r\x1b[K" if self.live else "") + epoch_line(epoch, self.epochs, logs) + "\n")
        self.file.flush()
        self.live = False

    def on_train_end(self, logs):
        self.close()

    def close(self):
        self._clear()

    # ---------------------------------------------------------- drawing
    def _bar(self, step: int) -> str:
        done = self.BAR_WIDTH * step // max(self.steps, 1)
        return "[" + "=" * done + (">" if done < self.BAR_WIDTH else "") + "." * (self.BAR_WIDTH - done - 1) + "]"

    def _status(self, now: float) -> str:
        done = self.step - self.first_step
        elapsed = now - self.epoch_started
        per_step = elapsed / max(done, 1)
        eta = per_step * (self.steps - self.step)
        if done <= 0:
            timing = "ETA ..."
        elif self.step < self.steps:
            timing = f"ETA {_duration(eta)} {per_step * 1000:.1f}ms/step"
        else:
            timing = f"{_duration(elapsed)} {per_step * 1000:.1f}ms/step"
        head, tail = f"Epoch {self.epoch}/{self.epochs}", f"{self.step}/{self.steps} {timing} {format_logs(self.logs)}"
        if self.cold:
            tail = f"{self.step}/{self.steps} compiling kernels (first run only) {format_logs(self.logs)}"
        line = f"{head} {self._bar(self.step)} {tail}"
        return line if len(line) < self._width() else f"{head} {tail}"  # narrow terminal: the numbers first

    def _width(self) -> int:
        return max(self.console.size.width - 1, 10)  # one short of the edge: a full line would wrap

    def _draw(self, text: str) -> None:
        self.file.write("\r" + text[: self._width()] + "\x1b[K")
        self.file.flush()
        self.last_draw = time.monotonic()
        self.live = True

    def _clear(self) -> None:
        if self.live:
            self.file.write("\r\x1b[K")
            self.file.flush()
            self.live = False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def results_table(results: dict[str, dict[str, float]], title: str) -> Table:
    """Rows: split (train/val/test); columns: loss and each metric."""
    columns: list[str] = []
    for values in results.values():
        for key in values:
            if key not in columns:
                columns.append(key)
    table = Table(title=title, title_justify="left")
    table.add_column("split")
    for col in columns:
        table.add_column(col, justify="right")
    for split, values in results.items():
        table.add_row(split, *(f"{values[c]:.4f}" if c in values else "" for c in columns))
    return table


def print_results(console: Console, results: dict[str, dict[str, float]], title: str, rich: bool) -> None:
    if rich:
        console.print(results_table(results, title))
        return
    console.print(title, highlight=False)
    for split, values in results.items():
        console.print(f"  {split}: {format_logs(values)}", highlight=False, soft_wrap=True)
