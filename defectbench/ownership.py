"""Which folders defectbench made, and the only way it removes one (issue 13).

Every folder a command creates (a dataset folder, ``OUT.partial``, ``OUT.parts`` and each part in it,
a publish staging folder, the leaderboard's Hub export, a training run's folder) holds a small marker
file, :data:`MARKER` (JSON: ``kind``, the build ``key`` where there is one, the version).
:func:`remove_owned` is the one place that deletes a folder: it refuses, with one line, anything that

- carries no marker of an expected kind (except a dataset folder written before markers existed:
  a valid ``manifest.json`` beside only the files a build writes, see :func:`legacy_kind`),
- is a symlink (never followed),
- is ``/``, the home folder, the current folder, the repository, or a parent of any of them,
- is, or holds, a path the command reads (the source folder, its metadata, the recipe file, the
  dataset being published).

A training run never removes its folder; :func:`claim_training_folder` refuses one that holds anything a
run did not write. Single files are guarded by :mod:`defectbench.owned_files`.
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
KINDS = ("dataset", "partial", "parts", "part", "staging", "board-export", "training")
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


def _legacy_export(folder: Path) -> bool:
    """The leaderboard's Hub export before it carried a marker: only ``<task>/<name>/model-index.yaml`` and
    ``<task>/<name>/.eval_results/<task>.yaml``, no symlink anywhere."""
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if path.is_symlink():
            return False
        if path.is_dir():
            if len(parts) > 3 or (len(parts) == 3 and parts[2] != ".eval_results"):
                return False
        elif not (len(parts) == 3 and parts[2] == "model-index.yaml"
                  or len(parts) == 4 and parts[2] == ".eval_results" and parts[3] == f"{parts[0]}.yaml"):
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
        if folder.name == "export" and _legacy_export(folder):
            return "board-export"
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


TRAINING_FILES = ("model.pt", "last.pt", "config.json", "curve.png")


def claim_training_folder(out: Path) -> None:
    """Make ``out`` a training run's folder, or refuse with one line before any work.

    Accepted: a path that does not exist (created), an empty folder, a folder marked ``training``, or one
    an older defectbench trained into (nothing but :data:`TRAINING_FILES` and their ``.partial``
    leftovers, with ``model.pt`` or ``last.pt`` a defectbench checkpoint); each is marked. Anything
    else (a user's folder, a dataset, a file) is refused: a run replaces ``model.pt``, ``last.pt``,
    ``config.json`` and ``curve.png`` in it, so they must be the runs' own."""
    from .owned_files import is_ours

    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise DefectbenchError(f"--out {out}: not a folder (or a symlink); name a new or empty folder for the run")
    if out.is_dir():
        kind = kind_of(out)
        entries = [p for p in out.iterdir() if p.name != MARKER]
        if kind not in (None, "training"):
            raise DefectbenchError(f"--out {out} is a defectbench {kind} folder; name a new or empty folder for the run")
        if kind is None and entries:
            allowed = set(TRAINING_FILES) | {f"{n}.partial" for n in TRAINING_FILES}
            foreign = sorted(p.name for p in entries if p.name not in allowed or p.is_symlink() or not p.is_file())
            ours = any(is_ours(out / n) for n in ("model.pt", "last.pt"))
            if foreign or not ours:
                what = f"holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}" if foreign \
                    else "holds no defectbench checkpoint"
                raise DefectbenchError(f"--out {out} {what}, which defectbench did not write; "
                                       "name a new or empty folder for the run")
    from .owned_files import check_creatable, vouch

    if not out.exists():
        check_creatable(out, " (--out)")
    out.mkdir(parents=True, exist_ok=True)
    if read_marker(out) is None:
        mark(out, "training")

    vouch(out / n for n in TRAINING_FILES)  # a run's folder: its files are the runs' own
