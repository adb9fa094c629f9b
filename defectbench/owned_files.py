"""Which files defectbench wrote, and the check before it replaces or removes one.

:mod:`defectbench.ownership` guards folders; this module guards single files. Every command that writes
a file where a user's file could already be (``detect --out`` and ``--plot``, ``run --out`` and the
predictions and figures beside it, ``examples --out``, ``ship --out``, a training folder, the
leaderboard's pages and plots) calls :func:`check_replaceable` before any work, and writes through
:func:`replace_atomically` or :func:`save_figure`. A path that does not exist may be written; an existing
one is replaced only where its content shows that defectbench wrote it:

- a PNG: its ``Software`` text chunk starts with ``defectbench`` (every figure is saved through
  :func:`save_figure`, which writes it);
- a JSON file: ``"written_by": "defectbench ..."`` (``detect --out``, a training ``config.json``), or a
  result file (``schema_version`` and an ``environment`` listing defectbench among its packages);
- a CSV or TSV file: the exact header line ``detect`` writes;
- a Parquet file: the ``defectbench`` key of its schema metadata (predictions);
- a checkpoint (``.pt``): a dict in the defectbench checkpoint format, read with ``weights_only=True``;
- Markdown: a model card's first line, or the board's;
- HTML: the board page's ``generator`` meta tag (or its title, on pages rendered before the tag).

Files an older defectbench wrote before it signed PNGs and Parquet files are recognised through the file
that names them (:func:`vouch`): the predictions and figures a result file lists, the files of a claimed
training folder, a model card's curve, the plots the board's README links. Anything else (a user's file,
a symlink, a folder, something unreadable) is refused with one line that names the path, and nothing is
written.
"""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path
from typing import Callable, Iterable

from . import __version__
from .core import DefectbenchError

SIGNATURE = "defectbench"
EVENT_HEADERS = ("file,start,end,label,score", "filename\tonset\toffset\tevent_label")
HTML_GENERATOR = '<meta name="generator" content="defectbench'
_CARD_FIRST_LINE = re.compile(r"^# [\w.-]+ for `[\w.-]+`")
BOARD_FIRST_LINE = "# defectbench leaderboard"


def written_by() -> str:
    """The value of the ``written_by`` key (JSON) and of a PNG's ``Software`` chunk."""
    return f"{SIGNATURE} {__version__}"


def _first_line(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        return f.readline(4096).rstrip("\r\n")


def _png(path: Path) -> bool:
    from PIL import Image  # matplotlib's own dependency

    with Image.open(path) as im:
        return im.format == "PNG" and str(im.text.get("Software", "")).startswith(SIGNATURE)


def _json(path: Path) -> bool:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        return False
    if str(data.get("written_by", "")).startswith(SIGNATURE):
        return True
    env = data.get("environment")
    return "schema_version" in data and isinstance(env, dict) and SIGNATURE in (env.get("packages") or {})


def _parquet(path: Path) -> bool:
    import pyarrow.parquet as pq

    return SIGNATURE.encode() in (pq.read_schema(path).metadata or {})


def _checkpoint(path: Path) -> bool:
    import torch

    from .neural import CHECKPOINT_FORMAT

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return isinstance(ckpt, dict) and ckpt.get("format") == CHECKPOINT_FORMAT


def _markdown(path: Path) -> bool:
    line = _first_line(path)
    return line == BOARD_FIRST_LINE or bool(_CARD_FIRST_LINE.match(line))


def _html(path: Path) -> bool:
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.read(4096)
    return HTML_GENERATOR in head or "<title>defectbench leaderboard</title>" in head  # or a page from before the tag


RECOGNISERS: dict[str, Callable[[Path], bool]] = {
    ".png": _png, ".json": _json, ".csv": lambda p: _first_line(p) == EVENT_HEADERS[0],
    ".tsv": lambda p: _first_line(p) == EVENT_HEADERS[1], ".parquet": _parquet, ".pt": _checkpoint,
    ".md": _markdown, ".html": _html,
}


_VOUCHED: set[Path] = set()


def vouch(paths: Iterable[Path]) -> None:
    """Count these files as defectbench's for the rest of the process: files an older defectbench wrote
    (unsigned) that a file recognisably ours names. A symlink or folder at such a path is still refused."""
    _VOUCHED.update(Path(p).absolute() for p in paths)


def is_ours(path: Path) -> bool:
    """True where ``path`` is a regular file (not a symlink) whose content shows that defectbench wrote it,
    or one :func:`vouch` named."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return False
    if path.absolute() in _VOUCHED:
        return True
    recognise = RECOGNISERS.get(path.suffix.lower())
    if recognise is None:
        return False
    try:
        return bool(recognise(path))
    except Exception:  # unreadable, truncated, not the format its name says: not recognisably ours
        return False


def check_replaceable(paths: Path | Iterable[Path], why: str = "") -> None:
    """Raise a one-line DefectbenchError unless every path is absent or a file defectbench wrote."""
    for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
        path = Path(path)
        if not os.path.lexists(path):
            check_creatable(path, why)
            continue
        if path.is_symlink():
            raise DefectbenchError(f"refusing to replace {path}{why}: it is a symlink (defectbench never writes through one)")
        if path.is_dir():
            raise DefectbenchError(f"refusing to write {path}{why}: it is a folder; name a file")
        if not is_ours(path):
            raise DefectbenchError(f"refusing to replace {path}{why}: defectbench did not write it (nothing in it "
                                   "says so); move it away or name another file")


def check_creatable(path: Path, why: str) -> None:
    """A path to be created: its nearest existing ancestor must be a folder this process may write in."""
    ancestor = path.absolute().parent
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise DefectbenchError(f"cannot write {path}{why}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise DefectbenchError(f"cannot write {path}{why}: no permission to write in {ancestor}")


def replace_atomically(path: Path, write: Callable[[Path], None], why: str = "") -> Path:
    """Check ``path`` (:func:`check_replaceable`), ``write`` the new content to a temporary file beside it,
    then rename it into place: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    check_replaceable(path, why)
    path.parent.mkdir(parents=True, exist_ok=True)
    for k in itertools.count():  # created exclusively ("x"): the temporary file is never someone else's
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{k}.tmp")
        try:
            tmp.open("x").close()
            break
        except FileExistsError:
            continue
    try:
        write(tmp)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # the file made above: the rename did not happen
        raise
    return path


def write_text(path: Path, text: str, why: str = "") -> Path:
    return replace_atomically(path, lambda tmp: tmp.write_text(text), why)


def save_figure(fig, path: Path, dpi: int, why: str = "") -> Path:
    """``fig.savefig`` as PNG, signed (``Software`` chunk), through :func:`replace_atomically`."""
    return replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png",
                                                            metadata={"Software": written_by()}), why)


def remove_if_ours(path: Path) -> bool:
    """Delete ``path`` where it is a file defectbench wrote (True); leave anything else (False)."""
    if is_ours(path):
        Path(path).unlink()
        return True
    return False
