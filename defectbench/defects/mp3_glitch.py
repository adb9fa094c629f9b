"""MP3 frame-corruption glitches (music paper, section 5; SPEC 1.3).

The audio is encoded to 128 kbps mono MP3 with LAME; each MP3 frame is chosen with probability
``probability`` (the paper's P_glitch = 0.05); in a chosen frame a run of ``round(N(run_mean,
run_std))`` random bytes, clipped to [1, payload], overwrites the frame at a uniform place after its
header (SPEC 1.3: headers stay intact, or decoders drop frames and lose alignment). Clean and
corrupted streams are decoded by the same decoder (libsndfile / mpg123), aligned by the 1105-sample
codec delay and clipped to [-1, 1]; a corruption that changes the decoded length is decoded from the
original bytes and recorded as not degraded (the paper's fallback, :func:`defectbench.mp3.glitch`).

Target (section 5.2): a framewise *log-spectral distance* between the corrupted and the clean decode,
one frame per ``hop`` samples (Hann window of ``n_fft`` centred on the frame, per-bin power floor
``floor_db``); a frame is positive where the distance exceeds ``threshold_db``. ``apply`` returns the
degraded decode and the per-sample mask (each positive frame's ``hop`` samples).

Calibration of the defaults (measured on the ``synth`` corpus, 6 pieces x 50 segments, P = 0.05;
benchmarks/RESULTS.md "fma-mp3-glitch"): damage from MP3 frame i reaches decoded blocks i..i+3 of
1152 samples (bit reservoir: frames i+1, i+2 may keep main data in frame i's bytes; filter-bank
overlap adds one more block) and never earlier blocks. Outside that reach the same decoder on the
same bytes is not bit-identical after a frame it reported as broken: mpg123 leaves float32
rounding-level differences (|diff| about 1e-7) for a while; with the floor at -80 dB per bin (about
the per-bin power of 16-bit quantisation noise under this window) their distance stays below
0.006 dB. Inside the reach the distance is bimodal (rounding noise around 0.001 dB, damage around
10 dB); ``threshold_db = 0.5`` sits in the valley, about 90x above the largest unreachable value, and
gives about 8 % positive frames (the paper: 8.04 %).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pydantic import Field, model_validator

from .. import mp3
from ..core import DefectbenchError
from . import DefectConfig, register

MPEG1_RATES = (32000, 44100, 48000)
"""Rates LAME encodes as MPEG-1 (1152 samples per frame), the only ones whose reach was measured."""


class Mp3GlitchConfig(DefectConfig):
    kind: str = "mp3-glitch"
    bitrate: int = Field(default=128, gt=0)
    """kbps, CBR (the paper: 128 kbps mono)."""
    quality: int = Field(default=3, ge=0, le=9)
    """LAME's algorithm quality (0 best .. 9 fastest; the paper does not state it). 3 encodes about
    twice as fast as 2 (benchmarks/RESULTS.md), and encoding is most of the recipe's time."""
    probability: float = Field(default=0.05, ge=0, le=1)
    """Per MP3 frame."""
    run_mean: float = Field(default=120.0, gt=0)
    run_std: float = Field(default=60.0, ge=0)
    distance: str = Field(default="log-spectral", pattern="^log-spectral$")
    """Framewise distance: RMS over bins of the dB difference of power spectra (the only one)."""
    n_fft: int = Field(default=256, gt=0)
    hop: int = Field(default=128, gt=0)
    """Samples per target frame (16384 / 128 frames = 128)."""
    floor_db: float = -80.0
    """Per-bin power floor added to both spectra (dB re 1): differences below it do not count."""
    threshold_db: float = Field(default=0.5, gt=0)
    """A frame is positive where the log-spectral distance exceeds this (dB)."""

    @model_validator(mode="after")
    def _window(self) -> "Mp3GlitchConfig":
        if self.n_fft < self.hop or (self.n_fft - self.hop) % 2:
            raise ValueError("n_fft must be >= hop and n_fft - hop even (window centred on each frame)")
        return self


@dataclass
class Outcome:
    """Everything one application produced (the pipeline's counters and metadata come from here)."""

    clean: np.ndarray
    """The clean decode, aligned and clipped: the reference the target compares against."""
    degraded: np.ndarray
    distance: np.ndarray
    """Per frame of ``hop`` samples, dB."""
    target: np.ndarray
    """Per frame, uint8 0/1."""
    frames: list[mp3.Frame]
    corruptions: list[dict[str, Any]]
    """Each drawn corruption's params plus ``fallback`` (bool) and ``reach`` ([first, end) source samples)."""
    stderr_lines: int


def reach(frame: int) -> tuple[int, int]:
    """Source samples [first, end) that damage in MP3 frame ``frame`` can change: blocks i..i+3 (measured)."""
    return frame * mp3.SAMPLES_PER_FRAME - mp3.DELAY, (frame + 4) * mp3.SAMPLES_PER_FRAME - mp3.DELAY


