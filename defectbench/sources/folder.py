"""``folder:PATH``: any audio files under a folder (anything soundfile or PyAV opens).

Splits come from a deterministic hash of the file's parent folder (relative to PATH), so one album
or artist folder never spans two splits (80 / 10 / 10 %). Files that turn out unreadable, empty,
too short, silent or of odd rate/channel count are skipped with their reason at build time.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..audio_io import decode
from ..core import DefectbenchError, Item
from . import Listing, SourceOptions, register, split_for_key

AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff",
                    ".au", ".wma", ".mka", ".webm", ".caf", ".w64"}


@register("folder")
def folder_source(opts: SourceOptions) -> Listing:
    if not opts.arg:
        raise DefectbenchError("folder source needs a path: --source folder:/path/to/audio")
    root = Path(opts.arg).expanduser()
    if not root.is_dir():
        raise DefectbenchError(f"folder source: {root} is not a folder")
    items, skipped = [], []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            skipped.append((rel, f"not an audio file extension ({path.suffix or 'none'})"))
            continue
        group = path.parent.relative_to(root).as_posix()
        meta = {"track_id": rel, "artist_id": group, "genres": []}
        items.append(Item(rel, split_for_key(group), partial(decode, path), meta))
    if not items:
        raise DefectbenchError(f"folder source: no audio files under {root}")
    return Listing(items, skipped, description=f"audio files under {root}", license="see the source audio")
