"""MP3 (MPEG audio layer III) encode, frame table, corruption and decode (SPEC 1.3, music paper section 5).

The pieces the ``fma-mp3-glitch`` recipe needs, each small:

- :func:`encode`: LAME (``lameenc``) at 128 kbps mono; lameenc writes bare frames (no ID3, no Xing).
- :func:`read_frames`: the frame table (offset, length, header, CRC, side info) of an MP3 byte
  string. Hand-written because no maintained Python library exposes byte offsets of frames (mutagen
  reads only the first frame and the Xing header; PyAV/FFmpeg give packets without the file layout);
  it follows ISO/IEC 11172-3 2.4.1-2.4.2 / 13818-3 for the header fields it needs.
- :func:`corrupt`: overwrite runs of bytes inside chosen frames (the paper's glitch).
- :func:`decode`: libsndfile (mpg123) through soundfile, with its stderr (fd 2) captured and counted.
- :func:`glitch`: clean and corrupted decode of one encoded span, aligned by the codec delay, clipped,
  with the paper's fallback for a corruption that changes the decoded length.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import lameenc
import numpy as np
import soundfile as sf

from .audio_io import CaptureFd2
from .core import DefectbenchError

SAMPLES_PER_FRAME = 1152
"""Layer III, MPEG-1 (the 32/44.1/48 kHz rates): 1152 samples per frame (MPEG-2/2.5: 576)."""
ENCODER_DELAY = 576
DECODER_DELAY = 529
DELAY = ENCODER_DELAY + DECODER_DELAY
"""The source's sample 0 is decoded sample 1105 (LAME's 576 + mpg123's 529; measured in tests)."""

