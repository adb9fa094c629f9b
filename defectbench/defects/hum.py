"""Audio hum (video paper, section 4.1; SPEC 1.4): add a sine of integer frequency and amplitude.

Frequency: integer uniform in the open range (20, 1220) Hz, i.e. 21..1219. Amplitude: integer uniform
in the open range (60, 32768 - max|x|), ``max|x|`` over the audio given to :meth:`Hum.sample` (the
whole base audio by default, the interval when parameters are drawn per interval). Where that range
holds no integer the defect is not applicable: ``sample`` returns ``{"applicable": False, ...}`` and
``apply`` leaves the audio untouched.

Audio is int16 ``[channels, n]``; the same tone goes into every channel (Algorithm 1 applies one
parameter set per channel). ``params["offset"]`` (the first sample's index in the base audio, set by
the pipeline) keeps the tone's phase continuous across intervals: the hum is one steady source that
the intervals switch on and off. Sums saturate to int16.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from . import DefectConfig, register

INT16_MAX = 32767


def peak_abs(audio: np.ndarray) -> int:
    """``max|x|`` of int16 audio, computed in int32 so that -32768 gives 32768.

    A :class:`~defectbench.spool.SpooledAudio` (or one of its channels) kept its peak as it was written."""
    if hasattr(audio, "peak_abs"):
        return int(audio.peak_abs())
    return int(np.abs(audio.astype(np.int32)).max()) if audio.size else 0


def amplitude_range(low: int, peak: int) -> tuple[int, int] | None:
    """Integers strictly inside ``(low, 32768 - peak)``, as an inclusive ``(first, last)``; None if empty."""
    first, last = low + 1, 32768 - peak - 1
    return (first, last) if first <= last else None


def saturate(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -32768, INT16_MAX).astype(np.int16)


@register
class Hum:
    kind: ClassVar[str] = "hum"
    audio: ClassVar[str] = "int16-multichannel"
    label: ClassVar[str] = "hum"
    per_audio: ClassVar[tuple[str, ...]] = ("applicable", "frequency", "amplitude", "max_abs")
    """Keys drawn once per base audio unless the recipe asks for parameters per interval."""

    class Config(DefectConfig):
        kind: Literal["hum"] = "hum"
        frequency: tuple[int, int] = (20, 1220)
        """Exclusive bounds (Hz) of the integer frequency."""
        amplitude_min: int = 60
        """Exclusive lower bound of the integer amplitude; the upper one is ``32768 - max|x|``."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def sample(self, rng: np.random.Generator, audio: np.ndarray, rate: int) -> dict[str, Any]:
        peak = peak_abs(audio)
        amp = amplitude_range(self.config.amplitude_min, peak)
        f_lo, f_hi = self.config.frequency
        if amp is None or f_hi - f_lo < 2:
            return {"applicable": False, "max_abs": peak,
                    "reason": f"no integer amplitude in ({self.config.amplitude_min}, {32768 - peak})"}
        return {
            "applicable": True,
            "frequency": int(rng.integers(f_lo + 1, f_hi)),
            "amplitude": int(rng.integers(amp[0], amp[1] + 1)),
            "max_abs": peak,
        }

    def apply(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if not params.get("applicable", True):
            return audio.copy(), np.zeros(audio.shape, dtype=bool)
        offset = int(params.get("offset", 0))
        n = np.arange(offset, offset + audio.shape[-1], dtype=np.int64)
        # (f * n) mod rate in integers: the phase stays exact however long the base audio is.
        phase = 2 * np.pi * ((int(params["frequency"]) * n) % rate) / rate
        tone = np.round(int(params["amplitude"]) * np.sin(phase)).astype(np.int32)
        out = saturate(audio.astype(np.int32) + tone)
        return out, out != audio
