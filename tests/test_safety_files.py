"""No command replaces or removes a file defectbench did not write (defectbench.owned_files), and
``detect`` writes nothing where it read nothing. Each case puts a user's own file where a command
would write, runs the exact command, and checks the one-line refusal (exit 2) and the file's bytes;
then the same command replaces what it wrote itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image

from _board_data import board_data, fresh_board
from defectbench import leaderboard as L
from defectbench.core import DefectbenchError
from defectbench.owned_files import check_replaceable, is_ours
from defectbench.ownership import MARKER, read_marker
from test_safety_build import cli, one_line_error, tree, user_files  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, write_recipe) -> Path:
    recipe = write_recipe("fma-clicks", {"segments_per_piece = 50": "segments_per_piece = 10"}, name="clicks-files")
    out = tmp_path_factory.mktemp("files") / "ds"
    proc = cli("build", recipe, "--out", out, "--source", "synth:0.5", "--quiet", cwd=out.parent)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("song") / "song.wav"
    t = np.arange(44100) / 44100
    sf.write(path, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100, subtype="FLOAT")
    return path


def _unsigned(path: Path) -> Path:
    """The same picture without its signature: what a defectbench from before the signing wrote."""
    Image.open(path).convert("RGBA").save(path)
    assert not _signed(path)
    return path


def _signed(path: Path) -> bool:
    with Image.open(path) as im:
        return im.text.get("Software", "").startswith("defectbench")


def _user_png(path: Path) -> Path:
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)  # a real PNG, not signed by defectbench
    return path


def test_detect_replaces_only_its_own_events_file_and_timelines(tmp_path, song):
    (tmp_path / "mine.csv").write_text("file,start,end\nmy,own,table\n")
    (tmp_path / "mine.json").write_text(json.dumps({"events": [], "mine": True}))
    (tmp_path / "mine.tsv").write_text("filename\tonset\n")
    for name in ("mine.csv", "mine.json", "mine.tsv"):
        before = (tmp_path / name).read_bytes()
        one_line_error(cli("detect", song, "--out", name, "--quiet", cwd=tmp_path), f"refusing to replace {name}",
                       "did not write it")
        assert (tmp_path / name).read_bytes() == before
    plots = tmp_path / "plots"
    plots.mkdir()
    proc = cli("detect", song, "--out", "ours.csv", "--plot", plots, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (timeline,) = plots.glob("*.png")
    assert is_ours(timeline) and is_ours(tmp_path / "ours.csv")
    _user_png(timeline)  # the user's picture now sits where the timeline goes
    before = timeline.read_bytes()
    one_line_error(cli("detect", song, "--out", "ours.csv", "--plot", plots, "--quiet", cwd=tmp_path), "(--plot)")
    assert timeline.read_bytes() == before
    for out in ("ours.csv", "ours.json", "ours.tsv"):  # twice: the second run replaces the first's own file
        for _ in range(2):
            proc = cli("detect", song, "--out", out, "--quiet", cwd=tmp_path)
            assert proc.returncode == 0, proc.stderr
        assert is_ours(tmp_path / out)


def test_detect_that_reads_nothing_writes_nothing(tmp_path):
    (tmp_path / "a.mp3").write_text("not audio")
    (tmp_path / "b.wav").write_bytes(b"")
    line = one_line_error(cli("detect", tmp_path / "a.mp3", tmp_path / "b.wav", "--out", "e.csv", "--quiet",
                              cwd=tmp_path), "nothing scanned", "a.mp3", "1 more file")
    assert "e.csv not written" in line
    assert not (tmp_path / "e.csv").exists()


def test_run_replaces_only_its_own_result_predictions_and_figures(tmp_path, tiny):
    (tmp_path / "r.json").write_text(json.dumps({"schema_version": 1, "my": "result"}))
    one_line_error(cli("run", "--model", "sigclick", "--dataset", tiny, "--out", "r.json", cwd=tmp_path), "r.json")
    pq.write_table(pa.table({"id": ["x"], "item_id": ["x"], "scores": [[0.5]]}), tmp_path / "s.predictions.parquet")
    before = tree(tmp_path)
    one_line_error(cli("run", "--model", "sigclick", "--dataset", tiny, "--out", "s.json", cwd=tmp_path),
                   "s.predictions.parquet")
    assert tree(tmp_path) == before and not (tmp_path / "s.json").exists()  # refused before any scoring
    for _ in range(2):
        proc = cli("run", "--model", "sigclick", "--dataset", tiny, "--out", "t.json", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    plots = json.loads((tmp_path / "t.json").read_text())["plots"]
    assert plots == ["t.pr.png"]
    for name in ("t.json", "t.predictions.parquet", "t.validation.predictions.parquet", *plots):
        assert is_ours(tmp_path / name), name
    # an older defectbench's unsigned files: replaced where the result beside them names them, else refused
    _unsigned(tmp_path / "t.pr.png")
    pq.write_table(pq.read_table(tmp_path / "t.predictions.parquet").replace_schema_metadata(None),
                   tmp_path / "t.predictions.parquet")
    proc = cli("run", "--model", "sigclick", "--dataset", tiny, "--out", "t.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert _signed(tmp_path / "t.pr.png") and is_ours(tmp_path / "t.predictions.parquet")
    doc = json.loads((tmp_path / "t.json").read_text())
    (tmp_path / "t.json").write_text(json.dumps({**doc, "plots": []}))  # a result that does not name the figure
    _unsigned(tmp_path / "t.pr.png")
    one_line_error(cli("run", "--model", "sigclick", "--dataset", tiny, "--out", "t.json", cwd=tmp_path), "t.pr.png")


def test_examples_replaces_only_its_own_png(tmp_path, tiny):
    before = _user_png(tmp_path / "pic.png").read_bytes()
    one_line_error(cli("examples", tiny, "--out", "pic.png", cwd=tmp_path), "pic.png")
    assert (tmp_path / "pic.png").read_bytes() == before
    for _ in range(2):
        assert cli("examples", tiny, "--out", "ex.png", cwd=tmp_path).returncode == 0
    assert is_ours(tmp_path / "ex.png")


def test_train_refuses_a_folder_holding_a_users_files(tmp_path, tiny, user_files):
    train = ["train", "--model", "hooknet", "--config", "tiny", "--dataset", tiny, "--epochs", "1", "--threads", "1"]
    before = tree(user_files)
    one_line_error(cli(*train, "--out", user_files, cwd=tmp_path), "notes.txt", "did not write")
    assert tree(user_files) == before and not (user_files / MARKER).exists()
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / "model.pt").write_bytes(b"my own model.pt")  # a training file name, not our content
    one_line_error(cli(*train, "--out", tmp_path / "fake", cwd=tmp_path), "no defectbench checkpoint")
    one_line_error(cli(*train, "--out", tiny, cwd=tmp_path), "dataset folder")
    for _ in range(2):  # a run's own folder is a run's again
        proc = cli(*train, "--out", tmp_path / "run", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert read_marker(tmp_path / "run")["kind"] == "training"
    assert all(is_ours(tmp_path / "run" / n) for n in ("model.pt", "last.pt", "config.json", "curve.png"))
    legacy = tmp_path / "legacy"  # a folder an older defectbench trained into: no marker, only its files
    legacy.mkdir()
    for n in ("model.pt", "last.pt", "curve.png"):
        shutil.copyfile(tmp_path / "run" / n, legacy / n)
    _unsigned(legacy / "curve.png")
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    (legacy / "config.json").write_text(json.dumps({k: v for k, v in doc.items() if k != "written_by"}))
    proc = cli(*train, "--out", legacy, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_marker(legacy)["kind"] == "training"
    assert _signed(legacy / "curve.png") and "written_by" in json.loads((legacy / "config.json").read_text())


def test_the_board_keeps_a_users_export_folder_and_plots(tmp_path_factory, tmp_path):
    datasets, results = board_data(tmp_path_factory)
    root = fresh_board(tmp_path, results, ["peakdiff"])
    board = L.collect(root, datasets)
    (root / "export" / "mine").mkdir(parents=True)
    (root / "export" / "mine" / "notes.txt").write_text("mine")
    (root / "plots").mkdir()
    mine = _user_png(root / "plots" / "my-figure.png")
    before = tree(root)
    with pytest.raises(DefectbenchError, match="refusing to remove .*export"):
        L.write(board)
    assert tree(root) == before  # refused before anything was written
    shutil.rmtree(root / "export")
    L.write(board)
    L.write(board)  # its own export (marked), pages and plots are replaced
    assert read_marker(root / "export")["kind"] == "board-export"
    assert mine.read_bytes() == before["plots/my-figure.png"]  # a PNG it did not sign is never removed
    assert all(is_ours(p) for p in L.plot_paths(board)) and is_ours(root / "README.md") and is_ours(root / "index.html")
    for p in L.plot_paths(board):  # an older render's unsigned plots, linked from its README: replaced
        _unsigned(p)
    L.write(board)
    assert all(_signed(p) for p in L.plot_paths(board))
    (root / "README.md").write_text("# my own notes\n")
    with pytest.raises(DefectbenchError, match="README.md"):
        L.write(board)


def test_recognisers_tell_a_lookalike_from_our_file(tmp_path):
    cases = {
        "a.json": '{"schema_version": 1, "environment": {"packages": {"numpy": "2"}}}',  # no defectbench in it
        "b.csv": "file,start,end,label,score,extra\n",
        "c.md": "# my notes for `x`?\n",
        "d.html": "<html><title>my page</title>",
        "e.pt": "not a checkpoint",
        "f.txt": "anything",
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        assert not is_ours(tmp_path / name), name
        with pytest.raises(DefectbenchError, match="did not write it"):
            check_replaceable(tmp_path / name)
    (tmp_path / "ok.csv").write_text("file,start,end,label,score\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "ok.csv")
    assert is_ours(tmp_path / "ok.csv") and not is_ours(tmp_path / "link.csv")
    with pytest.raises(DefectbenchError, match="symlink"):
        check_replaceable(tmp_path / "link.csv")
    with pytest.raises(DefectbenchError, match="folder"):
        check_replaceable(tmp_path)
    check_replaceable(tmp_path / "absent.json")  # nothing there: may be written
    with pytest.raises(DefectbenchError, match="is a file, not a folder"):
        check_replaceable(tmp_path / "ok.csv" / "sub" / "x.csv")  # a file where a folder would have to go
