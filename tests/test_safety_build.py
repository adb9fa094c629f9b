"""Issue 13, adversarial: no command removes what defectbench did not create; one build per output;
workers die with their build; SIGTERM is Ctrl-C. Each case runs the exact command in a scratch folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from defectbench.ownership import MARKER

TINY = ["--source", "synth:0.2", "--limit", "1", "--quiet"]


def cli(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "defectbench.cli", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def popen(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "defectbench.cli", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_recipe(write_recipe) -> Path:
    """fma-clicks with 2 segments per piece and one piece per shard: builds in a second or two."""
    return write_recipe("fma-clicks", {"segments_per_piece = 50": "segments_per_piece = 2",
                                       "items_per_shard = 4": "items_per_shard = 1"}, name="clicks-tiny")


@pytest.fixture(scope="module")
def built(small_recipe, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "ds"
    proc = cli("build", small_recipe, "--out", out, *TINY, cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture()
def user_files(tmp_path) -> Path:
    """A folder of a user's own files (and a sub-folder), which nothing may touch."""
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("my notes")
    (mine / "sub" / "song.flac").write_bytes(b"not really audio but mine")
    return mine


# ------------------------------------------------------------------------------ publish --staging

def test_publish_dry_run_never_empties_the_current_folder(built, tmp_path, user_files):
    before = tree(user_files)
    proc = cli("publish", built, "--repo", "org/name", "--dry-run", "--staging", ".", cwd=user_files)
    one_line_error(proc, "refusing to remove", "current folder")
    assert tree(user_files) == before


def test_publish_dry_run_never_empties_a_datasets_folder(built, tmp_path):
    datasets = built.parent
    before = tree(datasets)
    proc = cli("publish", built, "--repo", "org/name", "--dry-run", "--staging", datasets, cwd=tmp_path)
    one_line_error(proc, "refusing to remove")
    assert tree(datasets) == before
    proc = cli("publish", built, "--repo", "org/name", "--dry-run", "--staging", built, cwd=tmp_path)
    assert proc.returncode == 2 and tree(datasets) == before


def test_publish_dry_run_refuses_a_foreign_staging_folder_and_replaces_its_own(built, tmp_path, user_files):
    before = tree(user_files)
    one_line_error(cli("publish", built, "--repo", "org/name", "--dry-run", "--staging", user_files, cwd=tmp_path),
                   "not made by defectbench")
    assert tree(user_files) == before
    staged = tmp_path / "staged"
    for _ in range(2):  # the second run replaces the first run's (marked) folder
        proc = cli("publish", built, "--repo", "org/name", "--dry-run", "--staging", staged, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert json.loads((staged / MARKER).read_text())["kind"] == "staging"


# ------------------------------------------------------------------------------ build --overwrite

def test_overwrite_never_removes_the_source_folder_or_its_parent(small_recipe, tmp_path):
    from defectbench.sources.synth import generate_piece
    import soundfile as sf

    music = tmp_path / "music" / "album"
    music.mkdir(parents=True)
    audio, rate = generate_piece("synth-train-0000", "pop")
    sf.write(music / "a.wav", audio[0, : rate * 2], rate)
    before = tree(tmp_path / "music")
    for out in (music, music.parent):
        proc = cli("build", small_recipe, "--source", f"folder:{music.parent}", "--out", out, "--overwrite",
                   "--quiet", cwd=tmp_path)
        one_line_error(proc, "refusing to remove")
        assert tree(tmp_path / "music") == before
    assert not list(tmp_path.rglob("*.partial"))


def test_overwrite_refuses_the_current_folder_and_a_foreign_folder(small_recipe, user_files):
    before = tree(user_files)
    one_line_error(cli("build", small_recipe, "--out", ".", "--overwrite", *TINY, cwd=user_files), "current folder")
    one_line_error(cli("build", small_recipe, "--out", user_files / "sub", "--overwrite", *TINY, cwd=user_files.parent),
                   "not made by defectbench")
    one_line_error(cli("build", small_recipe, "--out", "/", "--overwrite", *TINY, cwd=user_files), "root folder")
    assert tree(user_files) == before


def test_overwrite_replaces_a_dataset_it_built(small_recipe, built, tmp_path):
    import shutil

    out = tmp_path / "ds"
    shutil.copytree(built, out)
    proc = cli("build", small_recipe, "--out", out, "--overwrite", "--seed", "3", *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "manifest.json").read_text())["seed"] == 3


