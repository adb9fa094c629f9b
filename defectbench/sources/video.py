"""``video:PATH``: a folder of video files, the video paper's base audio (section 4; SPEC 1.4).

Every file under ``PATH`` (recursively, hidden files left out) that PyAV (FFmpeg) opens and that has
an audio stream is one item; the others are listed in ``Listing.skipped`` with the reason. An item's
``load()`` demuxes the first audio stream, downmixes it to stereo, resamples it to 48 kHz and converts
it to 16-bit PCM, all with FFmpeg's resampler (``av.AudioResampler``); mono audio is resampled as mono
and duplicated exactly (FFmpeg's mono-to-stereo upmix would lower it by 3 dB). It returns float32
``int16 / 32768`` so that the pipeline recovers the exact int16 samples.

Item id: the file's path relative to ``PATH`` (posix). An optional CSV (``--metadata``) gives per-video
metadata: a ``video_id`` column (the item id, or the file name without its extension when that is
unique) or a ``file`` column (the relative path), optional ``genre`` / ``language`` columns (the
strata) and an optional ``split`` column (train / validation / test) that fixes a video's split. Every
other column is kept as metadata. Videos absent from the CSV are used with empty metadata; CSV rows
that name no file are reported as skipped.

Splits are by video, never by chunk: about 64 / 17 / 19 % (the paper's 103 / 28 / 31 of 162), stratified
by (genre, language). Videos are ordered by stratum, shuffled inside each stratum by a hash of (seed,
id), and dealt in that order to the split furthest below its share, so that every large enough stratum
reaches all three splits and the totals are as close to the fractions as whole videos allow. The deal
is a pure function of the seed and the set of ids (hear-preprocess style: a group never spans splits).
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..core import SPLITS, DefectbenchError, Item, SkipItem, Stream, stable_int
from . import Listing, SourceOptions, file_stamp, register, walk_files

RATE = 48000
FRACTIONS = (0.64, 0.17, 0.19)
STRATA = ("genre", "language")


def decode_blocks(path: Path) -> Iterator[np.ndarray]:
    """First audio stream of ``path`` as int16 ``[2, k]`` blocks at 48 kHz (FFmpeg resampler), one decoded
    frame at a time; SkipItem on failure (also in the middle of the file) or when it decodes to nothing."""
    any_samples = False
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise SkipItem("no audio stream")
            stream = container.streams.audio[0]
            mono = stream.codec_context.layout.nb_channels == 1
            resampler = av.AudioResampler(format="s16p", layout="mono" if mono else "stereo", rate=RATE)
            frames = itertools.chain(container.decode(stream), [None])  # None flushes the resampler
            for frame in frames:
                for out in resampler.resample(frame):
                    block = out.to_ndarray().astype(np.int16, copy=False)
                    if block.shape[-1]:
                        any_samples = True
                        yield np.repeat(block, 2, axis=0) if mono else block
    except av.FFmpegError as exc:
        raise SkipItem(f"PyAV could not decode the audio: {exc}") from None
    if not any_samples:
        raise SkipItem("audio stream decodes to no samples")


def decode_audio(path: Path) -> np.ndarray:
    """First audio stream of ``path`` as int16 ``[2, n]`` at 48 kHz, whole (:func:`decode_blocks` joined)."""
    return np.concatenate(list(decode_blocks(path)), axis=-1)


def _probe(path: Path) -> str | None:
    """None when ``path`` opens and has an audio stream, else the reason to skip it."""
    try:
        with av.open(str(path)) as container:
            return None if container.streams.audio else "no audio stream"
    except av.FFmpegError as exc:
        return f"PyAV cannot open it: {exc}"


def _read_metadata(csv_path: Path, ids: list[str]) -> tuple[dict[str, dict[str, str]], list[tuple[str, str]]]:
    """Map item id -> metadata row (without the id column); rows naming no video are returned as skipped."""
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
            fields = rows[0].keys() if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DefectbenchError(f"metadata CSV {csv_path}: cannot read it: {exc}") from None
    key = "video_id" if "video_id" in fields else "file" if "file" in fields else None
    if key is None:
        raise DefectbenchError(f"metadata CSV {csv_path}: needs a 'video_id' or 'file' column, found {list(fields)}")
    by_stem: dict[str, list[str]] = {}
    for i in ids:
        by_stem.setdefault(Path(i).with_suffix("").as_posix(), []).append(i)
    meta: dict[str, dict[str, str]] = {}
    skipped = []
    for row in rows:
        name = (row.get(key) or "").strip()
        match = name if name in ids else (by_stem.get(name, [None])[0] if len(by_stem.get(name, [])) == 1 else None)
        if match is None:
            skipped.append((name, f"named in {csv_path.name} but no such video (or it has no audio)"))
            continue
        split = (row.get("split") or "").strip()
        if split and split not in SPLITS:
            raise DefectbenchError(f"metadata CSV {csv_path}: video {name!r} has split {split!r}; use one of {SPLITS}")
        meta[match] = {k: (v or "").strip() for k, v in row.items() if k != key and k is not None}
    return meta, skipped


def assign_splits(strata: dict[str, tuple[str, ...]], seed: int, fractions=FRACTIONS) -> dict[str, str]:
    """Stratified split by video: ordered by stratum, shuffled by hash, dealt to the neediest split."""
    order = sorted(strata, key=lambda i: (strata[i], stable_int(f"{seed}:video-split:{i}"), i))
    counts = [0, 0, 0]
    out = {}
    for k, vid in enumerate(order):
        deficit = [fractions[s] * (k + 1) - counts[s] for s in range(3)]
        s = int(np.argmax(deficit))  # ties go to the earlier split
        counts[s] += 1
        out[vid] = SPLITS[s]
    return out


@register("video")
def list_videos(opts: SourceOptions) -> Listing:
    if not opts.arg:
        raise DefectbenchError("source 'video' needs a folder: video:PATH")
    root = Path(opts.arg).expanduser()
    if not root.is_dir():
        raise DefectbenchError(f"video source: {root} is not a folder")
    csv_path = opts.metadata.resolve() if opts.metadata else None
    if csv_path is not None and not csv_path.is_file():
        raise DefectbenchError(f"metadata CSV not found: {opts.metadata}")
    files, skipped = walk_files(root, hidden=False)
    files = [p for p in files if p.resolve() != csv_path]
    paths: dict[str, Path] = {}
    for p in files:
        rel = p.relative_to(root).as_posix()
        reason = _probe(p)
        if reason:
            skipped.append((rel, reason))
        else:
            paths[rel] = p
    meta: dict[str, dict[str, str]] = {}
    if csv_path is not None:
        meta, bad_rows = _read_metadata(csv_path, list(paths))
        skipped.extend(bad_rows)
    fixed = {i: m["split"] for i, m in meta.items() if m.get("split")}
    strata = {i: tuple(meta.get(i, {}).get(c, "") for c in STRATA) for i in paths if i not in fixed}
    splits = {**assign_splits(strata, opts.seed), **fixed}
    items = []
    for vid, path in paths.items():
        m = {k: v for k, v in meta.get(vid, {}).items() if k != "split"}
        m.setdefault("genre", "")
        m.setdefault("language", "")
        loader = _loader(path)
        items.append(Item(id=vid, split=splits[vid], load=loader, meta=m, stamp=file_stamp(path),
                          stream=Stream(loader.blocks, RATE, 2)))
    return Listing(
        items=items,
        skipped=skipped,
        description=f"{len(items)} videos from {root} (audio demuxed with PyAV/FFmpeg, stereo, 48 kHz, int16)",
        license="unknown (the user's own videos)",
    )


class _loader:
    """Picklable lazy loader (items travel to worker processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
        # Always the whole base audio: the video pipeline uses all of it (Algorithm 1 tiles it). The
        # engine prefers the item's stream (blocks spooled to disk) where the recipe's format allows.
        return decode_audio(self.path).astype(np.float32) / 32768.0, RATE

    def blocks(self) -> Iterator[np.ndarray]:
        return decode_blocks(self.path)
