"""Small datasets for the model tests, built by the real engine (``defectbench.engine.build``) from the
built-in ``synth`` corpus with test variants of the shipped recipes (TOML text edits, written beside the build).

* ``click_dataset``: ``fma-clicks`` with 8 segments per piece, one piece per shard (so one parquet file and
  one row group of 8 rows per piece: several row groups per split for the DDP tests) and a click in half the
  segments; 3 pieces per split: 24 rows in each of train, validation and test.
* ``video_dataset``: ``video-artifacts`` with short defect intervals (Gamma scale 2 s instead of 10 s) so that
  one synth piece per split holds every class of the five; about 120 1-s chunks per split.
"""

from __future__ import annotations

from pathlib import Path

from defectbench.engine import build
from defectbench.recipe import recipe_files

CLICK_EDITS = {
    'name = "fma-clicks"': 'name = "test-clicks"',
    "items_per_shard = 4": "items_per_shard = 1",
    "segments_per_piece = 50": "segments_per_piece = 8",
    "probability = 0.1 ": "probability = 0.5 ",
}
VIDEO_EDITS = {
    'name = "video-artifacts"': 'name = "toy-5way"',
    "gamma_scale = 10.0": "gamma_scale = 2.0",
}


def variant_recipe(base: str, edits: dict[str, str], folder: Path) -> Path:
    """A shipped recipe with text edits, written as ``folder/NAME.toml`` (NAME: the edited ``name``)."""
    text = recipe_files()[base].read_text()
    for old, new in edits.items():
        assert old in text, f"{old!r} not in recipe {base}"
        text = text.replace(old, new)
    name = next(v for k, v in edits.items() if k.startswith("name =")).split('"')[1]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def click_dataset(root: Path, pieces: int = 3) -> Path:
    """``root/test-clicks``: 8 x ``pieces`` rows per split, row groups (and files) of 8 rows."""
    recipe = variant_recipe("fma-clicks", CLICK_EDITS, root / "recipes")
    out = root / "test-clicks"
    build(recipe, "synth", out, limit=pieces, progress=False)
    return out


def video_dataset(root: Path, name: str = "toy-5way") -> Path:
    """``root/NAME``: one synth piece per split of a short-interval ``video-artifacts`` variant."""
    edits = {**VIDEO_EDITS, 'name = "video-artifacts"': f'name = "{name}"'}
    recipe = variant_recipe("video-artifacts", edits, root / "recipes")
    out = root / name
    build(recipe, "synth:0.3", out, limit=1, progress=False)
    return out
