"""The runner on a real small fma-clicks build: threshold on validation only, result, predictions, plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from _scoring_data import sigclick_result
from defectbench import metrics as M
from defectbench.baselines.sigclick import SigClick
from defectbench.core import DefectbenchError
from defectbench.dataset import iter_rows
from defectbench.detectors import Detector
from defectbench.results import load, verify
from defectbench.runner import best_score_threshold, run


@pytest.fixture(scope="module")
def dataset(clicks_dataset):
    return clicks_dataset


@pytest.fixture(scope="module")
def result_path(tmp_path_factory, dataset):
    return sigclick_result(tmp_path_factory, dataset)


def ids_of(dataset, split):
    return {r["id"] for r in iter_rows(dataset, split, columns=["id"])}


def test_sigclick_run_writes_a_verified_result(dataset, result_path):
    result = load(result_path)
    assert result.model.name == "sigclick" and result.task == "framewise"
    assert result.dataset.count == len(ids_of(dataset, "test")) and result.dataset.split == "test"
    assert result.threshold.chosen_on == "validation" and result.threshold.unit == "dB"
    assert [p.value for p in result.threshold.sweep] == [30, 33, 35, 40, 50]
    accuracies = [p.accuracy for p in result.threshold.sweep]
    assert result.threshold.value == result.threshold.sweep[int(np.argmax(accuracies))].value
    # recomputes every headline metric from the predictions file against the dataset's targets
    verify(result_path, dataset)
    assert (result_path.parent / "sigclick.pr.png").read_bytes()[:4] == b"\x89PNG"
    assert result.metrics.breakdown["defect.amplitude"]  # clicks binned by amplitude


def test_sweep_matches_sigclick_run_directly(dataset, result_path):
    # the validation sweep's figure at the chosen threshold, recomputed without the runner
    result = load(result_path)
    rows = list(iter_rows(dataset, "validation"))
    det = SigClick(threshold=result.threshold.value)
    scores = det.predict(rows)
    m = M.framewise_metrics(np.stack([r["target"] for r in rows]), scores, 0.5)
    chosen = next(p for p in result.threshold.sweep if p.value == result.threshold.value)
    assert chosen.accuracy == pytest.approx(m["accuracy"]) and chosen.recall == pytest.approx(m["recall"])


class SplitAware(Detector):
    """Perfect on validation at grid value 1 and on every other split at grid value 2.

    A runner that chose on the test split would pick 2; choosing on validation must pick 1.
    """

    name = "split-aware"
    tasks = ("framewise",)
    threshold_grid = (1.0, 2.0)

    def __init__(self, validation_ids):
        super().__init__()
        self.validation_ids = validation_ids

    def predict(self, batch):
        out = []
        for r in batch:
            in_validation = r["id"] in self.validation_ids
            good = (self.threshold == 1.0) == in_validation
            out.append(r["target"].astype(np.float32) if good else np.zeros(len(r["target"]), np.float32))
        return np.stack(out)


def test_grid_threshold_is_never_chosen_on_test(dataset, tmp_path):
    det = SplitAware(ids_of(dataset, "validation"))
    result = run(det, dataset, out=tmp_path / "r.json", workers=1, n_resamples=20, show_progress=False, make_plots=False)
    assert result.threshold.value == 1.0
    assert result.threshold.sweep[0].recall == 100.0 and result.threshold.sweep[1].recall == 0.0
    assert result.metrics.recall == 0.0  # the test split pays for the validation choice


class ShiftedScores(Detector):
    """Scores 0.1 / 0.4 (negative / positive frame) on validation, 0.4 / 0.9 elsewhere."""

    name = "shifted"
    tasks = ("framewise",)

    def __init__(self, validation_ids):
        super().__init__()
        self.validation_ids = validation_ids

    def predict(self, batch):
        return np.stack(
            [
                r["target"] * 0.3 + 0.1 if r["id"] in self.validation_ids else r["target"] * 0.5 + 0.4
                for r in batch
            ]
        ).astype(np.float32)


def test_score_threshold_is_never_chosen_on_test(dataset, tmp_path):
    det = ShiftedScores(ids_of(dataset, "validation"))
    result = run(det, dataset, out=tmp_path / "r.json", workers=1, n_resamples=20, show_progress=False)
    assert result.threshold.kind == "score"
    assert result.threshold.value == pytest.approx(0.4)  # test's own best would be 0.9
    assert result.metrics.recall == 100.0 and result.metrics.precision < 10.0
    verify(tmp_path / "r.json", dataset)


def test_best_score_threshold_hand_case():
    targets = np.array([0, 0, 1, 1, 0])
    scores = np.array([0.1, 0.2, 0.8, 0.6, 0.7])
    # thresholds 0.8: 4/5 right; 0.7: 3/5; 0.6: 4/5 (ties: the higher, 0.8); F1: 0.6 gives 2*2/(4+1+0)=0.8
    assert best_score_threshold(targets, scores, "accuracy")[0] == 0.8
    assert best_score_threshold(targets, scores, "f1")[0] == 0.6


class FiveWay(Detector):
    name = "five-way"
    tasks = ("multiclass",)

    def predict(self, batch):
        return np.zeros((len(batch), 5), np.float32)


class WrongShape(Detector):
    name = "wrong-shape"
    tasks = ("framewise",)

    def predict(self, batch):
        return np.zeros((len(batch), 7), np.float32)


def test_bad_detectors_give_clear_errors(dataset, tmp_path):
    with pytest.raises(DefectbenchError, match="multiclass"):
        run(FiveWay(), dataset, out=tmp_path / "a.json", show_progress=False)
    with pytest.raises(DefectbenchError, match="expected"):
        run(WrongShape(), dataset, out=tmp_path / "b.json", show_progress=False)
    with pytest.raises(DefectbenchError, match="split"):
        run("sigclick", dataset, split="dev", out=tmp_path / "c.json", show_progress=False)


def test_cli_run_and_models(dataset, tmp_path):
    from defectbench.commands.scoring import register

    app = typer.Typer()
    register(app)
    cli = CliRunner()
    listing = cli.invoke(app, ["models"])
    assert listing.exit_code == 0 and "sigclick" in listing.output
    out = tmp_path / "cli" / "sigclick.json"
    res = cli.invoke(
        app,
        ["run", "--model", "sigclick", "--dataset", str(dataset), "--out", str(out), "--workers", "1",
         "--resamples", "20", "--quiet", "-o", "frames=128"],
    )
    assert res.exit_code == 0, res.output
    assert "validation sweep" in res.output
    saved = json.loads(out.read_text())
    assert saved["model"]["options"]["frames"] == 128
    assert (out.parent / "sigclick.predictions.parquet").exists()
