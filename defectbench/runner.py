"""Score one detector on one dataset split: choose the threshold on validation, score, write the result.

The steps (SPEC 4):

1. ``detector.fit(train, validation)`` (classical baselines fit their decision thresholds; the
   default does nothing and reads nothing).
2. Framewise tasks: choose the decision threshold **on the validation split only**. A detector with
   an internal threshold (``threshold_grid``, SigClick's dB) is run at every grid value and the
   value with the best validation ``criterion`` (accuracy, the music paper's choice) is kept, the
   whole sweep reported. Otherwise the runner thresholds the scores itself, at the distinct
   validation score that maximises the criterion. 5-way tasks take the arg-max class.
3. Score the requested split (``test`` by default) with that threshold, timing ``predict``.
4. Metrics with bootstrap intervals over pieces/videos (``item_id``) and the per-parameter
   breakdown; predictions parquet, plots and the validated result JSON; a rich table.

:func:`run` takes a detector name or an already-constructed :class:`~defectbench.detectors.Detector`
(a model restored from a checkpoint).

Under ``torchrun --nproc_per_node G`` (the neural detectors) each process scores the rows
``rank, rank + G, ...`` of validation and of the split on its GPU; the scores come back in dataset
order (``distributed.gather_in_order``) and rank 0 alone computes the metrics and writes the result.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from rich.console import Console
from rich.table import Table

from . import distributed as D
from . import metrics as M
from . import plots
from .core import SPLITS, DefectbenchError
from .detectors import Detector, check_options, get
from .results import (
    DatasetInfo,
    FramewiseMetrics,
    ModelInfo,
    MulticlassMetrics,
    Predictions,
    Result,
    SweepPoint,
    Threshold,
    Throughput,
    environment,
    to_jsonable,
    write_predictions,
)

CRITERIA = ("accuracy", "f1")


class Rows:
    """A re-iterable view of one split's rows (each ``iter`` reads the parquet files again).

    Under torchrun (``ctx``): this process's rows ``rank, rank + G, ...`` only, audio decoded for those.
    """

    def __init__(self, path: Path, split: str, ctx: D.DistContext = D.DistContext()) -> None:
        self.path, self.split, self.ctx = path, split, ctx

    def __iter__(self) -> Iterator[dict]:
        from .dataset import iter_rows

        if not self.ctx.enabled:
            return iter_rows(self.path, self.split)
        mine = itertools.islice(iter_rows(self.path, self.split, decode_audio=False), self.ctx.rank, None,
                                self.ctx.world_size)
        return map(_decode, mine)

    def total(self) -> int:
        """Rows of the split (every process's)."""
        from .dataset import count_rows

        return count_rows(self.path, self.split)

    def __len__(self) -> int:
        return len(D.score_indices(self.total(), self.ctx))


def _decode(row: dict) -> dict:
    """What ``dataset.iter_rows`` does to a row's audio by default."""
    from .audio_io import read_wav_bytes

    row["audio"], row["rate"] = read_wav_bytes(row["audio"]["bytes"])
    return row


def batched(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def prefetched(batches: Iterable[list[dict]]) -> Iterator[list[dict]]:
    """Read the next batch in a thread while the current one is scored.

    Reading (parquet, WAV decoding) then overlaps with ``predict`` wherever ``predict`` waits
    (a detector's process pool, a GPU); measured in benchmarks/bench_sigclick.py.
    """
    from concurrent.futures import ThreadPoolExecutor

    iterator = iter(batches)
    with ThreadPoolExecutor(1, thread_name_prefix="defectbench-read") as reader:
        pending = reader.submit(next, iterator, None)
        while True:
            batch = pending.result()
            if batch is None:
                return
            pending = reader.submit(next, iterator, None)
            yield batch


def _progress(enabled: bool):
    from .progress import make_progress

    return make_progress("segments", enabled)


def _check_scores(scores: np.ndarray, batch: list[dict], task: str, n_classes: int, name: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float32)
    if task == "framewise":
        expected = (len(batch), len(batch[0]["target"]))
    else:
        expected = (len(batch), n_classes)
    if scores.shape != expected:
        raise DefectbenchError(f"detector {name!r} returned scores {scores.shape}, expected {expected}")
    if not np.isfinite(scores).all():
        raise DefectbenchError(f"detector {name!r} returned non-finite scores")
    return scores


# ------------------------------------------------------------------------- threshold choice -----


def _criterion_value(m: dict[str, Any], criterion: str) -> float:
    v = m.get(criterion)
    return -np.inf if v is None else float(v)


def choose_on_grid(detector: Detector, validation: Rows, criterion: str, progress):
    """Run the detector at every ``threshold_grid`` value on validation; keep the best by ``criterion``.

    Returns (threshold, validation ids, item ids, decisions ``[n, settings, frames]``): the decisions
    at every setting go into the validation predictions, so that a scorer can choose again.
    """
    grid = list(detector.threshold_grid)
    counts = np.zeros((len(grid), 4), dtype=np.int64)
    ids, item_ids, decisions = [], [], []
    task = progress.add_task(f"{detector.name}: validation sweep", total=len(validation))
    for batch in prefetched(batched(validation, detector.batch_size)):
        scores = np.asarray(detector.predict_grid(batch), dtype=np.float32)
        if scores.shape[0] != len(grid):
            raise DefectbenchError(f"detector {detector.name!r}: predict_grid gave {scores.shape[0]} thresholds, not {len(grid)}")
        targets = np.stack([r["target"] for r in batch])
        for k in range(len(grid)):
            counts[k] += M.binary_counts(targets, _check_scores(scores[k], batch, "framewise", 0, detector.name) >= 0.5)
        decisions.append(scores.transpose(1, 0, 2))
        ids += [str(r["id"]) for r in batch]
        item_ids += [str(r.get("item_id", r["id"])) for r in batch]
        progress.advance(task, len(batch))
    if not ids:
        raise DefectbenchError("the dataset has no validation rows to choose the threshold on")
    sweep = [M.binary_from_counts(c) for c in counts]
    best = int(np.argmax([_criterion_value(m, criterion) for m in sweep]))  # ties: first grid value
    threshold = Threshold(
        kind="internal",
        value=float(grid[best]),
        unit=detector.threshold_unit,
        decision=0.5,
        chosen_on="validation",
        criterion=criterion,
        validation_count=len(ids),
        sweep=[SweepPoint(value=float(v), **m) for v, m in zip(grid, sweep)],
        grid=[float(v) for v in grid],
    )
    grid_scores = np.concatenate(decisions)
    return threshold, ids, item_ids, grid_scores[:, best], grid_scores


def best_score_threshold(targets: np.ndarray, scores: np.ndarray, criterion: str) -> tuple[float, dict[str, Any]]:
    """The distinct score value t (decision ``score >= t``) with the best ``criterion`` on these rows.

    Every distinct score is a candidate (a threshold between two scores decides the same frames as the
    upper one). Ties: the highest threshold (fewest positive decisions).
    """
    thresholds, tp, predicted, pos = M.counts_at_thresholds(targets, scores)
    n = int(np.asarray(targets).size)
    fp = predicted - tp
    fn = pos - tp
    tn = n - pos - fp
    if criterion == "accuracy":
        values = (tp + tn) / n
    else:
        den = 2 * tp + fp + fn
        values = np.where(den > 0, 2 * tp / np.maximum(den, 1), -np.inf)
    k = int(np.argmax(values))  # first maximum = highest threshold
    return float(thresholds[k]), M.binary_from_counts([tp[k], fp[k], fn[k], tn[k]])


def choose_on_scores(detector: Detector, validation: Rows, criterion: str, progress):
    """The validation score threshold with the best ``criterion``; returns (threshold, ids, item ids, scores)."""
    targets, scores, ids, item_ids = [], [], [], []
    task = progress.add_task(f"{detector.name}: validation", total=len(validation))
    for batch in prefetched(batched(validation, detector.batch_size)):
        scores.append(_check_scores(detector.predict(batch), batch, "framewise", 0, detector.name))
        targets.append(np.stack([r["target"] for r in batch]))
        ids += [str(r["id"]) for r in batch]
        item_ids += [str(r.get("item_id", r["id"])) for r in batch]
        progress.advance(task, len(batch))
    if not scores:
        raise DefectbenchError("the dataset has no validation rows to choose the threshold on")
    targets, scores = np.concatenate(targets), np.concatenate(scores)
    if validation.ctx.enabled:  # every process's rows, in dataset order
        n = validation.total()
        targets, scores = D.gather_in_order(targets, n, validation.ctx), D.gather_in_order(scores, n, validation.ctx)
        ids, item_ids = (D.gather_in_order(np.array(x, dtype=object), n, validation.ctx).tolist() for x in (ids, item_ids))
    value, m = best_score_threshold(targets, scores, criterion)
    threshold = Threshold(
        kind="score",
        value=value,
        decision=value,
        chosen_on="validation",
        criterion=criterion,
        validation_count=len(scores),
        sweep=[SweepPoint(value=value, **m)],
    )
    return threshold, ids, item_ids, scores, None


# ---------------------------------------------------------------------------------- the run -----


def default_out(dataset: Path, model: str) -> Path:
    return Path("results") / dataset.resolve().name / f"{model}.json"


def run(
    detector: Detector | str,
    dataset: str | Path,
    *,
    split: str = "test",
    out: str | Path | None = None,
    workers: int | None = None,
    options: dict[str, Any] | None = None,
    checkpoint: str | Path | None = None,
    criterion: str = "accuracy",
    untrained: bool = False,
    n_resamples: int = 1000,
    seed: int = 0,
    show_progress: bool = True,
    console: Console | None = None,
    make_plots: bool = True,
) -> Result | None:
    """Score ``detector`` on ``dataset``'s ``split``; write and return the validated :class:`Result`
    (under torchrun: on rank 0; the other ranks return None).

    ``detector``: a registered name (constructed with ``options``, or from ``checkpoint`` through
    ``from_checkpoint``) or an already-constructed instance (used as is; its ``threshold`` is
    overwritten by the validation choice when it has a ``threshold_grid``).
    ``out``: the result JSON (default ``results/<dataset>/<model>.json``); the predictions
    (``<stem>.predictions.parquet``) and plots (``<stem>.pr.png`` / ``<stem>.confusion.png``) go beside it.
    ``workers``: processes the detector may use (default: all cores).
    A neural detector named without ``checkpoint`` scores the shipped weights for the dataset's recipe
    (``defectbench.weights``), or refuses where none exist; ``untrained=True`` scores a random
    initialisation, on purpose only.
    """
    from .dataset import count_rows, read_manifest

    ctx = D.init()  # under torchrun: this process's rank and GPU; otherwise one process, as before
    if split not in SPLITS:
        raise DefectbenchError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    if criterion not in CRITERIA:
        raise DefectbenchError(f"unknown criterion {criterion!r}; use one of {', '.join(CRITERIA)}")
    dataset = Path(dataset)
    manifest = read_manifest(dataset)
    task = manifest["task"]
    label_names = list(manifest.get("label_names", []))
    if isinstance(detector, str):
        cls = get(detector)
        check_options(cls, options or {})
        if checkpoint is None and not untrained and _is_neural(cls):
            from .weights import resolve  # the shipped weights for the dataset's recipe, or one clear error

            checkpoint = resolve(cls.name, _recipe_name(manifest), (options or {}).get("config"))
        detector = cls.from_checkpoint(str(checkpoint), **(options or {})) if checkpoint else cls(**(options or {}))
    elif checkpoint is not None:
        raise DefectbenchError("give a checkpoint with a detector name, not with a constructed detector")
    if task not in detector.tasks:
        raise DefectbenchError(
            f"detector {detector.name!r} scores {', '.join(detector.tasks)} tasks; {dataset} is {task}"
        )
    if ctx.enabled and (detector.threshold_grid or type(detector).fit is not Detector.fit):
        raise DefectbenchError(f"torchrun scores the neural detectors; run {detector.name} in one process "
                               "(it uses --workers processes)")
    if ctx.enabled and min(count_rows(dataset, s) for s in {split, "validation"}) < ctx.world_size:
        raise DefectbenchError(f"{dataset}: fewer {split}/validation rows than the {ctx.world_size} processes")
    detector.workers = max(1, int(workers or os.cpu_count() or 1))
    console = console or Console()
    out = Path(out) if out else default_out(dataset, detector.name)
    stem = out.with_suffix("")
    if ctx.is_main:  # before any scoring: the result, its predictions and figures may replace only their own kind
        from .owned_files import check_replaceable, vouch

        vouch(_files_named_by(out))  # what an older defectbench wrote beside its result file, unsigned
        check_replaceable([out, *(stem.with_name(stem.name + s) for s in SIDECARS)], " (run --out)")
    if split == "validation" and task == "framewise" and ctx.is_main:
        console.print("[yellow]scoring the validation split: the threshold is chosen on the same rows[/]")

    try:
        with _progress(show_progress and ctx.is_main) as progress:
            detector.fit(Rows(dataset, "train"), Rows(dataset, "validation"))
            validation = None  # (ids, item ids, scores, grid decisions) of the validation split
            if task == "framewise":
                if detector.threshold_grid:
                    threshold, *validation = choose_on_grid(detector, Rows(dataset, "validation"), criterion, progress)
                    detector.threshold = threshold.value
                else:
                    threshold, *validation = choose_on_scores(detector, Rows(dataset, "validation", ctx), criterion, progress)
            else:
                fitted = type(detector).fit is not Detector.fit
                threshold = Threshold(
                    kind="argmax", value=None, decision=None, chosen_on="validation" if fitted else "none",
                    criterion=getattr(detector, "fit_criterion", "") if fitted else "", validation_count=0,
                )
            grid_index = list(detector.threshold_grid).index(threshold.value) if threshold.grid else None
            scored = _score(detector, Rows(dataset, split, ctx), task, len(label_names), progress, grid_index)
    finally:
        detector.close()
    if not ctx.is_main:  # rank 0 has every row's scores and writes the result
        D.finish(ctx)
        return None

    ids, item_ids, params, truth, scores, grid_scores, seconds, predict_seconds = scored
    metrics = _metrics(task, truth, scores, threshold, item_ids, params, label_names, n_resamples, seed)
    pred_path = stem.with_name(stem.name + ".predictions.parquet")
    sha = write_predictions(pred_path, ids, item_ids, scores, grid_scores)
    validation_predictions = None
    if validation is not None:
        v_path = stem.with_name(stem.name + ".validation.predictions.parquet")
        v_ids, v_items, v_scores, v_grid = validation
        validation_predictions = Predictions(path=v_path.name, sha256=write_predictions(v_path, v_ids, v_items, v_scores, v_grid),
                                             rows=len(v_ids))
    plot_paths = _plots(stem, task, truth, scores, threshold, metrics, label_names, detector.name, split) if make_plots else []
    options_json = to_jsonable(getattr(detector, "options", {}) or {})
    result = Result(
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        model=ModelInfo(
            name=detector.name,
            description=detector.description,
            options=options_json,
            parameters=detector.parameter_count(),
            weights_hash=detector.weights_hash(),
            checkpoint=str(checkpoint) if checkpoint else None,
            weights_sha256=_weights_file_sha256(detector),
        ),
        task=task,
        dataset=DatasetInfo(
            path=str(dataset),
            recipe=_recipe_name(manifest),
            fingerprint=str(manifest.get("fingerprint", "")),
            task=task,
            split=split,
            count=len(ids),
            label_names=label_names,
        ),
        threshold=threshold,
        metrics=metrics,
        throughput=Throughput(
            segments=len(ids),
            seconds=seconds,
            segments_per_s=len(ids) / seconds if seconds > 0 else 0.0,
            predict_seconds=predict_seconds,
            device=f"torchrun {ctx.world_size} x {detector.device}" if ctx.enabled else detector.device,
            workers=detector.workers,
        ),
        environment=environment(),
        predictions=Predictions(path=pred_path.name, sha256=sha, rows=len(ids)),
        validation_predictions=validation_predictions,
        plots=[p.name for p in plot_paths],
    )
    result.write(out)
    print_result(result, console, out)
    D.finish(ctx)
    return result


def _files_named_by(result: Path) -> list[Path]:
    """The predictions and plots a result file of ours lists (plain names beside it); none otherwise."""
    from .owned_files import is_ours

    if result.suffix != ".json" or not is_ours(result):
        return []
    doc = json.loads(result.read_text())
    names = [(doc.get(k) or {}).get("path") for k in ("predictions", "validation_predictions")] + list(doc.get("plots") or [])
    return [result.parent / n for n in names if isinstance(n, str) and n and Path(n).name == n]


SIDECARS = (".predictions.parquet", ".validation.predictions.parquet", ".pr.png", ".confusion.png")
"""What ``run`` writes beside its result file (``STEM`` + each)."""


def _is_neural(cls: type) -> bool:
    from .neural import TorchDetector

    return issubclass(cls, TorchDetector)


def _weights_file_sha256(detector: Detector) -> str | None:
    """SHA-256 of the checkpoint file a neural detector was restored from (None: no file, e.g. --untrained)."""
    ckpt = getattr(detector, "checkpoint", None)
    if not isinstance(ckpt, dict) or not ckpt.get("path"):
        return None
    from .weights import sha256_file

    return sha256_file(ckpt["path"])


def _recipe_name(manifest: dict) -> str:
    recipe = manifest.get("recipe", "")
    return str(recipe.get("name", "")) if isinstance(recipe, dict) else str(recipe)


def _score(detector: Detector, rows: Rows, task: str, n_classes: int, progress, grid_index: int | None = None):
    """Score one split; with ``grid_index`` (a detector with an internal threshold) at every grid
    setting, the scores being the decisions at the chosen one."""
    ids, item_ids, params, truth, scores, grids = [], [], [], [], [], []
    predict_seconds = 0.0
    bar = progress.add_task(f"{detector.name}: {rows.split}", total=len(rows))
    start = time.perf_counter()
    for batch in prefetched(batched(rows, detector.batch_size)):
        t0 = time.perf_counter()
        if grid_index is None:
            s = detector.predict(batch)
        else:
            g = np.asarray(detector.predict_grid(batch), dtype=np.float32)
            grids.append(np.stack([_check_scores(x, batch, task, n_classes, detector.name) for x in g], axis=1))
            s = g[grid_index]
        predict_seconds += time.perf_counter() - t0
        scores.append(_check_scores(s, batch, task, n_classes, detector.name))
        for r in batch:
            ids.append(str(r["id"]))
            item_ids.append(str(r.get("item_id", r["id"])))
            p = r.get("params") or "{}"
            params.append(json.loads(p) if isinstance(p, str) else dict(p))
            truth.append(r["target"] if task == "framewise" else int(r["label"]))
        progress.advance(bar, len(batch))
    seconds = time.perf_counter() - start
    if not ids:
        raise DefectbenchError(f"the {rows.split} split of {rows.path} has no rows")
    truth_arr = np.stack(truth) if task == "framewise" else np.asarray(truth, dtype=np.int64)
    scores_arr = np.concatenate(scores)
    ctx = rows.ctx
    if ctx.enabled:  # every process's rows back in dataset order; times: the slowest process (one row each)
        n = rows.total()
        ids, item_ids, params = (D.gather_in_order(np.array(x, dtype=object), n, ctx).tolist() for x in (ids, item_ids, params))
        truth_arr, scores_arr = D.gather_in_order(truth_arr, n, ctx), D.gather_in_order(scores_arr, n, ctx)
        seconds, predict_seconds = D.gather_in_order(np.array([[seconds, predict_seconds]]), ctx.world_size, ctx).max(axis=0).tolist()
    grid_arr = np.concatenate(grids) if grids else None
    return ids, item_ids, params, truth_arr, scores_arr, grid_arr, seconds, predict_seconds


def _metrics(task, truth, scores, threshold, item_ids, params, label_names, n_resamples, seed):
    if task == "framewise":
        decisions = scores >= threshold.decision
        m = M.framewise_metrics(truth, scores, threshold.decision)
        ci = M.framewise_intervals(truth, decisions, item_ids, n_resamples, seed)
        br = M.framewise_breakdown(params, truth, decisions)
        return FramewiseMetrics(**m, intervals=_intervals(ci), breakdown=to_jsonable(br))
    predicted = scores.argmax(axis=1)
    n = scores.shape[1]
    names = label_names if len(label_names) == n else [str(k) for k in range(n)]
    m = M.multiclass_from_confusion(M.confusion_matrix(truth, predicted, n))
    m["per_class_recall"] = dict(zip(names, m["per_class_recall"]))
    ci = M.multiclass_intervals(truth, predicted, n, item_ids, n_resamples, seed)
    # a defect's parameters are keyed by its class, so hum and hiss amplitudes are never pooled
    by_class = [{names[label]: p} for label, p in zip(truth, params)]
    br = M.multiclass_breakdown(by_class, truth, predicted)
    return MulticlassMetrics(**m, intervals=_intervals(ci), breakdown=to_jsonable(br))


def _intervals(ci: dict) -> dict:
    return {k: None if v is None else {"low": v[0], "high": v[1]} for k, v in ci.items()}


def _plots(stem, task, truth, scores, threshold, metrics, label_names, name, split) -> list[Path]:
    title = f"{name} on {stem.parent.name} ({split})"
    if task == "framewise":
        p = plots.precision_recall(stem.with_name(stem.name + ".pr.png"), truth, scores, threshold.decision, title)
        return [p] if p else []
    names = label_names or [str(k) for k in range(len(metrics.confusion))]
    return [plots.confusion(stem.with_name(stem.name + ".confusion.png"), metrics.confusion_normalized, names, title)]


def _fmt(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def print_result(result: Result, console: Console, path: Path | None = None) -> None:
    m = result.metrics
    th = result.threshold
    table = Table(title=f"{result.model.name} on {result.dataset.recipe} ({result.dataset.split}, {result.dataset.count} segments)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95 % CI (bootstrap over pieces)", justify="right")
    if isinstance(m, FramewiseMetrics):
        keys, digits = ("accuracy", "precision", "recall", "f1", "average_precision"), 2
    else:
        keys, digits = ("accuracy", "balanced_accuracy"), 4
    for key in keys:
        ci = m.intervals.get(key)
        table.add_row(key, _fmt(getattr(m, key), digits), "-" if ci is None else f"{ci.low:.{digits}f} - {ci.high:.{digits}f}")
    if isinstance(m, MulticlassMetrics):
        for name, r in m.per_class_recall.items():
            table.add_row(f"recall {name}", _fmt(r, 4), "")
    console.print(table)
    if th.kind != "argmax":
        console.print(f"threshold {th.value:g} {th.unit} chosen on validation ({th.validation_count} segments) by {th.criterion}")
    if len(th.sweep) > 1:
        sweep = Table(title=f"validation sweep ({th.unit or 'score'})")
        for col in ("threshold", "accuracy", "precision", "recall", "f1"):
            sweep.add_column(col, justify="right")
        for p in th.sweep:
            mark = " *" if p.value == th.value else ""
            sweep.add_row(f"{p.value:g}{mark}", _fmt(p.accuracy, 4), _fmt(p.precision), _fmt(p.recall), _fmt(p.f1))
        console.print(sweep)
    t = result.throughput
    console.print(f"{t.segments_per_s:.1f} segments/s ({t.device}, {t.workers} workers); result: {path}")
