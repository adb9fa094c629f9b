"""Golden regression of the benchmark builds (tests/golden/benchmark.json, written by
``python -m defectbench.golden --write``): one shard of each paper recipe's benchmark build is built
afresh through the engine and must give the recorded sample hashes and shard digest; the board's
reference builds must be exactly the golden ones. A change in generated audio, targets or metadata
fails here until the golden file is regenerated on purpose, with a changelog line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectbench.dataset import fingerprint
from defectbench.engine import build, parts_dir
from defectbench.golden import GOLDEN
from defectbench.recipe import load_recipe, recipe_files

GOLDEN_DOC = json.loads(GOLDEN.read_text())
FINGERPRINTS = Path(__file__).resolve().parent.parent / "leaderboard" / "fingerprints.json"


def test_every_recipe_with_a_benchmark_source_has_golden_values_and_a_changelog():
    with_benchmark = {n for n in recipe_files() if load_recipe(n).source.benchmark}
    assert with_benchmark == {"fma-clicks", "fma-clicks-post", "fma-mp3-glitch", "video-artifacts"}
    assert set(GOLDEN_DOC["builds"]) == with_benchmark
    assert GOLDEN_DOC["changelog"] and all(line[:4].isdigit() for line in GOLDEN_DOC["changelog"])
    for name, g in GOLDEN_DOC["builds"].items():
        assert g["source"] == load_recipe(name).source.benchmark and g["seed"] == load_recipe(name).seed
        assert len(g["shards"]) == g["num_shards"] and list(g["shards"])[g["check_shard"]].startswith("test-")
        clean = load_recipe(name).options.get("label_names", ["no_defect"])[0]
        defective = sum(n for label, n in g["test_labels"].items() if label != clean)
        assert defective >= 300, f"{name}: {defective} defective test samples, the benchmark needs 300"


def test_the_board_reference_builds_are_the_golden_ones():
    refs = {(b["recipe"], b["source"], b["seed"]): b for b in json.loads(FINGERPRINTS.read_text())["builds"]}
    for name, g in GOLDEN_DOC["builds"].items():
        ref = refs[(name, g["source"], g["seed"])]
        assert ref["fingerprint"] == g["fingerprint"] and ref["test_samples"] == g["test_samples"]
        assert ref["limit"] is None


@pytest.mark.parametrize("name", sorted(GOLDEN_DOC["builds"]))
def test_a_benchmark_shard_built_afresh_gives_the_golden_hashes(name, tmp_path):
    g = GOLDEN_DOC["builds"][name]
    out = tmp_path / name
    build(name, g["source"], out, seed=g["seed"], num_shards=g["num_shards"], shard_index=g["check_shard"],
          progress=False)
    key = list(g["shards"])[g["check_shard"]]
    (summary,) = [json.loads(p.read_text()) for p in parts_dir(out).glob("*/shards/*.json")]
    assert f"{summary['split']}-{summary['index']:05d}" == key
    assert summary["hashes"][: len(g["samples"])] == g["samples"]
    assert fingerprint(summary["hashes"]) == g["shards"][key]
