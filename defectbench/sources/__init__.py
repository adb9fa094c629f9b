"""Sources of clean audio: ``synth`` (built in), ``folder``, ``fma``, ``video``.

A source spec is ``KIND`` or ``KIND:ARG`` (``synth``, ``synth:3``, ``folder:/music``, ``fma:/data/fma_large``,
``video:/videos``). Each kind is a function registered with :func:`register` that *lists* items
cheaply (ids, splits, metadata, a lazy ``load``); decoding happens later, in the build's workers.
Problems found while listing (a missing file named by metadata, say) go into ``Listing.skipped``;
problems found while decoding are raised as :class:`~defectbench.core.SkipItem` by ``Item.load``.
"""

from __future__ import annotations

import importlib
import pkgutil
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
    """Parse a source spec and list its items (sorted by split, then id)."""
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")
    kind, _, arg = spec.partition(":")
    if kind not in REGISTRY:
        raise DefectbenchError(f"unknown source {kind!r} in {spec!r}; use one of: {', '.join(sorted(REGISTRY))}")
    listing = REGISTRY[kind](SourceOptions(arg or None, metadata, seed))
    for item in listing.items:
        if item.split not in SPLITS:
            raise DefectbenchError(f"source {spec!r} gave item {item.id!r} the unknown split {item.split!r}")
    listing.items.sort(key=lambda it: (SPLITS.index(it.split), it.id))
    return listing


def split_for_key(key: str, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> str:
    """Deterministic split for a group key (a folder, an artist, a video): same key, same split, everywhere."""
    u = (stable_int("split:" + key) % 10**9) / 10**9
    if u < fractions[0]:
        return SPLITS[0]
    if u < fractions[0] + fractions[1]:
        return SPLITS[1]
    return SPLITS[2]
