"""Event-based metrics on a hand-made case: events and detections placed here, counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from defectbench import events as EV

FRAME_RATE = 100.0  # frames per second: +-50 ms is 5 frames


def _rows(*runs_per_segment, frames=20):
    out = np.zeros((len(runs_per_segment), frames), np.uint8)
    for i, runs in enumerate(runs_per_segment):
        for a, b in runs:
            out[i, a : b + 1] = 1
    return out


# segment 0: true events at frames 2-3 and 10; segment 1: 5-7; segment 2: none
TARGETS = _rows([(2, 3), (10, 10)], [(5, 7)], [])
# detections: onset 2 (exact), onset 11 (1 frame late), onset 8 (3 frames late), onset 0 where nothing is
DECISIONS = _rows([(2, 2), (11, 12)], [(8, 8)], [(0, 0)])


def test_onsets_are_the_first_frames_of_runs():
    assert EV.onsets(np.array([0, 1, 1, 0, 1, 0, 0, 1])).tolist() == [1.0, 4.0, 7.0]


def test_tolerance_ladder_counted_by_hand():
    m = EV.event_metrics(TARGETS, DECISIONS, FRAME_RATE)
    assert list(m) == ["exact frame", "±1 frame", "±50 ms"]
    # 3 true events, 4 detections everywhere; matched: exact 1 (onset 2), +-1 frame 2 (and 10 ~ 11),
    # +-50 ms = +-5 frames 3 (and 5 ~ 8); the detection at frame 0 of segment 2 never matches
    for name, matched in (("exact frame", 1), ("±1 frame", 2), ("±50 ms", 3)):
        got = m[name]
        assert (got["matched"], got["events"], got["detections"]) == (matched, 3, 4), name
        assert got["precision"] == pytest.approx(100 * matched / 4)
        assert got["recall"] == pytest.approx(100 * matched / 3)
        assert got["f1"] == pytest.approx(100 * 2 * matched / 7)


def test_one_detection_matches_one_event():
    # two true onsets 1 frame apart, one detection between them: one match, not two
    targets, decisions = _rows([(4, 4), (6, 6)]), _rows([(5, 5)])
    assert EV.event_counts(targets, decisions, 1.0) == (1, 2, 1)


def test_event_average_precision_by_hand():
    # score 0.9 on the detections above, 0.5 on frame 5 of segment 1, 0 elsewhere
    scores = 0.9 * DECISIONS.astype(float)
    scores[1, 5] = 0.5
    window = EV.tolerances(FRAME_RATE)["±50 ms"]
    # t = 0.9: 3 of 4 detections match, recall 1 -> P 0.75; t = 0.5: 3 of 5, recall still 1 (adds
    # no recall); t = 0: every frame positive (one run per segment): recall falls to 2/3, kept at 1
    # on the monotone curve, adding nothing. AP = 1.0 * 0.75.
    assert EV.event_average_precision(TARGETS, scores, window) == pytest.approx(75.0)
    assert EV.event_average_precision(np.zeros_like(TARGETS), scores, window) is None


def test_event_ap_of_a_clean_separation_among_many_distinct_scores():
    """A detector that scores every true event's frame above every other frame has event AP near 100, however many
    distinct low scores the other frames hold (the thresholds must be dense at the top, where its events sit)."""
    rng = np.random.default_rng(0)
    targets = np.zeros((400, 128), np.uint8)
    where = rng.choice(targets.size, size=40, replace=False)
    targets.flat[where] = 1
    scores = rng.uniform(0.0, 0.4, size=targets.shape)  # ~51,000 distinct scores below every event's
    scores.flat[where] = rng.uniform(0.9, 1.0, size=len(where))
    assert len(np.unique(scores)) > 10 * EV.MAX_AP_THRESHOLDS
    # 32 sampled thresholds: the area is exact up to the recall steps between two of them (a few points here)
    assert EV.event_average_precision(targets, scores, 0) >= 95.0
