"""Scores for both tasks, with bootstrap intervals over pieces/videos and a per-parameter breakdown.

- Framewise tasks (music paper, section 6, Table 1; SPEC 4): accuracy, precision, recall and F1 of the
  positive class over *every target value* of the split (micro, pooled frames), in percent; plus the
  threshold-free average precision of the scores.
- 5-way task (video paper, section 5; SPEC 4): accuracy, balanced accuracy (mean per-class recall),
  per-class recall and the confusion matrix normalised per true class (rows sum to 1).
- Neither paper gives intervals: :func:`bootstrap` resamples whole groups (FMA pieces, videos) with
  replacement, because segments of one piece are not independent.
- Neither paper breaks results down by the defect's parameters: :func:`breakdown` bins samples by one
  numeric parameter (click amplitude, hum amplitude, clip ratio...) and scores each bin.

Undefined values (precision with no positive prediction, recall with no positive target, ...) are
``None``, never a made-up 0 or 1.

scikit-learn is not a dependency of the toolkit; the few formulas it would give (average precision,
confusion matrix, balanced accuracy) are written here from their definitions and checked in
``tests/test_metrics.py`` against hand-worked cases.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

# ---------------------------------------------------------------- framewise (binary per frame) ---


def binary_counts(targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """``[tp, fp, fn, tn]`` over every value of ``targets`` / ``predictions`` (any equal shapes)."""
    t = np.asarray(targets).astype(bool)
    p = np.asarray(predictions).astype(bool)
    if t.shape != p.shape:
        raise ValueError(f"targets {t.shape} and predictions {p.shape} differ in shape")
    tp = int(np.count_nonzero(t & p))
    fp = int(np.count_nonzero(~t & p))
    fn = int(np.count_nonzero(t & ~p))
    tn = int(t.size - tp - fp - fn)
    return np.array([tp, fp, fn, tn], dtype=np.int64)


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else 100.0 * num / den


def binary_from_counts(counts: Sequence[float]) -> dict[str, float | None]:
    """Accuracy, precision, recall and F1 of the positive class, in percent, from ``[tp, fp, fn, tn]``."""
    tp, fp, fn, tn = (float(c) for c in counts)
    return {
        "accuracy": _ratio(tp + tn, tp + fp + fn + tn),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        # 2PR/(P+R) written with counts: defined whenever anything is positive (target or prediction).
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def average_precision(targets: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision (area under the step precision-recall curve), in percent.

    AP = sum over distinct score thresholds t (descending) of (R(t) - R(t_prev)) * P(t), the
    definition scikit-learn and sed_scores_eval use. Ties are one threshold. ``None`` if no positive.
    """
    t = np.asarray(targets).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    n_pos = int(t.sum())
    if n_pos == 0:
        return None
    precision, recall, _ = precision_recall_curve(t, s)
    return 100.0 * float(np.sum(np.diff(recall, prepend=0.0) * precision))


