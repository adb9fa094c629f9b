"""Issue 13, adversarial: no build looks whole when it is not. Resumption from a changed source, the
error boundary (only declared skips; rows of failed items never committed), recipes checked against
their pipeline, fingerprints verified, and every source file left out said so."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from defectbench.core import Sample
from defectbench.dataset import ROW_GROUP, ShardWriter, build_features, iter_rows, read_manifest
from test_safety_build import cli, one_line_error

RATE = 44100
TINY = ["--source", "synth:0.2", "--limit", "1", "--quiet"]


def music(seconds: float, seed: int, level: float = 0.3) -> np.ndarray:
    """A few seconds of noisy chords: real audio content for a folder source."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f = 110 * 2 ** (rng.integers(0, 24) / 12)
    x = sum(np.sin(2 * np.pi * f * k * t + rng.uniform(0, 6)) / k for k in (1, 2, 3, 5))
    x = x + 0.1 * rng.standard_normal(len(t))
    return (level * x / np.max(np.abs(x))).astype(np.float32)


@pytest.fixture(scope="module")
def recipe(write_recipe) -> Path:
    return write_recipe("fma-clicks", {"segments_per_piece = 50": "segments_per_piece = 2",
                                       "items_per_shard = 4": "items_per_shard = 1"}, name="clicks-tiny")


def ids(ds: Path) -> list[str]:
    return [r["id"] for s in ("train", "validation", "test") for r in iter_rows(ds, s, columns=["id"])]


# ------------------------------------------------------------------------------ resumption

def test_resume_after_the_source_changed_equals_a_fresh_build(recipe, tmp_path):
    src = tmp_path / "music"
    for i in range(12):  # 12 albums of one file: every split gets some, one shard per file
        (src / f"album{i:02d}").mkdir(parents=True)
        sf.write(src / f"album{i:02d}" / "a.wav", music(1.0, i), RATE)
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "defectbench.cli", "build", str(recipe), "--source", f"folder:{src}",
           "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shards = tmp_path / "ds.partial" / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and len(list(shards.glob("*.json"))) < 2:
        time.sleep(0.005)
    proc.kill()  # interrupted with finished shards
    proc.wait()
    assert not out.exists(), "the build finished before it could be interrupted"
    finished = sorted(p.stem for p in shards.glob("*.json"))
    assert finished
    # the source changes under the interrupted build: a finished item's file rewritten (same size, new
    # content and mtime), the last item's album removed, an album added
    from defectbench.sources import list_source

    items = list_source(f"folder:{src}").items  # in shard order: one item per shard
    names = {}
    for it in items:
        names.setdefault(it.split, []).append(it.id)
    split, index = finished[0].rsplit("-", 1)
    done = names[split][int(index)]
    sf.write(src / done, music(1.0, 99), RATE)
    os.utime(src / done, ns=(time.time_ns(), time.time_ns() + 10**9))
    gone = items[-1].id
    shutil.rmtree(src / gone.split("/")[0])
    (src / "album99").mkdir()
    sf.write(src / "album99" / "a.wav", music(1.0, 7), RATE)

    resumed = cli("build", recipe, "--source", f"folder:{src}", "--out", out, "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    fresh = cli("build", recipe, "--source", f"folder:{src}", "--out", tmp_path / "fresh", "--quiet", cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert read_manifest(out)["fingerprint"] == read_manifest(tmp_path / "fresh")["fingerprint"]
    got = ids(out)
    assert len(got) == len(set(got)) and not any(i.startswith(gone) for i in got)
    assert any(i.startswith("album99/") for i in got)


# ------------------------------------------------------------------------------ the error boundary

def _sample(i: int, item: str) -> Sample:
    audio = np.full(16, i / 1000, dtype=np.float32)
    return Sample(f"{item}/{i:03d}", audio, RATE, np.zeros(4, np.uint8), 0,
                  meta={"split": "train", "x": i, "source_clipped_samples": 0}, params={"i": i})


@pytest.mark.parametrize("rows", [3, 2 * ShardWriter.SPILL_ROWS + 5])  # in memory, and spilled to disk
def test_a_skipped_item_leaves_no_rows_in_its_shard(tmp_path, rows):
    from datasets import ClassLabel, List, Value

    features = build_features({"target": List(Value("uint8")), "label": ClassLabel(names=["a", "b"]),
                               "split": Value("string"), "x": Value("int32"), "params": Value("string")}, RATE)
    path = tmp_path / "shard.parquet"
    writer = ShardWriter(path, features.arrow_schema)
    for i in range(rows):
        writer.add(_sample(i, "kept"))
    writer.commit_item()
    for i in range(rows):  # an item that fails half-way
        writer.add(_sample(i, "failed"))
    writer.discard_item()
    writer.add(_sample(0, "last"))
    writer.commit_item()
    writer.close()
    import pyarrow.parquet as pq

    stored = pq.read_table(path).column("id").to_pylist()
    assert stored == [f"kept/{i:03d}" for i in range(rows)] + ["last/000"]
    assert len(writer.hashes) == writer.count == rows + 1
    assert {g.num_rows for g in (pq.ParquetFile(path).metadata.row_group(k) for k in range(pq.ParquetFile(path).num_row_groups))} <= {ROW_GROUP, (rows + 1) % ROW_GROUP}
    assert not list(tmp_path.glob("*.item.tmp"))  # no spill file left


def test_an_exception_in_an_item_stops_the_build_naming_the_item(tmp_path):
    empty = tmp_path / "bin"  # sox is not on PATH: the post-processing chain fails for real
    empty.mkdir()
    proc = cli("build", "fma-clicks-post", "--out", tmp_path / "ds", *TINY, cwd=tmp_path, env={"PATH": str(empty)})
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]  # pysox itself warns first
    assert len(errors) == 1, proc.stderr
    first = errors[0]
    assert first.startswith("error: build stopped:") and "item 'synth-train-0000'" in first, first
    assert "not a skipped item" in first
    assert not (tmp_path / "ds").exists()  # nothing that looks like a dataset
    assert not (tmp_path / "ds.partial" / "manifest.json").exists()


