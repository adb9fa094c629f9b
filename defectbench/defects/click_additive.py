"""Additive audio click (video paper, section 4.4.1; SPEC 1.4): add a low-passed unit impulse.

An impulse of amplitude 32768 goes through a 3rd-order Butterworth low-pass (``scipy.signal.butter``)
whose normalised cut-off is uniform in (0.05, 0.45). The paper does not say what the cut-off is
normalised to; a range ending at 0.45 only makes sense below 0.5, so it is read as a fraction of the
*sampling rate* (0.45 -> 21.6 kHz at 48 kHz; scipy's own convention, a fraction of Nyquist, would cap
the range at 0.45 of the band for no reason). Clicks fall in the audio given to ``apply`` (one
defective interval) at ``rate_per_s`` clicks per second: a Poisson count, positions uniform. The same
clicks go into every channel; sums saturate to int16. The cut-off is a per-base-audio parameter by
default, positions are drawn per interval.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field
from scipy.signal import butter, lfilter

from . import DefectConfig, register
from .hum import saturate


def click_shape(cutoff: float, order: int = 3, amplitude: float = 32768.0, max_len: int = 4096) -> np.ndarray:
    """The filtered impulse, rounded to integers and cut after its last non-zero sample."""
    b, a = butter(order, cutoff, btype="low", fs=1.0)
    impulse = np.zeros(max_len)
    impulse[0] = amplitude
    h = np.round(lfilter(b, a, impulse)).astype(np.int32)
    nz = np.flatnonzero(h)
    return h[: nz[-1] + 1] if nz.size else h[:1]


@register
class ClickAdditive:
    kind: ClassVar[str] = "click_additive"
    audio: ClassVar[str] = "int16-multichannel"
    label: ClassVar[str] = "click"
    per_audio: ClassVar[tuple[str, ...]] = ("cutoff",)

    class Config(DefectConfig):
        kind: Literal["click_additive"] = "click_additive"
        cutoff: tuple[float, float] = (0.05, 0.45)
        """Range of the Butterworth cut-off, as a fraction of the sampling rate (both < 0.5)."""
        order: int = Field(default=3, ge=1)
        amplitude: float = 32768.0
        rate_per_s: float = Field(default=0.4, gt=0)
        """Mean clicks per second of defective interval (the paper states none; with both click kinds
        at 0.4, click chunks per no-defect chunk come to about 0.33, its Table 1 ratio; see the card)."""

    def __init__(self, config: Config) -> None:
        lo, hi = config.cutoff
        if not 0 < lo < hi < 0.5:
            raise ValueError(f"cutoff range {config.cutoff} must satisfy 0 < low < high < 0.5 (fraction of the rate)")
        self.config = config

    def sample(self, rng: np.random.Generator, audio: np.ndarray, rate: int) -> dict[str, Any]:
        n = audio.shape[-1]
        lo, hi = self.config.cutoff
        cutoff = float(rng.uniform(lo, hi))
        count = int(rng.poisson(self.config.rate_per_s * n / rate))
        positions = np.sort(rng.integers(0, n, size=count)).tolist() if n else []
        return {"cutoff": cutoff, "positions": positions}

    def apply(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        n = audio.shape[-1]
        shape = click_shape(float(params["cutoff"]), self.config.order, self.config.amplitude)
        added = np.zeros(n, dtype=np.int32)
        for p in params["positions"]:
            seg = shape[: n - p]
            added[p : p + len(seg)] += seg
        out = saturate(audio.astype(np.int32) + added)
        return out, out != audio
