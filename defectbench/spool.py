"""A base audio spooled to disk: int16 PCM written a block at a time, then read back in slices.

The video pipeline uses the whole of a base audio several times (the clean chunks of each channel,
one degraded copy per defect, the clean audio at a shifted position for every comparison) and draws
per-audio parameters from its peak. Held in memory, a 47-minute stereo video's audio is 270 MB as
int16 (1 GB as float32). The engine therefore writes a streamed item's blocks to an unlinked
temporary file in the build's own folder (the kernel frees it when the file is closed or the process
dies, so nothing is ever left behind) and the pipeline reads the slices it needs: memory stays flat
in the length of the file.

Hand-written because no library does this: ``numpy.memmap`` would serve the slices, but every page
it touches counts toward the process's resident memory, which then grows with the file again.
``os.pread`` of exactly the frames asked for keeps memory bounded. ``soundfile`` could write a WAV
and read it back, at the price of a header and a float conversion for no gain.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np


class SpooledAudio:
    """int16 audio ``[channels, n]`` on disk, interleaved; numpy-like reads ``x[:, a:b]`` and ``x[ch, a:b]``.

    ``peak_abs()`` (and each channel's, iterating over the object) is ``max|x|`` in int32, kept as the
    blocks were written, so the per-audio draws of :mod:`defectbench.defects` need no second pass.
    """

    ndim = 2
    dtype = np.dtype(np.int16)

    def __init__(self, channels: int, folder: str | Path | None = None) -> None:
        self.channels = int(channels)
        self.n = 0
        self._peaks = np.zeros(self.channels, dtype=np.int64)
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".defectbench-spool-")
        self._dirty = False

    @classmethod
    def from_array(cls, audio: np.ndarray, folder: str | Path | None = None, block: int = 1 << 16) -> "SpooledAudio":
        x = np.asarray(audio)
        if x.dtype != np.int16 or x.ndim != 2:
            raise TypeError(f"SpooledAudio holds int16 [channels, n], got {x.dtype} {x.shape}")
        spool = cls(x.shape[0], folder)
        for start in range(0, x.shape[1], block):
            spool.append(x[:, start : start + block])
        return spool

    # -- writing -------------------------------------------------------------------------------
    def append(self, block: np.ndarray) -> None:
        if block.dtype != np.int16 or block.ndim != 2 or block.shape[0] != self.channels:
            raise ValueError(f"expected int16 [{self.channels}, k], got {block.dtype} {block.shape}")
        if not block.shape[1]:
            return
        np.maximum(self._peaks, np.abs(block.astype(np.int32)).max(axis=1), out=self._peaks)
        self._file.seek(0, os.SEEK_END)
        self._file.write(np.ascontiguousarray(block.T).tobytes())
        self.n += block.shape[1]
        self._dirty = True

    # -- reading -------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self.channels, self.n)

    @property
    def size(self) -> int:
        return self.channels * self.n

    def peak_abs(self) -> int:
        return int(self._peaks.max()) if self.n else 0

    def __iter__(self) -> Iterator["_Channel"]:
        return (_Channel(self, ch) for ch in range(self.channels))

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` of every channel (clamped to the audio, as numpy slicing is)."""
        start, stop = max(0, min(int(start), self.n)), max(0, min(int(stop), self.n))
        if stop <= start:
            return np.zeros((self.channels, 0), dtype=np.int16)
        if self._dirty:
            self._file.flush()
            self._dirty = False
        width = 2 * self.channels
        raw = os.pread(self._file.fileno(), (stop - start) * width, start * width)
        if len(raw) != (stop - start) * width:
            raise OSError(f"spool file: short read ({len(raw)} of {(stop - start) * width} bytes)")
        return np.frombuffer(raw, dtype=np.int16).reshape(stop - start, self.channels).T.copy()

    def __getitem__(self, key) -> np.ndarray:
        if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[1], slice)):
            raise TypeError("SpooledAudio reads x[:, a:b] or x[channel, a:b]")
        rows, cols = key
        if cols.step not in (None, 1) or any(v is not None and v < 0 for v in (cols.start, cols.stop)):
            raise TypeError("SpooledAudio reads contiguous, non-negative slices")
        block = self.read(cols.start or 0, self.n if cols.stop is None else cols.stop)
        if isinstance(rows, slice) and rows == slice(None):
            return block
        if isinstance(rows, (int, np.integer)):
            return block[int(rows)].copy()
        raise TypeError("SpooledAudio reads x[:, a:b] or x[channel, a:b]")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "SpooledAudio":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Channel:
    """One channel of a :class:`SpooledAudio`, for the per-channel peaks (distortion's clip values)."""

    def __init__(self, spool: SpooledAudio, channel: int) -> None:
        self.shape = (spool.n,)
        self.size = spool.n
        self._peak = int(spool._peaks[channel]) if spool.n else 0

    def peak_abs(self) -> int:
        return self._peak
