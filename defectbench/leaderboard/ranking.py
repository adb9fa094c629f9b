"""Entries, the board, and the ranking rule.

Ranking is within one task and one dataset build (figures on different data do not compare), by
the primary metric as the board recomputed it (F1 of the positive class for framewise tasks,
balanced accuracy for the 5-way task): an entry's rank is 1 + the number of entries whose 95 %
interval lies entirely above its own, so entries whose intervals overlap share a rank ("=2").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .registry import Build

PRIMARY = {"framewise": "f1", "multiclass": "balanced_accuracy"}
PRIMARY_LABEL = {"f1": "F1 %", "balanced_accuracy": "balanced accuracy"}


@dataclass
class Entry:
    task: str
    name: str
    folder: Path
    result: Any  # defectbench.results.Result: what the submitter declared
    build: Build
    primary: str
    value: float | None
    """The primary metric as recomputed by the board."""
    interval: tuple[float, float] | None
    intervals: dict[str, tuple[float, float] | None]
    rescored: Any = None  # defectbench.rescore.Rescored: every figure shown
    notes: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    """Declared figures (threshold included) that differ from the recomputed ones: shown, never used."""
    rank: int = 0
    tied: bool = False

    @property
    def metrics(self) -> dict[str, Any]:
        return self.rescored.metrics


@dataclass
class Rejection:
    task: str
    name: str
    folder: Path
    reason: str


@dataclass
class Board:
    root: Path
    entries: list[Entry]
    rejected: list[Rejection]

    def groups(self) -> dict[str, dict[str, list[Entry]]]:
        """task -> fingerprint -> entries in rank order."""
        out: dict[str, dict[str, list[Entry]]] = {}
        for e in sorted(self.entries, key=lambda e: (e.task, e.build.fingerprint, e.rank, -(e.value or -math.inf), e.name)):
            out.setdefault(e.task, {}).setdefault(e.build.fingerprint, []).append(e)
        return out


def rank(entries: list[Entry]) -> None:
    """Rank within each (task, fingerprint): 1 + entries whose interval lies entirely above."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.task, e.build.fingerprint), []).append(e)
    for group in groups.values():
        def span(e: Entry) -> tuple[float, float]:
            if e.interval is not None:
                return e.interval
            v = -math.inf if e.value is None else e.value
            return (v, v)

        for e in group:
            low, high = span(e)
            e.rank = 1 + sum(1 for o in group if o is not e and span(o)[0] > high)
        for e in group:
            e.tied = sum(1 for o in group if o.rank == e.rank) > 1


def rank_text(e: Entry) -> str:
    return f"={e.rank}" if e.tied else str(e.rank)
