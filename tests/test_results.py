"""The result schema: a real result round-trips; tampered results and predictions are caught."""

from __future__ import annotations

import json
import shutil

import pytest
from pydantic import ValidationError

from _scoring_data import sigclick_result
from defectbench.core import DefectbenchError
from defectbench.results import (
    MulticlassMetrics,
    Result,
    file_sha256,
    load,
    read_grid_scores,
    read_predictions,
    verify,
    write_predictions,
)


@pytest.fixture(scope="module")
def dataset(clicks_dataset):
    return clicks_dataset


@pytest.fixture()
def copy(tmp_path_factory, tmp_path, dataset):
    """A private copy of the SigClick result folder, free to tamper with."""
    src = sigclick_result(tmp_path_factory, dataset)
    dst = tmp_path / "fma-clicks"
    shutil.copytree(src.parent, dst)
    return dst / src.name


def test_round_trip(copy):
    result = load(copy)
    again = Result.model_validate_json(result.model_dump_json())
    assert again == result
    assert json.loads(copy.read_text())["schema_version"] == 1
    ids, scores = read_predictions(copy.parent / result.predictions.path)
    assert len(ids) == result.dataset.count and scores.shape == (len(ids), 128)


def tamper(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["metrics"].update(precision=99.0), "does not follow from the counts"),
        (lambda d: d["metrics"]["counts"].update(tp=d["metrics"]["counts"]["tp"] + 1), "does not follow"),
        (lambda d: d["metrics"].update(average_precision=150.0), "less than or equal to 100"),
        (lambda d: d["threshold"].update(chosen_on="test"), "chosen_on"),
        (lambda d: d.update(surprise=1), "Extra inputs"),
        (lambda d: d["predictions"].update(sha256="abc"), "pattern"),
        (lambda d: d["dataset"].update(count=d["dataset"]["count"] + 1), "rows differ"),
    ],
)
def test_tampered_result_fails_validation(copy, change, message):
    tamper(copy, change)
    with pytest.raises(ValidationError, match=message):
        load(copy)


def test_tampered_predictions_fail_verification(copy, dataset):
    result = load(copy)
    pred = copy.parent / result.predictions.path
    verify(copy, dataset)  # untouched: passes
    ids, scores = read_predictions(pred)
    grid = read_grid_scores(pred, len(result.threshold.grid))  # SigClick: its decisions at every dB setting
    scores[:, :] = 0
    scores[0, 0] = 1
    grid[:] = 0
    grid[0, :, 0] = 1
    write_predictions(pred, ids, ids, scores, grid)
    with pytest.raises(DefectbenchError, match="SHA-256 differs"):
        verify(copy, dataset)
    # a forger who also updates the hash is caught by recomputing the metrics from the dataset
    tamper(copy, lambda d: d["predictions"].update(sha256=file_sha256(pred)))
    with pytest.raises(DefectbenchError, match="recall declared .*, recomputed"):
        verify(copy, dataset)


def test_reordered_predictions_fail_verification(copy, dataset):
    result = load(copy)
    pred = copy.parent / result.predictions.path
    ids, scores = read_predictions(pred)
    write_predictions(pred, ids[::-1], ids[::-1], scores[::-1])
    tamper(copy, lambda d: d["predictions"].update(sha256=file_sha256(pred)))
    with pytest.raises(DefectbenchError, match="prediction ids differ from the dataset's test split"):
        verify(copy, dataset)


def test_multiclass_metrics_must_follow_the_confusion_matrix():
    good = dict(
        accuracy=0.8,
        balanced_accuracy=0.5,
        per_class_recall={"no_defect": 1.0, "hum": 0.0},
        confusion=[[8, 0], [2, 0]],
        confusion_normalized=[[1.0, 0.0], [1.0, 0.0]],
        support=[8, 2],
    )
    assert MulticlassMetrics(**good).balanced_accuracy == 0.5
    with pytest.raises(ValidationError, match="balanced_accuracy"):
        MulticlassMetrics(**{**good, "balanced_accuracy": 0.8})
    with pytest.raises(ValidationError, match="confusion_normalized"):
        MulticlassMetrics(**{**good, "confusion_normalized": [[0.5, 0.5], [1.0, 0.0]]})
