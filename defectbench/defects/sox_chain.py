"""Mild SoX post-processing applied after the click (music paper, section 4.1; SPEC 1.2).

A random non-empty subset of {reverb, two-band EQ, compression}, in random order, each with its
parameters drawn from the mild ranges below (recipe defaults, overridable). It runs the real
``sox`` program through the pip package ``sox`` (pysox), with dither off so that the output is a
pure function of the input. Length is kept (trimmed or zero-padded to the input's length) and the
output clipped to [-1, 1]. The mask is all False: post-processing is not a defect, and the target
stays the frames of the inserted click.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from . import DefectConfig, register

EFFECTS = ("reverb", "eq", "compand")

logging.getLogger("sox").setLevel(logging.ERROR)  # pysox logs every call at INFO/WARNING


class SoxChainConfig(DefectConfig):
    kind: str = "sox_chain"
    effects: tuple[str, ...] = EFFECTS
    reverberance: tuple[float, float] = (10.0, 50.0)
    """reverb: reverberance (%), uniform in this range."""
    room_scale: tuple[float, float] = (10.0, 60.0)
    pre_delay_ms: tuple[float, float] = (0.0, 20.0)
    wet_gain_db: tuple[float, float] = (-6.0, 0.0)
    eq_low_hz: tuple[float, float] = (60.0, 400.0)
    eq_high_hz: tuple[float, float] = (1500.0, 8000.0)
    eq_gain_db: tuple[float, float] = (-6.0, 6.0)
    eq_q: tuple[float, float] = (0.5, 2.0)
    comp_threshold_db: tuple[float, float] = (-30.0, -15.0)
    comp_ratio: tuple[float, float] = (1.5, 4.0)
    comp_attack_s: tuple[float, float] = (0.005, 0.05)
    comp_decay_s: tuple[float, float] = (0.05, 0.3)
    scope: str = Field(default="segment", pattern="^(segment|piece)$")
    """Draw a chain per segment, or one per piece applied to each of its segments."""


def _u(rng: np.random.Generator, lo_hi: tuple[float, float], digits: int = 4) -> float:
    return round(float(rng.uniform(*lo_hi)), digits)


@register
class SoxChain:
    kind: ClassVar[str] = "sox_chain"
    audio: ClassVar[str] = "float-mono"
    Config: ClassVar[type[SoxChainConfig]] = SoxChainConfig

    def __init__(self, config: SoxChainConfig) -> None:
        unknown = set(config.effects) - set(EFFECTS)
        if unknown or not config.effects:
            raise ValueError(f"effects must be a non-empty subset of {EFFECTS}, got {config.effects}")
        self.config = config

    def sample(self, rng: np.random.Generator, audio: np.ndarray, rate: int) -> dict[str, Any]:
        c = self.config
        names = list(c.effects)
        while True:  # a uniformly drawn non-empty subset
            chosen = [name for name in names if rng.random() < 0.5]
            if chosen:
                break
        order = [chosen[i] for i in rng.permutation(len(chosen))]
        chain = []
        for name in order:
            if name == "reverb":
                chain.append({"effect": "reverb", "reverberance": _u(rng, c.reverberance),
                              "room_scale": _u(rng, c.room_scale), "pre_delay": _u(rng, c.pre_delay_ms),
                              "wet_gain": _u(rng, c.wet_gain_db)})
            elif name == "eq":
                chain.append({"effect": "eq",
                              "low_hz": _u(rng, c.eq_low_hz, 1), "low_gain_db": _u(rng, c.eq_gain_db),
                              "low_q": _u(rng, c.eq_q),
                              "high_hz": _u(rng, c.eq_high_hz, 1), "high_gain_db": _u(rng, c.eq_gain_db),
                              "high_q": _u(rng, c.eq_q)})
            else:
                chain.append({"effect": "compand", "threshold_db": _u(rng, c.comp_threshold_db),
                              "ratio": _u(rng, c.comp_ratio), "attack": _u(rng, c.comp_attack_s),
                              "decay": _u(rng, c.comp_decay_s)})
        return {"chain": chain}

    @staticmethod
    def transformer(chain: list[dict[str, Any]]):
        import sox

        tfm = sox.Transformer()
        tfm.set_globals(dither=False, guard=False, verbosity=1)
        for step in chain:
            if step["effect"] == "reverb":
                tfm.reverb(reverberance=step["reverberance"], room_scale=step["room_scale"],
                           pre_delay=step["pre_delay"], wet_gain=step["wet_gain"])
            elif step["effect"] == "eq":
                tfm.equalizer(step["low_hz"], step["low_q"], step["low_gain_db"])
                tfm.equalizer(step["high_hz"], step["high_q"], step["high_gain_db"])
            else:
                t = step["threshold_db"]
                # compand transfer function: unity below the threshold, slope 1/ratio above it.
                tfm.compand(attack_time=step["attack"], decay_time=step["decay"], soft_knee_db=3.0,
                            tf_points=[(-90.0, -90.0), (t, t), (0.0, round(t - t / step["ratio"], 4))])
        return tfm

    def apply(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(audio, dtype=np.float32)
        y = self.transformer(params["chain"]).build_array(input_array=x, sample_rate_in=rate)
        y = np.asarray(y, dtype=np.float32).reshape(-1)
        if len(y) >= len(x):
            y = y[: len(x)]
        else:
            y = np.concatenate([y, np.zeros(len(x) - len(y), np.float32)])
        return np.clip(y, -1.0, 1.0), np.zeros(len(x), dtype=bool)
