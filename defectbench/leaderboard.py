"""The leaderboard: validate submitted result files, rank them, render README.md and index.html.

Layout (``leaderboard/``)::

    fingerprints.json                      reference builds: recipe, source, seed, limit -> fingerprint
    submissions/<task>/<name>/result.json  a result file (``defectbench.results.Result``)
    submissions/<task>/<name>/*.parquet    its predictions (the path and SHA-256 are in result.json)
    submissions/<task>/<name>/*.png        its plots (optional)
    README.md, index.html                  generated: tables per task
    export/<task>/<name>/                  generated: ``.eval_results/<task>.yaml`` and ``model-index.yaml``

``<task>`` is the recipe the result was scored on (``fma-clicks``, ``video-artifacts``, ...).

A submission is data only: JSON read by pydantic, parquet read by pyarrow, images linked; nothing in
it is imported or executed, and a folder holding anything but data files is rejected. Every check
(:func:`validate`) runs on every build of the board, so a submission that stops matching (its
predictions altered, its dataset rebuilt differently) drops out with its reason:

1. only data files, no symlinks; ``result.json`` follows the schema (its own validators reject
   metrics that contradict the stored counts);
2. every path inside it (predictions, plots) stays inside its own folder;
3. it is filed under the recipe it was scored on, on the test split;
4. its dataset fingerprint is one the recipe produces: a local build's manifest (built from the
   current recipe file) or a reference build in ``fingerprints.json`` (recorded with ``--record``);
5. the predictions file is there, unaltered (SHA-256), with one row per test sample, in the
   dataset's order;
6. every headline figure is recomputed from the predictions against the dataset's own targets with
   :mod:`defectbench.metrics` and compared with the stated one; a difference rejects the submission
   and is shown. The bootstrap intervals shown and used for ranking are always the recomputed ones.

Ranking (within one task and one dataset build, since figures on different data do not compare):
by the primary metric (F1 of the positive class for framewise tasks, balanced accuracy for the 5-way
task); an entry's rank is 1 + the number of entries whose 95 % interval lies entirely above its own,
so entries whose intervals overlap share a rank and are shown as ties ("=2").
"""

from __future__ import annotations

import html
import json
import math
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from . import metrics as M
from .core import DefectbenchError

