"""Which folders defectbench made, and the only way it removes one (issue 13).

Every folder a command creates (a dataset folder, ``OUT.partial``, ``OUT.parts`` and each part in it,
a publish staging folder) holds a small marker file, :data:`MARKER` (JSON: ``kind``, the build ``key``
where there is one, the version). :func:`remove_owned` is the one place that deletes a folder: it
refuses, with one line, anything that

- carries no marker of an expected kind (except a dataset folder written before markers existed:
  a valid ``manifest.json`` beside only the files a build writes, see :func:`legacy_kind`),
- is a symlink (never followed),
- is ``/``, the home folder, the current folder, the repository, or a parent of any of them,
- is, or holds, a path the command reads (the source folder, its metadata, the recipe file, the
  dataset being published).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterable

from . import __version__
from .core import DefectbenchError

MARKER = ".defectbench"
KINDS = ("dataset", "partial", "parts", "part", "staging")
REPO = Path(__file__).resolve().parent.parent

# The files a build (and `defectbench examples`) writes into a dataset folder, for folders made before
# the marker existed; ``data`` may hold only shard files.
_LEGACY_DATASET = {"manifest.json", "README.md", "examples.png", "data", MARKER}
_LEGACY_PARTIAL = {"build-key", "shards", "data", "manifest.json", "README.md", MARKER}


def mark(folder: Path, kind: str, key: str = "") -> None:
    """Write the marker into ``folder`` (atomically: a reader sees the old marker or the new one)."""
    assert kind in KINDS, kind
    tmp = folder / f"{MARKER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"kind": kind, "key": key, "defectbench_version": __version__}, sort_keys=True) + "\n")
    tmp.rename(folder / MARKER)


def read_marker(folder: Path) -> dict | None:
    """The marker of ``folder``, or None where there is none (or it is not ours: unreadable, not JSON)."""
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") in KINDS else None


def _only(folder: Path, allowed: set[str], shard_dirs: dict[str, tuple[str, ...]]) -> bool:
    for entry in folder.iterdir():
        if entry.name not in allowed or entry.is_symlink():
            return False
        if entry.is_dir():
            if entry.name not in shard_dirs:
                return False
            for sub in entry.iterdir():
                if sub.is_symlink() or not sub.is_file() or not sub.name.endswith(shard_dirs[entry.name]):
                    return False
    return True


def legacy_kind(folder: Path) -> str | None:
    """``dataset`` or ``partial`` for an unmarked folder an older defectbench wrote, else None.

    A dataset: ``manifest.json`` that parses and names a fingerprint and splits, next to nothing but
    ``README.md``, ``examples.png`` and ``data/`` of ``.parquet`` files. A partial build: nothing but
    ``build-key``, ``shards/`` (shard ``.parquet``/``.json`` files and ``.tmp`` leftovers) and the
    files of the final step. Anything else a user put there makes the folder not ours.
    """
    try:
        if (folder / "manifest.json").is_file():
            manifest = json.loads((folder / "manifest.json").read_text())
            if isinstance(manifest, dict) and "fingerprint" in manifest and "splits" in manifest \
                    and _only(folder, _LEGACY_DATASET, {"data": (".parquet",)}):
                return "dataset"
        if (folder / "build-key").is_file() and _only(folder, _LEGACY_PARTIAL,
                                                      {"shards": (".parquet", ".json", ".tmp"), "data": (".parquet",)}):
            return "partial"
    except (OSError, ValueError):
        return None
    return None


def kind_of(folder: Path) -> str | None:
    marker = read_marker(folder)
    return marker["kind"] if marker else legacy_kind(folder)


def _protected(folder: Path, reads: Iterable[Path]) -> str | None:
    """Why ``folder`` may never be removed, or None."""
    real = folder.resolve()
    if real == Path(real.anchor):
        return "the root folder"
    fixed = {"the home folder": Path.home(), "the current folder": Path.cwd(), "the defectbench repository": REPO}
    for what, path in fixed.items():
        path = path.resolve()
        if real == path or real in path.parents:
            return what if real == path else f"a parent of {what}"
    for path in reads:
        path = Path(path).expanduser().resolve()
        if real == path or real in path.parents:
            return f"{path} that this command reads" if real == path else f"a parent of {path}, which this command reads"
    return None


def check_removable(folder: Path, kinds: tuple[str, ...], reads: Iterable[Path] = (), why: str = "") -> None:
    """Raise the one-line refusal if :func:`remove_owned` would refuse ``folder`` (which exists)."""
    reads = list(reads)
    if folder.is_symlink():
        raise DefectbenchError(f"refusing to remove {folder}{why}: it is a symlink (defectbench never follows one to delete)")
    if not folder.is_dir():
        raise DefectbenchError(f"refusing to remove {folder}{why}: it is not a folder defectbench made")
    reason = _protected(folder, reads)
    if reason:
        raise DefectbenchError(f"refusing to remove {folder}{why}: it is {reason}")
    kind = kind_of(folder)
    if kind not in kinds:
        found = f"a defectbench {kind} folder" if kind else f"not made by defectbench (no {MARKER} marker)"
        raise DefectbenchError(f"refusing to remove {folder}{why}: it is {found}, not a defectbench "
                               f"{' or '.join(kinds)} folder; move it away or choose another path")


def remove_owned(folder: Path, kinds: tuple[str, ...], reads: Iterable[Path] = (), why: str = "") -> None:
    """Remove ``folder`` if it is ours (see the module docstring), else raise a one-line DefectbenchError."""
    if not os.path.lexists(folder):
        return
    check_removable(folder, kinds, reads, why)
    shutil.rmtree(folder)