def power_spectra(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Power spectrum per frame of ``hop`` samples: a periodic Hann window of ``n_fft`` centred on it.

    ``len(x)`` must be a multiple of ``hop``; the signal is zero-padded by ``(n_fft - hop) / 2`` at
    both ends so that frame f covers samples ``[f*hop - pad, f*hop + hop + pad)``.
    """
    pad = (n_fft - hop) // 2
    windows = sliding_window_view(np.pad(x.astype(np.float64), (pad, pad)), n_fft)[::hop][: len(x) // hop]
    w = np.hanning(n_fft + 1)[:-1]
    return np.abs(np.fft.rfft(windows * w, axis=1)) ** 2


def log_spectral_distance(clean: np.ndarray, degraded: np.ndarray, n_fft: int, hop: int, floor_db: float) -> np.ndarray:
    """Per frame: sqrt(mean over bins of (10 log10((P_d + e) / (P_c + e)))^2), e = 10^(floor_db/10)."""
    eps = 10.0 ** (floor_db / 10.0)
    pc = power_spectra(clean, n_fft, hop)
    pd = power_spectra(degraded, n_fft, hop)
    return np.sqrt(np.mean((10.0 * np.log10((pd + eps) / (pc + eps))) ** 2, axis=1))


@register
class Mp3Glitch:
    kind: ClassVar[str] = "mp3-glitch"
    audio: ClassVar[str] = "float-mono-piece"
    Config: ClassVar[type[Mp3GlitchConfig]] = Mp3GlitchConfig

    def __init__(self, config: Mp3GlitchConfig) -> None:
        self.config = config
        self._cache: tuple[tuple[int, str], bytes, list[mp3.Frame]] | None = None

    def encode(self, audio: np.ndarray, rate: int) -> tuple[bytes, list[mp3.Frame]]:
        """LAME encode + frame table, cached for the last audio (``sample`` then ``apply`` encode once)."""
        if rate not in MPEG1_RATES:
            raise DefectbenchError(f"mp3-glitch needs an MPEG-1 rate {MPEG1_RATES}, got {rate} Hz")
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        key = (rate, hashlib.sha256(audio.tobytes()).hexdigest())
        if self._cache is None or self._cache[0] != key:
            data = mp3.encode(audio, rate, self.config.bitrate, self.config.quality)
            self._cache = (key, data, mp3.read_frames(data))
        return self._cache[1], self._cache[2]

    def sample(self, rng: np.random.Generator, audio: np.ndarray, rate: int) -> dict[str, Any]:
        """Draw the chosen frames and their runs. The run's bytes come from a recorded 63-bit seed
        (``numpy.random.default_rng(seed).bytes(length)``) so that params stay small and replayable."""
        c = self.config
        data, frames = self.encode(audio, rate)
        chosen = np.nonzero(rng.random(len(frames)) < c.probability)[0]
        runs = []
        for i in chosen:
            f = frames[int(i)]
            length = int(np.clip(np.round(rng.normal(c.run_mean, c.run_std)), 1, f.payload))
            offset = f.header_size + int(rng.integers(0, f.payload - length + 1))
            runs.append({"frame": int(i), "offset": offset, "byte": f.offset + offset, "length": length,
                         "seed": int(rng.integers(0, 2**63))})
        return {"bitrate": c.bitrate, "quality": c.quality, "mp3_frames": len(frames), "mp3_bytes": len(data),
                "mp3_sha256": hashlib.sha256(data).hexdigest(), "corruptions": runs}

    def run(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> Outcome:
        """Apply ``params`` and compute the target; the full record behind :meth:`apply`."""
        c = self.config
        if (params["bitrate"], params["quality"]) != (c.bitrate, c.quality):
            raise DefectbenchError(f"params were drawn at {params['bitrate']} kbps quality {params['quality']}, "
                                   f"this defect encodes at {c.bitrate} kbps quality {c.quality}")
        data, frames = self.encode(audio, rate)
        if hashlib.sha256(data).hexdigest() != params["mp3_sha256"]:
            raise DefectbenchError("the MP3 encode differs from the one the params were drawn on "
                                   "(other audio, or another LAME build)")
        corruptions = [mp3.Corruption(r["frame"], r["offset"], np.random.default_rng(r["seed"]).bytes(r["length"]))
                       for r in params["corruptions"]]
        n = len(audio)
        result = mp3.glitch(data, n, corruptions, frames)
        fell_back = {k.frame for k in result.fallback}
        records = [{**r, "fallback": r["frame"] in fell_back, "reach": list(reach(r["frame"]))}
                   for r in params["corruptions"]]
        padded = -n % c.hop  # frames of hop samples; a ragged tail frame is zero-padded
        clean = np.pad(result.clean, (0, padded))
        degraded = np.pad(result.degraded, (0, padded))
        distance = log_spectral_distance(clean, degraded, c.n_fft, c.hop, c.floor_db)
        target = (distance > c.threshold_db).astype(np.uint8)
        return Outcome(result.clean, result.degraded, distance, target, frames, records, result.stderr_lines)

    def apply(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """Degraded decode (float32, clipped) and the per-sample mask of positive target frames."""
        out = self.run(audio, rate, params)
        mask = np.repeat(out.target.astype(bool), self.config.hop)[: len(audio)]
        return out.degraded, mask
