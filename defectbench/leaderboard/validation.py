"""Checking submissions (``collect``) and filing them (``submit``).

A submission is data only: JSON read by pydantic, parquet read by pyarrow, images linked; nothing in
it is imported or executed. Every check runs on every build of the board, so a submission that stops
matching (its predictions altered, its dataset rebuilt differently) drops out with its reason:

1. the tree: no symlink anywhere under ``submissions/`` (folders or files), no two names that differ
   only by case (``BASE`` beside ``base``), safe names (letters, digits, ``-_.``, no leading dot),
   only data files, none over :data:`MAX_FILE_BYTES` (64 MiB);
2. ``result.json`` follows the schema, and every path in it stays inside its own folder;
3. it is filed under the recipe it was scored on, on the test split, with a known dataset fingerprint
   (a local build of the current recipe, or a reference build of ``fingerprints.json``);
4. :func:`defectbench.rescore.rescore`: the predictions files unaltered (SHA-256), the dataset folder
   matching its fingerprint (recomputed from its parquet files), the threshold chosen by the board on
   the validation scores (a framewise result without them, or with an arg-max threshold, is refused),
   every figure recomputed on test. Declared figures that differ are shown as differences, never used.

``submit`` writes only inside ``leaderboard/submissions/<recipe>/<name>/``, where ``<recipe>`` is a
known recipe and ``<name>`` a safe name; it replaces (``--overwrite``) only a folder it created itself
(:data:`MARKER` inside), never follows a symlink, and refuses what the board would refuse.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

from ..core import DefectbenchError
from .ranking import PRIMARY, Board, Entry, Rejection, rank
from .registry import FINGERPRINTS, RESULT, SPLIT, Build, known_builds, read_fingerprints

ROOT = Path("leaderboard")
SUBMISSIONS = "submissions"
DATA_SUFFIXES = {".json", ".parquet", ".png", ".svg", ".md", ".txt"}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
MAX_FILE_BYTES = 64 * 1024 * 1024
"""The largest file a submission may hold (result.json, a predictions file, a plot): 64 MiB."""
MARKER = ".defectbench-submission"
"""Written by ``submit`` into every folder it creates; ``--overwrite`` replaces only such folders."""


class Rejected(Exception):
    """A submission that fails a check; the message is the one-line reason."""


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


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def check_files(folder: Path) -> None:
    """Step 1 on one submission folder: plain data files only, none too large, no symlink."""
    if folder.is_symlink():
        raise Rejected("the submission folder is a symlink")
    if not NAME.match(folder.name):
        raise Rejected(f"folder name {folder.name!r}: use letters, digits, '.', '_' and '-' (no leading dot)")
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            raise Rejected(f"{rel} is a symlink; a submission holds plain data files only")
        if p.is_file():
            if rel == MARKER:
                continue
            if p.suffix.lower() not in DATA_SUFFIXES:
                raise Rejected(f"{rel}: a submission holds data files only ({', '.join(sorted(DATA_SUFFIXES))}); "
                               "nothing in it is run")
            size = p.stat().st_size
            if size > MAX_FILE_BYTES:
                raise Rejected(f"{rel} is {_mb(size)}, over the {_mb(MAX_FILE_BYTES)} limit per file")


def read_result(folder: Path):
    """Step 2: the schema, and every path the result names inside the folder; returns the Result."""
    from pydantic import ValidationError

    from .. import results as R

    path = folder / RESULT
    if not path.is_file():
        raise Rejected(f"no {RESULT} in the submission folder")
    try:
        result = R.Result.model_validate_json(path.read_text())
    except ValidationError as exc:
        raise Rejected(_schema_reason(exc)) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise Rejected(f"{RESULT} cannot be read: {exc}") from None
    _inside(folder, result.predictions.path, "predictions.path")
    if result.validation_predictions is not None:
        _inside(folder, result.validation_predictions.path, "validation_predictions.path")
    for p in result.plots:
        if not _inside(folder, p, "plots").is_file():
            raise Rejected(f"plot {p} named in {RESULT} is missing")
    return result


def validate(folder: Path, task: str, builds: dict[str, Build], verified: dict[str, str] | None = None) -> Entry:
    """Every check of the module docstring on one submission folder; raises :class:`Rejected`."""
    from ..rescore import RescoreError, rescore

    check_files(folder)
    result = read_result(folder)
    if result.dataset.recipe != task:
        raise Rejected(f"scored on recipe {result.dataset.recipe!r} but filed under task {task!r}")
    if result.dataset.split != SPLIT:
        raise Rejected(f"scored on the {result.dataset.split!r} split; the board ranks {SPLIT!r} results only")
    build = builds.get(result.dataset.fingerprint)
    if build is None or build.recipe != task:
        raise Rejected(f"unknown dataset fingerprint {result.dataset.fingerprint[:16]}... for {task}: no local build "
                       f"of the current recipe and no reference build in {FINGERPRINTS} has it")
    if build.path is None:
        raise Rejected(f"cannot recompute the metrics: dataset {result.dataset.fingerprint[:16]}... is a reference "
                       f"build not built here; run `{build.command()}` or `defectbench leaderboard` without --no-build-missing")
    try:
        again = rescore(result, folder, build.path, verified=verified)
    except RescoreError as exc:
        raise Rejected(str(exc)) from None

    primary = PRIMARY[result.task]
    notes = []
    for key, ci in again.intervals.items():
        stated = result.metrics.intervals.get(key)
        if ci is not None and stated is not None and not (abs(stated.low - ci[0]) <= 1e-6 * max(1, abs(ci[0]))
                                                          and abs(stated.high - ci[1]) <= 1e-6 * max(1, abs(ci[1]))):
            notes.append(f"declared {key} interval [{stated.low:.4g}, {stated.high:.4g}] replaced by the recomputed one")
    return Entry(task=task, name=folder.name, folder=folder, result=result, build=build, primary=primary,
                 value=again.metrics[primary], interval=again.intervals.get(primary), intervals=again.intervals,
                 rescored=again, notes=notes, differences=again.differences)


def _case_clashes(paths: list[Path]) -> dict[Path, str]:
    """Paths whose names differ from another's only by case -> the reason."""
    by_lower: dict[str, list[Path]] = {}
    for p in paths:
        by_lower.setdefault(p.name.lower(), []).append(p)
    out = {}
    for same in by_lower.values():
        if len(same) > 1:
            for p in same:
                others = ", ".join(repr(o.name) for o in same if o is not p)
                out[p] = f"name {p.name!r} differs from {others} only by case"
    return out


