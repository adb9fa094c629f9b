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


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class LogProgress:
    """Progress as plain log lines, for output that is not a terminal (``nohup ... > log``), where a rich
    bar prints nothing readable: ``label: done/total (pct), rate, elapsed, ETA, fields`` at most every
    ``every`` seconds (:meth:`update`) and whenever the caller asks (:meth:`line`, e.g. at an epoch end).

    The rate counts only the units done since this object was made (a resumed run's earlier steps are
    not in it), so the ETA is that of the remaining work at the current speed.
    """

    def __init__(self, label: str, total: int, log: Callable[[str], None], *, completed: int = 0,
                 unit: str = "it", every: float = 30.0, clock: Callable[[], float] | None = None) -> None:
        import time

        self.label, self.total, self.log, self.unit, self.every = label, total, log, unit, every
        self.clock = clock or time.perf_counter
        self.start_done, self.done = completed, completed
        self.t0 = self.last = self.clock()
        self.fields: dict[str, str] = {}

    def update(self, done: int, **fields: str) -> None:
        self.done = done
        self.fields.update(fields)
        if self.clock() - self.last >= self.every:
            self.line()

    def line(self, note: str = "") -> str:
        now = self.clock()
        self.last = now
        elapsed = now - self.t0
        rate = (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0
        eta = _clock((self.total - self.done) / rate) if rate > 0 else "-"
        pct = 100.0 * self.done / self.total if self.total else 100.0
        extra = "".join(f", {k} {v}" for k, v in self.fields.items())
        text = (f"{self.label}: {self.done}/{self.total} {self.unit} ({pct:.0f} %), {rate:.2f} {self.unit}/s, "
                f"elapsed {_clock(elapsed)}, ETA {eta}{extra}" + (f" [{note}]" if note else ""))
        self.log(text)
        return text
