"""Progress bars (rich): description, bar, done/total, rate, elapsed and ETA; quiet when disabled."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)


class RateColumn(TextColumn):
    def __init__(self, unit: str) -> None:
        super().__init__("")
        self.unit = unit

    def render(self, task):  # noqa: D102 - rich API
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} {self.unit}/s" if speed else f"- {self.unit}/s", style="progress.data.speed")


def make_progress(unit: str = "items", enabled: bool = True) -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), RateColumn(unit), TimeElapsedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), disable=not enabled, transient=False,
                    redirect_stderr=False, redirect_stdout=False)


@contextmanager
def item_progress(label: str, total: int, completed: int = 0, unit: str = "items",
                  enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A progress bar over ``total`` units; yields ``advance(n)``."""
    enabled = enabled and total > 0
    with make_progress(unit, enabled) as progress:
        task = progress.add_task(label, total=total, completed=completed)
        yield lambda n=1: progress.advance(task, n)