def collect(root: Path = ROOT, datasets_dir: Path | None = Path("datasets")) -> Board:
    """Validate every submission under ``root/submissions`` and rank the valid ones."""
    builds = known_builds(root, datasets_dir)
    entries: list[Entry] = []
    rejected: list[Rejection] = []
    verified: dict[str, str] = {}
    subs = root / SUBMISSIONS
    if subs.is_symlink():
        return Board(root, [], [Rejection("*", SUBMISSIONS, subs, f"{SUBMISSIONS}/ is a symlink; the board reads no linked folder")])
    tasks = sorted(subs.iterdir()) if subs.is_dir() else []
    task_clash = _case_clashes(tasks)
    for task_dir in tasks:
        if task_dir.is_symlink():
            rejected.append(Rejection(task_dir.name, "*", task_dir, f"the task folder {task_dir.name} is a symlink; "
                                      "the board reads no linked folder"))
            continue
        if not task_dir.is_dir():
            continue
        if task_dir in task_clash:
            rejected.append(Rejection(task_dir.name, "*", task_dir, f"task folder {task_clash[task_dir]}"))
            continue
        folders = sorted(p for p in task_dir.iterdir() if p.is_dir() or p.is_symlink())
        clash = _case_clashes(folders)
        for folder in folders:
            try:
                if folder in clash:
                    raise Rejected(clash[folder])
                entries.append(validate(folder, task_dir.name, builds, verified))
            except Rejected as exc:
                rejected.append(Rejection(task_dir.name, folder.name, folder, str(exc)))
    rank(entries)
    return Board(root, entries, rejected)


# --------------------------------------------------------------------------------------- submit


def known_recipes(root: Path) -> set[str]:
    """Recipes a submission may be filed under: the shipped ones and those of ``fingerprints.json``."""
    from ..recipe import recipe_files

    return set(recipe_files()) | {b.recipe for b in read_fingerprints(root)}


