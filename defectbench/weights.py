"""The registry of shipped weights: ``models/weights/<model>-<recipe>.pt`` (+ ``.md`` card, ``.png`` curve).

A weights file is a defectbench checkpoint (:data:`~defectbench.neural.CHECKPOINT_FORMAT`) without
optimiser state, read with ``torch.load(weights_only=True)``, with a ``shipped`` entry that
``defectbench ship`` adds: the recipe it was trained for, the decision threshold chosen on validation
(``None`` for CNN6: arg-max) and the test figures of its card. ``defectbench run`` and
``defectbench detect`` use :func:`resolve` when no ``--checkpoint`` is given; where nothing was trained
for a (model, recipe) they refuse with one line instead of scoring a random initialisation.

The folder is package data (``defectbench.models/weights``); ``DEFECTBENCH_WEIGHTS=DIR`` points the
registry at another folder (your own trained weights, or the test suite's).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from .core import DefectbenchError

ENV = "DEFECTBENCH_WEIGHTS"
MAX_BYTES = 20 * 1024 * 1024  # issue 11: each shipped file <= 20 MB


def weights_dir() -> Path:
    """The registry folder: ``$DEFECTBENCH_WEIGHTS`` when set, else the package's ``models/weights/``."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    from importlib.resources import files

    return Path(str(files("defectbench.models"))) / "weights"


@dataclass(frozen=True)
class Shipped:
    model: str
    recipe: str
    path: Path

    @property
    def card(self) -> Path:
        return self.path.with_suffix(".md")

    @property
    def curve(self) -> Path:
        return self.path.with_suffix(".png")


def file_name(model: str, recipe: str) -> str:
    return f"{model}-{recipe}.pt"


def available(folder: Path | None = None) -> list[Shipped]:
    """Every ``<model>-<recipe>.pt`` in the registry, by name (the model is the part before the first '-')."""
    folder = folder or weights_dir()
    out = []
    for p in sorted(folder.glob("*.pt")) if folder.is_dir() else []:
        model, sep, recipe = p.stem.partition("-")
        if sep and recipe:
            out.append(Shipped(model, recipe, p))
    return out


def resolve(model: str, recipe: str, config: str | None = None) -> Path:
    """The shipped weights of ``model`` for ``recipe`` (and, when given, configuration ``config``), or one
    clear error naming what exists and what to do instead."""
    folder = weights_dir()
    path = folder / file_name(model, recipe)
    if not path.is_file():
        have = ", ".join(f"{s.model} for {s.recipe}" for s in available(folder)) or "none"
        raise DefectbenchError(
            f"no trained {model} weights for recipe {recipe!r} in {folder} (shipped: {have}); train them "
            f"(defectbench train) and pass --checkpoint, or pass --untrained to score a random initialisation")
    if config is not None:
        from .neural import load_checkpoint

        shipped_config = load_checkpoint(path).get("config_name")
        if shipped_config != config:
            raise DefectbenchError(f"the shipped {model} weights for {recipe!r} are configuration {shipped_config!r}, "
                                   f"not {config!r}: nobody trained {config!r}; pass --checkpoint or --untrained")
    return path


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
