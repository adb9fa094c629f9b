"""The leaderboard: valid submissions render and rank; tampered or unsafe ones are rejected with a reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import typer
import yaml
from typer.testing import CliRunner

from _board_data import board_data, fresh_board
from defectbench import leaderboard as L
from defectbench import metrics as M
from defectbench.commands import board as board_commands
from defectbench.results import load


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return board_data(tmp_path_factory)


@pytest.fixture
def datasets(data):
    return data[0]


@pytest.fixture
def results(data):
    return data[1]


def _edit(folder: Path, change) -> None:
    path = folder / L.RESULT
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc, indent=2))


def _only_rejection(board: L.Board, name: str) -> str:
    reasons = {r.name: r.reason for r in board.rejected}
    assert name in reasons, f"{name} was not rejected; rejected: {reasons}"
    assert name not in {e.name for e in board.entries}
    return reasons[name]


def _app() -> typer.Typer:
    app = typer.Typer()
    board_commands.register(app)
    return app


# ------------------------------------------------------------------------------- valid boards ---


def test_valid_submissions_render_ranked_with_recomputed_figures(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results)
    board = L.collect(root, datasets)
    assert board.rejected == []
    assert {e.name for e in board.entries} == set(results)
    stated = {name: load(path) for name, path in results.items()}
    # ranks follow the stated rule, computed here from the intervals the board shows
    for e in board.entries:
        above = [o for o in board.entries if o is not e and o.interval[0] > e.interval[1]]
        assert e.rank == 1 + len(above)
        assert e.value == pytest.approx(stated[e.name].metrics.f1)
        assert e.build.path == datasets / "fma-clicks"
    written = L.write(board)
    readme = (root / "README.md").read_text()
    page = (root / "index.html").read_text()
    assert written[:2] == [root / "README.md", root / "index.html"]
    ordered = [e.name for e in sorted(board.entries, key=lambda e: (e.rank, -e.value))]
    lines = readme.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("| rank |"))
    rows = lines[head + 2: lines.index("", head)]  # the main table, up to its blank line
    assert [r.split(" | ")[1] for r in rows] == ordered
    for e in board.entries:
        f1 = f"{stated[e.name].metrics.f1:.2f}"
        row = next(r for r in rows if r.split(" | ")[1] == e.name)
        assert f1 in row and f"[{e.interval[0]:.2f}, {e.interval[1]:.2f}]" in row
        # the plot is linked relative to the board and exists there
        link = re.search(r"\]\(([^)]+\.png)\)", row).group(1)
        assert (root / link).is_file()
        assert f'data-submission="{e.name}"' in page and f'src="{link}"' in page
    assert "test split 100 samples" in readme and "local build" in readme
    assert "Rejected" not in readme


def test_overlapping_intervals_are_shown_as_ties(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["peakdiff"])
    twin = L.submit(results["peakdiff"], "peakdiff-again", root)  # the same figures: intervals overlap fully
    board = L.collect(root, datasets)
    ranks = {e.name: (e.rank, e.tied) for e in board.entries}
    assert ranks == {"peakdiff": (1, True), "peakdiff-again": (1, True)}
    readme = L.render_markdown(board)
    assert "| =1 | peakdiff |" in readme and "| =1 | peakdiff-again |" in readme
    assert twin.is_dir()


def _entry(name, value, low, high):
    return L.Entry(task="t", name=name, folder=Path(name), result=None,
                   build=L.Build("t", "synth", 0, 1, "f" * 64, "local build"), primary="f1", value=value,
                   interval=(low, high), intervals={})


def test_rank_rule_by_hand():
    # A [90, 95]; B [85, 91] overlaps A; C [80, 86] overlaps B but lies below A; D [10, 20] below all three.
    a, b, c, d = _entry("a", 93, 90, 95), _entry("b", 88, 85, 91), _entry("c", 83, 80, 86), _entry("d", 15, 10, 20)
    L.rank([d, c, b, a])
    assert [(x.rank, x.tied) for x in (a, b, c, d)] == [(1, True), (1, True), (2, False), (4, False)]


# --------------------------------------------------------------------------------- rejections ---


def test_an_edited_metric_is_rejected_by_the_schema(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy"])
    _edit(root / "submissions/fma-clicks/energy", lambda d: d["metrics"].update(f1=99.0))
    reason = _only_rejection(L.collect(root, datasets), "energy")
    assert "result schema" in reason and "f1 = 99.0 does not follow from the counts" in reason


def test_consistently_edited_figures_are_recomputed_and_the_difference_shown(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy"])
    stated = load(results["energy"]).metrics

    def boost(doc):  # move two false negatives to true positives and restate every figure to match
        c = doc["metrics"]["counts"]
        c["tp"], c["fn"] = c["tp"] + 2, c["fn"] - 2
        doc["metrics"].update(M.binary_from_counts([c["tp"], c["fp"], c["fn"], c["tn"]]))

    _edit(root / "submissions/fma-clicks/energy", boost)
    board = L.collect(root, datasets)
    assert board.rejected == []
    (entry,) = board.entries
    c = stated.counts
    fake_f1 = M.binary_from_counts([c.tp + 2, c.fp, c.fn - 2, c.tn])["f1"]
    assert entry.value == pytest.approx(stated.f1) != pytest.approx(fake_f1)  # ranked on the recomputed figure
    assert f"f1 declared {fake_f1:.6g}, recomputed {stated.f1:.6g} (difference {fake_f1 - stated.f1:+.6g})" in entry.differences
    assert any(d.startswith("counts declared") for d in entry.differences)
    readme = L.render_markdown(board)
    assert "Declared, not used" in readme and f"energy: f1 declared {fake_f1:.6g}" in readme


def test_an_unknown_fingerprint_is_rejected(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy"])
    _edit(root / "submissions/fma-clicks/energy", lambda d: d["dataset"].update(fingerprint="0" * 64))
    reason = _only_rejection(L.collect(root, datasets), "energy")
    assert reason.startswith("unknown dataset fingerprint 0000000000000000... for fma-clicks")


def test_missing_and_altered_predictions_are_rejected(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy", "peakdiff"])
    (root / "submissions/fma-clicks/energy/energy.predictions.parquet").unlink()
    pred = root / "submissions/fma-clicks/peakdiff/peakdiff.predictions.parquet"
    table = pq.read_table(pred)
    scores = table.column("scores").combine_chunks()
    values = scores.flatten().to_numpy().copy()
    values[0] += 1.0
    import pyarrow as pa

    table = table.set_column(2, "scores", pa.FixedSizeListArray.from_arrays(pa.array(values, pa.float32()), scores.type.list_size))
    pq.write_table(table, pred)
    board = L.collect(root, datasets)
    assert _only_rejection(board, "energy") == "predictions file energy.predictions.parquet is missing"
    assert _only_rejection(board, "peakdiff") == ("predictions file peakdiff.predictions.parquet was altered "
                                                  "(its SHA-256 differs from result.json)")


def test_altered_predictions_with_a_matching_hash_are_scored_as_they_are(tmp_path, datasets, results):
    from defectbench.results import file_sha256, read_predictions, write_predictions

    root = fresh_board(tmp_path, results, ["peakdiff"])
    folder = root / "submissions/fma-clicks/peakdiff"
    pred = folder / "peakdiff.predictions.parquet"
    ids, scores = read_predictions(pred)
    items = pq.read_table(pred).column("item_id").to_pylist()
    write_predictions(pred, ids, items, np.zeros_like(scores))  # a detector that never fires
    _edit(folder, lambda d: d["predictions"].update(sha256=file_sha256(pred)))
    (entry,) = L.collect(root, datasets).entries
    assert entry.value == 0.0 and entry.metrics["recall"] == 0.0  # what the predictions say, not the declared F1
    assert any(d.startswith("recall declared") for d in entry.differences)


@pytest.mark.parametrize("field,value", [("predictions", "../../x"), ("predictions", "/etc/passwd"),
                                         ("plots", "../../../outside.png")])
def test_paths_that_escape_are_rejected(tmp_path, datasets, results, field, value):
    root = fresh_board(tmp_path, results, ["energy"])
    (tmp_path / "outside.png").write_bytes(b"\x89PNG")

    def change(doc):
        if field == "predictions":
            doc["predictions"]["path"] = value
        else:
            doc["plots"] = [value]

    _edit(root / "submissions/fma-clicks/energy", change)
    reason = _only_rejection(L.collect(root, datasets), "energy")
    assert reason == f"path {value!r} in result.json ({'predictions.path' if field == 'predictions' else 'plots'}) escapes the submission folder"


def test_a_symlink_out_of_the_folder_is_rejected(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy"])
    folder = root / "submissions/fma-clicks/energy"
    (folder / "energy.predictions.parquet").rename(tmp_path / "elsewhere.parquet")
    (folder / "energy.predictions.parquet").symlink_to(tmp_path / "elsewhere.parquet")
    reason = _only_rejection(L.collect(root, datasets), "energy")
    assert reason == "energy.predictions.parquet is a symlink; a submission holds plain data files only"


def test_code_in_a_submission_is_rejected_and_never_run(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy"])
    marker = tmp_path / "ran"
    (root / "submissions/fma-clicks/energy/conftest.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    reason = _only_rejection(L.collect(root, datasets), "energy")
    assert reason.startswith("conftest.py: a submission holds data files only")
    assert not marker.exists()


def test_wrong_task_folder_and_wrong_split_are_rejected(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy", "peakdiff"])
    (root / "submissions/fma-clicks-post").mkdir()
    (root / "submissions/fma-clicks/energy").rename(root / "submissions/fma-clicks-post/energy")
    _edit(root / "submissions/fma-clicks/peakdiff", lambda d: d["dataset"].update(split="validation"))
    board = L.collect(root, datasets)
    assert _only_rejection(board, "energy") == "scored on recipe 'fma-clicks' but filed under task 'fma-clicks-post'"
    assert _only_rejection(board, "peakdiff") == "scored on the 'validation' split; the board ranks 'test' results only"


def test_a_reference_fingerprint_needs_its_build_and_build_missing_makes_it(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["peakdiff"])
    recorded = L.record_fingerprint(root, datasets / "fma-clicks")
    assert json.loads((root / L.FINGERPRINTS).read_text())["builds"][0]["fingerprint"] == recorded.fingerprint
    empty = tmp_path / "no-datasets"
    empty.mkdir()
    reason = _only_rejection(L.collect(root, empty), "peakdiff")
    assert "is a reference build not built here; run `defectbench build fma-clicks --source synth --seed 0 --limit 2`" in reason
    assert L.build_missing(root, empty, progress=False, only={"1" * 64}) == ([], [])  # not wanted: not built
    built, problems = L.build_missing(root, empty, progress=False, only=L.wanted_fingerprints(root))
    assert len(built) == 1 and problems == []
    board = L.collect(root, empty)
    assert board.rejected == [] and board.entries[0].build.origin == "reference build, built here"


def test_a_stale_reference_fingerprint_is_reported(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["peakdiff"])
    L.record_fingerprint(root, datasets / "fma-clicks")
    doc = json.loads((root / L.FINGERPRINTS).read_text())
    doc["builds"][0]["fingerprint"] = "2" * 64  # as if the engine had changed since it was recorded
    (root / L.FINGERPRINTS).write_text(json.dumps(doc))
    empty = tmp_path / "no-datasets"
    built, problems = L.build_missing(root, empty, progress=False)
    assert len(built) == 1
    assert problems == ["`defectbench build fma-clicks --source synth --seed 0 --limit 2` gave fingerprint "
                        f"{L.local_builds(empty)[0].fingerprint[:16]}, fingerprints.json says 2222222222222222: the "
                        "engine or recipe changed since the reference was recorded; re-run leaderboard/make_reference.sh"]


def test_untrusted_text_is_escaped_in_the_page(tmp_path, datasets, results):
    root = fresh_board(tmp_path, results, ["energy"])
    _edit(root / "submissions/fma-clicks/energy", lambda d: d["model"].update(name="<script>alert(1)</script>|x"))
    board = L.collect(root, datasets)
    assert board.rejected == []
    page, readme = L.render_html(board), L.render_markdown(board)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;|x" in page
    assert "<script>alert" not in readme and "&lt;script&gt;alert(1)&lt;/script&gt;\\|x" in readme


# ------------------------------------------------------------------------------ CLI and export ---


def test_cli_exit_status_and_reasons(tmp_path, datasets, results, monkeypatch):
    root = fresh_board(tmp_path, results, ["energy", "peakdiff"])
    args = ["leaderboard", "--root", str(root), "--datasets-dir", str(datasets), "--no-build-missing"]
    ok = CliRunner().invoke(_app(), args)
    assert ok.exit_code == 0, ok.output
    assert "2 valid, 0 rejected" in ok.output and "1. peakdiff" in ok.output
    _edit(root / "submissions/fma-clicks/energy", lambda d: d["predictions"].update(path="../../x"))
    bad = CliRunner().invoke(_app(), args)
    assert bad.exit_code == 1
    assert "rejected fma-clicks/energy: path '../../x' in result.json (predictions.path) escapes the submission folder" in bad.output
    assert "1 valid, 1 rejected" in bad.output
    assert "energy" in (root / "README.md").read_text().split("## Rejected submissions")[1]


def test_eval_results_export_parses_back(tmp_path, datasets, results):
    from huggingface_hub import parse_eval_result_entries
    from huggingface_hub.repocard_data import model_index_to_eval_results

    root = fresh_board(tmp_path, results, ["peakdiff"])
    board = L.collect(root, datasets)
    written = L.write(board, namespace="someorg")
    stated = load(results["peakdiff"]).metrics
    short = root / "export/fma-clicks/peakdiff/.eval_results/fma-clicks.yaml"
    index = root / "export/fma-clicks/peakdiff/model-index.yaml"
    assert short in written and index in written
    (entry,) = parse_eval_result_entries(yaml.safe_load(short.read_text()))
    assert entry.dataset_id == "someorg/fma-clicks" and entry.task_id == "fma-clicks"
    assert entry.value == pytest.approx(stated.f1, abs=1e-6)
    name, evals = model_index_to_eval_results(yaml.safe_load(index.read_text())["model-index"])
    assert name == "peakdiff"
    got = {e.metric_type: e.metric_value for e in evals}
    assert got == pytest.approx({k: getattr(stated, k) for k in ("f1", "precision", "recall", "average_precision", "accuracy")}, abs=1e-6)
    assert {e.dataset_revision for e in evals} == {load(results["peakdiff"]).dataset.fingerprint}


# ------------------------------------------------------------------------------- the 5-way task ---


def test_five_way_results_rank_by_balanced_accuracy(tmp_path, tmp_path_factory):
    from _board_data import five_way_data

    from defectbench.core import DefectbenchError

    datasets, results = five_way_data(tmp_path_factory)
    # an engine build of a recipe variant no shipped recipe names: accepted only once recorded as a reference build
    with pytest.raises(DefectbenchError, match="names recipe 'toy-5way', which is not a known recipe"):
        fresh_board(tmp_path, results)
    L.record_fingerprint(tmp_path / "leaderboard", datasets / "toy-5way")
    root = fresh_board(tmp_path, results)
    board = L.collect(root, datasets)
    assert board.rejected == []
    by = {e.name: e for e in board.entries}
    stated = {n: load(p).metrics for n, p in results.items()}
    assert by["always"].value == pytest.approx(0.2)  # one class of five always right
    assert by["deaf"].value == pytest.approx(stated["deaf"].balanced_accuracy)
    assert by["deaf"].value == pytest.approx(0.8)  # right on four classes of five, never on distortion
    assert by["deaf"].primary == "balanced_accuracy" and by["deaf"].rank == 1 and by["always"].rank == 2
    readme = L.render_markdown(board)
    assert "balanced accuracy [95 % CI]" in readme and "weakest class recall" in readme
    assert "macro-F1" in readme and "Per-class recall" in readme and "Confusion matrix of `deaf`" in readme
    recalls = stated["deaf"].per_class_recall
    weakest = next(k for k in recalls if recalls[k] == min(recalls.values()))
    assert weakest == "distortion" and recalls[weakest] == 0.0
    assert f"{recalls[weakest]:.4f} ({weakest})" in readme
    assert "0.0000 (hum)" in readme  # "always" never says hum (nor hiss, ...): the first such class is named


def test_five_way_edited_confusion_is_shown_as_a_difference(tmp_path, tmp_path_factory):
    from _board_data import five_way_data

    datasets, results = five_way_data(tmp_path_factory)
    L.record_fingerprint(tmp_path / "leaderboard", datasets / "toy-5way")
    root = fresh_board(tmp_path, results, ["always"])

    def claim_perfect(doc):  # a self-consistent but false confusion matrix
        cm = np.diag(np.asarray(doc["metrics"]["support"])).tolist()
        doc["metrics"].update(M.multiclass_from_confusion(cm))
        doc["metrics"]["per_class_recall"] = dict(zip(doc["dataset"]["label_names"], doc["metrics"]["per_class_recall"]))

    _edit(root / "submissions/toy-5way/always", claim_perfect)
    (entry,) = L.collect(root, datasets).entries
    assert entry.value == pytest.approx(0.2)
    assert "balanced_accuracy declared 1, recomputed 0.2 (difference +0.8)" in entry.differences
    assert any(d.startswith("confusion declared") for d in entry.differences)
