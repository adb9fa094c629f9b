"""Event-based scores for the framewise tasks, as the sound-event-detection field reports them.

An *event* is a run of consecutive positive frames of one segment (a click, a glitch); a detected
event is a run of consecutive positive decisions. A detected event matches a true event when their
onsets (first frames) lie within a tolerance; each true event matches at most one detection and the
other way round (a maximum bipartite matching). Counted over every segment of the split:

- precision = matched / detected events, recall = matched / true events, F1 (percent), at a ladder
  of tolerances: the exact frame, +-1 frame, +-50 ms (17.2 frames of 128 samples at 44.1 kHz);
- event average precision (threshold-free): the area under the event-level precision-recall curve
  traced by thresholding the scores at a ladder of score values, at the +-50 ms tolerance.

The matching is mir_eval's (``mir_eval.util.match_events``: the maximum matching of onsets within a
window, the one ``mir_eval.onset.f_measure`` uses). mir_eval scores one track at a time and returns
ratios, which are undefined for a segment without events and cannot be pooled, so the counts are
summed over segments here and the ratios taken once. sed_scores_eval (whose PSDS and event-based
PR curves would fit) is not installable from PyPI here; the event-level PR curve and its average
precision are written from their definition (AP = sum of (R_k - R_{k-1}) * P_k over decreasing
thresholds, as in :func:`defectbench.metrics.average_precision`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mir_eval.util import match_events

MAX_AP_THRESHOLDS = 32
"""Score values tried for the event PR curve (all distinct scores if fewer, else score quantiles)."""


def tolerances(frame_rate: float) -> dict[str, float]:
    """The tolerance ladder in frames: name -> half-width (an onset within it matches)."""
    return {"exact frame": 0.0, "±1 frame": 1.0, "±50 ms": 0.05 * frame_rate}


def onsets(row: np.ndarray) -> np.ndarray:
    """First frame of every run of consecutive positive values of one segment's 0/1 row."""
    r = np.asarray(row).astype(bool)
    starts = r & ~np.r_[False, r[:-1]]
    return np.flatnonzero(starts).astype(np.float64)


def event_counts(targets: np.ndarray, decisions: np.ndarray, window: float) -> tuple[int, int, int]:
    """(matched, true events, detected events) over every segment, onsets matched within ``window`` frames."""
    targets, decisions = np.asarray(targets).astype(bool), np.asarray(decisions).astype(bool)
    if targets.shape != decisions.shape:
        raise ValueError(f"targets {targets.shape} and decisions {decisions.shape} differ in shape")
    matched = n_ref = n_est = 0
    busy = np.flatnonzero(targets.any(axis=1) | decisions.any(axis=1))
    for i in busy:
        ref, est = onsets(targets[i]), onsets(decisions[i])
        n_ref += len(ref)
        n_est += len(est)
        if len(ref) and len(est):
            matched += len(match_events(ref, est, window))
    return matched, n_ref, n_est


def _prf(matched: int, n_ref: int, n_est: int) -> dict[str, float | None]:
    return {"precision": None if n_est == 0 else 100.0 * matched / n_est,
            "recall": None if n_ref == 0 else 100.0 * matched / n_ref,
            "f1": None if n_ref + n_est == 0 else 100.0 * 2 * matched / (n_ref + n_est),
            "matched": matched, "events": n_ref, "detections": n_est}


def event_metrics(targets: np.ndarray, decisions: np.ndarray, frame_rate: float) -> dict[str, dict[str, Any]]:
    """Tolerance name -> precision, recall, F1 (percent) and the counts behind them."""
    return {name: _prf(*event_counts(targets, decisions, w)) for name, w in tolerances(frame_rate).items()}


def ap_thresholds(scores: np.ndarray, limit: int = MAX_AP_THRESHOLDS) -> np.ndarray:
    """Decreasing score values to threshold at: every distinct score if few, else quantiles of them."""
    distinct = np.unique(np.asarray(scores, dtype=np.float64))[::-1]  # decreasing
    if len(distinct) > limit:
        # Ranks spaced geometrically from the top (dense where the few high scores of a good detector sit, so
        # the curve is not one jump from the top score to a low one), plus evenly spaced ranks for the rest.
        ranks = np.concatenate([np.geomspace(1, len(distinct), limit // 2), np.linspace(1, len(distinct), limit // 2)])
        distinct = distinct[np.unique(np.round(ranks).astype(np.int64) - 1)]
    return distinct


def event_average_precision(targets: np.ndarray, scores: np.ndarray, window: float) -> float | None:
    """Area under the event-level precision-recall curve (percent); ``None`` without true events."""
    precision, recall = [], []
    for t in ap_thresholds(scores):
        matched, n_ref, n_est = event_counts(targets, np.asarray(scores) >= t, window)
        if n_ref == 0:
            return None
        if n_est == 0:
            continue
        precision.append(matched / n_est)
        recall.append(matched / n_ref)
    if not recall:
        return 0.0
    # recall can dip where a lower threshold merges two detections into one run: keep the curve monotone
    recall = np.maximum.accumulate(np.asarray(recall))
    return 100.0 * float(np.sum(np.diff(recall, prepend=0.0) * np.asarray(precision)))
