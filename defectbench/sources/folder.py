"""``folder:PATH``: any audio files under a folder (anything soundfile or PyAV opens).

Splits come from a deterministic hash of the file's parent folder (relative to PATH), so one album
or artist folder never spans two splits (80 / 10 / 10 %). Where there is nothing to group by (every
file in one folder: a flat folder) the hash is of each file's path instead, and the listing says so.
Where every audio file lies under a top-level folder named ``train``, ``validation`` or ``test`` (the
layout of Hugging Face's audiofolder), those folders are the splits: the user chose them.
Files that turn out unreadable, empty, too short, silent or of odd rate/channel count are skipped with
their reason at build time; everything else under PATH that is not used (other extensions, folders
named like audio files, symlinks to folders, broken symlinks) is listed with its reason.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..audio_io import decode
from ..core import SPLITS, DefectbenchError, Item
from . import Listing, SourceOptions, file_stamp, register, split_for_key, walk_files

AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aif", ".aiff",
                    ".au", ".wma", ".mka", ".webm", ".caf", ".w64"}


@register("folder")
def folder_source(opts: SourceOptions) -> Listing:
    if not opts.arg:
        raise DefectbenchError("folder source needs a path: --source folder:/path/to/audio")
    root = Path(opts.arg).expanduser()
    if not root.is_dir():
        raise DefectbenchError(f"folder source: {root} is not a folder")
    files, skipped = walk_files(root, extensions=AUDIO_EXTENSIONS)
    audio = []
    for path in files:
        if path.suffix.lower() in AUDIO_EXTENSIONS:
            audio.append(path)
        else:
            skipped.append((path.relative_to(root).as_posix(), f"not an audio file extension ({path.suffix or 'none'})"))
    if not audio:
        raise DefectbenchError(f"folder source: no audio files under {root}")
    rels = [path.relative_to(root) for path in audio]
    given = all(len(rel.parts) > 1 and rel.parts[0] in SPLITS for rel in rels)
    groups = {rel.parent.as_posix() for rel in rels}
    by_file = len(groups) == 1 and not given
    notes = [f"folder source: every audio file is in one folder ({next(iter(groups)) or root}), so there is no "
             "album/artist grouping: split 80/10/10 by a hash of each file's path"] if by_file else []
    if given:
        notes.append("folder source: the top-level folders " + ", ".join(sorted({rel.parts[0] for rel in rels}))
                     + " are the splits")
    items = []
    for path, relative in zip(audio, rels):
        rel, group = relative.as_posix(), relative.parent.as_posix()
        meta = {"track_id": rel, "artist_id": group, "genres": []}
        try:
            stamp = file_stamp(path)
        except OSError as exc:
            skipped.append((rel, f"cannot read file: {exc.strerror}"))
            continue
        split = relative.parts[0] if given else split_for_key(rel if by_file else group)
        items.append(Item(rel, split, partial(decode, path), meta, stamp))
    how = ("split by its train/validation/test folders" if given else
           "split by file (a flat folder)" if by_file else "split by parent folder")
    return Listing(items, skipped, description=f"audio files under {root}, {how}", license="see the source audio",
                   notes=notes)
