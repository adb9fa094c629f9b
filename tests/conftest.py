"""Shared fixtures: small real builds from the built-in synth corpus, made once per test session."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
if "DEFECTBENCH_CACHE" not in os.environ:  # stored verifications: never the user's cache
    import tempfile

    os.environ["DEFECTBENCH_CACHE"] = tempfile.mkdtemp(prefix="defectbench-cache-")


@pytest.fixture(scope="session")
def clicks_dataset(tmp_path_factory) -> Path:
    """fma-clicks from synth, 2 pieces per split (100 segments each)."""
    from defectbench.engine import build

    out = tmp_path_factory.mktemp("ds") / "fma-clicks"
    build("fma-clicks", "synth", out, limit=2, progress=False)
    return out


@pytest.fixture(scope="session")
def model_clicks(tmp_path_factory) -> Path:
    """A small fma-clicks variant for the model tests (tests/models_fixtures.py): 24 rows per split, row groups of 8."""
    from models_fixtures import click_dataset

    return click_dataset(tmp_path_factory.mktemp("model-clicks"))


@pytest.fixture(scope="session")
def model_video(tmp_path_factory) -> Path:
    """A small video-artifacts variant with every class in every split (tests/models_fixtures.py)."""
    from models_fixtures import video_dataset

    return video_dataset(tmp_path_factory.mktemp("model-video"))


@pytest.fixture(scope="session")
def write_recipe(tmp_path_factory):
    """Write a variant of a shipped recipe (TOML text edits) to a temporary file; returns its path."""

    def _write(base: str, replace: dict[str, str] | None = None, name: str | None = None) -> Path:
        from defectbench.recipe import recipe_files

        text = recipe_files()[base].read_text()
        for old, new in (replace or {}).items():
            assert old in text, f"{old!r} not in recipe {base}"
            text = text.replace(old, new)
        path = tmp_path_factory.mktemp("recipes") / f"{name or base}.toml"
        path.write_text(text)
        return path

    return _write


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread: on this shared, oversubscribed 2-core machine torch's 2 OpenMP threads ran these
    models up to 30x slower (benchmarks/RESULTS.md, "Inference throughput"); restored afterwards."""
    import torch

    kept = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(kept)


@pytest.fixture(scope="session")
def bench_script():
    """``load(name)``: a script of benchmarks/ as a module (they are scripts, not a package)."""

    def load(name: str):
        path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
