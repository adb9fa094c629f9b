"""benchmarks/real_music_folder.py: the real-music folder the model cards name, made from the Debian
packages' install tree (here a small copy of that tree with real audio files the test writes)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from defectbench.sources import SourceOptions
from defectbench.sources.folder import folder_source

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "real_music_folder.py"
SONGS = {  # the install paths of the three packages, as Debian lays them out
    "fretsonfire/data/songs/muldjord": ["armygeddon", "chaos_god", "internal_degeneration", "mutilated_mime"],
    "fretsonfire/data/songs/sectoid": ["Escape from chaosland", "Feelings", "Metal madness", "War of freedom"],
}


def games_tree(root: Path, *, asc: bool = True) -> Path:
    tone = (0.1 * np.sin(np.arange(4410) * 0.05)).astype(np.float32)
    for pack, songs in SONGS.items():
        for song in songs:
            (root / pack / song).mkdir(parents=True)
            for stem in ("song", "guitar"):
                sf.write(root / pack / song / f"{stem}.ogg", tone, 44100)
    if asc:
        (root / "asc/music").mkdir(parents=True)
        for name in ("frontiers", "machine_wars", "time_to_strike"):
            sf.write(root / "asc/music" / f"{name}.mp3", tone, 44100)
    return root


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_the_folder_holds_the_cards_split_and_the_folder_source_reads_it(tmp_path: Path):
    games = games_tree(tmp_path / "games")
    out = tmp_path / "real"
    p = run(str(out), "--games", str(games))
    assert p.returncode == 0, p.stderr
    links = sorted(q.relative_to(out).as_posix() for q in out.rglob("*") if q.is_symlink())
    assert len(links) == 11 and not any("guitar" in q for q in links)  # full mixes only
    listing = folder_source(SourceOptions(f"{out}"))
    by_split = {s: sorted(i.meta["artist_id"] for i in listing.items if i.split == s) for s in ("train", "validation", "test")}
    assert by_split["validation"] == ["validation/sectoid_Metal_madness"]
    assert by_split["test"] == ["test/asc"] * 3 + ["test/sectoid_War_of_freedom"]
    assert len(by_split["train"]) == 6 and all(g.startswith("train/") for g in by_split["train"])
    assert all((out / q).resolve().is_relative_to(games.resolve()) for q in links)  # links, no copies
    assert np.allclose(sf.read(out / "validation/sectoid_Metal_madness/song.ogg")[0][:100],
                       sf.read(games / "fretsonfire/data/songs/sectoid/Metal madness/song.ogg")[0][:100])


def test_a_missing_package_or_a_used_folder_is_one_line_and_nothing_written(tmp_path: Path):
    games = games_tree(tmp_path / "games", asc=False)
    out = tmp_path / "real"
    p = run(str(out), "--games", str(games))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "asc-music" in p.stderr, p.stderr
    assert not out.exists()

    games = games_tree(tmp_path / "games2")
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    p = run(str(out), "--games", str(games))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "not an empty folder" in p.stderr, p.stderr
    assert sorted(x.name for x in out.iterdir()) == ["mine.txt"] and (out / "mine.txt").read_text() == "a user's file"
