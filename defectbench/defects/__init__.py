"""Defects: each is a pair of pure functions (see ../shared/STYLE.md, audiotools/audiomentations).

``sample(rng, audio, rate) -> params`` draws every random value into a plain JSON-serialisable dict;
``apply(audio, rate, params) -> (degraded, mask)`` applies it deterministically. The params dict *is*
the metadata stored with each sample, and passing it back replays the exact defect. One file per
defect, its docstring citing the paper section it implements. Configuration (the recipe's ranges and
probabilities) is a pydantic model, validated once when the recipe is read.

Every defect declares the audio it takes (``audio``): ``float-mono`` (a 1-D float32 segment in
[-1, 1]: the music recipes), ``int16-multichannel`` (int16 ``[channels, n]``: the video recipe) or
``float-mono-piece`` (a whole mono piece, encoded as one stream: MP3 glitches). A pipeline refuses a
defect whose audio it does not carry. Segment defects also declare their metadata columns
(``columns()``, ``column_values(params)``), which the pipeline writes instead of hard-coding them,
and may check their ranges against the segment (``check(length, rate)``, raising ValueError).

Register a defect with :func:`register`; recipes name it by ``kind``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict


class DefectConfig(BaseModel):
    """Base of every defect's recipe section: unknown keys are errors (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: str


class Defect(Protocol):
    kind: ClassVar[str]
    audio: ClassVar[str]
    Config: ClassVar[type[DefectConfig]]

    def __init__(self, config: DefectConfig) -> None: ...

    def sample(self, rng: np.random.Generator, audio: np.ndarray, rate: int) -> dict[str, Any]: ...

    def apply(self, audio: np.ndarray, rate: int, params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]: ...


REGISTRY: dict[str, type] = {}


def register(cls: type) -> type:
    """Class decorator: make a defect available to recipes under ``cls.kind``."""
    REGISTRY[cls.kind] = cls
    return cls


def make(config: dict[str, Any] | DefectConfig):
    """Build a defect from its recipe section (dict or validated config)."""
    kind = config.kind if isinstance(config, DefectConfig) else config.get("kind")
    if kind not in REGISTRY:
        load_builtin(kind)
    if isinstance(config, DefectConfig):
        return REGISTRY[config.kind](config)
    if kind not in REGISTRY:
        load_builtin()
        raise ValueError(f"unknown defect kind {kind!r}; known: {', '.join(sorted(REGISTRY))}")
    cls = REGISTRY[kind]
    return cls(cls.Config.model_validate(config))


def kinds_taking(audio: str, with_columns: bool = False) -> list[str]:
    """The defect kinds that take ``audio`` (and declare columns, where asked): for error messages."""
    load_builtin()
    return sorted(k for k, cls in REGISTRY.items()
                  if getattr(cls, "audio", None) == audio and (not with_columns or hasattr(cls, "columns")))


def load_builtin(kind: str | None = None) -> None:
    """Import the built-in defect modules (each registers itself): the one named like ``kind`` if there
    is one (a build imports only what its recipe uses), else all of them."""
    import importlib
    import pkgutil

    names = [m.name for m in pkgutil.iter_modules(__path__)]
    if isinstance(kind, str) and kind.replace("-", "_") in names:
        names = [kind.replace("-", "_")]
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
