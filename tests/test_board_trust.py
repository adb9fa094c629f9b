"""The board trusts no submitter: it chooses thresholds on validation, refuses what it cannot
re-score, and writes or removes nothing outside its submissions folder (the exact commands, in
scratch folders)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from _board_data import board_data, fresh_board
from defectbench import leaderboard as L
from defectbench import metrics as M
from defectbench.core import DefectbenchError
from defectbench.detectors import Detector
from defectbench.rescore import read_split, rescore
from defectbench.results import load, read_predictions, verify
from defectbench.runner import best_score_threshold, run


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return board_data(tmp_path_factory)


@pytest.fixture
def datasets(data):
    return data[0]


@pytest.fixture
def results(data):
    return data[1]


def _edit(path: Path, change) -> None:
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def _reasons(board) -> dict[str, str]:
    return {r.name: r.reason for r in board.rejected}


def cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "defectbench.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _one_line_error(p: subprocess.CompletedProcess, text: str) -> None:
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and text in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


# ----------------------------------------------------------------- thresholds chosen by the board


def test_a_threshold_tuned_on_test_is_rescored_at_the_validation_threshold(tmp_path, datasets, results):
    honest = load(results["peakdiff"])
    root = fresh_board(tmp_path, results, ["peakdiff"])
    folder = root / "submissions/fma-clicks/peakdiff"
    targets = read_split(datasets / "fma-clicks", "test").targets
    _, scores = read_predictions(folder / honest.predictions.path)
    tuned, _ = best_score_threshold(targets, scores, "f1")  # the threshold that is best on the test split itself
    m = M.framewise_metrics(targets, scores, tuned)
    assert tuned != honest.threshold.value and m["f1"] > honest.metrics.f1  # tuning on test pays, on paper

    def restate(doc):  # every figure restated at the tuned threshold, self-consistent for the schema
        doc["threshold"].update(value=tuned, decision=tuned)
        doc["metrics"].update({k: m[k] for k in ("accuracy", "precision", "recall", "f1", "average_precision")},
                              counts=m["counts"])

    _edit(folder / "result.json", restate)
    board = L.collect(root, datasets)
    (entry,) = board.entries
    # ranked on the figures at the threshold the board chose on validation: the honest ones
    assert entry.rescored.threshold["value"] == pytest.approx(honest.threshold.value)
    assert entry.value == pytest.approx(honest.metrics.f1)
    assert entry.interval == pytest.approx((honest.metrics.intervals["f1"].low, honest.metrics.intervals["f1"].high))
    assert entry.differences[0] == (f"threshold declared {tuned:g}, the board chose {honest.threshold.value:g} "
                                    "on validation (by f1)")
    assert f"f1 declared {m['f1']:.6g}, recomputed {honest.metrics.f1:.6g}" in "; ".join(entry.differences)
    readme = L.render_markdown(board)
    assert f"peakdiff: threshold declared {tuned:g}" in readme
    with pytest.raises(DefectbenchError, match="threshold declared"):
        verify(folder / "result.json", datasets / "fma-clicks")


def test_a_submission_without_validation_scores_is_rejected(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy"])
    _edit(root / "submissions/fma-clicks/energy/result.json", lambda d: d.update(validation_predictions=None))
    reason = _reasons(L.collect(root, datasets))["energy"]
    assert reason.startswith("no validation scores (validation_predictions): the board chooses the threshold on them")
    # and submit refuses it outright: exit 2, one line
    work = tmp_path / "work"
    shutil.copytree(results["energy"].parent, work / "r")
    _edit(work / "r/energy.json", lambda d: d.update(validation_predictions=None))
    p = cli(["submit", "r/energy.json", "--name", "energy", "--root", "leaderboard"], work)
    _one_line_error(p, "has no validation scores")
    assert not (work / "leaderboard").exists()


def test_an_argmax_framewise_threshold_is_rejected(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy"])
    _edit(root / "submissions/fma-clicks/energy/result.json",
          lambda d: d["threshold"].update(kind="argmax", value=None, decision=None, chosen_on="none"))
    assert _reasons(L.collect(root, datasets))["energy"] == (
        "a framewise result needs a decision threshold chosen on validation (this one is argmax, chosen on none)")


# -------------------------------------------------------------------------------- breakdowns


class MissesQuietClicks(Detector):
    """Finds every click frame at or above ``cut`` amplitude and nothing else (it reads the row's own
    parameters: an oracle for loud clicks, deaf to quiet ones)."""

    name = "misses-quiet"
    tasks = ("framewise",)

    def __init__(self, cut: float) -> None:
        super().__init__(cut=cut)
        self.cut = cut

    def predict(self, batch):
        out = []
        for r in batch:
            d = json.loads(r["params"]).get("defect", {})
            loud = d.get("present") and d["amplitude"] >= self.cut
            out.append(np.asarray(r["target"], np.float32) if loud else np.zeros(len(r["target"]), np.float32))
        return np.stack(out)


def test_the_severity_breakdown_shows_a_detector_that_misses_only_quiet_clicks(tmp_path, datasets):
    dataset = datasets / "fma-clicks"
    amplitudes = [s["click amplitude"] for s in read_split(dataset, "test", "fma-clicks").severity if s]
    cut = float(np.quantile(amplitudes, 0.5))  # the edge between the second and third of four quantile bins
    out = tmp_path / "r" / "misses-quiet.json"
    run(MissesQuietClicks(cut), dataset, out=out, workers=1, criterion="f1", show_progress=False, make_plots=False)
    again = rescore(load(out), out.parent, dataset)
    bins = again.severity["click amplitude"]
    assert len(bins) == 4
    quiet = [b for b in bins if b["high"] <= cut]
    loud = [b for b in bins if b["low"] >= cut]
    assert quiet and loud and len(quiet) + len(loud) == len(bins)
    assert all(b["recall"] == 0.0 for b in quiet) and all(b["recall"] == 100.0 for b in loud)
    assert all(b["precision"] == 100.0 for b in loud)
    # the click length does not grade what it misses: every length bin is in between or at the extremes
    assert {"click length (samples)"} <= set(again.severity)
    assert [g["genre"] for g in again.genres] == sorted({g for gs in read_split(dataset, "test").genres for g in gs})


# ---------------------------------------------------------------------------------- safety


def _work(tmp_path: Path, results, name="peakdiff") -> Path:
    work = tmp_path / "work"
    shutil.copytree(results[name].parent, work / "r")
    return work


def test_submit_refuses_unsafe_recipe_and_submission_names(tmp_path, results):
    work = _work(tmp_path, results)
    (work / "outside").mkdir()
    (work / "outside/keep.txt").write_text("mine")
    _edit(work / "r/peakdiff.json", lambda d: d["dataset"].update(recipe="../../outside"))
    before = _tree(work)
    p = cli(["submit", "r/peakdiff.json", "--name", "x", "--root", "leaderboard"], work)
    _one_line_error(p, "names recipe '../../outside', which is not a known recipe")
    _edit(work / "r/peakdiff.json", lambda d: d["dataset"].update(recipe="fma-clicks"))
    for bad in ("../x", ".hidden", "a/b"):
        p = cli(["submit", "r/peakdiff.json", "--name", bad, "--root", "leaderboard"], work)
        _one_line_error(p, f"submission name {bad!r}")
    assert _tree(work) == before and (work / "outside/keep.txt").read_text() == "mine"


def test_submit_overwrites_only_what_it_created(tmp_path, results):
    work = _work(tmp_path, results)
    mine = work / "leaderboard/submissions/fma-clicks/mine"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("not defectbench's")
    p = cli(["submit", "r/peakdiff.json", "--name", "mine", "--root", "leaderboard", "--overwrite"], work)
    _one_line_error(p, "was not created by `defectbench submit`")
    assert (mine / "notes.txt").read_text() == "not defectbench's" and _tree(mine) == {"notes.txt"}
    # its own folder: replaced, marker and all
    assert cli(["submit", "r/peakdiff.json", "--name", "ours", "--root", "leaderboard"], work).returncode == 0
    ours = work / "leaderboard/submissions/fma-clicks/ours"
    (ours / "extra.txt").write_text("old")
    p = cli(["submit", "r/peakdiff.json", "--name", "ours", "--root", "leaderboard", "--overwrite"], work)
    assert p.returncode == 0, p.stderr
    assert (ours / L.MARKER).is_file() and not (ours / "extra.txt").exists() and (ours / "result.json").is_file()
    assert sorted(p.name for p in ours.parent.iterdir()) == ["mine", "ours"]  # no staging folder left
    # a name that differs only by case from an existing one is refused
    p = cli(["submit", "r/peakdiff.json", "--name", "OURS", "--root", "leaderboard"], work)
    _one_line_error(p, "submission names must differ by more than case")


def test_submit_writes_nothing_through_a_symlink(tmp_path, results):
    work = _work(tmp_path, results)
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    (work / "leaderboard/submissions").mkdir(parents=True)
    (work / "leaderboard/submissions/fma-clicks").symlink_to(elsewhere)
    p = cli(["submit", "r/peakdiff.json", "--name", "x", "--root", "leaderboard"], work)
    _one_line_error(p, "is a symlink; submit writes nothing through a link")
    assert list(elsewhere.iterdir()) == []


def test_the_board_refuses_links_case_twins_and_large_files(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["peakdiff", "energy", "diffenergy"])
    subs = root / "submissions"
    # a task folder that is a symlink: nothing in it is read
    outside = tmp_path / "outside-task"
    shutil.copytree(subs / "fma-clicks", outside)
    (subs / "fma-clicks-post").symlink_to(outside)
    # a submission folder that is a symlink
    shutil.copytree(subs / "fma-clicks/energy", tmp_path / "outside-energy")
    (subs / "fma-clicks/linked").symlink_to(tmp_path / "outside-energy")
    # BASE beside base
    shutil.copytree(subs / "fma-clicks/peakdiff", subs / "fma-clicks/PEAKDIFF")
    # a file over the limit (sparse: no disk used)
    with open(subs / "fma-clicks/diffenergy/big.txt", "wb") as f:
        f.truncate(L.MAX_FILE_BYTES + 1)
    board = L.collect(root, datasets)
    got = {(r.task, r.name): r.reason for r in board.rejected}
    assert got[("fma-clicks-post", "*")] == "the task folder fma-clicks-post is a symlink; the board reads no linked folder"
    assert got[("fma-clicks", "linked")] == "the submission folder is a symlink"
    assert got[("fma-clicks", "PEAKDIFF")] == "name 'PEAKDIFF' differs from 'peakdiff' only by case"
    assert got[("fma-clicks", "peakdiff")] == "name 'peakdiff' differs from 'PEAKDIFF' only by case"
    assert got[("fma-clicks", "diffenergy")] == "big.txt is 64.0 MiB, over the 64.0 MiB limit per file"
    assert [e.name for e in board.entries] == ["energy"]
    page = L.render_markdown(board)
    assert "`fma-clicks/PEAKDIFF`: name 'PEAKDIFF' differs from 'peakdiff' only by case" in page
    assert sorted(p.name for p in outside.iterdir()) == ["diffenergy", "energy", "peakdiff"]  # untouched


def test_a_swapped_parquet_file_does_not_pass_the_board(tmp_path, datasets, results):
    copy = tmp_path / "datasets"
    shutil.copytree(datasets, copy)
    shard = sorted((copy / "fma-clicks/data").glob("test-*.parquet"))[0]
    table = pq.read_table(shard)
    targets = table.column("target").to_pylist()
    k = next(i for i, t in enumerate(targets) if any(t))
    targets[k] = [0] * len(targets[k])  # a click removed from the ground truth, ids and manifest untouched
    table = table.set_column(table.schema.get_field_index("target"), table.schema.field("target"),
                             pa.array(targets, table.schema.field("target").type))
    pq.write_table(table, shard)
    root = fresh_board(tmp_path, results, ["peakdiff"])
    reason = _reasons(L.collect(root, copy))["peakdiff"]
    assert reason.startswith(f"{copy / 'fma-clicks'}: the fingerprint recomputed from the")
    assert reason.endswith("the data files were altered or swapped; rebuild it")
    with pytest.raises(DefectbenchError, match="the data files were altered or swapped"):
        verify(results["peakdiff"], copy / "fma-clicks")
