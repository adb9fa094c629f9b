"""Sources: an FMA tree made by the test (lameenc MP3s + FMA's tracks.csv), a folder with broken
files, and the one-line errors for wrong paths, missing metadata and malformed recipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lameenc
import numpy as np
import pytest
import soundfile as sf

from defectbench.core import DefectbenchError
from defectbench.dataset import iter_rows, read_manifest
from defectbench.engine import build
from defectbench.recipe import load_recipe
from defectbench.sources import list_source

RATE = 44100


def tone(seconds: float, freq: float, rate: int = RATE, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def mp3_bytes(x: np.ndarray, rate: int = RATE) -> bytes:
    enc = lameenc.Encoder()
    enc.set_bit_rate(128)
    enc.set_in_sample_rate(rate)
    enc.set_channels(x.shape[1])
    enc.set_quality(2)
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    return bytes(enc.encode(pcm) + enc.flush())


# FMA's tracks.csv: two header rows (top-level and sub-level column names), then a "track_id" row.
TRACKS_HEADER = (
    ",artist,set,set,track,track,track\n"
    ",id,split,subset,genre_top,genres_all,title\n"
    "track_id,,,,,,\n"
)


def make_fma(root: Path, rows: list[tuple[int, int, str, str, str, str]], missing: set[int] = frozenset()) -> Path:
    audio = root / "fma_small"
    meta = root / "fma_metadata"
    meta.mkdir(parents=True)
    lines = [TRACKS_HEADER]
    for i, (tid, artist, split, subset, top, genres) in enumerate(rows):
        lines.append(f'{tid},{artist},{split},{subset},{top},"{genres}",Track {tid}\n')
        if tid in missing:
            continue
        tid6 = f"{tid:06d}"
        (audio / tid6[:3]).mkdir(parents=True, exist_ok=True)
        stereo = tone(1.2, 220 + 40 * i, channels=2)
        (audio / tid6[:3] / f"{tid6}.mp3").write_bytes(mp3_bytes(stereo))
    (meta / "tracks.csv").write_text("".join(lines))
    return audio


@pytest.fixture(scope="module")
def fma_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fma")
    return make_fma(root, [
        (2, 1, "training", "small", "Hip-Hop", "[21]"),
        (5, 1, "training", "small", "Hip-Hop", "[21, 12]"),
        (10, 6, "validation", "small", "Pop", "[10]"),
        (140, 54, "test", "small", "Folk", "[17]"),
        (141, 54, "test", "small", "Folk", "[17]"),
        (2000, 99, "training", "medium", "Rock", "[12]"),  # not in fma_small: left out silently
        (3000, 7, "training", "small", "Rock", "[12]"),     # listed, audio missing: skipped
    ], missing={3000})


def test_fma_tree_builds_with_fma_splits(tmp_path, fma_tree):
    out = tmp_path / "fma-clicks"
    result = build("fma-clicks", f"fma:{fma_tree}", out, metadata=fma_tree.parent / "fma_metadata", progress=False)
    m = result.manifest
    seen = {s: sorted({r["track_id"] for r in iter_rows(out, s, columns=["track_id"], decode_audio=False)})
            for s in ("train", "validation", "test")}
    assert seen == {"train": ["000002", "000005"], "validation": ["000010"], "test": ["000140", "000141"]}
    # 1.2 s at 44.1 kHz holds 3 segments of 16384 samples: the count is recorded.
    rows = list(iter_rows(out, "train"))
    assert len(rows) == 6 and {r["segments_in_piece"] for r in rows} == {3}
    assert rows[0]["artist_id"] == "1" and rows[3]["genres"] == ["Hip-Hop", "21", "12"]
    assert [s["id"] for s in m["skipped"]] == ["003000"] and "missing" in m["skipped"][0]["reason"]
    assert "2000" not in str(seen)


def test_fma_metadata_default_location(fma_tree):
    listing = list_source(f"fma:{fma_tree}")  # ../fma_metadata beside the audio folder
    assert len(listing.items) == 5


def test_fma_missing_metadata_is_one_clear_error(tmp_path, fma_tree):
    with pytest.raises(DefectbenchError, match="FMA metadata not found"):
        list_source(f"fma:{fma_tree}", metadata=tmp_path / "nowhere")


def test_folder_with_broken_files_reports_each_skip(tmp_path):
    music = tmp_path / "music"
    (music / "album_a").mkdir(parents=True)
    (music / "album_b").mkdir(parents=True)
    sf.write(music / "album_a" / "good.wav", tone(1.0, 330), RATE)
    sf.write(music / "album_a" / "good48k.flac", tone(1.0, 440, rate=48000, channels=2), 48000)
    (music / "album_a" / "empty.mp3").write_bytes(b"")
    full = mp3_bytes(tone(1.0, 550, channels=1))
    (music / "album_b" / "truncated.mp3").write_bytes(full[:300])
    (music / "album_b" / "notes.wav").write_text("this is a text file, not audio\n" * 20)
    sf.write(music / "album_b" / "one_sample.wav", np.array([0.5], np.float32), RATE)
    sf.write(music / "album_b" / "silent.wav", np.zeros(RATE, np.float32), RATE)
    (music / "album_b" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    sf.write(music / "album_b" / "lowrate.wav", tone(2.0, 100, rate=4000), 4000)

    out = tmp_path / "ds"
    result = build("fma-clicks", f"folder:{music}", out, progress=False)
    reasons = {s["id"]: s["reason"] for s in result.manifest["skipped"]}
    assert reasons["album_a/empty.mp3"].startswith("empty file")
    assert reasons["album_b/notes.wav"].startswith("unreadable audio")
    assert reasons["album_b/one_sample.wav"].startswith("too short")
    assert reasons["album_b/silent.wav"].startswith("silent")
    assert reasons["album_b/cover.jpg"].startswith("not an audio file")
    assert reasons["album_b/lowrate.wav"].startswith("odd sample rate")
    assert reasons["album_b/truncated.mp3"].startswith(("too short", "unreadable"))
    assert len(reasons) == 7
    used = {r["item_id"] for s in ("train", "validation", "test")
            for r in iter_rows(out, s, columns=["item_id"], decode_audio=False)}
    assert used == {"album_a/good.wav", "album_a/good48k.flac"}
    counts = read_manifest(out)["skipped_counts"]
    assert sum(counts.values()) == 7 and counts["too short"] >= 1
    card = (out / "README.md").read_text()
    assert "7 source items were skipped" in card


def test_folder_split_groups_by_parent_folder(tmp_path):
    for album in range(12):
        d = tmp_path / f"artist{album}"
        d.mkdir()
        for k in range(3):
            (d / f"{k}.wav").write_bytes(b"")
    listing = list_source(f"folder:{tmp_path}")
    by_album: dict[str, set[str]] = {}
    for item in listing.items:
        by_album.setdefault(item.id.split("/")[0], set()).add(item.split)
    assert all(len(splits) == 1 for splits in by_album.values())
    assert listing.items == sorted(listing.items, key=lambda it: (("train", "validation", "test").index(it.split), it.id))


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "defectbench.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["build", "fma-clicks", "--source", "folder:/no/such/folder"], "is not a folder"),
    (["build", "fma-clicks", "--source", "fma:/no/such/fma_large"], "does not exist"),
    (["build", "no-such-recipe"], "no recipe named"),
    (["build", "fma-clicks", "--source", "ftp:x"], "unknown source"),
    (["info", "/no/such/dataset"], "not a defectbench dataset"),
])
def test_cli_errors_are_one_line(args, message, tmp_path):
    proc = run_cli(*args, cwd=tmp_path)  # a scratch folder: no datasets/ that an earlier build left
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("edit, key", [
    ({"probability = 0.1": "probablity = 0.1"}, "options.defect"),
    ({"segment_length = 16384 ": "segment_length = -5 "}, "options.segment_length"),
    ({'pipeline = "segments"': 'pipeline = "nope"'}, "pipeline"),
    ({"rate = 44100": 'rate = "fast"'}, "source.rate"),
    ({"seed = 0": "seed = 0\nsede = 1"}, "sede"),
    ({'name = "fma-clicks"': 'name = "fma-clicks'}, "not valid TOML"),
])
def test_malformed_recipe_one_line_naming_the_key(write_recipe, edit, key):
    path = write_recipe("fma-clicks", edit, name="broken")
    with pytest.raises(DefectbenchError) as exc:
        load_recipe(path)
    assert key in str(exc.value) and "\n" not in str(exc.value)
    proc = run_cli("build", str(path), "--out", "/tmp/never")
    assert proc.returncode == 2 and key in proc.stderr and "Traceback" not in proc.stderr


def test_recipes_command_lists_every_recipe():
    proc = run_cli("recipes")
    assert proc.returncode == 0
    for name in ("fma-clicks", "fma-clicks-post"):
        assert name in proc.stdout


def test_folder_with_train_validation_test_folders_takes_those_splits(tmp_path):
    """The audiofolder layout: the user's own split, whatever the hash of each album would say."""
    for split, albums in (("train", 5), ("validation", 2), ("test", 3)):
        for album in range(albums):
            d = tmp_path / split / f"album{album}"
            d.mkdir(parents=True)
            (d / "song.wav").write_bytes(b"")
    listing = list_source(f"folder:{tmp_path}")
    assert len(listing.items) == 10
    assert all(item.split == item.id.split("/")[0] for item in listing.items)
    assert any("are the splits" in note for note in listing.notes)
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "song.wav").write_bytes(b"")  # one file outside the three folders: hashed as before
    hashed = list_source(f"folder:{tmp_path}")
    assert not any("are the splits" in note for note in hashed.notes)


