"""The README's main job (`defectbench demo`), end to end in a scratch folder, without the training step
(Hook-Net training and scoring are covered by tests/test_models_run.py)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_demo_builds_scores_and_renders_the_board(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "defectbench.cli", "demo", "--no-train", "--minutes", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "datasets/fma-clicks/manifest.json").read_text())
    assert manifest["source"]["spec"] == "synth:1" and manifest["splits"]["test"]["items"] == 2
    result = json.loads((tmp_path / "results/fma-clicks/sigclick.json").read_text())
    assert result["dataset"]["fingerprint"] == manifest["fingerprint"]
    assert result["threshold"]["chosen_on"] == "validation"
    board = (tmp_path / "leaderboard/README.md").read_text()
    assert "sigclick" in board and manifest["fingerprint"][:16] in board
    assert (tmp_path / "leaderboard/index.html").is_file()
    recorded = json.loads((tmp_path / "leaderboard/fingerprints.json").read_text())["builds"]
    assert [b["fingerprint"] for b in recorded] == [manifest["fingerprint"]]
