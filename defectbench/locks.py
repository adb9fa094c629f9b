"""One writer per output folder: an exclusive ``fcntl.flock`` held for the whole build (issue 13).

``output_lock(OUT)`` locks ``.OUT.defectbench-lock`` beside ``OUT`` (so it covers ``OUT``, ``OUT.partial`` and
``OUT.old`` together, which all live beside it). The lock file holds the holder's pid; a second build
of the same ``OUT`` is refused at once with one line naming that pid. The kernel drops the lock when
the holder dies, however it dies (``kill -9`` included), so a stale lock file never blocks anyone.
The file is removed on release; a waiter that locked a file already unlinked notices (inode check)
and retries, so two processes never both believe they hold the lock.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .core import DefectbenchError


def lock_path(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.defectbench-lock")


@contextmanager
def output_lock(folder: str | Path, what: str = "build") -> Iterator[Path]:
    """Hold the exclusive lock of ``folder`` (see the module docstring); raise DefectbenchError if held."""
    folder = Path(folder)
    path = lock_path(folder)
    made = _make_parents(path.parent, folder)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # another holder's release removed the (then empty) folder we had both made
            made += _make_parents(path.parent, folder)
            continue
        except OSError as exc:
            raise DefectbenchError(f"cannot create the lock file {path} for {folder}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DefectbenchError(f"another defectbench process (pid {holder}) is writing {folder}; "
                                   f"wait for it to finish or stop it, then run this {what} again") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            text = os.pread(fd, 64, 0).decode(errors="replace").strip()
            if text and not text.isdigit():  # a file of that name that we did not write: leave it alone
                os.close(fd)
                raise DefectbenchError(f"{path} exists and is not a defectbench lock file; move it away")
            break
        os.close(fd)  # we locked a file its last holder had already removed: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)
            for made_dir in made:  # a command that failed before writing anything leaves no empty folder behind
                try:
                    made_dir.rmdir()  # only when empty: anything in it (the output, another lock) keeps it
                except OSError:
                    break


def _make_parents(parent: Path, folder: Path) -> list[Path]:
    """``mkdir -p parent``; returns the folders this call created, deepest first."""
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DefectbenchError(f"cannot create the folder {parent} for {folder}: {exc.strerror}") from None
    return missing