def test_a_dataset_built_before_the_marker_counts_as_ours_only_when_it_holds_only_build_files(small_recipe, built, tmp_path):
    import shutil

    out = tmp_path / "old"
    shutil.copytree(built, out)
    (out / MARKER).unlink()  # as an older defectbench wrote it
    (out / "my-notes.txt").write_text("mine")
    one_line_error(cli("build", small_recipe, "--out", out, "--overwrite", *TINY, cwd=tmp_path), "not made by defectbench")
    assert (out / "my-notes.txt").read_text() == "mine"
    (out / "my-notes.txt").unlink()
    proc = cli("build", small_recipe, "--out", out, "--overwrite", *TINY, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def test_a_partial_folder_that_is_not_ours_is_left_alone(small_recipe, tmp_path):
    partial = tmp_path / "ds.partial"
    partial.mkdir()
    (partial / "thesis.tex").write_text("years of work")
    for extra in ([], ["--overwrite"]):
        one_line_error(cli("build", small_recipe, "--out", tmp_path / "ds", *TINY, *extra, cwd=tmp_path),
                       "ds.partial", "not made by defectbench")
        assert (partial / "thesis.tex").read_text() == "years of work"
    assert not (tmp_path / "ds").exists()


# ------------------------------------------------------------------------------ the lock

def _wait_for(predicate, seconds: float = 120) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_two_builds_into_one_out_one_is_refused(tmp_path):
    out = tmp_path / "ds"
    first = popen("build", "fma-clicks", "--out", out, "--limit", "2", "--quiet", cwd=tmp_path)
    try:
        _wait_for(lambda: (tmp_path / ".ds.defectbench-lock").exists() and (tmp_path / ".ds.defectbench-lock").read_text().strip()
                  or first.poll() is not None)
        assert first.poll() is None, "the first build ended before the second started"
        second = cli("build", "fma-clicks", "--out", out, "--limit", "2", "--quiet", "--overwrite", cwd=tmp_path)
        one_line_error(second, f"pid {first.pid}", str(out))
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, err
    assert cli("verify", out, cwd=tmp_path).returncode == 0
    assert not (tmp_path / ".ds.defectbench-lock").exists()  # released and removed


# ------------------------------------------------------------------------------ dead parents

def _workers_of(proc: subprocess.Popen) -> list[psutil.Process]:
    return [c for c in psutil.Process(proc.pid).children(recursive=True)
            if "resource_tracker" not in " ".join(c.cmdline())]


def _alive(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _start_pool_build(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, list[psutil.Process]]:
    proc = popen("build", "fma-clicks", "--out", tmp_path / "ds", "--limit", "2", "--workers", "2", "--quiet", *extra,
                 cwd=tmp_path)
    shards = tmp_path / "ds.partial" / "shards"
    _wait_for(lambda: proc.poll() is not None or (shards.is_dir() and len(list(shards.glob(".*.tmp"))) >= 2))
    assert proc.poll() is None, proc.communicate()
    workers = _workers_of(proc)
    assert len(workers) >= 2
    return proc, workers


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_kill_9_of_the_build_leaves_no_live_workers(tmp_path, executor):
    proc, workers = _start_pool_build(tmp_path, "--executor", executor)
    proc.kill()  # SIGKILL: no handler runs in the parent
    proc.wait(timeout=30)
    _wait_for(lambda: not any(_alive(w) for w in workers), seconds=15)
    assert not (tmp_path / "ds").exists()
    # the next run resumes (the stale .tmp files are swept) and gives a whole dataset
    proc = cli("build", "fma-clicks", "--out", tmp_path / "ds", "--limit", "2", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert cli("verify", tmp_path / "ds", cwd=tmp_path).returncode == 0


def test_sigterm_is_handled_like_ctrl_c(tmp_path):
    proc, workers = _start_pool_build(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "resume" in err and "Traceback" not in err, err
    _wait_for(lambda: not any(_alive(w) for w in workers), seconds=15)
    assert not (tmp_path / "ds").exists() and (tmp_path / "ds.partial").is_dir()
    assert not list((tmp_path / "ds.partial" / "shards").glob(".*.tmp"))


def test_a_file_where_the_lock_goes_that_is_not_ours_is_left_alone(small_recipe, tmp_path):
    lock = tmp_path / ".ds.defectbench-lock"
    lock.write_text("my own file")
    one_line_error(cli("build", small_recipe, "--out", tmp_path / "ds", *TINY, cwd=tmp_path), "not a defectbench lock file")
    assert lock.read_text() == "my own file"


def test_bad_paths_are_one_line_and_leave_no_folder_behind(tmp_path):
    """A build whose source does not exist leaves no empty datasets/ folder; "." as a dataset is a plain
    error (it was a traceback: "." has no name to put ".partial" after); a mistyped leaderboard --root
    is refused instead of becoming a new, empty board; detect's --threshold is a score in [0, 1]."""
    one_line_error(cli("build", "fma-clicks", "--source", f"folder:{tmp_path / 'nowhere'}", cwd=tmp_path), "not a folder")
    one_line_error(cli("build", "fma-clicks", "--source", f"folder:{tmp_path / 'nowhere'}", "--out", "a/b/c", cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    for dataset in (".", ".."):
        one_line_error(cli("run", "--model", "hooknet", "--dataset", dataset, cwd=tmp_path), "is not a defectbench dataset")
    one_line_error(cli("leaderboard", "--root", "boardd", cwd=tmp_path), "no such folder")
    assert not (tmp_path / "boardd").exists()
    (tmp_path / "song.wav").write_bytes(b"")
    for value in ("2", "-0.1", "nan"):
        one_line_error(cli("detect", "song.wav", "--threshold", value, "--out", "e.csv", cwd=tmp_path), "between 0 and 1")
    assert not (tmp_path / "e.csv").exists()


def test_bad_detector_and_training_options_are_one_line_before_any_folder(built, tmp_path):
    """`-o` options a detector would swallow (an unknown key) or fail on with a traceback (text for a
    number), and training numbers torch rejects or that end a run at once, are one clear error; no
    result and no training folder is written."""
    for option, needle in (("nope=1", "no option 'nope'"), ("threshold=abc", "is not a number")):
        one_line_error(cli("run", "--model", "sigclick", "--dataset", built, "-o", option, "--out", "r.json", cwd=tmp_path), needle)
    one_line_error(cli("run", "--model", "hooknet", "--dataset", built, "-o", "batch_size=many", "--out", "r.json",
                       cwd=tmp_path), "is not a number")
    for flag, value in (("--epochs", "0"), ("--lr", "-1"), ("--batch-size", "0"), ("--ema", "1"), ("--lr-decay", "0")):
        one_line_error(cli("train", "--model", "hooknet", "--dataset", built, flag, value, "--out", "run", cwd=tmp_path), flag)
    one_line_error(cli("train", "--model", "cnn6", "--dataset", built, "--out", "run", cwd=tmp_path), "framewise dataset")
    one_line_error(cli("examples", built, "--out", "pic.txt", cwd=tmp_path), "name a .png file")
    one_line_error(cli("build", "fma-clicks", "--num-shards", "0", "--shard-index", "0", cwd=tmp_path), "--num-shards must be at least 1")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