def _no_links(root: Path, *parts: str) -> Path:
    """``root / parts...``, refusing a symlink at any step that exists (nothing is written through a link)."""
    path = root
    for part in ("", *parts):
        path = path / part if part else path
        if path.is_symlink():
            raise DefectbenchError(f"{path} is a symlink; submit writes nothing through a link")
    return path


def submit(result_path: Path, name: str, root: Path = ROOT, overwrite: bool = False) -> Path:
    """Copy a result file with its predictions and plots into ``submissions/<recipe>/<name>/``.

    Refuses (one line, :class:`DefectbenchError`) an unsafe name, an unknown recipe, a result the
    board would refuse (no validation scores, an arg-max framewise threshold, altered predictions, a
    file over the size limit), a folder it did not create, and any path through a symlink.
    """
    from pydantic import ValidationError

    from .. import results as R
    from ..rescore import RescoreError, check_predictions

    result_path = Path(result_path)
    if not NAME.match(name):
        raise DefectbenchError(f"submission name {name!r}: use letters, digits, '.', '_' and '-' (no leading dot)")
    try:
        result = R.load(result_path)
    except (ValidationError, OSError, UnicodeDecodeError) as exc:
        raise DefectbenchError(f"{result_path} is not a valid result file: {str(exc).splitlines()[0]}") from None
    task = result.dataset.recipe
    if not NAME.match(task) or task not in known_recipes(root):
        raise DefectbenchError(f"{result_path} names recipe {task!r}, which is not a known recipe "
                               f"({', '.join(sorted(known_recipes(root)))})")
    if result.task == "framewise" and (result.threshold.kind == "argmax" or result.threshold.chosen_on != "validation"):
        raise DefectbenchError(f"{result_path}: a framewise result needs a threshold chosen on validation "
                               f"(this one is {result.threshold.kind})")
    if result.task == "framewise" and result.validation_predictions is None:
        raise DefectbenchError(f"{result_path} has no validation scores (validation_predictions): the board chooses "
                               "the threshold on them; score again with `defectbench run`")
    src = result_path.parent
    files = [result.predictions.path, *([result.validation_predictions.path] if result.validation_predictions else []),
             *result.plots]
    for f in files:
        try:
            _inside(src, f, "predictions/plots")
        except Rejected as exc:
            raise DefectbenchError(str(exc)) from None
        if not (src / f).is_file():
            raise DefectbenchError(f"{src / f} named in {result_path} is missing")
    for f in [result_path, *(src / f for f in files)]:
        if f.stat().st_size > MAX_FILE_BYTES:
            raise DefectbenchError(f"{f} is {_mb(f.stat().st_size)}, over the board's {_mb(MAX_FILE_BYTES)} limit per file")
    try:
        check_predictions(result, src)
    except RescoreError as exc:
        raise DefectbenchError(f"{result_path}: {exc}") from None

    task_dir = _no_links(root, SUBMISSIONS, task)
    folder = _no_links(root, SUBMISSIONS, task, name)
    subs = (root / SUBMISSIONS).resolve() if (root / SUBMISSIONS).exists() else None
    if subs is not None and not folder.resolve().is_relative_to(subs):
        raise DefectbenchError(f"{folder} is outside {root / SUBMISSIONS}")
    if task_dir.is_dir():
        for sibling in task_dir.iterdir():
            if sibling.name != name and sibling.name.lower() == name.lower():
                raise DefectbenchError(f"{sibling} exists: submission names must differ by more than case")
    if folder.exists():
        if not overwrite:
            raise DefectbenchError(f"{folder} exists; pass --overwrite to replace it")
        if not folder.is_dir() or not (folder / MARKER).is_file():
            raise DefectbenchError(f"{folder} was not created by `defectbench submit` (no {MARKER} in it); "
                                   "it is left as it is: move it away yourself")
        for p in folder.rglob("*"):
            if p.is_symlink():
                raise DefectbenchError(f"{p} is a symlink; {folder} is left as it is")
    task_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=task_dir))
    try:
        (staging / MARKER).write_text("created by `defectbench submit`; `--overwrite` may replace this folder\n")
        shutil.copyfile(result_path, staging / RESULT)
        for f in files:
            (staging / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / f, staging / f)
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=task_dir))
            folder.rename(old / name)  # a folder this command created (its marker was checked above)
            staging.rename(folder)
            shutil.rmtree(old)
        else:
            staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return folder
