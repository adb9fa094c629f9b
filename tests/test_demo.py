"""The README's main job (`defectbench demo`), end to end in a scratch folder, without the training step
(Hook-Net training and scoring are covered by tests/test_models_run.py). The registry points at the
test-only weights (tests/data/weights/) unless the shipped ones are installed, so the shipped-Hook-Net
step runs either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from defectbench.weights import available, sha256_file


def test_demo_builds_scores_and_renders_the_board(tmp_path):
    env = dict(os.environ)
    if not any(s.model == "hooknet" and s.recipe == "fma-clicks" for s in available()):
        env["DEFECTBENCH_WEIGHTS"] = str(Path(__file__).parent / "data" / "weights")
    proc = subprocess.run([sys.executable, "-m", "defectbench.cli", "demo", "--no-train", "--minutes", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "datasets/fma-clicks/manifest.json").read_text())
    assert manifest["source"]["spec"] == "synth:1" and manifest["splits"]["test"]["items"] == 2
    result = json.loads((tmp_path / "results/fma-clicks/sigclick.json").read_text())
    assert result["dataset"]["fingerprint"] == manifest["fingerprint"]
    assert result["threshold"]["chosen_on"] == "validation"
    hooknet = json.loads((tmp_path / "results/fma-clicks/hooknet.json").read_text())  # the shipped weights
    weights = Path(env.get("DEFECTBENCH_WEIGHTS") or available()[0].path.parent) / "hooknet-fma-clicks.pt"
    assert hooknet["model"]["weights_sha256"] == sha256_file(weights)
    assert hooknet["dataset"]["fingerprint"] == manifest["fingerprint"]
    board = (tmp_path / "results/demo-leaderboard/README.md").read_text()
    assert "sigclick" in board and "hooknet" in board and manifest["fingerprint"][:16] in board
    assert (tmp_path / "results/demo-leaderboard/index.html").is_file()
    assert not (tmp_path / "leaderboard").exists()  # the shipped board is never touched by the demo
    recorded = json.loads((tmp_path / "results/demo-leaderboard/fingerprints.json").read_text())["builds"]
    assert [b["fingerprint"] for b in recorded] == [manifest["fingerprint"]]
