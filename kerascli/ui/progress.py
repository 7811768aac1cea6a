"""Training progress: a rich bar per epoch on a terminal, one plain line per epoch elsewhere."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
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


class PlainProgress(Callback):
    """One line per epoch: readable in CI and cluster logs."""

    def __init__(self, console: Console, epochs: int):
        self.console, self.epochs = console, epochs

    def on_epoch_end(self, epoch, logs):
        self.console.print(f"epoch {epoch}/{self.epochs} {format_logs(logs)}", highlight=False, soft_wrap=True)


class RichProgress(Callback):
    """A bar per epoch with batches, ETA and running loss/metrics; finished bars stay on screen."""

    def __init__(self, console: Console, epochs: int):
        self.console, self.epochs = console, epochs
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[logs]}"),
            console=console,
        )
        self.task = None
        self._last_refresh = 0

    def on_train_begin(self, trainer):
        self.progress.start()

    def on_epoch_begin(self, epoch, steps):
        self.task = self.progress.add_task(f"Epoch {epoch}/{self.epochs}", total=steps, logs="")

    def on_batch_end(self, step, logs):
        self.progress.update(self.task, completed=step, logs=format_logs(logs))

    def on_epoch_end(self, epoch, logs):
        self.progress.update(self.task, logs=format_logs(logs))

    def on_train_end(self, logs):
        self.close()

    def close(self):
        self.progress.stop()


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
