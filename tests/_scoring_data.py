"""One SigClick result on the session's real ``fma-clicks`` build (conftest ``clicks_dataset``),
made once per test session and shared by the scoring tests."""

from __future__ import annotations

from pathlib import Path

_cache: dict[str, Path] = {}


def sigclick_result(tmp_path_factory, dataset: Path) -> Path:
    """Path of ``defectbench run --model sigclick`` on ``dataset`` (1 worker, 200 resamples)."""
    if "result" not in _cache:
        from defectbench.runner import run

        out = tmp_path_factory.mktemp("scoring-results") / "fma-clicks" / "sigclick.json"
        run("sigclick", dataset, out=out, workers=1, n_resamples=200, show_progress=False)
        _cache["result"] = out
    return _cache["result"]
