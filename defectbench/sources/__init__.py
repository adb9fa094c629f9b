"""Sources of clean audio: ``synth`` (built in), ``folder``, ``fma``, ``video``.

A source spec is ``KIND`` or ``KIND:ARG`` (``synth``, ``synth:3``, ``folder:/music``, ``fma:/data/fma_large``,
``video:/videos``). Each kind is a function registered with :func:`register` that *lists* items
cheaply (ids, splits, metadata, a lazy ``load``); decoding happens later, in the build's workers.
Problems found while listing (a missing file named by metadata, say) go into ``Listing.skipped``;
problems found while decoding are raised as :class:`~defectbench.core.SkipItem` by ``Item.load``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..core import SPLITS, DefectbenchError, Item, stable_int


@dataclass
class Listing:
    items: list[Item]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(item id or path, reason) for everything left out while listing."""
    description: str = ""
    """One line for the manifest and the dataset card: what the audio is and where it came from."""
    license: str = "unknown"
    """Licence of the source audio, for the dataset card."""
    notes: list[str] = field(default_factory=list)
    """What the user should know about how the source was read (e.g. how a flat folder was split)."""


@dataclass(frozen=True)
class SourceOptions:
    arg: str | None
    metadata: Path | None = None
    seed: int = 0


SourceFn = Callable[[SourceOptions], Listing]
REGISTRY: dict[str, SourceFn] = {}


def register(kind: str) -> Callable[[SourceFn], SourceFn]:
    def deco(fn: SourceFn) -> SourceFn:
        REGISTRY[kind] = fn
        return fn

    return deco


def list_source(spec: str, metadata: Path | None = None, seed: int = 0) -> Listing:
    """Parse a source spec and list its items (sorted by split, then id).

    ``SPEC+SPEC`` (``synth:40+folder:/music``) lists each part and puts their items together, each split
    with each split: a build or a training run on synth and real music at once. An item keeps its id (and
    so its seeds) from its own source; two parts giving the same id is an error.
    """
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    parts = re.split(rf"\+(?=(?:{'|'.join(map(re.escape, REGISTRY))})(?::|$))", spec)
    if len(parts) > 1:
        return _combined([list_source(part, metadata, seed) for part in parts], parts)
    kind, _, arg = spec.partition(":")
    if kind not in REGISTRY:
        raise DefectbenchError(f"unknown source {kind!r} in {spec!r}; use one of: {', '.join(sorted(REGISTRY))}")
    listing = REGISTRY[kind](SourceOptions(arg or None, metadata, seed))
    for item in listing.items:
        if item.split not in SPLITS:
            raise DefectbenchError(f"source {spec!r} gave item {item.id!r} the unknown split {item.split!r}")
    listing.items.sort(key=lambda it: (SPLITS.index(it.split), it.id))
    return listing


def _combined(listings: list[Listing], parts: list[str]) -> Listing:
    seen: dict[str, str] = {}
    for part, listing in zip(parts, listings):
        for item in listing.items:
            if item.id in seen:
                raise DefectbenchError(f"sources {seen[item.id]!r} and {part!r} both give an item {item.id!r}; "
                                       "combine sources whose ids differ")
            seen[item.id] = part
    items = sorted((it for listing in listings for it in listing.items), key=lambda it: (SPLITS.index(it.split), it.id))
    return Listing(items, [x for listing in listings for x in listing.skipped],
                   description=" + ".join(listing.description for listing in listings),
                   license="; ".join(dict.fromkeys(listing.license for listing in listings)),
                   notes=[n for listing in listings for n in listing.notes])


def file_stamp(path: Path) -> str:
    """The listing entry of a file: size and mtime (ns). Cheap (one stat), and changed by any rewrite."""
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def walk_files(root: Path, hidden: bool = True, extensions: set[str] | frozenset = frozenset()
               ) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every regular file under ``root`` (sorted), and every other entry left out, with its reason.

    Symlinks to files are followed; symlinks to folders are not (a loop never hangs the listing) and
    are reported, as are broken symlinks or loops, sockets and pipes. With ``hidden=False`` names
    starting with a dot are left out (and reported). A folder whose name ends in one of ``extensions``
    (``x.wav/``) is reported as not being a file (and still searched).
    """
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        base = Path(folder)
        keep = []
        for d in sorted(dirs):
            path = base / d
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                skipped.append((rel, "symlink to a folder (not followed)"))
            elif not hidden and d.startswith("."):
                skipped.append((rel, "hidden folder"))
            else:
                keep.append(d)
                if Path(d).suffix.lower() in extensions:
                    skipped.append((rel, "a folder named like an audio file, not a file"))
        dirs[:] = keep
        for name in sorted(names):
            path = base / name
            rel = path.relative_to(root).as_posix()
            if not hidden and name.startswith("."):
                skipped.append((rel, "hidden file"))
            elif path.is_symlink() and not path.exists():
                skipped.append((rel, "broken symlink or symlink loop"))
            elif path.is_file():
                files.append(path)
            else:
                skipped.append((rel, "not a regular file"))
    return sorted(files), skipped


def split_for_key(key: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """Deterministic split for a group key (a folder, an artist, a video): same key, same split, everywhere."""
    u = (stable_int("split:" + key) % 10**9) / 10**9
    if u < fractions[0]:
        return SPLITS[0]
    if u < fractions[0] + fractions[1]:
        return SPLITS[1]
    return SPLITS[2]