def test_combined_source_builds_synth_and_a_folder_together(tmp_path):
    music = tmp_path / "music"
    for split in ("train", "validation", "test"):
        (music / split / "album").mkdir(parents=True)
        sf.write(music / split / "album" / "song.wav", tone(8.0, 330), RATE)
    alone = list_source("synth:2")
    both = list_source(f"synth:2+folder:{music}")
    assert [it.id for it in both.items if it.id.startswith("synth")] == [it.id for it in alone.items]
    assert {it.split for it in both.items if not it.id.startswith("synth")} == {"train", "validation", "test"}
    assert " + " in both.description
    out = tmp_path / "ds"
    build("fma-clicks", f"synth:2+folder:{music}", out, limit=3, progress=False)  # synth:2 has 2 test pieces
    used = {r["item_id"] for r in iter_rows(out, "test", columns=["item_id"], decode_audio=False)}
    assert "test/album/song.wav" in used and any(u.startswith("synth") for u in used)
    with pytest.raises(DefectbenchError, match="both give an item"):
        list_source("synth:2+synth:1")


def test_synth_lists_long_corpora_lazily_and_refuses_a_typo():
    from defectbench.sources.synth import MAX_MINUTES, piece_counts

    listing = list_source("synth:960")  # training on fresh defects reads pieces one at a time
    assert sum(it.split == "train" for it in listing.items) == piece_counts(960)["train"] == 2880
    with pytest.raises(DefectbenchError, match=rf"must be in \(0, {MAX_MINUTES}\]"):
        list_source(f"synth:{MAX_MINUTES * 10}")


def test_synth_events_record_the_drum_hits_without_changing_the_audio():
    from defectbench.sources.synth import generate_piece, piece_style

    piece = next(i for i in (f"synth-test-{k:04d}" for k in range(40)) if piece_style(i) == "electronic")
    events: list = []
    recorded, rate = generate_piece(piece, "electronic", events=events)
    plain, _ = generate_piece(piece, "electronic")
    assert np.array_equal(recorded, plain) and rate == 44100
    kinds = {kind for kind, _, _ in events}
    assert {"kick", "hihat", "tick"} <= kinds and kinds <= {"kick", "snare", "snare-electronic", "hihat", "tick"}
    x = recorded[0]
    ticks = [(start, peak) for kind, start, peak in events if kind == "tick"]
    for start, peak in ticks:
        # A tick is a 1-3 sample transient of height `peak` (in the normalised piece) at `start`: the
        # piece's first difference there is at least the tick's height less what the music can move in a
        # sample (the other hits add to it, so only a lower bound holds).
        jump = np.abs(np.diff(x[max(0, start - 1): start + 4])).max()
        assert jump >= 0.5 * peak, (start, peak, jump)
    assert all(0 < peak < 1 for _, peak in ticks)