def test_a_full_disk_says_so(recipe, tmp_path):
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        proc = cli("build", "fma-clicks", "--out", mnt / "ds", *TINY, cwd=tmp_path)
        one_line_error(proc, "disk full")
        assert not (mnt / "ds").exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


# ------------------------------------------------------------------------------ recipes

def _recipe(tmp_path: Path, write_recipe, old: str, new: str) -> Path:
    if old == "[options.defect]":  # the whole defect section replaced
        from defectbench.recipe import recipe_files

        text = recipe_files()["fma-clicks"].read_text()
        path = tmp_path / "bad.toml"
        path.write_text(text[: text.index(old)] + new + "\n")
        return path
    return write_recipe("fma-clicks", {old: new}, name=f"bad-{abs(hash(new)) % 10**6}")


@pytest.mark.parametrize("old,new,needles", [
    ("[options.defect]", '[options.defect]\nkind = "hum"', ["defect kind 'hum' takes int16-multichannel",
                                                          "usable here: click"]),
    ("[options.defect]", '[options.defect]\nkind = "sox_chain"', ["defect kind 'sox_chain'", "usable here: click"]),
    ('kind = "click"', 'kind = "clack"', ["unknown defect kind 'clack'", "known:", "click", "hum"]),
    ("max_length = 3", "max_length = 20000", ["defect.max_length", "longer than the segment"]),
    ("rate = 44100", "rate = 100", ["source.rate", "8000"]),
])
def test_recipes_are_checked_against_their_pipeline(write_recipe, tmp_path, old, new, needles):
    path = _recipe(tmp_path, write_recipe, old, new)
    one_line_error(cli("build", path, "--out", tmp_path / "ds", *TINY, cwd=tmp_path), *needles)
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()


