"""The result file: a typed, validated record of one scoring run, and its raw predictions.

A result (``results/<dataset>/<model>.json``) says what was scored (model, dataset recipe and
fingerprint, split, count), how the decision threshold was chosen (always on validation), the
metrics with bootstrap intervals, the throughput, the environment, and where the raw per-sample
predictions are (a parquet file beside it, with its SHA-256). The predictions hold exactly what a
scorer needs to recompute every metric against the dataset's own targets: sample ids in split order
and the scores; the decision rule is in the result (``threshold.decision``: a frame is positive iff
its score >= decision; 5-way: arg-max). :func:`verify` does that recomputation (the leaderboard's
check); the schema's validators reject values that contradict each other (a metric that does not
follow from the stored counts, a percentage above 100, a malformed hash).

Modelled on MTEB's typed task results and lm-evaluation-harness's hashes of the items scored.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import metrics as M
from .core import DefectbenchError, cpu_model

SCHEMA_VERSION = 1
Percent = Field(ge=0.0, le=100.0)
Fraction = Field(ge=0.0, le=1.0)
SHA256 = Field(pattern=r"^[0-9a-f]{64}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelInfo(Strict):
    name: str
    description: str = ""
    options: dict[str, Any] = {}
    parameters: int = Field(ge=0)
    weights_hash: str | None = None
    checkpoint: str | None = None
    weights_sha256: str | None = None  # SHA-256 of the checkpoint / shipped weights file scored


class DatasetInfo(Strict):
    path: str
    recipe: str
    fingerprint: str
    task: Literal["framewise", "multiclass"]
    split: str
    count: int = Field(ge=0)
    label_names: list[str]


class SweepPoint(Strict):
    """One threshold tried on the validation split."""

    value: float
    accuracy: float | None = Percent
    precision: float | None = Percent
    recall: float | None = Percent
    f1: float | None = Percent


class Threshold(Strict):
    kind: Literal["internal", "score", "argmax"]
    """internal: a detector setting (SigClick's dB), scores are then 0/1; score: applied to scores; argmax: 5-way."""
    value: float | None
    unit: str = ""
    decision: float | None
    """What the stored scores are compared with: positive iff score >= decision (``None``: arg-max)."""
    chosen_on: Literal["validation", "none"]
    criterion: str
    validation_count: int = Field(ge=0)
    sweep: list[SweepPoint] = []
    grid: list[float] = []
    """kind internal: every setting tried; the predictions then hold 0/1 decisions at each (``grid_scores``),
    so that a scorer can choose the setting on validation again."""


class Interval(Strict):
    low: float
    high: float

    @model_validator(mode="after")
    def ordered(self) -> "Interval":
        if self.low > self.high:
            raise ValueError("interval low above high")
        return self


class Counts(Strict):
    tp: int = Field(ge=0)
    fp: int = Field(ge=0)
    fn: int = Field(ge=0)
    tn: int = Field(ge=0)


def _close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(b)))


class FramewiseMetrics(Strict):
    kind: Literal["framewise"] = "framewise"
    accuracy: float | None = Percent
    precision: float | None = Percent
    recall: float | None = Percent
    f1: float | None = Percent
    average_precision: float | None = Percent
    counts: Counts
    intervals: dict[str, Interval | None] = {}
    breakdown: dict[str, list[dict[str, Any]]] = {}

    @model_validator(mode="after")
    def follows_from_counts(self) -> "FramewiseMetrics":
        c = self.counts
        expected = M.binary_from_counts([c.tp, c.fp, c.fn, c.tn])
        for key, value in expected.items():
            if not _close(getattr(self, key), value):
                raise ValueError(f"{key} = {getattr(self, key)} does not follow from the counts ({value})")
        return self


class MulticlassMetrics(Strict):
    kind: Literal["multiclass"] = "multiclass"
    accuracy: float | None = Fraction
    balanced_accuracy: float | None = Fraction
    per_class_recall: dict[str, float | None]
    confusion: list[list[int]]
    confusion_normalized: list[list[float | None]]
    support: list[int]
    intervals: dict[str, Interval | None] = {}
    breakdown: dict[str, list[dict[str, Any]]] = {}

    @model_validator(mode="after")
    def follows_from_confusion(self) -> "MulticlassMetrics":
        cm = np.asarray(self.confusion)
        if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or (cm < 0).any():
            raise ValueError("confusion must be a square matrix of counts")
        expected = M.multiclass_from_confusion(cm)
        for key in ("accuracy", "balanced_accuracy"):
            if not _close(getattr(self, key), expected[key]):
                raise ValueError(f"{key} = {getattr(self, key)} does not follow from the confusion matrix")
        got = list(self.per_class_recall.values())
        if len(got) != len(cm) or not all(_close(a, b) for a, b in zip(got, expected["per_class_recall"])):
            raise ValueError("per_class_recall does not follow from the confusion matrix")
        flat_got = [v for r in self.confusion_normalized for v in r]
        flat_exp = [v for r in expected["confusion_normalized"] for v in r]
        if len(flat_got) != len(flat_exp) or not all(_close(a, b) for a, b in zip(flat_got, flat_exp)):
            raise ValueError("confusion_normalized does not follow from the confusion matrix")
        if self.support != expected["support"]:
            raise ValueError("support does not follow from the confusion matrix")
        return self


class Throughput(Strict):
    segments: int = Field(ge=0)
    seconds: float = Field(ge=0)
    """Wall time of the scoring pass over the split (reading, decoding, predicting)."""
    segments_per_s: float = Field(ge=0)
    predict_seconds: float = Field(ge=0)
    """Time inside ``predict`` only."""
    device: str
    workers: int = Field(ge=1)


