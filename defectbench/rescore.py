"""The one recomputation of a result: what ``results.verify`` and the leaderboard both trust.

Given a result, the folder its predictions are in and the dataset it names, :func:`rescore`

1. checks the predictions files (test and validation) against the hashes and row counts in the result;
2. checks the dataset: its manifest's fingerprint is the one the result names, and the fingerprint
   recomputed from its parquet files is the manifest's (:func:`verify_dataset`), so a swapped or
   edited parquet file is refused, never scored against;
3. framewise tasks: chooses the decision threshold **itself, on the validation scores**, by the
   criterion the result declares (accuracy or F1; a detector with an internal setting such as
   SigClick's dB: the grid value whose validation decisions score best), then recomputes every
   figure on the scored split at that threshold: frame counts, accuracy, precision, recall, F1,
   average precision, event-based precision/recall/F1 at the tolerance ladder and event AP
   (:mod:`defectbench.events`); 5-way task: arg-max, accuracy, balanced accuracy, macro-F1,
   per-class recall and the confusion matrix;
4. bootstrap intervals over pieces/videos, recall (and precision) by severity bins of every defect
   parameter, and by music style/genre (the dataset's ``genres`` column);
5. lists every declared figure (threshold included) that differs from the recomputed one.

A declared figure is never used: the caller shows the differences (the board) or fails on them
(``results.verify``). What cannot be recomputed at all raises :class:`RescoreError` (one line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from . import events as EV
from . import metrics as M
from .core import SPLITS, DefectbenchError

CRITERIA = ("accuracy", "f1")
TOLERANCE = 1e-6
"""Relative tolerance of a declared figure against the recomputed one (float32 scores, JSON round trips)."""


class RescoreError(DefectbenchError):
    """A result that cannot be recomputed; the message is the one-line reason."""


# ---------------------------------------------------------------------------- the dataset -----


def verify_dataset(path: str | Path) -> str:
    """The dataset's fingerprint, recomputed from its parquet files (or a stored verification of the same
    bytes) by :func:`defectbench.verify.verify_dataset`; raises :class:`RescoreError` when it differs from the
    manifest (a parquet file swapped, edited or missing)."""
    from .core import DefectbenchError
    from .verify import verify_dataset as verify

    try:
        return verify(path).fingerprint
    except DefectbenchError as exc:
        raise RescoreError(str(exc)) from None


# ------------------------------------------------------------------------- the predictions -----


def _pred_files(result, folder: Path) -> dict[str, tuple[Path, Any]]:
    out = {result.dataset.split: (folder / result.predictions.path, result.predictions)}
    if result.validation_predictions is not None:
        out["validation"] = (folder / result.validation_predictions.path, result.validation_predictions)
    return out


def check_predictions(result, folder: Path) -> None:
    """Every predictions file the result names is there, unaltered (SHA-256), with its row count."""
    from .results import file_sha256

    for split, (path, info) in _pred_files(result, Path(folder)).items():
        name = info.path
        if not path.is_file():
            raise RescoreError(f"predictions file {name} is missing")
        if file_sha256(path) != info.sha256:
            raise RescoreError(f"predictions file {name} was altered (its SHA-256 differs from result.json)")
        try:
            rows = pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # noqa: BLE001 - any unreadable parquet is one reason
            raise RescoreError(f"predictions file {name} cannot be read: {type(exc).__name__}") from None
        if rows != info.rows:
            raise RescoreError(f"predictions file {name} has {rows} rows, result.json says {info.rows}")


def _read(path: Path, settings: int = 0) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    from .results import read_grid_scores, read_predictions

    try:
        ids, scores = read_predictions(path)
        grid = read_grid_scores(path, settings) if settings else None
    except Exception as exc:  # noqa: BLE001 - a malformed predictions file is one reason
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise RescoreError(f"predictions file {path.name} cannot be read as predictions: {type(exc).__name__}: {first}") from None
    if not np.isfinite(scores).all() or (grid is not None and not np.isfinite(grid).all()):
        raise RescoreError(f"predictions file {path.name} holds non-finite scores")
    return ids, scores, grid


@dataclass
class Split:
    ids: list[str]
    items: list[str]
    targets: np.ndarray
    labels: np.ndarray
    severity: list[dict[str, float]]
    """Per sample: the values that grade its defect (:mod:`defectbench.severity`)."""
    genres: list[list[str]]


def read_split(dataset: Path, split: str, recipe: str = "") -> Split:
    """Ids, item ids, targets, labels, defect severities and genres of one split (audio not read)."""
    from .dataset import data_files, iter_rows
    from .severity import COLUMNS, severity

    files = data_files(dataset, split)
    have = set(pq.read_schema(files[0]).names) if files else set()
    columns = [c for c in ("id", "item_id", "target", "label", "genres", "genre", *COLUMNS) if c in have]
    ids, items, targets, labels, sev, genres = [], [], [], [], [], []
    for r in iter_rows(dataset, split, columns=columns):
        ids.append(str(r["id"]))
        items.append(str(r.get("item_id", r["id"])))
        targets.append(r["target"])
        labels.append(int(r["label"]))
        p = r.get("params") or "{}"
        r["params"] = json.loads(p) if isinstance(p, str) else dict(p)
        sev.append(severity(recipe, r))
        g = r.get("genres") if "genres" in r else ([r["genre"]] if r.get("genre") else [])
        genres.append([str(x) for x in (g or [])])
    return Split(ids, items, np.stack(targets) if targets else np.zeros((0, 0), np.uint8),
                 np.asarray(labels, np.int64), sev, genres)


def _same_ids(ids: list[str], split: Split, name: str) -> None:
    if len(ids) != len(split.ids):
        raise RescoreError(f"the {name} predictions have {len(ids)} rows, the dataset's {name} split has {len(split.ids)}")
    if ids != split.ids:
        i = next(k for k, (a, b) in enumerate(zip(ids, split.ids)) if a != b)
        raise RescoreError(f"prediction ids differ from the dataset's {name} split (row {i}: {ids[i]!r}, dataset {split.ids[i]!r})")


def frame_rate(dataset: Path, split: str, frames: int) -> float:
    """Target frames per second, from one stored row (its sample count and rate)."""
    from .audio_io import read_wav_bytes
    from .dataset import iter_rows

    row = next(iter_rows(dataset, split, columns=["audio"], decode_audio=False))
    audio, rate = read_wav_bytes(row["audio"]["bytes"])
    return rate * frames / len(audio)


# ------------------------------------------------------------------------------- the result -----


@dataclass
class Rescored:
    """Everything recomputed for one result (figures in the units of :mod:`defectbench.metrics`)."""

    task: str
    metrics: dict[str, Any]
    intervals: dict[str, tuple[float, float] | None]
    threshold: dict[str, Any]
    """The board's threshold: value (in the detector's unit), decision, criterion, validation rows."""
    differences: list[str] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    event_ap: float | None = None
    severity: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    genres: list[dict[str, Any]] = field(default_factory=list)


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOLERANCE * max(1.0, abs(b))


def _diff(key: str, stated, again) -> str:
    if isinstance(stated, (int, float)) and isinstance(again, (int, float)):
        return f"{key} declared {stated:.6g}, recomputed {again:.6g} (difference {stated - again:+.6g})"
    return f"{key} declared {stated}, recomputed {again}"


def choose_threshold(result, val: Split, scores: np.ndarray, grid: np.ndarray | None) -> tuple[int | None, float, dict]:
    """(grid index or None, decision value, validation metrics) chosen on validation by the declared criterion."""
    from .runner import best_score_threshold

    th = result.threshold
    if th.criterion not in CRITERIA:
        raise RescoreError(f"threshold criterion {th.criterion!r}: the board chooses by {' or '.join(CRITERIA)}")
    if th.kind == "internal":
        if not th.grid or grid is None:
            raise RescoreError("an internal threshold needs its grid (threshold.grid) and the decisions at every "
                               "grid value in both predictions files (grid_scores), so the board can choose it on validation")
        if grid.shape[1] != len(th.grid) or grid.shape[2] != val.targets.shape[1]:
            raise RescoreError(f"validation grid_scores are {grid.shape[1]} x {grid.shape[2]}, the grid has "
                               f"{len(th.grid)} values and the targets {val.targets.shape[1]} frames")
        sweep = [M.binary_from_counts(M.binary_counts(val.targets, grid[:, k] >= 0.5)) for k in range(len(th.grid))]
        k = int(np.argmax([-np.inf if m[th.criterion] is None else m[th.criterion] for m in sweep]))  # ties: first
        return k, float(th.grid[k]), sweep[k]
    if scores.shape != val.targets.shape:
        raise RescoreError(f"validation predictions are {scores.shape[0]} x {scores.shape[1]} scores, "
                           f"the targets {val.targets.shape[0]} x {val.targets.shape[1]} frames")
    value, m = best_score_threshold(val.targets, scores, th.criterion)
    return None, value, m


def _by_genre(genres: list[list[str]], per_sample: np.ndarray, score) -> list[dict[str, Any]]:
    """Scores per genre (a sample counts in each genre it lists); samples without a genre are left out."""
    names = sorted({g for gs in genres for g in gs})
    rows = []
    for g in names:
        idx = [i for i, gs in enumerate(genres) if g in gs]
        rows.append({"genre": g, "samples": len(idx), **score(per_sample[idx].sum(axis=0))})
    return rows


def rescore(result, folder: str | Path, dataset: str | Path, *, n_resamples: int = 1000, seed: int = 0,
            verified: dict[str, str] | None = None) -> Rescored:
    """Recompute every figure of ``result`` (see the module docstring); raises :class:`RescoreError`.

    ``verified``: a cache of dataset folder -> fingerprint already recomputed (the board verifies each
    dataset once per render).
    """
    from .dataset import read_manifest

    folder, dataset = Path(folder), Path(dataset)
    check_predictions(result, folder)
    manifest = read_manifest(dataset)
    if manifest.get("fingerprint") != result.dataset.fingerprint:
        raise RescoreError(f"dataset {dataset} has fingerprint {str(manifest.get('fingerprint'))[:16]}, the result "
                           f"was scored on {result.dataset.fingerprint[:16]}")
    key = str(dataset.resolve())
    if verified is None or key not in verified:
        fp = verify_dataset(dataset)
        if verified is not None:
            verified[key] = fp
    test = read_split(dataset, result.dataset.split, result.dataset.recipe)
    preds = _pred_files(result, folder)
    if result.task == "framewise":
        return _framewise(result, dataset, test, preds, n_resamples, seed)
    return _multiclass(result, test, preds[result.dataset.split][0], n_resamples, seed)


def _framewise(result, dataset: Path, test: Split, preds, n_resamples: int, seed: int) -> Rescored:
    th = result.threshold
    if th.kind == "argmax" or th.chosen_on != "validation":
        raise RescoreError("a framewise result needs a decision threshold chosen on validation "
                           f"(this one is {th.kind}, chosen on {th.chosen_on})")
    if "validation" not in preds:
        raise RescoreError("no validation scores (validation_predictions): the board chooses the threshold on them "
                           "itself; score again with `defectbench run`, which writes them")
    if result.dataset.split == "validation":
        raise RescoreError("a framewise result scored on the validation split cannot be checked on held-out rows")
    settings = len(th.grid) if th.kind == "internal" else 0
    val = read_split(dataset, "validation", result.dataset.recipe)
    v_ids, v_scores, v_grid = _read(preds["validation"][0], settings)
    _same_ids(v_ids, val, "validation")
    t_ids, t_scores, t_grid = _read(preds[result.dataset.split][0], settings)
    _same_ids(t_ids, test, result.dataset.split)
    k, value, _ = choose_threshold(result, val, v_scores, v_grid)
    if k is None:
        scores, decision = t_scores, value
    else:
        if t_grid is None or t_grid.shape[1:] != (settings, test.targets.shape[1]):
            raise RescoreError("the test predictions lack the decisions at every grid value (grid_scores)")
        scores, decision = t_grid[:, k], 0.5
    if scores.shape != test.targets.shape:
        raise RescoreError(f"predictions are {scores.shape[0]} x {scores.shape[1]} scores, the targets "
                           f"{test.targets.shape[0]} x {test.targets.shape[1]} frames")
    differences = []
    if not _close(th.value, value):
        differences.append(f"threshold declared {th.value:g} {th.unit}".rstrip() + f", the board chose {value:g} "
                           f"{th.unit}".rstrip() + f" on validation (by {th.criterion})")
    m = M.framewise_metrics(test.targets, scores, decision)
    stated = result.metrics
    for key in ("accuracy", "precision", "recall", "f1", "average_precision"):
        if not _close(getattr(stated, key), m[key]):
            differences.append(_diff(key, getattr(stated, key), m[key]))
    if stated.counts.model_dump() != m["counts"]:
        differences.append(f"counts declared {stated.counts.model_dump()}, recomputed {m['counts']}")
    decisions = scores >= decision
    rate = frame_rate(dataset, result.dataset.split, test.targets.shape[1])
    ev = EV.event_metrics(test.targets, decisions, rate)
    ev_ap = EV.event_average_precision(test.targets, scores, EV.tolerances(rate)["±50 ms"])
    intervals = M.framewise_intervals(test.targets, decisions, test.items, n_resamples, seed) if n_resamples else {}
    per_sample = M.framewise_sample_counts(test.targets, decisions)

    def score(c):
        b = M.binary_from_counts(c)
        return {"recall": b["recall"], "precision": b["precision"], "f1": b["f1"]}

    return Rescored(task="framewise", metrics=m, intervals=intervals, differences=differences,
                    threshold={"value": value, "unit": th.unit, "decision": decision, "criterion": th.criterion,
                               "grid_index": k, "validation_count": len(v_ids)},
                    events=ev, event_ap=ev_ap, severity=M.framewise_breakdown(test.severity, test.targets, decisions),
                    genres=_by_genre(test.genres, per_sample, score))


def macro_f1(confusion: np.ndarray) -> float | None:
    """Mean over the classes that occur of the per-class F1 (a fraction)."""
    cm = np.asarray(confusion, dtype=np.float64)
    f1 = []
    for k in range(len(cm)):
        if cm[k].sum() == 0:
            continue
        den = cm[k].sum() + cm[:, k].sum()
        f1.append(2 * cm[k, k] / den)
    return float(np.mean(f1)) if f1 else None


def _multiclass(result, test: Split, pred_path: Path, n_resamples: int, seed: int) -> Rescored:
    t_ids, scores, _ = _read(pred_path)
    _same_ids(t_ids, test, result.dataset.split)
    n = len(result.dataset.label_names)
    if scores.ndim != 2 or scores.shape[1] != n:
        raise RescoreError(f"predictions have {scores.shape[1] if scores.ndim == 2 else '?'} class scores, the task has {n} classes")
    m = M.multiclass_metrics(test.labels, scores)
    m["macro_f1"] = macro_f1(np.asarray(m["confusion"]))
    stated = result.metrics
    differences = [_diff(key, getattr(stated, key), m[key]) for key in ("accuracy", "balanced_accuracy")
                   if not _close(getattr(stated, key), m[key])]
    if stated.confusion != m["confusion"]:
        differences.append(f"confusion declared {stated.confusion}, recomputed {m['confusion']}")
    predicted = scores.argmax(axis=1)
    intervals = M.multiclass_intervals(test.labels, predicted, n, test.items, n_resamples, seed) if n_resamples else {}
    correct = (test.labels == predicted).astype(np.float64)
    per_sample = np.stack([correct, np.ones_like(correct)], axis=1)
    return Rescored(task="multiclass", metrics=m, intervals=intervals, differences=differences,
                    threshold={"value": None, "unit": "", "decision": None, "criterion": "arg-max", "grid_index": None,
                               "validation_count": 0},
                    severity=M.multiclass_breakdown(test.severity, test.labels, predicted),
                    genres=_by_genre(test.genres, per_sample, lambda c: {"accuracy": float(c[0] / c[1]) if c[1] else None}))
