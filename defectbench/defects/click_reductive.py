"""Reductive audio click (video paper, section 4.5.1 [sic]; SPEC 1.4): remove a segment of samples.

A removal ``x[p : p+L]`` is allowed only where (1) the removed segment crosses zero (it holds a
negative and a positive sample) and (2) the removal leaves a sample-to-sample jump
``|x[p+L] - x[p-1]| >= 3277`` (10 % of full scale); both in *every* channel, since one removal cuts
the same time out of all channels (a stereo stream loses both channels at once). ``L`` is integer
uniform in ``length`` (the paper gives none); ``p`` is uniform among the allowed positions (found
exhaustively with cumulative sums, not by rejection sampling, so the count of clicks does not depend
on luck). Clicks come at ``rate_per_s`` per second of defective interval (Poisson); a click with no
allowed position is recorded in ``not_placed``. Removals never touch each other's neighbours.

The audio gets shorter: ``params["removed"]`` lists ``[p, L]`` (positions in the input) and the mask
(in output coordinates) marks the first sample after each junction, where the discontinuity is.
Later audio shifts; the pipeline compares chunks with the clean audio at the same cumulative shift.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from . import DefectConfig, register


def allowed_positions(audio: np.ndarray, length: int, min_jump: int, signs: list | None = None) -> np.ndarray:
    """Boolean over ``p in [0, n)``: removing ``audio[:, p:p+length]`` meets both conditions in all channels.

    ``signs`` (from :func:`sign_counts`) can be passed to reuse the cumulative counts across lengths.
    """
    n = audio.shape[-1]
    ok = np.zeros(n, dtype=bool)
    if n < length + 2:
        return ok
    m = n - length - 1  # p runs over 1 .. n-length-1: x[p-1] and x[p+length] are inside the audio
    inner = ok[1 : 1 + m]
    inner[:] = True
    for x, (neg, pos) in zip(audio.astype(np.int32), signs or sign_counts(audio)):
        inner &= np.abs(x[1 + length : 1 + length + m] - x[:m]) >= min_jump
        # the removed x[p : p+length] holds a negative and a positive sample (a zero crossing)
        inner &= (neg[1 + length : 1 + length + m] > neg[1 : 1 + m]) & (pos[1 + length : 1 + length + m] > pos[1 : 1 + m])
    return ok


def sign_counts(audio: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per channel, cumulative counts of negative and positive samples (index i: samples before i)."""
    return [(np.concatenate(([0], np.cumsum(x < 0))), np.concatenate(([0], np.cumsum(x > 0)))) for x in audio]


@register
class ClickReductive:
    kind: ClassVar[str] = "click_reductive"
    audio: ClassVar[str] = "int16-multichannel"
    label: ClassVar[str] = "click"
    per_audio: ClassVar[tuple[str, ...]] = ()

    class Config(DefectConfig):
        kind: Literal["click_reductive"] = "click_reductive"
        min_jump: int = Field(default=3277, ge=1)
        length: tuple[int, int] = (48, 960)
        """Inclusive range of removed samples (1 ms to 20 ms at 48 kHz; the paper states none)."""
        rate_per_s: float = Field(default=0.4, gt=0)

    def __init__(self, config: Config) -> None:
        if not 1 <= config.length[0] <= config.length[1]:
            raise ValueError(f"length range {config.length} must satisfy 1 <= low <= high")
        self.config = config

    def sample(self, rng: np.random.Generator, audio: np.ndarray, rate: int) -> dict[str, Any]:
        n = audio.shape[-1]
        count = int(rng.poisson(self.config.rate_per_s * n / rate))
        blocked = np.zeros(n, dtype=bool)
        signs = sign_counts(audio) if count else None
        removed, jumps, not_placed = [], [], 0
        for _ in range(count):
            length = int(rng.integers(self.config.length[0], self.config.length[1] + 1))
            ok = allowed_positions(audio, length, self.config.min_jump, signs) & ~blocked
            candidates = np.flatnonzero(ok)
            if not candidates.size:
                not_placed += 1
                continue
            p = int(candidates[rng.integers(0, candidates.size)])
            removed.append([p, length])
            jumps.append([int(abs(int(ch[p + length]) - int(ch[p - 1]))) for ch in audio])
            # a later removal [q, q+L'] must leave [p-1, p+length] alone and vice versa: q in
            # [p-1-L', p+length+1] is blocked; L' is unknown yet, so block with the largest L'.
            blocked[max(0, p - 1 - self.config.length[1]) : p + length + 2] = True
        order = np.argsort([r[0] for r in removed], kind="stable")
        return {"removed": [removed[i] for i in order], "jumps": [jumps[i] for i in order], "not_placed": not_placed}

    def apply(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        n = audio.shape[-1]
        keep = np.ones(n, dtype=bool)
        for p, length in params["removed"]:
            keep[p : p + length] = False
        out = audio[:, keep]
        mask = np.zeros(out.shape, dtype=bool)
        shift = 0
        for p, length in sorted(params["removed"]):
            shift += length
            mask[:, p + length - shift] = True  # output index of the first sample after the junction
        return out, mask
