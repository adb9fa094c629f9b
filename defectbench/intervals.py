"""Algorithm 1 of the video paper (section 4): alternate clean and defective intervals.

The paper's pseudo-code::

    clean = random bool; intervalStart = 0
    do
        intervalDuration = minIntervalDuration + Gamma(1, 10)
        intervalEnd = max(intervalStart + intervalDuration, len(audio))   # typo: min (SPEC 1.4)
        if not clean: applyDefect(..., intervalStart, intervalEnd)
        intervalStart = intervalEnd; clean = not clean
    while intervalStart != len(audio)

With ``max`` the first interval would always cover the whole audio; SPEC 1.4 reads it as ``min``.
Durations are drawn in seconds and converted to whole samples (rounded, at least one sample), so the
intervals tile ``[0, n)`` exactly. No library draws alternating renewal intervals, hence these lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class IntervalConfig(BaseModel):
    """Algorithm 1's law: ``min_seconds + Gamma(shape, scale)`` seconds per interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_seconds: float = Field(default=0.5, ge=0)
    gamma_shape: float = Field(default=1.0, gt=0)
    gamma_scale: float = Field(default=10.0, gt=0)


@dataclass(frozen=True)
class Interval:
    index: int
    start: int
    """First sample (clean base-audio coordinates)."""
    end: int
    """One past the last sample."""
    defective: bool
    seconds: float
    """The drawn duration (before truncation at the end of the audio)."""


def simulate_intervals(
    rng: np.random.Generator, n_samples: int, rate: int, config: IntervalConfig = IntervalConfig()
) -> list[Interval]:
    """Tile ``[0, n_samples)`` with alternating clean/defective intervals (Algorithm 1, ``min`` fix)."""
    intervals: list[Interval] = []
    clean = bool(rng.integers(0, 2))  # "clean = random bool"
    start = 0
    while start < n_samples:
        seconds = config.min_seconds + float(rng.gamma(config.gamma_shape, config.gamma_scale))
        length = max(1, int(round(seconds * rate)))
        end = min(start + length, n_samples)  # the paper's max(...) is a typo for min(...)
        intervals.append(Interval(len(intervals), start, end, not clean, seconds))
        start = end
        clean = not clean
    return intervals
