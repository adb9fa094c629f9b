"""Metrics against small cases worked by hand (the expected numbers come from the definitions)."""

import numpy as np
import pytest

from defectbench import metrics as M


def test_framewise_hand_case():
    # 2 segments x 4 frames; frame by frame: tp at (0,0); fn at (0,3); fp at (1,1); tp at (1,2); 4 tn
    targets = np.array([[1, 0, 0, 1], [0, 0, 1, 0]], dtype=np.uint8)
    scores = np.array([[0.9, 0.1, 0.2, 0.3], [0.0, 0.6, 0.7, 0.4]])
    m = M.framewise_metrics(targets, scores, threshold=0.5)
    assert m["counts"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 4}
    assert m["accuracy"] == pytest.approx(75.0)
    assert m["precision"] == pytest.approx(200 / 3)
    assert m["recall"] == pytest.approx(200 / 3)
    assert m["f1"] == pytest.approx(200 / 3)


def test_threshold_is_inclusive():
    m = M.framewise_metrics(np.array([[1, 0]]), np.array([[0.5, 0.49]]), threshold=0.5)
    assert m["counts"]["tp"] == 1 and m["counts"]["fp"] == 0


def test_average_precision_hand_case():
    # descending scores: + - + -  -> P at each positive: 1, 2/3; AP = (1 + 2/3) / 2
    ap = M.average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
    assert ap == pytest.approx(100 * (1 + 2 / 3) / 2)


def test_average_precision_ties_are_one_threshold():
    # one threshold catches both: P = 1/2 at R = 1 (an order-dependent AP would give 100 or 50)
    assert M.average_precision(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(50.0)
    assert M.average_precision(np.array([0, 1]), np.array([0.5, 0.5])) == pytest.approx(50.0)


def test_all_negative_edge_case():
    targets = np.zeros((3, 4), dtype=np.uint8)
    m = M.framewise_metrics(targets, np.zeros((3, 4)), threshold=0.5)
    assert m["accuracy"] == 100.0
    assert m["precision"] is None and m["recall"] is None and m["f1"] is None
    assert m["average_precision"] is None
    # one false alarm: precision is 0 (defined), recall still undefined, F1 0
    scores = np.zeros((3, 4))
    scores[1, 2] = 1
    m = M.framewise_metrics(targets, scores, threshold=0.5)
    assert m["precision"] == 0.0 and m["recall"] is None and m["f1"] == 0.0
    assert m["accuracy"] == pytest.approx(100 * 11 / 12)


def test_all_positive_edge_case():
    targets = np.ones((2, 3), dtype=np.uint8)
    m = M.framewise_metrics(targets, np.ones((2, 3)), threshold=0.5)
    assert (m["accuracy"], m["precision"], m["recall"], m["f1"]) == (100.0, 100.0, 100.0, 100.0)
    assert m["average_precision"] == 100.0
    m = M.framewise_metrics(targets, np.zeros((2, 3)), threshold=0.5)
    assert m["accuracy"] == 0.0 and m["precision"] is None and m["recall"] == 0.0 and m["f1"] == 0.0


def test_balanced_accuracy_differs_from_accuracy():
    labels = np.array([0] * 8 + [1] * 2)
    scores = np.zeros((10, 2))
    scores[:, 0] = 1  # always predicts class 0
    m = M.multiclass_metrics(labels, scores)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["per_class_recall"] == [1.0, 0.0]
    assert m["confusion_normalized"] == [[1.0, 0.0], [1.0, 0.0]]


def test_multiclass_absent_class_and_normalised_rows():
    labels = np.array([0, 0, 1, 1, 1])
    predicted = np.array([0, 2, 1, 1, 0])
    cm = M.confusion_matrix(labels, predicted, 3)
    assert cm.tolist() == [[1, 0, 1], [1, 2, 0], [0, 0, 0]]
    m = M.multiclass_from_confusion(cm)
    assert m["per_class_recall"] == [0.5, pytest.approx(2 / 3), None]
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 2 / 3) / 2)  # class 2 has no samples
    assert m["confusion_normalized"][2] == [None, None, None]
    assert m["accuracy"] == pytest.approx(3 / 5)


