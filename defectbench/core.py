"""The small vocabulary every stage shares: source items, samples, skips, per-sample RNGs.

Data flow: a *source* lists :class:`Item` objects (cheap: ids, paths, splits, metadata) and loads
their audio lazily; a *pipeline* turns one loaded item into :class:`Sample` rows by applying
*defects*; the *engine* shards items, runs pipelines in worker processes and writes the dataset.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

SPLITS = ("train", "validation", "test")


class DefectbenchError(Exception):
    """An error the user caused and can fix: printed as one line by the CLI, never a traceback."""


class SkipItem(Exception):
    """Raised while loading or processing one source item that cannot be used (with the reason).

    The engine records the item id and the reason in the build report and the manifest, drops every
    row the item gave, and goes on. It is the only exception that skips an item: anything else stops
    the build (the item and the cause named), since it is a bug or a broken environment.
    """


@dataclass(frozen=True)
class Stream:
    """An item's audio as int16 PCM blocks ``[channels, k]`` at ``rate``, decoded a block at a time.

    ``open()`` starts a new decode and returns an iterator of blocks; it (and the iterator) may raise
    SkipItem. The engine spools such an item to disk for pipelines that read from a spool
    (``Pipeline.streams``; :mod:`defectbench.spool`), so a long file is never held in memory."""

    open: Callable[[], Iterator[np.ndarray]]
    rate: int
    channels: int


@dataclass
class Item:
    """One source item (a music piece, a video, a synth piece) before its audio is decoded."""

    id: str
    split: str
    load: Callable[..., tuple[np.ndarray, int]]
    """``load(max_seconds=None)`` returns ``(audio, rate)`` with audio float32 shaped ``[channels, samples]``,
    at least the first ``max_seconds`` of the item where it is that long (a source may decode only those,
    the engine never uses more); may raise SkipItem."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Source metadata copied into every sample (e.g. track_id, artist_id, genres)."""
    stamp: str = ""
    """What identifies this version of the item's audio in the listing (a file's size and mtime;
    empty for generated audio): part of its shard's key, so a changed file is rebuilt on resume."""
    stream: Stream | None = None
    """Optional: the same audio in blocks (a source that can decode a file piecewise gives it)."""


@dataclass
class Sample:
    """One dataset row: degraded audio, its framewise target, its label and every metadata value."""

    id: str
    audio: np.ndarray
    """1-D, float32 in [-1, 1] (music recipes) or int16 (video recipe)."""
    rate: int
    target: np.ndarray
    """Framewise target, 1-D (uint8 0/1)."""
    label: Any
    """The row's label: ``bool`` has-defect for framewise tasks, a class name for the 5-way task."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Flat metadata columns (must match the pipeline's declared features)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Every sampled defect parameter, JSON-serialisable; passing it back to ``apply`` replays the defect."""


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and numpy scalars converted: stable across runs and machines."""
    return json.dumps(to_builtin(obj), sort_keys=True, separators=(",", ":"))


def to_builtin(obj: Any) -> Any:
    """Convert numpy scalars/arrays (recursively) to plain Python for JSON and Arrow."""
    if isinstance(obj, dict):
        return {str(k): to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_builtin(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_builtin(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    return obj


def stable_int(text: str) -> int:
    """A 64-bit integer from a string, identical on every machine and Python run (unlike hash())."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


PIECE = 2**32 - 1
"""Segment index used for the per-item (per-piece / per-base-audio) generator."""


def rng_for(seed: int, item_id: str, index: int = PIECE, stream: str = "") -> np.random.Generator:
    """The generator for one (recipe seed, source item, segment index): never a global RNG.

    ``index=PIECE`` gives the item-level generator (parameters drawn once per piece or base audio).
    ``stream`` separates independent uses inside one sample (e.g. "click" vs "sox").
    """
    entropy = [int(seed) & (2**64 - 1), stable_int(item_id), int(index)]
    if stream:
        entropy.append(stable_int(stream))
    return np.random.default_rng(np.random.SeedSequence(entropy))


def frames_from_mask(mask: np.ndarray, n_frames: int) -> np.ndarray:
    """Framewise target from a per-sample mask: frame f is 1 if any sample in it is marked.

    ``len(mask)`` must be a multiple of ``n_frames`` (16384 / 128 = 128 samples per frame for the
    music recipes, 48000 / 100 = 480 for the video recipe).
    """
    mask = np.asarray(mask, dtype=bool)
    if len(mask) % n_frames:
        raise ValueError(f"mask of {len(mask)} samples does not split into {n_frames} frames")
    return mask.reshape(n_frames, -1).any(axis=1).astype(np.uint8)


def buffer_shuffle(rows, rng: np.random.Generator, size: int):
    """Yield ``rows`` in a random order through a buffer of ``size`` rows (memory bounded, one pass):
    each new row takes the place of a random buffered one, which is yielded; the rest at the end.
    (torch's DataPipes had this; what torch ships now has no stream shuffle, so it is written here.)"""
    buf: list = []
    for row in rows:
        if len(buf) < size:
            buf.append(row)
            continue
        i = int(rng.integers(len(buf)))
        buf[i], row = row, buf[i]
        yield row
    for i in rng.permutation(len(buf)):
        yield buf[i]


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else what platform knows), for cards and benchmark tables."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
