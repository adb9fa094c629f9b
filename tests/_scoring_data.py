"""A real small ``fma-clicks`` dataset (built by the engine from the synth source) and one SigClick
result on it, built once per test session and shared by the scoring tests (never a fake dataset)."""

from __future__ import annotations

from pathlib import Path

_cache: dict[str, Path] = {}


def fma_clicks(tmp_path_factory) -> Path:
    if "dataset" not in _cache:
        from defectbench.engine import build

        out = tmp_path_factory.mktemp("scoring-data") / "fma-clicks"
        build("fma-clicks", "synth", out, limit=1, workers=1, progress=False)
        _cache["dataset"] = out
    return _cache["dataset"]


def sigclick_result(tmp_path_factory) -> Path:
    """Path of ``defectbench run --model sigclick`` on :func:`fma_clicks` (1 worker, 200 resamples)."""
    if "result" not in _cache:
        from defectbench.runner import run

        out = tmp_path_factory.mktemp("scoring-results") / "fma-clicks" / "sigclick.json"
        run("sigclick", fma_clicks(tmp_path_factory), out=out, workers=1, n_resamples=200, show_progress=False)
        _cache["result"] = out
    return _cache["result"]