def test_bootstrap_identical_groups_give_a_point_interval():
    # every piece has the same counts: any resample has the same precision (2/3)
    targets = np.array([[1, 1, 0, 0]] * 6)
    preds = np.array([[1, 0, 1, 0]] * 6)
    ci = M.framewise_intervals(targets, preds, groups=["a", "a", "b", "b", "c", "c"], n_resamples=200)
    assert ci["precision"] == pytest.approx((50.0, 50.0))
    assert ci["accuracy"] == pytest.approx((50.0, 50.0))


def test_bootstrap_interval_brackets_estimate_and_is_reproducible():
    rng = np.random.default_rng(1)
    targets = rng.random((60, 16)) < 0.2
    preds = targets ^ (rng.random((60, 16)) < 0.1)
    groups = [f"piece{i // 3}" for i in range(60)]
    point = M.binary_from_counts(M.binary_counts(targets, preds))
    ci = M.framewise_intervals(targets, preds, groups, n_resamples=300, seed=3)
    for key in ("accuracy", "precision", "recall", "f1"):
        lo, hi = ci[key]
        assert lo < point[key] < hi
    assert M.framewise_intervals(targets, preds, groups, n_resamples=300, seed=3) == ci


def test_bootstrap_undefined_metric_has_no_interval():
    ci = M.framewise_intervals(np.zeros((4, 3)), np.zeros((4, 3)), ["a", "b", "c", "d"], n_resamples=50)
    assert ci["recall"] is None and ci["accuracy"] == (100.0, 100.0)


def test_multiclass_intervals():
    labels = np.array([0, 1, 0, 1])
    ci = M.multiclass_intervals(labels, labels, 2, groups=["v1", "v1", "v2", "v2"], n_resamples=100)
    assert ci["balanced_accuracy"] == (1.0, 1.0)


def test_flatten_params():
    flat = M.flatten_params({"click": {"amplitude": 0.5, "signs": [1, -1], "on": True}, "name": "x", "n": 3})
    assert flat == {"click.amplitude": 0.5, "click.signs": 0.0, "click.signs#n": 2.0, "n": 3.0}


def test_framewise_breakdown_by_amplitude():
    # 9 clicked segments; the detector only finds clicks of amplitude >= 0.4
    amps = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.35]
    targets = np.zeros((9, 4), dtype=np.uint8)
    targets[:, 1] = 1
    preds = np.zeros_like(targets)
    for i, a in enumerate(amps):
        preds[i, 1] = a >= 0.4
    params = [{"click": {"amplitude": a}} for a in amps]
    params.append({})  # a clean segment: not in any bin
    targets = np.vstack([targets, np.zeros((1, 4), np.uint8)])
    preds = np.vstack([preds, np.zeros((1, 4), np.uint8)])
    rows = M.framewise_breakdown(params, targets, preds, max_bins=2)["click.amplitude"]
    assert sum(r["samples"] for r in rows) == 9
    assert [r["recall"] for r in rows] == [0.0, 100.0]  # median 0.4: [0.1, 0.4) missed, [0.4, 0.8] found


def test_multiclass_breakdown_by_discrete_ratio():
    params = [{"distortion": {"ratio": r}} for r in (0.1, 0.1, 0.7, 0.7, 0.7)]
    labels = np.array([3, 3, 3, 3, 3])
    predicted = np.array([3, 3, 0, 3, 0])
    rows = M.multiclass_breakdown(params, labels, predicted, min_samples=2)["distortion.ratio"]
    assert rows == [
        {"low": 0.1, "high": 0.1, "samples": 2, "accuracy": 1.0},
        {"low": 0.7, "high": 0.7, "samples": 3, "accuracy": pytest.approx(1 / 3)},
    ]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        M.binary_counts(np.zeros((2, 3)), np.zeros((3, 2)))
