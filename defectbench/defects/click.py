"""Additive digital clicks in music (music paper, section 4; SPEC 1.1).

With probability ``probability`` a segment gets one click: its position is uniform over the
segment, its length 1 to 3 samples; every click sample becomes ``x[n] + s * a`` with one amplitude
offset ``a ~ U[0.3, 1)`` and one random sign ``s`` per click, the sign inverted for any sample where
``x[n] + s * a`` would leave [-1, 1] (since ``|x| <= 1`` and ``a < 1``, the inverted sum always fits).

Not in the paper, for training only (``defectbench train --set defect.busy_fraction=F``): a fraction F of
the clicks is placed where the music is busiest instead of uniformly, the position drawn with probability
proportional to the mean absolute sample-to-sample jump over the 64 samples around it. Those are the clicks
a detector misses (inside snare and hi-hat noise, benchmarks/bench_click_errors.py), and uniform placement
puts few of them there. At F = 0 (every recipe) no extra random number is drawn, so
builds are unchanged.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import Field, model_validator

from . import DefectConfig, register


class ClickConfig(DefectConfig):
    kind: str = "click"
    probability: float = Field(default=0.1, ge=0, le=1)
    min_length: int = Field(default=1, ge=1)
    max_length: int = Field(default=3, ge=1)
    min_amplitude: float = Field(default=0.3, gt=0, lt=1)
    max_amplitude: float = Field(default=1.0, gt=0, le=1)
    busy_fraction: float = Field(default=0.0, ge=0, le=1)  # training only: see the module docstring

    @model_validator(mode="after")
    def _ranges(self) -> "ClickConfig":
        if self.max_length < self.min_length:
            raise ValueError("max_length must be >= min_length")
        if self.max_amplitude <= self.min_amplitude:
            raise ValueError("max_amplitude must be > min_amplitude")
        return self


BUSY_WINDOW = 64  # samples over which busy placement averages the jumps (1.5 ms at 44.1 kHz)


def busy_weights(audio: np.ndarray, length: int) -> np.ndarray:
    """Placement weights of a click of ``length`` samples: the mean |x[n+1] - x[n]| around each start."""
    x = np.asarray(audio, dtype=np.float64)
    jumps = np.abs(np.diff(x, prepend=x[:1]))
    local = np.convolve(jumps, np.ones(BUSY_WINDOW) / BUSY_WINDOW, mode="same")
    return local[: len(x) - length + 1]


def busy_position(rng: np.random.Generator, audio: np.ndarray, length: int) -> int:
    """A start drawn with probability proportional to :func:`busy_weights` (uniform over silence)."""
    w = busy_weights(audio, length)
    total = w.sum()
    if not total > 0:
        return int(rng.integers(0, len(w)))
    return int(rng.choice(len(w), p=w / total))


@register
class Click:
    kind: ClassVar[str] = "click"
    audio: ClassVar[str] = "float-mono"
    Config: ClassVar[type[ClickConfig]] = ClickConfig

    def __init__(self, config: ClickConfig) -> None:
        self.config = config

    def check(self, length: int, rate: int) -> None:
        """Raise ValueError if the recipe's ranges do not fit a segment of ``length`` samples."""
        if self.config.max_length > length:
            raise ValueError(f"defect.max_length ({self.config.max_length} samples) is longer than the segment "
                             f"({length} samples)")

    @staticmethod
    def columns() -> dict[str, Any]:
        """The metadata columns of a click (``datasets`` features): empty where a segment has no click."""
        from datasets import List, Value

        return {"click_position": Value("int32"), "click_length": Value("int32"),
                "click_amplitude": Value("float32"), "click_signs": List(Value("int8"))}

    @staticmethod
    def column_values(params: dict[str, Any]) -> dict[str, Any]:
        present = params.get("present", False)
        return {"click_position": params["position"] if present else None,
                "click_length": params["length"] if present else None,
                "click_amplitude": params["amplitude"] if present else None,
                "click_signs": params["signs"] if present else []}

    def sample(self, rng: np.random.Generator, audio: np.ndarray, rate: int) -> dict[str, Any]:
        c = self.config
        present = bool(rng.random() < c.probability)
        if not present:
            return {"present": False}
        length = int(rng.integers(c.min_length, c.max_length + 1))
        if c.busy_fraction > 0 and rng.random() < c.busy_fraction:
            position = busy_position(rng, audio, length)
        else:
            position = int(rng.integers(0, len(audio) - length + 1))
        amplitude = float(rng.uniform(c.min_amplitude, c.max_amplitude))
        sign = int(rng.choice([-1, 1]))
        x = audio[position : position + length].astype(np.float64)
        signs = np.where(np.abs(x + sign * amplitude) > 1.0, -sign, sign)
        return {
            "present": True,
            "position": position,
            "length": length,
            "amplitude": amplitude,
            "sign": sign,
            "signs": [int(s) for s in signs],
        }

    def apply(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        out = np.array(audio, dtype=np.float32, copy=True)
        mask = np.zeros(len(audio), dtype=bool)
        if params["present"]:
            p, n = params["position"], params["length"]
            offsets = np.asarray(params["signs"], dtype=np.float64) * params["amplitude"]
            out[p : p + n] = (audio[p : p + n].astype(np.float64) + offsets).astype(np.float32)
            mask[p : p + n] = True
        return out, mask
