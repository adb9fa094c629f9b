"""``fma:PATH``: a local copy of the Free Music Archive (music paper, section 4; SPEC 1.1).

PATH is an audio folder ``fma_small``, ``fma_medium``, ``fma_large`` or ``fma_full`` holding
``AAA/AAAAAA.mp3`` (the six-digit track id, its first three digits as the folder). The metadata file
``tracks.csv`` comes from ``--metadata DIR`` (or ``PATH/../fma_metadata``). It has a two-row column
header (e.g. ``set`` / ``split``) and the track id as index; we use ``set.split`` (training /
validation / test, FMA's own artist-disjoint split, never mixed), ``set.subset`` (small / medium /
large; the subsets are nested), ``artist.id``, ``track.genre_top`` and ``track.genres_all``.
"""

from __future__ import annotations

import ast
from functools import partial
from pathlib import Path

from ..audio_io import decode
from ..core import DefectbenchError, Item
from . import Listing, SourceOptions, file_stamp, register

SPLIT_NAMES = {"training": "train", "validation": "validation", "test": "test"}
SUBSETS = {"fma_small": {"small"}, "fma_medium": {"small", "medium"},
           "fma_large": {"small", "medium", "large"}, "fma_full": None}


def read_tracks(csv_path: Path):
    """Read FMA's tracks.csv (two header rows, track id index) with pandas, as FMA's own utils do."""
    import pandas as pd

    try:
        tracks = pd.read_csv(csv_path, index_col=0, header=[0, 1], low_memory=False)
    except Exception as exc:
        raise DefectbenchError(f"cannot read FMA metadata {csv_path}: {exc}") from None
    needed = [("set", "split"), ("set", "subset"), ("artist", "id")]
    missing = [".".join(c) for c in needed if c not in tracks.columns]
    if missing:
        raise DefectbenchError(f"{csv_path} is not FMA's tracks.csv: missing column(s) {', '.join(missing)}")
    return tracks


def _genres(row) -> list[str]:
    genres = []
    top = row.get(("track", "genre_top"))
    if isinstance(top, str) and top:
        genres.append(top)
    all_ids = row.get(("track", "genres_all"))
    if isinstance(all_ids, str) and all_ids.startswith("["):
        genres += [str(g) for g in ast.literal_eval(all_ids)]
    return genres


@register("fma")
def fma_source(opts: SourceOptions) -> Listing:
    if not opts.arg:
        raise DefectbenchError("fma source needs the audio folder: --source fma:/data/fma_large")
    root = Path(opts.arg).expanduser()
    if not root.is_dir():
        raise DefectbenchError(f"fma source: audio folder {root} does not exist")
    meta_dir = Path(opts.metadata).expanduser() if opts.metadata else root.parent / "fma_metadata"
    csv_path = meta_dir / "tracks.csv" if meta_dir.suffix != ".csv" else meta_dir
    if not csv_path.is_file():
        raise DefectbenchError(
            f"FMA metadata not found: {csv_path} (give --metadata pointing to the fma_metadata folder)")
    tracks = read_tracks(csv_path)
    subsets = SUBSETS.get(root.name)
    items, skipped = [], []
    for track_id, row in tracks.iterrows():
        subset = row[("set", "subset")]
        if subsets is not None and subset not in subsets:
            continue  # another FMA subset (the subsets are nested): not part of this audio folder
        try:
            tid = f"{int(track_id):06d}"
        except (TypeError, ValueError):
            skipped.append((str(track_id), f"malformed tracks.csv row: track id {track_id!r} is not a number"))
            continue
        split = SPLIT_NAMES.get(row[("set", "split")])
        if split is None:
            skipped.append((tid, f"unknown set.split {row[('set', 'split')]!r}"))
            continue
        try:
            artist = str(int(row[("artist", "id")]))
            genres = _genres(row)
        except (TypeError, ValueError, SyntaxError) as exc:
            skipped.append((tid, f"malformed tracks.csv row: {type(exc).__name__}: {exc}"))
            continue
        path = root / tid[:3] / f"{tid}.mp3"
        if not path.is_file():
            skipped.append((tid, f"audio file missing: {path.relative_to(root)}"))
            continue
        meta = {"track_id": tid, "artist_id": artist, "genres": genres}
        items.append(Item(tid, split, partial(decode, path), meta, file_stamp(path)))
    if not items:
        raise DefectbenchError(f"fma source: no track of {csv_path} has its audio under {root}")
    return Listing(items, skipped, description=f"FMA {root.name} ({root}), metadata {csv_path}",
                   license="per track, Creative Commons (see FMA's tracks.csv track.license)")
