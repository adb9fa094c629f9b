"""Audio distortion (video paper, section 4.3; SPEC 1.4): clip each channel to ``[-v, v]``.

``v = r * max|x|`` of the channel, ``r`` uniform from {0.1, ..., 0.7}; ``max|x|`` over the audio given
to :meth:`Distortion.sample` (the whole base audio by default, the interval when drawn per interval).
``v`` is rounded down to an integer exactly (``Fraction``: no float error at the boundary), so the
clipped int16 audio never exceeds ``r * max|x|``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, ClassVar, Literal

import numpy as np

from . import DefectConfig, register
from .hum import peak_abs


@register
class Distortion:
    kind: ClassVar[str] = "distortion"
    audio: ClassVar[str] = "int16-multichannel"
    label: ClassVar[str] = "distortion"
    per_audio: ClassVar[tuple[str, ...]] = ("ratio", "max_abs", "clip_values")

    class Config(DefectConfig):
        kind: Literal["distortion"] = "distortion"
        ratios: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)

    def __init__(self, config: Config) -> None:
        self.config = config

    def sample(self, rng: np.random.Generator, audio: np.ndarray, rate: int) -> dict[str, Any]:
        ratio = float(self.config.ratios[int(rng.integers(0, len(self.config.ratios)))])
        peaks = [peak_abs(ch) for ch in audio]
        clip = [math.floor(Fraction(str(ratio)) * p) for p in peaks]
        return {"ratio": ratio, "max_abs": peaks, "clip_values": clip}

    def apply(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        v = np.asarray(params["clip_values"], dtype=np.int32)[:, None]
        out = np.clip(audio.astype(np.int32), -v, v).astype(np.int16)
        return out, out != audio
