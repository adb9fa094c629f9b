"""Decoding, resampling, channel conversion and WAV encoding.

Decoding uses soundfile (libsndfile: WAV, FLAC, OGG, MP3 ...) and falls back to PyAV (FFmpeg:
M4A, AAC, Opus in MP4, video containers). Resampling uses soxr. Anything that cannot be used
raises :class:`~defectbench.core.SkipItem` with a reason a person understands.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .core import SkipItem


class CaptureFd2:
    """Redirect file descriptor 2 into a temporary file while decoding; count the lines written.

    libsndfile's MP3 decoder (mpg123) reports damaged frames (and a file that is not MP3 at all) with
    fprintf(stderr, ...) from C, below Python's ``sys.stderr``, so only a dup2 of the descriptor catches
    it: the glitch recipe counts those lines, and every other decode keeps them off the user's terminal
    (a command's error is one line). The descriptor is the whole process's, so captures are serialised by
    one re-entrant lock: two threads decoding at once (a multi-threaded Dask worker) wait for each other
    instead of one restoring the other's temporary file as fd 2; a capture inside a capture nests.
    """

    _lock = threading.RLock()

    def __enter__(self) -> "CaptureFd2":
        self._lock.acquire()
        try:
            sys.stderr.flush()
            self._tmp = tempfile.TemporaryFile()
            self._saved = os.dup(2)
            os.dup2(self._tmp.fileno(), 2)
        except BaseException:
            self._lock.release()
            raise
        self.text = ""
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            sys.stderr.flush()
        finally:
            os.dup2(self._saved, 2)
            os.close(self._saved)
            self._lock.release()
        self._tmp.seek(0)
        self.text = self._tmp.read().decode("utf-8", "replace")
        self._tmp.close()

    @property
    def lines(self) -> int:
        return len(self.text.splitlines())


def decode(path: str | Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode a file to float32 ``[channels, samples]`` and its rate, or raise SkipItem.

    With ``max_seconds`` only the first ``max_seconds`` are decoded (and returned): a 10-minute file
    of which a recipe uses 18.6 s is never held whole in memory."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SkipItem(f"cannot read file: {exc.strerror}") from None
    if size == 0:
        raise SkipItem("empty file (0 bytes)")
    try:
        with CaptureFd2(), sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            frames = -1 if max_seconds is None else int(np.ceil(max_seconds * rate))
            data = f.read(frames=frames, dtype="float32", always_2d=True)
        audio = np.ascontiguousarray(data.T)
    except Exception as sf_exc:  # libsndfile's errors are plain RuntimeError/LibsndfileError
        try:
            audio, rate = _decode_pyav(path, max_seconds)
        except SkipItem:
            raise
        except Exception as av_exc:
            raise SkipItem(f"unreadable audio (soundfile: {_short(sf_exc)}; PyAV: {_short(av_exc)})") from None
    return audio, int(rate)


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]


def _decode_pyav(path: Path, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise SkipItem("no audio stream")
        stream = streams[0]
        rate = stream.rate or stream.codec_context.sample_rate
        channels = stream.channels or stream.codec_context.channels
        # fltp: planar float; to_ndarray() then gives [channels, samples] for every frame.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate)
        chunks = []
        wanted = None if max_seconds is None else int(np.ceil(max_seconds * rate))
        got = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
                got += chunks[-1].shape[-1]
            if wanted is not None and got >= wanted:
                break
        else:
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
    if not chunks:
        raise SkipItem("audio stream holds no samples")
    audio = np.concatenate(chunks, axis=1).astype(np.float32)
    if wanted is not None:
        audio = audio[:, :wanted]
    if audio.shape[0] != channels:
        audio = audio[:channels]
    return audio, int(rate)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample float32 ``[channels, n]`` with soxr (high quality, deterministic)."""
    if rate_in == rate_out:
        return audio
    out = soxr.resample(audio.T, rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(np.asarray(out, dtype=np.float32).reshape(-1, audio.shape[0]).T)


def convert_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Downmix/upmix ``[c, n]`` to 1 (mean) or 2 channels (mono duplicated; for c > 2 the even
    channels are averaged into left and the odd ones into right)."""
    c = audio.shape[0]
    if c == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True, dtype=np.float32)
    if c == 1:
        return np.repeat(audio, 2, axis=0)
    return np.stack([audio[0::2].mean(axis=0), audio[1::2].mean(axis=0)]).astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int) -> bytes:
    """Encode 1-D float32 (IEEE float WAV) or int16 (PCM WAV) audio to WAV bytes.

    Written by hand rather than with soundfile because libsndfile adds a PEAK chunk holding the
    wall-clock time to float WAVs, which would make two builds of the same dataset differ in bytes.
    The layout is the canonical RIFF/WAVE one (fmt, plus fact for float), which every reader opens.
    """
    audio = np.ascontiguousarray(audio)
    if audio.dtype == np.float32:
        tag, width = 3, 4
    elif audio.dtype == np.int16:
        tag, width = 1, 2
    else:
        raise TypeError(f"wav_bytes takes float32 or int16, not {audio.dtype}")
    channels = 1 if audio.ndim == 1 else audio.shape[0]
    frames = audio.shape[-1]
    data = (audio if audio.ndim == 1 else audio.T).astype(audio.dtype.newbyteorder("<")).tobytes()
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width, channels * width, 8 * width)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if tag == 3:
        chunks += b"fact" + struct.pack("<II", 4, frames)
    chunks += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Decode WAV/FLAC bytes (a dataset row's audio) to a 1-D array, keeping int16 as int16."""
    with sf.SoundFile(io.BytesIO(data)) as f:
        dtype = "int16" if f.subtype == "PCM_16" else "float32"
        audio = f.read(dtype=dtype)
        return audio, f.samplerate


def as_float32(audio: np.ndarray) -> np.ndarray:
    """int16 PCM -> float32 in [-1, 1) (x / 32768, as libsndfile reads PCM_16 as float); float stays float32."""
    audio = np.asarray(audio)
    return audio.astype(np.float32) / 32768.0 if audio.dtype == np.int16 else audio.astype(np.float32, copy=False)


def read_wav_float(data: bytes) -> np.ndarray:
    """A dataset row's WAV bytes -> float32 mono 1-D (channels averaged): what the neural models take."""
    audio, _ = read_wav_bytes(data)
    audio = as_float32(audio)
    return audio if audio.ndim == 1 else audio.mean(axis=1, dtype=np.float32)
