"""The build engine: determinism, resumable interrupted builds, the HF output, the manifest."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from defectbench.core import DefectbenchError
from defectbench.dataset import count_rows, iter_rows, read_manifest
from defectbench.engine import build


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_fingerprint_and_bytes_for_1_and_2_workers(tmp_path, clicks_dataset):
    two = build("fma-clicks", "synth", tmp_path / "w2", limit=2, workers=2, progress=False)
    assert two.manifest["fingerprint"] == read_manifest(clicks_dataset)["fingerprint"]
    assert file_hashes(tmp_path / "w2") == file_hashes(clicks_dataset)


def test_other_seed_other_fingerprint(tmp_path, clicks_dataset):
    other = build("fma-clicks", "synth", tmp_path / "s1", limit=2, seed=1, progress=False)
    assert other.manifest["fingerprint"] != read_manifest(clicks_dataset)["fingerprint"]
    assert other.manifest["seed"] == 1


def test_fingerprint_is_hash_of_ordered_sample_hashes(clicks_dataset):
    """Recompute the fingerprint from the written rows, independently of the engine's bookkeeping."""
    m = read_manifest(clicks_dataset)
    h = hashlib.sha256()
    for split in ("train", "validation", "test"):
        for row in iter_rows(clicks_dataset, split):
            rest = {k: v for k, v in row.items() if k not in ("audio", "rate", "target")}
            sample_hash = hashlib.sha256()
            sample_hash.update(b"float32|" + row["audio"].astype("<f4").tobytes() + row["target"].tobytes())
            sample_hash.update(json.dumps(rest, sort_keys=True, separators=(",", ":")).encode())
            h.update(sample_hash.hexdigest().encode() + b"\n")
    assert h.hexdigest() == m["fingerprint"]


def test_manifest_and_counts(clicks_dataset):
    m = read_manifest(clicks_dataset)
    assert m["recipe"]["name"] == "fma-clicks" and m["task"] == "framewise"
    assert m["label_names"] == ["clean", "click"]
    for split in ("train", "validation", "test"):
        info = m["splits"][split]
        assert info["items"] == 2 and info["samples"] == 100 == count_rows(clicks_dataset, split)
        assert sum(info["labels"].values()) == 100
    card = (clicks_dataset / "README.md").read_text()
    assert card.startswith("---\n") and "configs:" in card and m["fingerprint"] in card


def test_load_dataset_offline(clicks_dataset):
    from datasets import Audio, load_dataset

    ds = load_dataset(str(clicks_dataset))
    assert set(ds) == {"train", "validation", "test"}
    assert ds["train"].num_rows == 100
    assert isinstance(ds["train"].features["audio"], Audio)
    assert ds["train"].features["audio"].sampling_rate == 44100
    assert ds["train"].features["label"].names == ["clean", "click"]
    raw = ds["test"].cast_column("audio", Audio(decode=False))
    ours = list(iter_rows(clicks_dataset, "test"))
    assert [r["id"] for r in raw] == [r["id"] for r in ours]
    assert [list(r["target"]) for r in raw.select(range(5))] == [list(r["target"]) for r in ours[:5]]
    # Hub-side decoding (torchcodec) gives the same samples as our soundfile reader.
    decoded = ds["test"][3]["audio"].get_all_samples()
    np.testing.assert_allclose(decoded.data.numpy()[0], ours[3]["audio"], atol=1e-6)


def test_existing_output_needs_overwrite(clicks_dataset):
    with pytest.raises(DefectbenchError, match="already exists"):
        build("fma-clicks", "synth", clicks_dataset, limit=2, progress=False)


def test_interrupted_build_resumes_to_the_same_dataset(tmp_path, write_recipe, clicks_dataset):
    """SIGINT a real build once its first shard is done; no dataset appears; the rerun resumes."""
    recipe = write_recipe("fma-clicks", {"items_per_shard = 4": "items_per_shard = 1"}, name="fma-clicks")
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "defectbench.cli", "build", str(recipe), "--limit", "2", "--out", str(out), "--quiet"]
    # SIG_DFL in the child: a shell running the tests in the background may have SIGINT ignored.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    shards = out.with_name("ds.partial") / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and not list(shards.glob("*.json")) and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "build finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "resume" in stderr and "Traceback" not in stderr
    assert not out.exists()
    with pytest.raises(DefectbenchError, match="did not finish"):
        read_manifest(out)
    done = len(list(shards.glob("*.json")))
    assert 1 <= done < 6
    assert not list(shards.glob(".*.tmp"))  # no half-written shard left behind
    result = build(recipe, "synth", out, limit=2, progress=False)
    assert result.reused_shards == done
    # items_per_shard changes the file layout, not the content: same fingerprint as the fixture.
    assert result.manifest["fingerprint"] == read_manifest(clicks_dataset)["fingerprint"]


def test_post_processing_changes_audio_keeps_length_and_targets(tmp_path, clicks_dataset):
    post = build("fma-clicks-post", "synth", tmp_path / "post", limit=1, progress=False)
    assert post.manifest["recipe"]["name"] == "fma-clicks-post"
    plain = {r["id"]: r for r in iter_rows(clicks_dataset, "test")}
    n = 0
    for row in iter_rows(tmp_path / "post", "test"):
        ref = plain[row["id"]]
        assert row["audio"].shape == ref["audio"].shape == (16384,)
        assert not np.array_equal(row["audio"], ref["audio"])
        np.testing.assert_array_equal(row["target"], ref["target"])  # same seed: the same clicks
        chain = json.loads(row["post_params"])["chain"]
        assert row["post_chain"] == [step["effect"] for step in chain] and chain
        assert set(row["post_chain"]) <= {"reverb", "eq", "compand"}
        n += 1
    assert n == 50


def test_example_spectrograms_one_row_pair_per_label(clicks_dataset, tmp_path):
    from matplotlib.image import imread

    from defectbench.plots import example_spectrograms

    png = example_spectrograms(clicks_dataset, tmp_path / "examples.png", per_label=3)
    # 3 columns of 4 in and, per label (clean, click), 2.6 in of height, at 100 dpi.
    assert imread(png).shape[:2] == (2 * 260, 1200)