class Environment(Strict):
    python: str
    platform: str
    cpu: str
    cpu_count: int
    gpu: str | None
    packages: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None


class Predictions(Strict):
    path: str
    """Relative to the result file's folder."""
    sha256: str = SHA256
    rows: int = Field(ge=0)
    format: Literal["parquet"] = "parquet"


class Result(Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    created: str
    model: ModelInfo
    task: Literal["framewise", "multiclass"]
    dataset: DatasetInfo
    threshold: Threshold
    metrics: FramewiseMetrics | MulticlassMetrics = Field(discriminator="kind")
    throughput: Throughput
    environment: Environment
    predictions: Predictions
    validation_predictions: Predictions | None = None
    """The raw scores on the validation split: the board chooses the threshold on them itself."""
    plots: list[str] = []

    @model_validator(mode="after")
    def consistent(self) -> "Result":
        if self.task != self.dataset.task or self.metrics.kind != self.task:
            raise ValueError("task, dataset.task and metrics.kind differ")
        if self.predictions.rows != self.dataset.count:
            raise ValueError("predictions rows differ from the dataset count")
        if self.threshold.chosen_on != "validation" and self.threshold.kind != "argmax":
            raise ValueError("a decision threshold must be chosen on the validation split")
        return self

    def write(self, path: Path) -> None:
        from .owned_files import write_text

        write_text(path, self.model_dump_json(indent=2) + "\n")


def load(path: str | Path) -> Result:
    """Read and validate a result file (raises pydantic's ValidationError on a bad one)."""
    return Result.model_validate_json(Path(path).read_text())


# ------------------------------------------------------------------------------ predictions -----


def _fixed(values: np.ndarray) -> pa.FixedSizeListArray:
    values = np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel(), pa.float32()), values.shape[1])


def write_predictions(path: Path, ids: list[str], item_ids: list[str], scores: np.ndarray,
                      grid_scores: np.ndarray | None = None) -> str:
    """Write the per-sample scores (split order) as parquet; return the file's SHA-256.

    ``grid_scores`` (``[n, settings, frames]``, detectors with an internal threshold): the 0/1
    decisions at every setting of ``threshold.grid``, flattened per row.
    """
    columns = {"id": pa.array(ids, pa.string()), "item_id": pa.array(item_ids, pa.string()),
               "scores": _fixed(scores)}
    if grid_scores is not None:
        columns["grid_scores"] = _fixed(grid_scores)
    from .owned_files import SIGNATURE, replace_atomically, written_by

    table = pa.table(columns).replace_schema_metadata({SIGNATURE: written_by()})  # what owned_files recognises
    replace_atomically(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    return file_sha256(path)


def _matrix(column) -> np.ndarray:
    column = column.combine_chunks()
    return np.array(column.flatten().to_numpy().reshape(-1, column.type.list_size))


def read_predictions(path: Path) -> tuple[list[str], np.ndarray]:
    table = pq.read_table(path, columns=["id", "scores"])
    return table.column("id").to_pylist(), _matrix(table.column("scores"))


def read_grid_scores(path: Path, settings: int) -> np.ndarray | None:
    """``[n, settings, frames]`` decisions at every grid setting, or None where the file has none."""
    if "grid_scores" not in pq.read_schema(path).names:
        return None
    flat = _matrix(pq.read_table(path, columns=["grid_scores"]).column("grid_scores"))
    if settings < 1 or flat.shape[1] % settings:
        raise ValueError(f"grid_scores rows of {flat.shape[1]} values do not split into {settings} settings")
    return flat.reshape(len(flat), settings, -1)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(result_path: str | Path, dataset: str | Path | None = None) -> Result:
    """Check a result: schema, predictions hashes, and (given the dataset) every figure recomputed.

    The recomputation is the leaderboard's own (:func:`defectbench.rescore.rescore`: the dataset's
    fingerprint checked against its parquet files, the threshold chosen again on the validation
    scores, every figure recomputed on the scored split). Raises :class:`DefectbenchError` naming
    the first mismatch.
    """
    from pydantic import ValidationError

    from .rescore import check_predictions, rescore

    result_path = Path(result_path)
    try:
        result = load(result_path)
    except (ValidationError, OSError) as exc:
        raise DefectbenchError(f"{result_path} is not a valid result file: {str(exc).splitlines()[0]}") from None
    check_predictions(result, result_path.parent)
    if dataset is None:
        return result
    again = rescore(result, result_path.parent, Path(dataset), n_resamples=0)
    if again.differences:
        raise DefectbenchError(f"{result_path}: " + "; ".join(again.differences))
    return result


# ------------------------------------------------------------------------------ environment -----

PACKAGES = ("defectbench", "numpy", "scipy", "essentia", "torch", "pyarrow", "datasets", "soundfile", "pydantic")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def environment() -> Environment:
    """Package versions, git commit, CPU and GPU of this run."""
    packages = {}
    for name in PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    gpu = None
    if "torch" in sys.modules:  # only a neural detector has loaded torch; never import it just for this
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    status = _git("status", "--porcelain", "--untracked-files=no")
    return Environment(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu=cpu_model(),
        cpu_count=os.cpu_count() or 1,
        gpu=gpu,
        packages=packages,
        git_commit=_git("rev-parse", "HEAD"),
        git_dirty=None if status is None else bool(status),
    )


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types (numpy scalars and tuples converted) for metrics dicts."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else list(o)))
