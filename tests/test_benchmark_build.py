"""`defectbench build RECIPE --benchmark`: the recipe's benchmark source, into datasets/bench/RECIPE
(the exact commands, in a scratch folder; --limit keeps it small)."""

from __future__ import annotations

import json
import subprocess
import sys

from defectbench.recipe import load_recipe


def cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "defectbench.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_benchmark_flag_builds_the_recipe_benchmark_source_into_datasets_bench(tmp_path):
    p = cli(["build", "fma-clicks", "--benchmark", "--limit", "1", "--quiet"], tmp_path)
    assert p.returncode == 0, p.stderr
    m = json.loads((tmp_path / "datasets/bench/fma-clicks/manifest.json").read_text())
    assert m["source"]["spec"] == load_recipe("fma-clicks").source.benchmark == "synth:60"
    assert m["splits"]["test"]["samples"] == 50 and m["limit"] == 1
    # --source benchmark is the same thing; a second build does not overwrite the first
    again = cli(["build", "fma-clicks", "--source", "benchmark", "--limit", "1", "--quiet"], tmp_path)
    assert again.returncode == 2 and "already exists; pass --overwrite" in again.stderr
    both = cli(["build", "fma-clicks", "--benchmark", "--source", "synth"], tmp_path)
    assert both.returncode == 2 and both.stderr.count("\n") == 1
    assert "--benchmark names the recipe's benchmark source; give it or --source, not both" in both.stderr


def test_the_click_recipes_benchmark_size_gives_3000_test_segments():
    from defectbench.sources.synth import piece_counts

    for name in ("fma-clicks", "fma-clicks-post"):
        r = load_recipe(name)
        pieces = piece_counts(float(r.source.benchmark.split(":")[1]))["test"]
        # 50 segments per 20 s synth piece, a click in 10 % of them: >= 3,000 segments, about 300 clicks
        assert pieces * r.options["segments_per_piece"] >= 3000
    for name in ("fma-mp3-glitch", "video-artifacts"):
        assert load_recipe(name).source.benchmark.startswith("synth:")  # sizes measured: benchmarks/RESULTS.md
