"""Audio hiss (video paper, section 4.2; SPEC 1.4): add uniform white noise in ``[-A, A]``.

``A`` is drawn as the hum amplitude: integer uniform in the open range (60, 32768 - max|x|); where that
range is empty the defect is not applicable (recorded, audio untouched). The noise itself is integer
uniform in ``[-A, A]``, independent per channel, generated from ``params["noise_seed"]`` (drawn per
interval, so that every defective interval gets fresh noise even when ``A`` is shared by the base
audio). Sums saturate to int16.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from . import DefectConfig, register
from .hum import amplitude_range, peak_abs, saturate


@register
class Hiss:
    kind: ClassVar[str] = "hiss"
    audio: ClassVar[str] = "int16-multichannel"
    label: ClassVar[str] = "hiss"
    per_audio: ClassVar[tuple[str, ...]] = ("applicable", "amplitude", "max_abs")

    class Config(DefectConfig):
        kind: Literal["hiss"] = "hiss"
        amplitude_min: int = 60
        """Exclusive lower bound of the integer amplitude; the upper one is ``32768 - max|x|``."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def sample(self, rng: np.random.Generator, audio: np.ndarray, rate: int) -> dict[str, Any]:
        peak = peak_abs(audio)
        amp = amplitude_range(self.config.amplitude_min, peak)
        seed = int(rng.integers(0, 2**63))
        if amp is None:
            return {"applicable": False, "max_abs": peak, "noise_seed": seed,
                    "reason": f"no integer amplitude in ({self.config.amplitude_min}, {32768 - peak})"}
        return {"applicable": True, "amplitude": int(rng.integers(amp[0], amp[1] + 1)),
                "max_abs": peak, "noise_seed": seed}

    def apply(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        if not params.get("applicable", True):
            return audio.copy(), np.zeros(audio.shape, dtype=bool)
        a = int(params["amplitude"])
        noise = np.random.default_rng(int(params["noise_seed"])).integers(-a, a + 1, size=audio.shape, dtype=np.int32)
        out = saturate(audio.astype(np.int32) + noise)
        return out, out != audio