ROOT = Path("leaderboard")
FINGERPRINTS = "fingerprints.json"
RESULT = "result.json"
DATA_SUFFIXES = {".json", ".parquet", ".png", ".svg", ".md", ".txt"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PRIMARY = {"framewise": "f1", "multiclass": "balanced_accuracy"}
PRIMARY_LABEL = {"f1": "F1 %", "balanced_accuracy": "balanced accuracy"}
SPLIT = "test"
TOLERANCE = 1e-6
"""Relative tolerance of a stated figure against the recomputed one (float32 scores, JSON round trips)."""


class Rejected(Exception):
    """A submission that fails a check; the message is the one-line reason."""


# --------------------------------------------------------------------------- known dataset builds


@dataclass
class Build:
    """A dataset build whose fingerprint the board accepts."""

    recipe: str
    source: str
    seed: int
    limit: int | None
    fingerprint: str
    origin: str
    """Where the board knows it from: "local build", "reference build" or "reference build, built here"."""
    path: Path | None = None
    """The local dataset folder, where one is built (needed to recompute metrics)."""
    test_samples: int | None = None

    def describe(self) -> str:
        limit = f"at most {self.limit} source items per split" if self.limit else "every source item"
        size = f", test split {self.test_samples} samples" if self.test_samples is not None else ""
        return (f"source `{self.source}`, seed {self.seed}, {limit}{size}; fingerprint `{self.fingerprint[:16]}`")

    def command(self) -> str:
        return (f"defectbench build {self.recipe} --source {self.source} --seed {self.seed}"
                + (f" --limit {self.limit}" if self.limit else ""))


def read_fingerprints(root: Path) -> list[Build]:
    path = root / FINGERPRINTS
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
        return [Build(recipe=b["recipe"], source=b["source"], seed=int(b["seed"]), limit=b.get("limit"),
                      fingerprint=b["fingerprint"], origin="reference build", test_samples=b.get("test_samples"))
                for b in data["builds"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise DefectbenchError(f"{path} is malformed ({type(exc).__name__}: {exc}); it lists the reference builds") from None


def record_fingerprint(root: Path, dataset: Path) -> Build:
    """Add (or replace) a local build in ``fingerprints.json`` as a reference build."""
    from .dataset import read_manifest

    m = read_manifest(dataset)
    entry = {"recipe": m["recipe"]["name"], "source": m["source"]["spec"], "seed": m["seed"], "limit": m.get("limit"),
             "fingerprint": m["fingerprint"], "test_samples": m["splits"].get(SPLIT, {}).get("samples"),
             "recipe_sha256": m["recipe"]["sha256"], "defectbench_version": m["defectbench_version"]}
    path = root / FINGERPRINTS
    data = json.loads(path.read_text()) if path.is_file() else {
        "about": "Reference dataset builds whose fingerprints the leaderboard accepts (recipe, source, seed, "
                 "limit -> fingerprint). Add one with `defectbench leaderboard --record DATASET`.",
        "builds": []}
    key = ("recipe", "source", "seed", "limit")
    data["builds"] = [b for b in data["builds"] if tuple(b.get(k) for k in key) != tuple(entry[k] for k in key)]
    data["builds"].append(entry)
    data["builds"].sort(key=lambda b: (b["recipe"], b["source"], b["seed"], b["limit"] or 0))
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return Build(recipe=entry["recipe"], source=entry["source"], seed=entry["seed"], limit=entry["limit"],
                 fingerprint=entry["fingerprint"], origin="reference build", path=Path(dataset),
                 test_samples=entry["test_samples"])


def local_builds(datasets_dir: Path | None, references: set[str] = frozenset()) -> list[Build]:
    """Built dataset folders under ``datasets_dir`` (one or two levels deep) that the board accepts:
    built from the current recipe file, or with a fingerprint listed in ``references``."""
    if datasets_dir is None or not datasets_dir.is_dir():
        return []
    from .recipe import load_recipe

    builds = []
    for manifest in sorted([*datasets_dir.glob("*/manifest.json"), *datasets_dir.glob("*/*/manifest.json")]):
        try:
            m = json.loads(manifest.read_text())
            recipe = m["recipe"]["name"]
            if m["fingerprint"] not in references:
                try:
                    current = load_recipe(recipe).sha256
                except DefectbenchError:
                    continue  # a recipe this checkout does not have
                if m["recipe"]["sha256"] != current:
                    continue  # built from another version of the recipe file: not what the recipe produces now
            builds.append(Build(recipe=recipe, source=m["source"]["spec"], seed=int(m["seed"]), limit=m.get("limit"),
                                fingerprint=m["fingerprint"], origin="local build", path=manifest.parent,
                                test_samples=m["splits"].get(SPLIT, {}).get("samples")))
        except (ValueError, KeyError, TypeError):
            continue  # not a defectbench manifest
    return builds


def known_builds(root: Path, datasets_dir: Path | None) -> dict[str, Build]:
    """Fingerprint -> build; a local build (which can be recomputed against) wins over a listed one."""
    out: dict[str, Build] = {b.fingerprint: b for b in read_fingerprints(root)}
    for b in local_builds(datasets_dir, set(out)):
        listed = out.get(b.fingerprint)
        if listed is not None:
            b.origin = "reference build, built here"
        out[b.fingerprint] = b
    return out


def build_missing(root: Path, datasets_dir: Path, progress: bool = True,
                  only: set[str] | None = None) -> tuple[list[Path], list[str]]:
    """Build the reference builds of ``fingerprints.json`` (those in ``only``, if given) that have no
    local folder yet. Returns (folders built, one line per build that failed or came out different);
    a failure does not stop the others (an FMA reference needs the FMA copy; synth ones always build)."""
    from .engine import build

    refs = read_fingerprints(root)
    have = {b.fingerprint for b in local_builds(datasets_dir, {r.fingerprint for r in refs})}
    built, problems = [], []
    for ref in refs:
        if ref.fingerprint in have or (only is not None and ref.fingerprint not in only):
            continue
        out = datasets_dir / f"{ref.recipe}--{ref.source.replace(':', '_').replace('/', '_')}--seed{ref.seed}" \
                             f"--limit{ref.limit or 'all'}"
        try:
            result = build(ref.recipe, ref.source, out, seed=ref.seed, limit=ref.limit, overwrite=True, progress=progress)
        except DefectbenchError as exc:
            problems.append(f"cannot build the reference `{ref.command()}`: {exc}")
            continue
        if result.manifest["fingerprint"] != ref.fingerprint:
            problems.append(f"`{ref.command()}` gave fingerprint {result.manifest['fingerprint'][:16]}, {FINGERPRINTS} "
                            f"says {ref.fingerprint[:16]}: the engine or recipe changed since the reference was "
                            "recorded; re-run leaderboard/make_reference.sh")
        built.append(out)
    return built, problems


def wanted_fingerprints(root: Path) -> set[str]:
    """Dataset fingerprints that the submissions' result files name (read as plain JSON, unvalidated)."""
    out = set()
    for path in (root / "submissions").glob(f"*/*/{RESULT}"):
        try:
            out.add(str(json.loads(path.read_text())["dataset"]["fingerprint"]))
        except (ValueError, KeyError, TypeError, OSError):
            continue  # validation will say what is wrong with it
    return out


# ------------------------------------------------------------------------------------ validation


@dataclass
class Entry:
    task: str
    name: str
    folder: Path
    result: Any  # defectbench.results.Result
    build: Build
    primary: str
    value: float | None
    interval: tuple[float, float] | None
    intervals: dict[str, tuple[float, float] | None]
    notes: list[str] = field(default_factory=list)
    rank: int = 0
    tied: bool = False


@dataclass
class Rejection:
    task: str
    name: str
    folder: Path
    reason: str


@dataclass
class Board:
    root: Path
    entries: list[Entry]
    rejected: list[Rejection]

    def groups(self) -> dict[str, dict[str, list[Entry]]]:
        """task -> fingerprint -> entries in rank order."""
        out: dict[str, dict[str, list[Entry]]] = {}
        for e in sorted(self.entries, key=lambda e: (e.task, e.build.fingerprint, e.rank, -(e.value or -math.inf), e.name)):
            out.setdefault(e.task, {}).setdefault(e.build.fingerprint, []).append(e)
        return out


def _inside(folder: Path, rel: str, what: str) -> Path:
    """``folder / rel``, refusing anything that could leave the submission folder."""
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts or not rel.strip() or "\\" in rel:
        raise Rejected(f"path {rel!r} in {RESULT} ({what}) escapes the submission folder")
    full = folder / p
    if not full.resolve().is_relative_to(folder.resolve()):
        raise Rejected(f"path {rel!r} in {RESULT} ({what}) escapes the submission folder")
    return full


def _schema_reason(exc) -> str:
    errors = exc.errors()
    first = errors[0]
    loc = ".".join(str(x) for x in first.get("loc", ())) or "(top level)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{RESULT} does not follow the result schema: {loc}: {first.get('msg', '')}{more}"


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOLERANCE * max(1.0, abs(b))


def _fmt_diff(key: str, stated, again) -> str:
    if isinstance(stated, (int, float)) and isinstance(again, (int, float)):
        return f"{key} stated {stated:.6g}, recomputed {again:.6g} (difference {stated - again:+.6g})"
    return f"{key} stated {stated}, recomputed {again}"


def read_split(dataset: Path, split: str = SPLIT) -> tuple[list[str], list[str], np.ndarray, np.ndarray]:
    """ids, item ids, framewise targets and labels of one split (audio not read)."""
    from .dataset import iter_rows

    ids, items, targets, labels = [], [], [], []
    for r in iter_rows(dataset, split, columns=["id", "item_id", "target", "label"]):
        ids.append(str(r["id"]))
        items.append(str(r.get("item_id", r["id"])))
        targets.append(r["target"])
        labels.append(int(r["label"]))
    return ids, items, (np.stack(targets) if targets else np.zeros((0, 0), np.uint8)), np.asarray(labels, np.int64)


def recompute(result, dataset: Path, ids: list[str], scores: np.ndarray) -> tuple[list[str], dict[str, Any]]:
    """Recompute every headline figure from the predictions; return (differences, intervals)."""
    d_ids, items, targets, labels = read_split(dataset, result.dataset.split)
    if len(d_ids) != len(ids):
        raise Rejected(f"the predictions have {len(ids)} rows, the dataset's {result.dataset.split} split has {len(d_ids)}")
    if d_ids != ids:
        i = next(k for k, (a, b) in enumerate(zip(ids, d_ids)) if a != b)
        raise Rejected(f"prediction ids differ from the dataset's {result.dataset.split} split "
                       f"(row {i}: {ids[i]!r}, dataset {d_ids[i]!r})")
    m = result.metrics
    diffs: list[str] = []
    if result.task == "framewise":
        if scores.shape != targets.shape:
            raise Rejected(f"predictions are {scores.shape[0]} x {scores.shape[1]} scores, the targets {targets.shape[0]} x {targets.shape[1]} frames")
        decision = result.threshold.decision
        if decision is None:
            raise Rejected("a framewise result needs threshold.decision (what the scores are compared with)")
        again = M.framewise_metrics(targets, scores, decision)
        for key in ("accuracy", "precision", "recall", "f1", "average_precision"):
            if not _close(getattr(m, key), again[key]):
                diffs.append(_fmt_diff(key, getattr(m, key), again[key]))
        stated_counts = m.counts.model_dump()
        if stated_counts != again["counts"]:
            diffs.append(f"counts stated {stated_counts}, recomputed {again['counts']}")
        intervals = M.framewise_intervals(targets, scores >= decision, items)
    else:
        n = len(result.dataset.label_names)
        if scores.ndim != 2 or scores.shape[1] != n:
            raise Rejected(f"predictions have {scores.shape[1] if scores.ndim == 2 else '?'} class scores, the task has {n} classes")
        again = M.multiclass_metrics(labels, scores)
        for key in ("accuracy", "balanced_accuracy"):
            if not _close(getattr(m, key), again[key]):
                diffs.append(_fmt_diff(key, getattr(m, key), again[key]))
        if m.confusion != again["confusion"]:
            diffs.append(f"confusion stated {m.confusion}, recomputed {again['confusion']}")
        intervals = M.multiclass_intervals(labels, scores.argmax(axis=1), n, items)
    return diffs, intervals


def validate(folder: Path, task: str, builds: dict[str, Build]) -> Entry:
    """Every check of the module docstring on one submission folder; raises :class:`Rejected`."""
    from pydantic import ValidationError

    from . import results as R

    name = folder.name
    if folder.is_symlink():
        raise Rejected("the submission folder is a symlink")
    if not NAME.match(name):
        raise Rejected(f"folder name {name!r}: use letters, digits, '.', '_' and '-'")
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            raise Rejected(f"{rel} is a symlink; a submission holds plain data files only")
        if p.is_file() and p.suffix.lower() not in DATA_SUFFIXES:
            raise Rejected(f"{rel}: a submission holds data files only ({', '.join(sorted(DATA_SUFFIXES))}); "
                           "nothing in it is run")
    path = folder / RESULT
    if not path.is_file():
        raise Rejected(f"no {RESULT} in the submission folder")
    try:
        result = R.Result.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise Rejected(_schema_reason(exc)) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise Rejected(f"{RESULT} cannot be read: {exc}") from None

    pred = _inside(folder, result.predictions.path, "predictions.path")
    plots = [_inside(folder, p, "plots") for p in result.plots]
    if result.dataset.recipe != task:
        raise Rejected(f"scored on recipe {result.dataset.recipe!r} but filed under task {task!r}")
    if result.dataset.split != SPLIT:
        raise Rejected(f"scored on the {result.dataset.split!r} split; the board ranks {SPLIT!r} results only")
    build = builds.get(result.dataset.fingerprint)
    if build is None or build.recipe != task:
        raise Rejected(f"unknown dataset fingerprint {result.dataset.fingerprint[:16]}... for {task}: no local build "
                       f"of the current recipe and no reference build in {FINGERPRINTS} has it")
    if not pred.is_file():
        raise Rejected(f"predictions file {result.predictions.path} is missing")
    if R.file_sha256(pred) != result.predictions.sha256:
        raise Rejected(f"predictions file {result.predictions.path} was altered (its SHA-256 differs from {RESULT})")
    for p in plots:
        if not p.is_file():
            raise Rejected(f"plot {p.relative_to(folder).as_posix()} named in {RESULT} is missing")
    try:
        ids, scores = R.read_predictions(pred)
    except Exception as exc:  # noqa: BLE001 - any unreadable or malformed parquet is one reason
        raise Rejected(f"predictions file {result.predictions.path} cannot be read as predictions: "
                       f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if len(ids) != result.predictions.rows:
        raise Rejected(f"predictions file has {len(ids)} rows, {RESULT} says {result.predictions.rows}")
    if not np.isfinite(scores).all():
        raise Rejected("the predictions hold non-finite scores")
    if build.path is None:
        raise Rejected(f"cannot recompute the metrics: dataset {result.dataset.fingerprint[:16]}... is a reference "
                       f"build not built here; run `{build.command()}` or `defectbench leaderboard` without --no-build-missing")
    diffs, intervals = recompute(result, build.path, ids, scores)
    if diffs:
        raise Rejected("stated figures differ from the predictions: " + "; ".join(diffs))

    primary = PRIMARY[result.task]
    notes = []
    for key, ci in intervals.items():
        stated = result.metrics.intervals.get(key)
        if ci is not None and stated is not None and not (_close(stated.low, ci[0]) and _close(stated.high, ci[1])):
            notes.append(f"stated {key} interval [{stated.low:.4g}, {stated.high:.4g}] replaced by the recomputed one")
    return Entry(task=task, name=name, folder=folder, result=result, build=build, primary=primary,
                 value=getattr(result.metrics, primary), interval=intervals.get(primary), intervals=intervals,
                 notes=notes)


def rank(entries: list[Entry]) -> None:
    """Rank within each (task, fingerprint): 1 + entries whose interval lies entirely above."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        groups.setdefault((e.task, e.build.fingerprint), []).append(e)
    for group in groups.values():
        def span(e: Entry) -> tuple[float, float]:
            if e.interval is not None:
                return e.interval
            v = -math.inf if e.value is None else e.value
            return (v, v)

        for e in group:
            low, high = span(e)
            e.rank = 1 + sum(1 for o in group if o is not e and span(o)[0] > high)
        for e in group:
            e.tied = sum(1 for o in group if o.rank == e.rank) > 1


def collect(root: Path = ROOT, datasets_dir: Path | None = Path("datasets")) -> Board:
    """Validate every submission under ``root/submissions`` and rank the valid ones."""
    builds = known_builds(root, datasets_dir)
    entries: list[Entry] = []
    rejected: list[Rejection] = []
    subs = root / "submissions"
    for task_dir in sorted(p for p in subs.iterdir() if p.is_dir()) if subs.is_dir() else []:
        for folder in sorted(p for p in task_dir.iterdir() if p.is_dir() or p.is_symlink()):
            try:
                entries.append(validate(folder, task_dir.name, builds))
            except Rejected as exc:
                rejected.append(Rejection(task_dir.name, folder.name, folder, str(exc)))
    rank(entries)
    return Board(root, entries, rejected)


# --------------------------------------------------------------------------------------- submit


def submit(result_path: Path, name: str, root: Path = ROOT, overwrite: bool = False) -> Path:
    """Copy a result file with its predictions and plots into ``submissions/<recipe>/<name>/``."""
    from pydantic import ValidationError

    from . import results as R

    if not NAME.match(name):
        raise DefectbenchError(f"submission name {name!r}: use letters, digits, '.', '_' and '-'")
    try:
        result = R.load(result_path)
    except (ValidationError, OSError) as exc:
        raise DefectbenchError(f"{result_path} is not a valid result file: {str(exc).splitlines()[0]}") from None
    folder = root / "submissions" / result.dataset.recipe / name
    if folder.exists() and not overwrite:
        raise DefectbenchError(f"{folder} exists; pass --overwrite to replace it")
    src = result_path.parent
    files = [result.predictions.path, *result.plots]
    for f in files:
        try:
            _inside(src, f, "predictions/plots")
        except Rejected as exc:
            raise DefectbenchError(str(exc)) from None
        if not (src / f).is_file():
            raise DefectbenchError(f"{src / f} named in {result_path} is missing")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    shutil.copy2(result_path, folder / RESULT)
    for f in files:
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / f, folder / f)
    return folder


# ------------------------------------------------------------------------------------ rendering


def _num(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _digits(e: Entry) -> int:
    return 2 if e.result.task == "framewise" else 4


def _ci(ci: tuple[float, float] | None, digits: int) -> str:
    return "" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _rank_text(e: Entry) -> str:
    return f"={e.rank}" if e.tied else str(e.rank)


def _params(n: int) -> str:
    return "0" if not n else (f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n))


def _threshold(e: Entry) -> str:
    th = e.result.threshold
    if th.kind == "argmax":
        return "arg-max"
    return f"{th.value:g} {th.unit}".strip() + f" (by {th.criterion} on validation)"


def _device(e: Entry) -> str:
    t, env = e.result.throughput, e.result.environment
    where = env.gpu if t.device.startswith("cuda") and env.gpu else env.cpu
    return f"{t.device}, {t.workers} worker{'s' if t.workers != 1 else ''} ({where})"


def columns(task_kind: str) -> list[tuple[str, str]]:
    """(key, heading) of the table for one task kind."""
    if task_kind == "framewise":
        metric = [("f1", "F1 % [95 % CI]"), ("precision", "precision %"), ("recall", "recall %"),
                  ("average_precision", "AP %"), ("accuracy", "accuracy %")]
    else:
        metric = [("balanced_accuracy", "balanced accuracy [95 % CI]"), ("accuracy", "accuracy"),
                  ("weakest", "weakest class recall")]
    return ([("rank", "rank"), ("submission", "submission"), ("model", "model")] + metric
            + [("threshold", "threshold"), ("parameters", "parameters"), ("throughput", "segments/s"),
               ("device", "device"), ("plots", "plots")])


def cell(e: Entry, key: str) -> tuple[str, float | str | None]:
    """Display text and sort value of one cell."""
    m, r = e.result.metrics, e.result
    d = _digits(e)
    if key == "rank":
        return _rank_text(e), e.rank
    if key == "submission":
        return e.name, e.name.lower()
    if key == "model":
        return r.model.name, r.model.name.lower()
    if key in ("f1", "balanced_accuracy"):
        v = getattr(m, key)
        return f"{_num(v, d)} {_ci(e.intervals.get(key), d)}".strip(), v
    if key in ("precision", "recall", "average_precision", "accuracy"):
        v = getattr(m, key)
        return _num(v, d), v
    if key == "weakest":
        recalls = [(k, v) for k, v in m.per_class_recall.items() if v is not None]
        if not recalls:
            return "–", None
        k, v = min(recalls, key=lambda kv: kv[1])  # ties: the first class in label order
        return f"{v:.4f} ({k})", v
    if key == "threshold":
        return _threshold(e), r.threshold.value
    if key == "parameters":
        return _params(r.model.parameters), r.model.parameters
    if key == "throughput":
        return f"{r.throughput.segments_per_s:.1f}", r.throughput.segments_per_s
    if key == "device":
        return _device(e), _device(e).lower()
    if key == "plots":
        return ", ".join(Path(p).name for p in r.plots) or "–", len(r.plots)
    raise KeyError(key)


def _plot_links(e: Entry, root: Path) -> list[str]:
    return [(e.folder / p).relative_to(root).as_posix() for p in e.result.plots]


def _md(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _task_kind(entries: Iterable[Entry]) -> str:
    return next(iter(entries)).result.task


INTRO = """Generated by `defectbench leaderboard` from `leaderboard/submissions/`: do not edit by hand.

Every submission is checked on every build of this board: its result file follows the schema, its
dataset fingerprint is one a recipe produces, its predictions are unaltered, and every figure below is
recomputed from its predictions against the dataset's own targets. Tables are per task and per dataset
build: figures measured on different data are not compared. Rank: 1 + the number of entries whose
95 % bootstrap interval (over source pieces/videos) lies entirely above; `=` marks a tie (overlapping
intervals). Submit: `defectbench submit results/<dataset>/<model>.json --name NAME`, then
`defectbench leaderboard` (which first builds any reference dataset named in `fingerprints.json` that
is not built yet, to recompute against it); `index.html` beside this file has the same tables, sortable, with the plots."""


def render_markdown(board: Board) -> str:
    lines = ["# defectbench leaderboard", "", INTRO, ""]
    groups = board.groups()
    if not groups:
        lines += ["No valid submissions yet.", ""]
    for task, builds in groups.items():
        lines += [f"## {task}", ""]
        for fingerprint, entries in builds.items():
            kind = _task_kind(entries)
            b = entries[0].build
            lines += [f"Measured on the test split of {b.describe()}; {b.origin}. Primary metric: "
                      f"{PRIMARY_LABEL[PRIMARY[kind]]}.", ""]
            cols = [c for c in columns(kind)]
            lines.append("| " + " | ".join(h for _, h in cols) + " |")
            lines.append("|" + "---|" * len(cols))
            for e in entries:
                row = []
                for key, _ in cols:
                    if key == "plots":
                        row.append(", ".join(f"[{Path(p).name}]({p})" for p in _plot_links(e, board.root)) or "–")
                    else:
                        row.append(_md(cell(e, key)[0]))
                lines.append("| " + " | ".join(row) + " |")
            notes = [f"`{e.name}`: {n}" for e in entries for n in e.notes]
            lines += [""] + [f"- {_md(n)}" for n in notes] + ([""] if notes else [])
    if board.rejected:
        lines += ["## Rejected submissions", ""]
        lines += [f"- `{r.task}/{_md(r.name)}`: {_md(r.reason)}" for r in board.rejected]
        lines.append("")
    return "\n".join(lines)


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table.board { border-collapse: collapse; margin: 0.5em 0 2em; font-size: 0.9em; }
table.board th, table.board td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
table.board th { background: #f0f0f0; cursor: pointer; user-select: none; white-space: nowrap; }
table.board th[aria-sort=ascending]::after { content: " \\25B2"; }
table.board th[aria-sort=descending]::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ci { color: #666; font-size: 0.85em; }
img.plot { width: 140px; border: 1px solid #ddd; display: block; margin-bottom: 0.3em; }
.rejected li { color: #a00; }
"""

JS = """
// Vanilla sorting: click a heading to sort by it (ascending, then descending on the next click).
// Cells carry their sort value in data-value; empty values sort last either way.
function sortTable(table, col) {
  const th = table.tHead.rows[0].cells[col];
  const dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
  for (const h of table.tHead.rows[0].cells) h.removeAttribute('aria-sort');
  th.setAttribute('aria-sort', dir);
  const numeric = th.dataset.type === 'num';
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const key = r => r.cells[col].dataset.value;
  rows.sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === '' || y === '') return (x === '') - (y === '');
    const c = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
    return dir === 'ascending' ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}
document.querySelectorAll('table.board').forEach(table => {
  Array.from(table.tHead.rows[0].cells).forEach((th, i) => th.addEventListener('click', () => sortTable(table, i)));
});
"""

NUMERIC = {"rank", "f1", "precision", "recall", "average_precision", "accuracy", "balanced_accuracy", "weakest",
           "threshold", "parameters", "throughput", "plots"}


def render_html(board: Board) -> str:
    esc = html.escape
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>defectbench leaderboard</title>", f"<style>{CSS}</style></head><body>",
           "<h1>defectbench leaderboard</h1>",
           "".join(f"<p>{esc(p)}</p>" for p in INTRO.replace("`", "").split("\n\n"))]
    groups = board.groups()
    if not groups:
        out.append("<p>No valid submissions yet.</p>")
    for t_index, (task, builds) in enumerate(groups.items()):
        out.append(f'<h2 id="task-{esc(task)}">{esc(task)}</h2>')
        for b_index, (fingerprint, entries) in enumerate(builds.items()):
            kind = _task_kind(entries)
            b = entries[0].build
            out.append(f"<p class=\"measured\">Measured on the test split of {esc(b.describe().replace('`', ''))}; "
                       f"{esc(b.origin)}. Primary metric: {esc(PRIMARY_LABEL[PRIMARY[kind]])}.</p>")
            cols = columns(kind)
            out.append(f'<table class="board" id="board-{esc(task)}-{b_index}" data-task="{esc(task)}" '
                       f'data-fingerprint="{esc(fingerprint)}"><thead><tr>')
            out += [f'<th data-key="{k}" data-type="{"num" if k in NUMERIC else "text"}">{esc(h)}</th>' for k, h in cols]
            out.append("</tr></thead><tbody>")
            for e in entries:
                out.append(f'<tr data-submission="{esc(e.name)}">')
                for key, _ in cols:
                    text, value = cell(e, key)
                    sort = "" if value is None else (repr(float(value)) if isinstance(value, (int, float)) else str(value))
                    cls = ' class="num"' if key in NUMERIC and key != "plots" else ""
                    if key == "plots":
                        links = _plot_links(e, board.root)
                        body = "".join(f'<a href="{esc(p)}"><img class="plot" src="{esc(p)}" alt="{esc(Path(p).name)}"></a>'
                                       for p in links) or "–"
                    elif key in ("f1", "balanced_accuracy"):
                        d = _digits(e)
                        body = f'{esc(_num(getattr(e.result.metrics, key), d))} <span class="ci">{esc(_ci(e.intervals.get(key), d))}</span>'
                    else:
                        body = esc(text)
                    out.append(f'<td data-key="{key}" data-value="{esc(sort)}"{cls}>{body}</td>')
                out.append("</tr>")
            out.append("</tbody></table>")
            notes = [f"{e.name}: {n}" for e in entries for n in e.notes]
            if notes:
                out.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>")
    if board.rejected:
        out.append('<h2>Rejected submissions</h2><ul class="rejected">')
        out += [f"<li><code>{esc(r.task)}/{esc(r.name)}</code>: {esc(r.reason)}</li>" for r in board.rejected]
        out.append("</ul>")
    out += [f"<script>{JS}</script>", "</body></html>"]
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------- Hub eval results


def eval_results(e: Entry, namespace: str = "defectbench") -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A result as ``.eval_results/<task>.yaml`` entries (the primary metric) and as model-index (every metric)."""
    from huggingface_hub import EvalResult, EvalResultEntry, eval_result_entries_to_yaml
    from huggingface_hub.repocard_data import eval_results_to_model_index

    r = e.result
    dataset_id = f"{namespace}/{e.task}"
    notes = (f"defectbench {e.task}, test split of {e.build.describe().replace('`', '')}; threshold "
             f"{_threshold(e)}; figures recomputed from the predictions by the defectbench leaderboard")
    entries = [EvalResultEntry(dataset_id=dataset_id, task_id=e.task, value=round(float(e.value), 6) if e.value is not None else None,
                               date=r.created, notes=notes)]
    keys = (("f1", "precision", "recall", "average_precision", "accuracy") if r.task == "framewise"
            else ("balanced_accuracy", "accuracy"))
    task_type = "audio-classification"
    legacy = [EvalResult(task_type=task_type, task_name=f"defect detection ({r.task})", dataset_type=dataset_id,
                         dataset_name=f"defectbench {e.task}", dataset_split=r.dataset.split,
                         dataset_revision=r.dataset.fingerprint, metric_type=k,
                         metric_name=k.replace("_", " ") + (" (%)" if r.task == "framewise" else ""),
                         metric_value=round(float(getattr(r.metrics, k)), 6))
              for k in keys if getattr(r.metrics, k) is not None]
    return eval_result_entries_to_yaml(entries), eval_results_to_model_index(r.model.name, legacy)


def export_eval_results(board: Board, namespace: str = "defectbench") -> list[Path]:
    """Write ``export/<task>/<name>/.eval_results/<task>.yaml`` and ``model-index.yaml`` for every entry."""
    import yaml

    export = board.root / "export"
    if export.exists():
        shutil.rmtree(export)
    written = []
    for e in board.entries:
        short, model_index = eval_results(e, namespace)
        folder = export / e.task / e.name
        (folder / ".eval_results").mkdir(parents=True)
        p1 = folder / ".eval_results" / f"{e.task}.yaml"
        p1.write_text(yaml.safe_dump(short, sort_keys=False))
        p2 = folder / "model-index.yaml"
        p2.write_text(yaml.safe_dump({"model-index": model_index}, sort_keys=False))
        written += [p1, p2]
    return written


def write(board: Board, namespace: str = "defectbench") -> list[Path]:
    """README.md, index.html and the Hub exports of a collected board."""
    board.root.mkdir(parents=True, exist_ok=True)
    readme, page = board.root / "README.md", board.root / "index.html"
    readme.write_text(render_markdown(board))
    page.write_text(render_html(board))
    return [readme, page, *export_eval_results(board, namespace)]
