"""A progress bar per file downloaded (kerascli.data.download), drawn on a terminal's standard error."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)


class DownloadBars:
    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.bars: dict[str, tuple[Progress, object]] = {}

    def started(self, file, total: int) -> None:
        bar = Progress(TextColumn("downloading {task.description}"), BarColumn(), DownloadColumn(),
                       TransferSpeedColumn(), console=self.console)
        bar.start()
        self.bars[file.name] = (bar, bar.add_task(file.name, total=total))

    def advanced(self, file, received: int) -> None:
        bar, task = self.bars[file.name]
        bar.update(task, completed=received)

    def ended(self, file) -> None:
        if file.name in self.bars:
            self.bars.pop(file.name)[0].stop()
