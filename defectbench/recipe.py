"""Recipes: small declarative TOML files in ``recipes/``, validated once with a clear message.

A recipe file::

    name = "fma-clicks"
    description = "one line"
    paper = "music paper, section 4"
    pipeline = "segments"          # defectbench/pipelines/<name>.py
    seed = 0
    [source]
    default = "synth"              # synth | synth:MINUTES | folder:PATH | fma:PATH | video:PATH
    benchmark = "synth:60"         # the board's reference build (`defectbench build NAME --benchmark`)
    rate = 44100
    channels = 1
    [options]                      # validated by the pipeline's Config
    ...
"""

from __future__ import annotations

import hashlib
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import pipelines
from .core import DefectbenchError

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


class SourceSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    default: str = "synth"
    benchmark: str | None = None
    """The benchmark-size source (a test split with >= 300 defective samples): the board's reference build."""
    rate: int = Field(ge=8000, le=384000)
    """The rate every item is resampled to (Hz); below 8 kHz no recipe's defects or targets make sense."""
    channels: int = Field(ge=1, le=2)
    min_rate: int = Field(default=8000, gt=0)
    """Source files below this rate are skipped ("odd rate")."""
    max_channels: int = Field(default=8, ge=1)
    """Source files with more channels are skipped ("odd channel count")."""


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str
    paper: str
    pipeline: str
    seed: int = 0
    items_per_shard: int = Field(default=4, ge=1)
    """Source items per output shard: fixed by the recipe so shards do not depend on the worker count."""
    source: SourceSection
    options: dict[str, Any] = Field(default_factory=dict)
    path: str = ""
    sha256: str = ""

    def make_pipeline(self) -> pipelines.Pipeline:
        cls = pipelines.get(self.pipeline)
        return cls(cls.Config.model_validate(self.options), self.source.rate, self.source.channels)


def recipe_files() -> dict[str, Path]:
    """Recipe name -> file, for every ``recipes/*.toml`` (the repo folder, or the installed copy)."""
    folders = [RECIPES_DIR]
    try:
        import defectbench.recipes as installed

        folders.append(Path(installed.__path__[0]))
    except ImportError:  # pragma: no cover - only when the recipes folder is not installed
        pass
    found: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def _format_error(path: Path, err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"recipe {path}: key '{loc}': {first['msg']}{more}"


def load_recipe(name_or_path: str | Path) -> Recipe:
    """Read and validate a recipe by name (``fma-clicks``) or path; errors name the bad key."""
    path = Path(name_or_path)
    if not path.suffix:
        files = recipe_files()
        if str(name_or_path) not in files:
            raise DefectbenchError(
                f"no recipe named {name_or_path!r}; known: {', '.join(sorted(files)) or 'none'}"
            )
        path = files[str(name_or_path)]
    if not path.is_file():
        raise DefectbenchError(f"recipe file not found: {path}")
    raw_bytes = path.read_bytes()
    try:
        raw = tomllib.loads(raw_bytes.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DefectbenchError(f"recipe {path}: not valid TOML: {exc}") from None
    try:
        recipe = Recipe.model_validate(
            {**raw, "path": str(path), "sha256": hashlib.sha256(raw_bytes).hexdigest()}
        )
    except ValidationError as exc:
        raise DefectbenchError(_format_error(path, exc)) from None
    try:
        cls = pipelines.get(recipe.pipeline)
    except KeyError as exc:
        raise DefectbenchError(f"recipe {path}: key 'pipeline': {exc.args[0]}") from None
    try:
        cls.Config.model_validate(recipe.options)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise DefectbenchError(f"recipe {path}: key 'options.{loc}': {first['msg']}") from None
    return recipe


BENCHMARK_DIR = Path("datasets") / "bench"
"""Where ``defectbench build NAME --benchmark`` writes by default (``datasets/bench/NAME``)."""


def benchmark_source(recipe: Recipe) -> str:
    """The recipe's benchmark source, or one clear error when the recipe names none."""
    if not recipe.source.benchmark:
        raise DefectbenchError(f"recipe {recipe.name!r} names no benchmark source ([source] benchmark = \"synth:60\")")
    return recipe.source.benchmark