def counts_at_thresholds(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """True positives and predicted positives at every distinct score used as threshold (``score >= t``).

    Returns ``(thresholds, tp, predicted, positives)``, thresholds decreasing (recall increasing).
    """
    t = np.asarray(targets).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    # last index of each run of equal scores: thresholds are distinct score values
    last = np.flatnonzero(np.r_[np.diff(s) != 0, True])
    return s[last], np.cumsum(t)[last], last + 1, int(t.sum())


def precision_recall_curve(targets: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall (fractions) at every distinct score used as threshold (``score >= t``).

    Returned in order of decreasing threshold (increasing recall). Needs at least one positive.
    """
    thresholds, tp, predicted, positives = counts_at_thresholds(targets, scores)
    return tp / predicted, tp / max(positives, 1), thresholds


def framewise_metrics(targets: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """Every framewise metric: counts, accuracy/precision/recall/F1 (percent) at ``score >= threshold``, AP."""
    counts = binary_counts(targets, np.asarray(scores) >= threshold)
    out: dict[str, Any] = binary_from_counts(counts)
    out["average_precision"] = average_precision(targets, scores)
    out["counts"] = dict(zip(("tp", "fp", "fn", "tn"), (int(c) for c in counts)))
    return out


# ------------------------------------------------------------------------------ multiclass ------


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``."""
    labels = np.asarray(labels, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if labels.shape != predicted.shape:
        raise ValueError(f"labels {labels.shape} and predictions {predicted.shape} differ in shape")
    return np.bincount(labels * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def multiclass_from_confusion(cm: np.ndarray) -> dict[str, Any]:
    """Accuracy, balanced accuracy (fractions, as the video paper), per-class recall, normalised matrix.

    Balanced accuracy is the mean recall over the classes that occur (a class with no true sample has
    no recall and is left out, as scikit-learn does).
    """
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    support = cm.sum(axis=1)
    recalls = [None if support[k] == 0 else float(cm[k, k] / support[k]) for k in range(len(cm))]
    present = [r for r in recalls if r is not None]
    return {
        "accuracy": None if total == 0 else float(np.trace(cm) / total),
        "balanced_accuracy": None if not present else float(np.mean(present)),
        "per_class_recall": recalls,
        "confusion_normalized": [
            [None if support[k] == 0 else float(v / support[k]) for v in cm[k]] for k in range(len(cm))
        ],
        "confusion": cm.astype(np.int64).tolist(),
        "support": support.astype(np.int64).tolist(),
    }


def multiclass_metrics(labels: np.ndarray, scores: np.ndarray) -> dict[str, Any]:
    """Every 5-way metric from class scores ``[n, classes]`` (decision: the arg-max class)."""
    scores = np.asarray(scores)
    return multiclass_from_confusion(confusion_matrix(labels, scores.argmax(axis=1), scores.shape[1]))


# ------------------------------------------------------------------------------- bootstrap -------


def bootstrap(
    stats: np.ndarray,
    metric: Callable[[np.ndarray], dict[str, Any]],
    keys: Sequence[str],
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float] | None]:
    """Percentile intervals of ``metric`` when whole groups (pieces, videos) are resampled.

    ``stats`` is ``[groups, k]``: each group's additive sufficient statistics (framewise: tp, fp, fn,
    tn; 5-way: its flattened confusion matrix). A resample is a multinomial count per group, so its
    statistics are ``counts @ stats``: every metric above is a function of summed counts. Written here
    because scipy.stats.bootstrap resamples observations, not clusters of observations.
    """
    stats = np.asarray(stats, dtype=np.float64)
    n_groups = len(stats)
    if n_groups == 0:
        return {k: None for k in keys}
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_resamples)
    sums = weights @ stats
    values: dict[str, list[float]] = {k: [] for k in keys}
    for row in sums:
        m = metric(row)
        for k in keys:
            if m.get(k) is not None:
                values[k].append(m[k])
    alpha = (1 - level) / 2
    out: dict[str, tuple[float, float] | None] = {}
    for k in keys:
        v = values[k]
        # a metric undefined in more than a few resamples has no honest interval
        if len(v) < 0.95 * n_resamples:
            out[k] = None
        else:
            lo, hi = np.quantile(v, [alpha, 1 - alpha])
            out[k] = (float(lo), float(hi))
    return out


def group_sums(groups: Sequence[str], stats: np.ndarray) -> np.ndarray:
    """Sum per-sample statistics ``[n, k]`` into per-group rows ``[groups, k]`` (order of first appearance)."""
    _, index = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    out = np.zeros((index.max() + 1 if len(index) else 0, stats.shape[1]), dtype=np.float64)
    np.add.at(out, index, stats)
    return out


def framewise_sample_counts(targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per-sample ``[tp, fp, fn, tn]`` for ``[n, frames]`` targets and 0/1 predictions."""
    t = np.asarray(targets).astype(bool)
    p = np.asarray(predictions).astype(bool)
    tp = (t & p).sum(axis=1)
    fp = (~t & p).sum(axis=1)
    fn = (t & ~p).sum(axis=1)
    tn = t.shape[1] - tp - fp - fn
    return np.stack([tp, fp, fn, tn], axis=1)


def framewise_intervals(targets, predictions, groups, n_resamples: int = 1000, seed: int = 0):
    """95 % intervals of accuracy, precision, recall, F1 over groups (pieces)."""
    per_group = group_sums(groups, framewise_sample_counts(targets, predictions))
    return bootstrap(per_group, binary_from_counts, ("accuracy", "precision", "recall", "f1"), n_resamples, seed)


def multiclass_intervals(labels, predicted, n_classes: int, groups, n_resamples: int = 1000, seed: int = 0):
    """95 % intervals of accuracy and balanced accuracy over groups (videos)."""
    onehot = np.zeros((len(labels), n_classes * n_classes))
    onehot[np.arange(len(labels)), np.asarray(labels) * n_classes + np.asarray(predicted)] = 1
    per_group = group_sums(groups, onehot)

    def metric(row: np.ndarray) -> dict[str, Any]:
        return multiclass_from_confusion(row.reshape(n_classes, n_classes))

    return bootstrap(per_group, metric, ("accuracy", "balanced_accuracy"), n_resamples, seed)


# ------------------------------------------------------------------------ parameter breakdown ----


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a (nested) params dict as ``{"click.amplitude": 0.42, ...}``.

    A list of numbers gives its mean under the key (several clicks in one chunk) and its length under
    ``key#n``; booleans and strings are left out (they name things, they do not grade them).
    """
    out: dict[str, float] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten_params(value, name + "."))
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, (int, float)):
            if math.isfinite(value):
                out[name] = float(value)
        elif isinstance(value, list) and value and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            out[name] = float(np.mean(value))
            out[name + "#n"] = float(len(value))
    return out


def bin_edges(values: np.ndarray, max_bins: int = 4) -> list[tuple[float, float]]:
    """Bins for one parameter: one per distinct value if there are few, else quantile bins."""
    distinct = np.unique(values)
    if len(distinct) <= 8:
        return [(float(v), float(v)) for v in distinct]
    edges = np.unique(np.quantile(values, np.linspace(0, 1, max_bins + 1)))
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]