# Header tables (ISO/IEC 11172-3 2.4.2.3, 13818-3 2.4.2.3), layer III only.
_VERSIONS = {0b11: "1", 0b10: "2", 0b00: "2.5"}
_BITRATES = {  # kbps by bitrate index 1..14
    "1": (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    "2": (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {"1": (44100, 48000, 32000), "2": (22050, 24000, 16000), "2.5": (11025, 12000, 8000)}


@dataclass(frozen=True)
class Frame:
    """One MP3 frame: where it lies in the file and how its bytes divide."""

    index: int
    offset: int
    """Byte offset of the frame header in the file."""
    length: int
    """Bytes from this header to the next (header + CRC + side info + main data slot)."""
    version: str
    bitrate: int
    """kbps."""
    rate: int
    padding: bool
    channels: int
    crc: bool
    side_info: int
    """Side-information bytes: MPEG-1 17 (mono) / 32 (stereo), MPEG-2/2.5 9 / 17."""
    main_data_begin: int
    """Bit-reservoir back pointer: this frame's main data starts this many bytes before its own slot."""

    @property
    def header_size(self) -> int:
        """Header (4 bytes) plus the CRC word when the protection bit says there is one."""
        return 4 + (2 if self.crc else 0)

    @property
    def payload(self) -> int:
        """Bytes after the header and CRC: side info and main data (what corruption may overwrite)."""
        return self.length - self.header_size

    @property
    def samples(self) -> int:
        return SAMPLES_PER_FRAME if self.version == "1" else SAMPLES_PER_FRAME // 2


def parse_header(data: bytes, offset: int) -> tuple[str, int, int, bool, int, bool, int]:
    """Decode the 4-byte layer III header at ``offset``.

    Returns (version, bitrate kbps, rate, padding, channels, crc, frame length); raises ValueError
    for anything that is not a valid layer III header (free format included: LAME never writes it).
    """
    if offset + 4 > len(data):
        raise ValueError("truncated header")
    b0, b1, b2, b3 = data[offset : offset + 4]
    if b0 != 0xFF or (b1 & 0xE0) != 0xE0:
        raise ValueError("no sync word")
    version = _VERSIONS.get((b1 >> 3) & 0b11)
    if version is None:
        raise ValueError("reserved MPEG version")
    if (b1 >> 1) & 0b11 != 0b01:
        raise ValueError("not layer III")
    crc = not (b1 & 1)  # protection bit 0 means a 16-bit CRC follows the header
    bitrate_index, rate_index = b2 >> 4, (b2 >> 2) & 0b11
    if bitrate_index in (0, 15):
        raise ValueError("free-format or invalid bitrate index")
    if rate_index == 3:
        raise ValueError("reserved sample-rate index")
    bitrate = _BITRATES["1" if version == "1" else "2"][bitrate_index - 1]
    rate = _RATES[version][rate_index]
    padding = bool((b2 >> 1) & 1)
    channels = 1 if (b3 >> 6) == 0b11 else 2
    # Layer III slot = 1 byte: length = samples/8 * bitrate / rate + padding (144 or 72 * br / rate).
    coefficient = 144 if version == "1" else 72
    length = coefficient * bitrate * 1000 // rate + padding
    return version, bitrate, rate, padding, channels, crc, length


def _id3v2_size(data: bytes) -> int:
    """Length of a leading ID3v2 tag (header + syncsafe size + optional footer), else 0."""
    if len(data) >= 10 and data[:3] == b"ID3":
        size = 0
        for b in data[6:10]:
            size = (size << 7) | (b & 0x7F)
        return 10 + size + (10 if data[5] & 0x10 else 0)
    return 0


def read_frames(data: bytes) -> list[Frame]:
    """The frame table of an MP3 byte string; every byte must belong to a frame or a tag.

    A leading ID3v2 tag and a trailing ID3v1 tag (``TAG`` + 125 bytes) are allowed (not written by
    lameenc); anything else that is not a chain of valid frames raises :class:`DefectbenchError`,
    naming the byte offset, so that nothing is silently skipped.
    """
    frames: list[Frame] = []
    pos = _id3v2_size(data)
    end = len(data)
    if end - pos >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    while pos < end:
        try:
            version, bitrate, rate, padding, channels, crc, length = parse_header(data, pos)
        except ValueError as exc:
            raise DefectbenchError(f"MP3 stream: no valid frame header at byte {pos} of {len(data)} ({exc})") from None
        if pos + length > end:
            raise DefectbenchError(f"MP3 stream: frame at byte {pos} needs {length} bytes, {end - pos} left")
        side = (17 if channels == 1 else 32) if version == "1" else (9 if channels == 1 else 17)
        s = pos + 4 + (2 if crc else 0)  # side info starts after the header (and CRC)
        # main_data_begin: the first 9 bits (MPEG-1) or 8 bits (MPEG-2/2.5) of the side info.
        mdb = ((data[s] << 1) | (data[s + 1] >> 7)) if version == "1" else data[s]
        frames.append(Frame(len(frames), pos, length, version, bitrate, rate, padding, channels, crc, side, mdb))
        pos += length
    return frames


def encode(audio: np.ndarray, rate: int, bitrate: int = 128, quality: int = 3) -> bytes:
    """Encode mono float32 audio (1-D, [-1, 1]) to CBR MP3 with LAME (SPEC 1.3: 128 kbps mono).

    Samples are clipped to [-1, 1] and rounded to int16 (LAME's input format). Deterministic:
    the same samples always give the same bytes.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"encode takes mono 1-D audio, got shape {audio.shape}")
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    enc = lameenc.Encoder()
    enc.set_bit_rate(bitrate)
    enc.set_in_sample_rate(rate)
    enc.set_channels(1)
    enc.set_quality(quality)
    return bytes(enc.encode(pcm.tobytes()) + enc.flush())


@dataclass(frozen=True)
class Corruption:
    """One overwritten run: ``data`` written at ``offset`` bytes from the start of MP3 frame ``frame``."""

    frame: int
    offset: int
    data: bytes

    def to_params(self) -> dict[str, Any]:
        return {"frame": self.frame, "offset": self.offset, "length": len(self.data), "bytes": self.data.hex()}

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> "Corruption":
        data = bytes.fromhex(p["bytes"])
        if len(data) != p["length"]:
            raise DefectbenchError(f"corruption of frame {p['frame']}: length {p['length']} but {len(data)} bytes")
        return cls(int(p["frame"]), int(p["offset"]), data)


def corrupt(data: bytes, frames: list[Frame], corruptions: list[Corruption]) -> bytes:
    """Overwrite each run inside its frame; a run must not leave its frame."""
    out = bytearray(data)
    for c in corruptions:
        if not 0 <= c.frame < len(frames):
            raise DefectbenchError(f"corruption names frame {c.frame}; the stream has {len(frames)}")
        f = frames[c.frame]
        if c.offset < 0 or c.offset + len(c.data) > f.length:
            raise DefectbenchError(f"corruption of frame {c.frame} ({c.offset}+{len(c.data)}) leaves the frame ({f.length} bytes)")
        start = f.offset + c.offset
        out[start : start + len(c.data)] = c.data
    return bytes(out)


def decode(data: bytes) -> tuple[np.ndarray, int, int]:
    """Decode MP3 bytes to mono float32 with libsndfile (mpg123); returns (samples, rate, stderr lines).

    Measured (SPEC 1.3): with frame headers intact libsndfile decodes every frame, never raising,
    ``len(frames) * 1152`` samples; damaged frames may produce values far outside [-1, 1].
    """
    with CaptureFd2() as cap:
        y, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return y[:, 0] if y.shape[1] == 1 else y.mean(axis=1), rate, cap.lines


@dataclass
class GlitchResult:
    """Clean and corrupted decodes of one encoded span, aligned to the source samples and clipped."""

    clean: np.ndarray
    degraded: np.ndarray
    applied: list[Corruption]
    """Corruptions kept (their frames are degraded)."""
    fallback: list[Corruption] = field(default_factory=list)
    """Corruptions whose decode changed the stream length: decoded from the original bytes instead."""
    stderr_lines: int = 0
    frames: list[Frame] = field(default_factory=list)


def _aligned(y: np.ndarray, n: int) -> np.ndarray:
    """``y[DELAY:DELAY + n]`` clipped to [-1, 1] (zero-padded if the decode were ever short)."""
    out = np.zeros(n, dtype=np.float32)
    part = y[DELAY : DELAY + n]
    out[: len(part)] = part
    return np.clip(out, -1.0, 1.0, out=out)


def glitch(data: bytes, n: int, corruptions: list[Corruption], frames: list[Frame] | None = None) -> GlitchResult:
    """Decode ``data`` clean and with ``corruptions``, aligned to the ``n`` source samples.

    The paper's rule (section 5.1): a corrupted frame whose decode fails or changes the decoded
    length is decoded from its original bytes and counted as not degraded. We decode whole streams
    (so the bit reservoir and the filter-bank overlap carry damage as in playback); only when the
    corrupted stream's length differs, or its decode raises, is each corruption tried alone to find
    the culprits (never seen on lameenc output with intact headers; tested with a broken header).
    """
    frames = read_frames(data) if frames is None else frames
    clean, rate, lines = decode(data)
    applied = list(corruptions)
    fallback: list[Corruption] = []
    degraded = None
    if applied:
        y, lines_c = _try_decode(corrupt(data, frames, applied))
        lines += lines_c
        if y is None or len(y) != len(clean):
            keep = []
            for c in applied:
                y1, lines_1 = _try_decode(corrupt(data, frames, [c]))
                lines += lines_1
                (keep if y1 is not None and len(y1) == len(clean) else fallback).append(c)
            applied = keep
            y, lines_c = _try_decode(corrupt(data, frames, applied)) if applied else (clean, 0)
            lines += lines_c
            if y is None or len(y) != len(clean):  # corruptions that only fail together: undo them all
                fallback, applied, y = fallback + applied, [], clean
        degraded = y
    clean_a = _aligned(clean, n)
    degraded_a = clean_a.copy() if degraded is None else _aligned(degraded, n)
    return GlitchResult(clean_a, degraded_a, applied, fallback, lines, frames)


def _try_decode(data: bytes) -> tuple[np.ndarray | None, int]:
    try:
        y, _, lines = decode(data)
    except (RuntimeError, sf.LibsndfileError):
        return None, 0
    return y, lines