def test_a_malformed_tracks_csv_row_is_skipped_with_its_reason(tmp_path, recipe):
    from test_sources import make_fma

    audio = make_fma(tmp_path, [(2, 1, "training", "small", "Pop", "[10]"), (3, 1, "validation", "small", "Pop", "[10]"),
                                (4, 2, "test", "small", "Pop", "[10]"), (5, 3, "training", "small", "Pop", "[10")])
    csv = tmp_path / "fma_metadata" / "tracks.csv"
    csv.write_text(csv.read_text() + "x7,1,training,small,Pop,\"[1]\",Track x\n8,,training,small,Pop,\"[1]\",Track 8\n")
    proc = cli("build", recipe, "--source", f"fma:{audio}", "--out", tmp_path / "ds", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    skipped = {s["id"]: s["reason"] for s in read_manifest(tmp_path / "ds")["skipped"]}
    assert skipped["000005"].startswith("malformed tracks.csv row") and skipped["x7"].startswith("malformed tracks.csv row")
    assert skipped["000008"].startswith("malformed tracks.csv row")


# ------------------------------------------------------------------------------ verify

@pytest.fixture(scope="module")
def verified(recipe, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verify")
    proc = cli("build", recipe, "--out", root / "ds", *TINY, cwd=root)
    assert proc.returncode == 0, proc.stderr
    return root / "ds"


def test_a_swapped_parquet_file_fails_verify_info_and_publish(verified, tmp_path):
    a = verified
    ok = cli("verify", a, cwd=tmp_path)
    assert ok.returncode == 0 and "recomputed" in ok.stdout
    again = cli("verify", a, cwd=tmp_path)
    assert again.returncode == 0 and "stored verification" in again.stdout
    swapped = tmp_path / "swapped"
    shutil.copytree(a, swapped)
    name = "data/test-00000-of-00001.parquet"
    shutil.copy2(a / "data/train-00000-of-00001.parquet", swapped / name)  # same row count, other rows
    one_line_error(cli("verify", swapped, cwd=tmp_path), "fingerprint", "altered or swapped")
    one_line_error(cli("info", swapped, cwd=tmp_path), "altered or swapped")
    staged = tmp_path / "staged"
    one_line_error(cli("publish", swapped, "--repo", "org/x", "--dry-run", "--staging", staged, cwd=tmp_path),
                   "altered or swapped")
    assert not staged.exists()
    # a stored verification of other bytes is never trusted: copy a's verified file back, then edit it
    shutil.copy2(a / name, swapped / name)
    assert cli("verify", swapped, cwd=tmp_path).returncode == 0
    data = bytearray((swapped / name).read_bytes())
    st = (swapped / name).stat()
    data[len(data) // 2] ^= 0xFF  # same size; the mtime put back
    (swapped / name).write_bytes(bytes(data))
    os.utime(swapped / name, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cli("verify", swapped, cwd=tmp_path).returncode == 2


def test_verify_recomputes_the_readme_definition(verified):
    """The per-row hash as the README defines it, written here from that text, not from the code."""
    import hashlib

    import pyarrow.parquet as pq

    a = verified
    top = hashlib.sha256()
    for split in ("train", "validation", "test"):
        for file in sorted((a / "data").glob(f"{split}-*.parquet")):
            for row in pq.read_table(file).to_pylist():
                audio, _ = sf.read(__import__("io").BytesIO(row.pop("audio")["bytes"]), dtype="float32")
                target = row.pop("target")
                h = hashlib.sha256(b"float32|" + audio.astype("<f4").tobytes() + bytes(target))
                h.update(json.dumps(row, sort_keys=True, separators=(",", ":")).encode())
                top.update(h.hexdigest().encode() + b"\n")
    assert top.hexdigest() == read_manifest(a)["fingerprint"]


# ------------------------------------------------------------------------------ sources

def test_folder_source_reports_every_path_it_leaves_out(recipe, tmp_path):
    src = tmp_path / "music"
    (src / "album" / "x.wav").mkdir(parents=True)  # a folder named like an audio file
    sf.write(src / "album" / "song.wav", music(1.0, 1), RATE)
    loud = music(1.0, 2, level=1.0) * 1.5  # source samples outside [-1, 1] (a float WAV keeps them)
    sf.write(src / "album" / "hot.wav", loud, RATE, subtype="FLOAT")
    sf.write(src / "album" / "quiet.wav", music(1.0, 3, level=10 ** (-78 / 20)), RATE, subtype="FLOAT")  # -78 dBFS peak
    os.symlink(src / "album" / "loop", src / "album" / "loop")  # a symlink loop
    os.symlink(src / "album", src / "link-to-album")
    (src / "album" / "cover.jpg").write_bytes(b"jpeg")
    proc = cli("build", recipe, "--source", f"folder:{src}", "--out", tmp_path / "ds", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = read_manifest(tmp_path / "ds")
    reasons = {s["id"]: s["reason"] for s in m["skipped"]}
    assert reasons["album/x.wav"].startswith("a folder named like an audio file")
    assert reasons["album/loop"] == "broken symlink or symlink loop"
    assert reasons["link-to-album"].startswith("symlink to a folder")
    assert reasons["album/cover.jpg"].startswith("not an audio file extension")
    assert reasons["album/quiet.wav"].startswith("silent")
    assert m["source_clipping"]["items"] == 1 and m["source_clipping"]["per_item"][0]["id"] == "album/hot.wav"
    expected = int(np.count_nonzero(np.abs(loud[: 2 * 16384]) > 1))
    rows = [r for s in ("train", "validation", "test") for r in iter_rows(tmp_path / "ds", s, decode_audio=False)]
    assert {r["item_id"]: r["source_clipped_samples"] for r in rows} == {"album/hot.wav": expected, "album/song.wav": 0}


def test_a_flat_folder_says_how_it_split_and_an_empty_split_is_named(recipe, tmp_path):
    src = tmp_path / "flat"
    src.mkdir()
    for i in range(3):
        sf.write(src / f"{i}.wav", music(1.0, i), RATE)
    proc = cli("build", recipe, "--source", f"folder:{src}", "--out", tmp_path / "ds", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "split 80/10/10 by a hash of each file's path" in proc.stderr
    m = read_manifest(tmp_path / "ds")
    assert "split by file" in m["source"]["description"]
    empty = [s for s in ("train", "validation", "test") if not m["splits"][s]["samples"]]
    for split in empty:
        assert f"no {split}" in proc.stderr and any(split in n for n in m["notes"])


def test_a_long_file_is_decoded_only_as_far_as_the_recipe_uses(tmp_path):
    from defectbench.audio_io import decode
    from defectbench.recipe import load_recipe

    path = tmp_path / "long.flac"
    sf.write(path, np.tile(music(10.0, 5), 60), RATE)  # 10 minutes
    pipeline = load_recipe("fma-clicks").make_pipeline()
    assert pipeline.max_samples == 50 * 16384
    audio, rate = decode(path, pipeline.max_samples / RATE + 1.0)
    assert rate == RATE and audio.shape == (1, int(np.ceil((50 * 16384 / RATE + 1.0) * RATE)))
    whole, _ = decode(path)
    np.testing.assert_array_equal(audio, whole[:, : audio.shape[1]])


def test_a_build_whose_every_item_is_skipped_is_an_error_not_an_empty_dataset(recipe, tmp_path):
    src = tmp_path / "bad"
    for album in ("a", "b"):
        (src / album).mkdir(parents=True)
    sf.write(src / "a" / "short.wav", music(0.1, 1), RATE)  # shorter than one segment
    sf.write(src / "b" / "quiet.wav", music(1.0, 2, level=10 ** (-78 / 20)), RATE, subtype="FLOAT")
    proc = cli("build", recipe, "--source", f"folder:{src}", "--out", tmp_path / "ds", "--quiet", cwd=tmp_path)
    one_line_error(proc, "gave no rows", "silent: 1", "too short: 1")
    assert not (tmp_path / "ds").exists()