def breakdown(
    params: Sequence[dict[str, Any]],
    per_sample: np.ndarray,
    score: Callable[[np.ndarray], dict[str, float | None]],
    min_samples: int = 5,
    max_bins: int = 4,
) -> dict[str, list[dict[str, Any]]]:
    """Scores per bin of every numeric parameter that at least ``min_samples`` samples carry.

    ``per_sample`` is ``[n, k]`` additive statistics (framewise: tp, fp, fn, tn per sample; 5-way:
    1 if correct, 1) and ``score`` turns a bin's summed row into metrics. Samples that lack the
    parameter (clean segments have no click amplitude) are not in its bins.
    """
    flat = [flatten_params(p) for p in params]
    keys = sorted({k for f in flat for k in f})
    out: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        idx = np.array([i for i, f in enumerate(flat) if key in f], dtype=np.int64)
        if len(idx) < min_samples:
            continue
        values = np.array([flat[i][key] for i in idx])
        if len(np.unique(values)) < 2:
            continue  # a constant says nothing about difficulty
        rows = []
        bins = bin_edges(values, max_bins)
        for j, (lo, hi) in enumerate(bins):
            last = j == len(bins) - 1
            inside = (values >= lo) & ((values <= hi) if last or lo == hi else (values < hi))
            if not inside.any():
                continue
            summed = per_sample[idx[inside]].sum(axis=0)
            rows.append({"low": lo, "high": hi, "samples": int(inside.sum()), **score(summed)})
        out[key] = rows
    return out


def framewise_breakdown(params, targets, predictions, **kw) -> dict[str, list[dict[str, Any]]]:
    """Recall, precision, F1 of detected frames per bin of each defect parameter."""

    def score(c: np.ndarray) -> dict[str, float | None]:
        m = binary_from_counts(c)
        return {"recall": m["recall"], "precision": m["precision"], "f1": m["f1"]}

    return breakdown(params, framewise_sample_counts(targets, predictions), score, **kw)


def multiclass_breakdown(params, labels, predicted, **kw) -> dict[str, list[dict[str, Any]]]:
    """Fraction of samples classified correctly per bin of each defect parameter."""
    correct = (np.asarray(labels) == np.asarray(predicted)).astype(np.float64)
    per_sample = np.stack([correct, np.ones_like(correct)], axis=1)
    return breakdown(params, per_sample, lambda c: {"accuracy": float(c[0] / c[1])}, **kw)
