"""Small real video files for the video-artifacts tests, written with PyAV (no fixtures on disk)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def loud_signal(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """int16 ``[channels, n]``: loud tones + noise, crossing zero often (so reductive clicks fit)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    out = []
    for ch in range(channels):
        x = 0.45 * np.sin(2 * np.pi * (110 + 55 * ch) * t) + 0.25 * np.sin(2 * np.pi * 1375 * t) + 0.05 * rng.standard_normal(t.size)
        out.append(np.round(np.clip(x, -1, 1) * 20000))
    return np.asarray(out, dtype=np.int16)


def make_video(path: Path, seconds: float = 3.0, rate: int = 44100, channels: int = 2, codec: str = "aac",
               video: bool = True, seed: int = 0) -> np.ndarray | None:
    """Write a video with a tiny picture stream and (unless ``channels == 0``) an audio stream.

    Returns the int16 audio that was encoded (``None`` without audio).
    """
    layout = {1: "mono", 2: "stereo"}.get(channels)
    audio = loud_signal(seconds, rate, channels, seed) if channels else None
    with av.open(str(path), "w") as out:
        vs = None
        if video:
            vs = out.add_stream("mpeg4", rate=10)
            vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        if audio is not None:
            aus = out.add_stream(codec, rate=rate, layout=layout)
            fmt = "s16" if codec.startswith("pcm") else "fltp"
            block = 1024
            for i in range(0, audio.shape[1], block):
                part = audio[:, i : i + block]
                arr = part.T.reshape(1, -1).copy() if fmt == "s16" else (part.astype(np.float32) / 32768)
                frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
                frame.sample_rate = rate
                frame.pts = i
                frame.time_base = Fraction(1, rate)
                for packet in aus.encode(frame):
                    out.mux(packet)
            for packet in aus.encode(None):
                out.mux(packet)
        if vs is not None:
            for i in range(int(seconds * 10)):
                img = np.full((32, 32, 3), (i * 20) % 256, dtype=np.uint8)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = i
                for packet in vs.encode(frame):
                    out.mux(packet)
            for packet in vs.encode(None):
                out.mux(packet)
    return audio
