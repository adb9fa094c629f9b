"""The build engine: recipe + source + seed -> a dataset folder, reproducibly, resumably and safely.

1. List the source's items (cheap), sort them by (split, id), cut each split into shards of
   ``recipe.items_per_shard`` items. Shards depend only on the listing, never on the worker count.
   Each shard has a key: the build key and its items' listing entries (id, split, size and mtime
   of the file, metadata), so a changed source rebuilds exactly the shards whose items changed.
2. Build every shard in a worker (a ``concurrent.futures`` executor: a local process pool by default).
   A worker decodes only the audio the recipe uses, checks, resamples and converts each item, runs
   the recipe's pipeline and streams the rows to the shard's parquet file. A pipeline that uses all
   of a long item (the video pipeline) gets it spooled to disk block by block when its source can
   stream it (:func:`spool_item`), so memory does not grow with a file's length. An item's rows are
   committed only when the whole item succeeded. Only :class:`~defectbench.core.SkipItem` (a declared
   reason) skips an item; any other exception stops the build naming the item and the cause
   (:class:`ItemFailed`), and a full disk says so. A shard appears (atomic rename) only when
   complete, with a JSON summary beside it (its key, per-sample hashes, label counts, skipped items).
3. When every shard is there, name the files ``data/{split}-{i}-of-{n}.parquet``, write the manifest
   and the dataset card, and rename ``OUT.partial`` to ``OUT``.

Safety (issue 13): the whole build holds the lock of ``OUT`` (:mod:`defectbench.locks`); every folder
it makes carries the ownership marker and ``--overwrite`` or a restart removes only folders that are
ours (:mod:`defectbench.ownership`); pool workers die with the build, however it dies
(:mod:`defectbench.executors`). An interrupted build leaves only ``OUT.partial``, which never looks
like a dataset (no manifest); the next run of the same build reuses the shards whose key still
matches. A different build (recipe file, source spec, seed, limit, version) starts it over.

Job arrays (Slurm, Kubernetes; issue 8): ``num_shards=N, shard_index=i`` builds only the shards whose
position in the fixed task list is ``i`` mod ``N`` (so the shards themselves never depend on N) into
``OUT.parts/IIIII-of-NNNNN/`` with a ``part.json``; ``defectbench merge`` (:mod:`defectbench.merge`)
checks the parts and runs step 3 on them (:func:`finish`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import Executor, Future, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .audio_io import convert_channels, resample
from .core import SPLITS, DefectbenchError, Item, SkipItem, canonical_json
from .dataset import MANIFEST, ShardWriter, build_features, dataset_card, fingerprint
from .executors import default_executor, stop_pool
from .locks import output_lock
from .ownership import check_removable, kind_of, mark, remove_owned
from .recipe import Recipe, load_recipe
from .sources import Listing, list_source
from .spool import SpooledAudio

SILENCE_DBFS = -60.0
"""A 100 ms window whose RMS level is below this is silent."""
ACTIVE_FRACTION = 0.1
"""An item is skipped as silent when fewer than this fraction of its 100 ms windows are above :data:`SILENCE_DBFS`
(a level over time: a click in silence, or a -78 dBFS peak, does not make a piece usable)."""
DECODE_MARGIN_S = 1.0
"""Seconds decoded past what the recipe uses, so the resampler's end of stream never reaches kept samples."""

POOL_RESTARTS = 2
"""How often a build replaces a process pool whose worker died (each time rebuilding the shards in flight)."""


class ItemFailed(Exception):
    """A source item raised something other than SkipItem: a bug or a broken environment, not a skip.

    The build stops; the CLI prints the item and the cause and exits with status 1 (not 2: it is not
    the user's mistake). ``detail`` holds the worker's traceback text."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message, detail)
        self.message, self.detail = message, detail

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class BuildSpec:
    """Everything that defines one build: what ``build_shard``, ``finish`` and ``merge`` work from."""

    recipe: Recipe
    source: str
    metadata: Path | None
    seed: int
    limit: int | None
    out: Path
    partial: Path
    """The folder being written: ``OUT.partial`` or a job-array part ``OUT.parts/IIIII-of-NNNNN``."""
    schema: Any  # pyarrow.Schema (picklable), computed once in the parent
    listing: dict[str, Any] = field(default_factory=dict)
    """The listing's description, licence, skipped paths and notes (for the manifest)."""

    @property
    def key(self) -> str:
        return build_key(self.recipe, self.source, self.metadata, self.seed, self.limit)

    @property
    def shard_dir(self) -> Path:
        return self.partial / "shards"


@dataclass
class ShardTask:
    spec: BuildSpec
    split: str
    index: int
    items: list[Item]

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}"

    @property
    def key(self) -> str:
        """The build key and every item's listing entry: a shard is reused only while this is unchanged."""
        entries = [[it.id, it.split, it.stamp, it.meta] for it in self.items]
        return hashlib.sha256((self.spec.key + canonical_json(entries)).encode()).hexdigest()


@dataclass
class BuildResult:
    out: Path
    manifest: dict[str, Any]
    seconds: float
    reused_shards: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    """Shards rebuilt because a worker process died while they were in flight."""
    part: dict[str, Any] | None = None
    """Job-array mode: the ``part.json`` of the part built (``manifest`` is then empty)."""
    notes: list[str] = field(default_factory=list)
    """Things the user should know about the build (an empty split, how a flat folder was split)."""


@dataclass
class Prepared:
    audio: np.ndarray | SpooledAudio
    """float32 ``[channels, n]``, or int16 on disk for a streamed item (:func:`spool_item`)."""
    clipped: int
    """Samples outside [-1, 1] in the used audio, clipped."""

    def close(self) -> None:
        if isinstance(self.audio, SpooledAudio):
            self.audio.close()  # the spool file was unlinked when made: closing frees it


def silent(audio, rate: int) -> bool:
    """True when fewer than :data:`ACTIVE_FRACTION` of the 100 ms windows are above :data:`SILENCE_DBFS`.

    ``audio``: float32 ``[channels, n]``, or a :class:`~defectbench.spool.SpooledAudio` (int16, read as
    ``int16 / 32768``, the same values). Read in blocks of windows: memory stays small for hour-long items."""
    win = max(1, rate // 10)
    spooled = isinstance(audio, SpooledAudio)

    def mono(a: int, b: int) -> np.ndarray:
        x = audio.read(a, b).astype(np.float32) / np.float32(32768.0) if spooled else audio[:, a:b]
        return x.mean(axis=0, dtype=np.float64) if x.shape[0] > 1 else x[0]

    n = max(1, audio.shape[1] // win)
    limit = 10 ** (SILENCE_DBFS / 10) * win  # sum of squares of a window at the threshold level
    active = 0
    for start in range(0, n, 256):  # 25.6 s of audio per block
        block = np.asarray(mono(start * win, min(n, start + 256) * win), dtype=np.float64)
        if len(block) < win:  # an item shorter than one window
            return float(np.sum(block ** 2)) / max(1, len(block)) * win < limit
        active += int(np.count_nonzero(np.sum(block.reshape(-1, win) ** 2, axis=1) >= limit))
    return active < ACTIVE_FRACTION * n


def check_and_convert(audio: np.ndarray, rate: int, recipe: Recipe, min_samples: int,
                      max_samples: int | None = None) -> Prepared:
    """Check a decoded item, bring it to the recipe's rate and channel count, keep the first
    ``max_samples`` (what the pipeline uses), clip to [-1, 1] counting what was clipped; or raise SkipItem."""
    src = recipe.source
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise SkipItem("no samples")
    channels = audio.shape[0]
    if channels > src.max_channels:
        raise SkipItem(f"odd channel count ({channels} channels, at most {src.max_channels})")
    if rate < src.min_rate:
        raise SkipItem(f"odd sample rate ({rate} Hz, at least {src.min_rate} Hz)")
    if not np.all(np.isfinite(audio)):
        raise SkipItem("non-finite samples (NaN or infinity)")
    audio = convert_channels(resample(audio, rate, src.rate), src.channels)
    if max_samples is not None:
        audio = audio[:, :max_samples]
    n = audio.shape[1]
    if n < min_samples:
        raise SkipItem(f"too short ({n / src.rate:.2f} s at {src.rate} Hz; needs {min_samples / src.rate:.2f} s)")
    if silent(audio, src.rate):
        raise SkipItem(f"silent (fewer than {ACTIVE_FRACTION:.0%} of its 100 ms windows above {SILENCE_DBFS:g} dBFS RMS)")
    clipped = int(np.count_nonzero(np.abs(audio) > 1.0))
    return Prepared(np.clip(audio, -1.0, 1.0) if clipped else audio, clipped)


def streams(item: Item, recipe: Recipe, pipeline) -> bool:
    """Whether ``item`` is spooled to disk block by block instead of decoded whole: its source streams
    it in the recipe's rate and channel count and the pipeline reads a spool (and uses all of the item)."""
    st = item.stream
    return (st is not None and pipeline.streams and pipeline.max_samples is None
            and st.rate == recipe.source.rate and st.channels == recipe.source.channels)


def spool_item(item: Item, recipe: Recipe, min_samples: int, folder: Path) -> Prepared:
    """:func:`check_and_convert` for a streamed item: its int16 blocks go to an unlinked temporary file in
    ``folder`` (:class:`~defectbench.spool.SpooledAudio`), then the same checks (int16 needs no clipping)."""
    src = recipe.source
    spool = SpooledAudio(src.channels, folder)
    try:
        for block in item.stream.open():
            spool.append(block)
        if spool.n == 0:
            raise SkipItem("no samples")
        if spool.n < min_samples:
            raise SkipItem(f"too short ({spool.n / src.rate:.2f} s at {src.rate} Hz; needs {min_samples / src.rate:.2f} s)")
        if silent(spool, src.rate):
            raise SkipItem(f"silent (fewer than {ACTIVE_FRACTION:.0%} of its 100 ms windows above {SILENCE_DBFS:g} dBFS RMS)")
    except BaseException:
        spool.close()
        raise
    return Prepared(spool, 0)


def prepare_item(item: Item, recipe: Recipe, pipeline, folder: Path | None = None) -> Prepared:
    """One item decoded, checked and converted as a build does: spooled to disk (in ``folder``) when it
    streams (:func:`streams`), else in memory; or SkipItem. The caller closes it."""
    if streams(item, recipe, pipeline):
        return spool_item(item, recipe, pipeline.min_samples, folder)
    max_samples = pipeline.max_samples
    audio, rate = item.load(None if max_samples is None else max_samples / recipe.source.rate + DECODE_MARGIN_S)
    return check_and_convert(audio, rate, recipe, pipeline.min_samples, max_samples)


_PIPELINES: dict[str, Any] = {}


def _pipeline_for(recipe: Recipe):
    """One pipeline per recipe file and worker process (built once, reused across shards)."""
    if recipe.sha256 not in _PIPELINES:
        _PIPELINES[recipe.sha256] = recipe.make_pipeline()
    return _PIPELINES[recipe.sha256]


def _disk_full(exc: BaseException) -> bool:
    # pyarrow raises OSError("... No space left on device") without setting errno
    return isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or "No space left on device" in str(exc))


def build_shard(task: ShardTask, on_item: Callable[[], None] | None = None) -> dict[str, Any]:
    """Build one shard: write ``NAME.parquet`` and ``NAME.json`` into the shard folder atomically."""
    import traceback

    spec = task.spec
    recipe = spec.recipe
    pipeline = _pipeline_for(recipe)
    pipeline.counters = {}
    out_dir = spec.shard_dir
    tmp = out_dir / f".{task.name}.{os.getpid()}.tmp"
    json_tmp = out_dir / f".{task.name}.{os.getpid()}.json.tmp"
    writer = None
    labels: dict[str, int] = {}
    skipped: list[dict[str, str]] = []
    clipped: list[dict[str, Any]] = []
    used = 0
    try:
        writer = ShardWriter(tmp, spec.schema)
        for item in task.items:
            prepared = None
            try:
                prepared = prepare_item(item, recipe, pipeline, out_dir)
                item_labels: dict[str, int] = {}
                for sample in pipeline.process(item, prepared.audio, recipe.source.rate, spec.seed):
                    sample.meta.setdefault("split", item.split)
                    sample.meta["source_clipped_samples"] = prepared.clipped
                    writer.add(sample)
                    item_labels[str(sample.label)] = item_labels.get(str(sample.label), 0) + 1
                if not item_labels:
                    raise SkipItem("gave no samples")
            except SkipItem as exc:  # a declared reason: the item's rows (if any) are dropped
                writer.discard_item()
                skipped.append({"id": item.id, "split": item.split, "reason": str(exc)})
            except DefectbenchError as exc:  # a setting the item cannot be built with: one line, naming it
                raise DefectbenchError(f"{item.split} item {item.id!r}: {exc}") from None
            except Exception as exc:  # a bug or a broken library: stop the build, never count it as a skip
                if _disk_full(exc):
                    raise
                raise ItemFailed(f"{item.split} item {item.id!r} failed: {type(exc).__name__}: {exc}",
                                 traceback.format_exc()) from None
            else:
                writer.commit_item()
                used += 1
                for k, v in item_labels.items():
                    labels[k] = labels.get(k, 0) + v
                if prepared.clipped:
                    clipped.append({"id": item.id, "split": item.split, "samples": prepared.clipped})
            finally:
                if prepared is not None:
                    prepared.close()
            if on_item:
                on_item()
        writer.close()
        summary = {"name": task.name, "split": task.split, "index": task.index, "key": task.key,
                   "rows": writer.count, "items": used, "hashes": writer.hashes, "labels": labels,
                   "skipped": skipped, "clipped": clipped, "counters": pipeline.counters}
        tmp.rename(out_dir / f"{task.name}.parquet")
        json_tmp.write_text(json.dumps(summary))
        json_tmp.rename(out_dir / f"{task.name}.json")  # the .json marks the shard complete
    except BaseException as exc:  # Ctrl-C included: leave no half-written file behind
        try:
            if writer is not None:
                writer.abort()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            pass
        finally:
            tmp.unlink(missing_ok=True)
            json_tmp.unlink(missing_ok=True)
        if _disk_full(exc):
            raise DefectbenchError(f"disk full while writing shard {task.name} into {out_dir}: free some space "
                                   "and run the same command to resume") from None
        raise
    return summary


def make_tasks(listing: Listing, spec: BuildSpec) -> list[ShardTask]:
    tasks = []
    for split in SPLITS:
        items = [it for it in listing.items if it.split == split]
        if spec.limit is not None:
            items = items[: spec.limit]
        size = spec.recipe.items_per_shard
        for index, start in enumerate(range(0, len(items), size)):
            tasks.append(ShardTask(spec, split, index, items[start : start + size]))
    return tasks


def build_key(recipe: Recipe, source: str, metadata: Path | None, seed: int, limit: int | None) -> str:
    text = json.dumps({"recipe": recipe.sha256, "source": source, "metadata": str(metadata or ""),
                       "seed": seed, "limit": limit, "version": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def parts_dir(out: str | Path) -> Path:
    """Where job-array parts of the build ``out`` go: ``OUT.parts/IIIII-of-NNNNN/``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


def output_path(out: str | Path) -> Path:
    """``--out`` as a path with a name (``.`` and ``..`` become absolute); ``/`` is refused."""
    out = Path(out)
    if out.name in ("", ".", ".."):
        out = Path(os.path.abspath(out))
    if not out.name:
        raise DefectbenchError(f"--out {out}: a dataset cannot be written to the root folder")
    return out


def partial_dir(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def reads_of(recipe: Recipe, source: str, metadata: Path | None) -> list[Path]:
    """Paths a build reads: never removed, nor any folder holding them (see :mod:`defectbench.ownership`)."""
    paths = [Path(recipe.path)] if recipe.path else []
    kind, _, arg = source.partition(":")
    if arg and kind != "synth":
        paths.append(Path(arg))
    if metadata:
        paths.append(metadata)
    return paths


def open_parts_root(root: Path) -> None:
    """Make (or accept) ``OUT.parts``: ours when marked, or (jobs of an array start at once) when it
    holds nothing but other jobs' lock files and part folders."""
    if os.path.lexists(root) and kind_of(root) == "parts":
        return
    root.mkdir(parents=True, exist_ok=True)
    ours = all((e.name.startswith(".") and e.name.endswith(".defectbench-lock")) or (e.is_dir() and kind_of(e) == "part")
               or e.name.startswith(".defectbench") for e in root.iterdir())
    if not ours or root.is_symlink():
        raise DefectbenchError(f"{root} exists and is not a parts folder defectbench made; move it away")
    mark(root, "parts")


def open_partial(partial: Path, key: str, kind: str, reads: list[Path]) -> None:
    """Make ``partial`` ready to (re)build into: resume it if it is ours and of this build, start it over
    if it is ours and of another, refuse it (one line) if it is not ours."""
    if partial.exists() or partial.is_symlink():
        found = kind_of(partial)
        key_file = partial / "build-key"
        if found == kind and key_file.is_file() and key_file.read_text() == key:
            return  # resume
        if found not in (kind, "dataset"):  # "dataset": an interrupted final rename
            check_removable(partial, (kind,), reads, why=" (left by an interrupted build)")
        remove_owned(partial, (kind, "dataset"), reads, why=" (an interrupted build of something else)")
    partial.mkdir(parents=True)
    mark(partial, kind, key)
    (partial / "build-key").write_text(key)


def build(recipe_name: str | Path, source: str | None = None, out: str | Path | None = None, *,
          metadata: str | Path | None = None, seed: int | None = None, limit: int | None = None,
          workers: int = 1, overwrite: bool = False, progress: bool = True,
          executor: Executor | None = None, num_shards: int | None = None,
          shard_index: int | None = None) -> BuildResult:
    """Build a recipe into a dataset folder (see the module docstring).

    With ``num_shards``/``shard_index`` build only that part of the shards (job-array mode) into
    ``parts_dir(out)``; ``defectbench merge`` makes the dataset folder from all parts.
    """
    t0 = time.perf_counter()
    if (num_shards is None) != (shard_index is None):
        raise DefectbenchError("--num-shards and --shard-index go together")
    if num_shards is not None and num_shards < 1:
        raise DefectbenchError(f"--num-shards must be at least 1 (got {num_shards})")
    if num_shards is not None and not 0 <= shard_index < num_shards:
        raise DefectbenchError(f"--shard-index must be in 0..{num_shards - 1} (got {shard_index} of {num_shards})")
    recipe = load_recipe(recipe_name)
    source = source or recipe.source.default
    seed = recipe.seed if seed is None else seed
    out = output_path(out) if out else Path("datasets") / recipe.name
    metadata = Path(metadata) if metadata else None
    if limit is not None and limit < 1:
        raise DefectbenchError("--limit must be at least 1")
    if workers < 1:
        raise DefectbenchError("--workers must be at least 1")
    part = num_shards is not None
    if part:
        root = parts_dir(out)
        partial = root / f"{shard_index:05d}-of-{num_shards:05d}"
        lock_target = partial
    else:
        partial = partial_dir(out)
        lock_target = out
    reads = reads_of(recipe, source, metadata)
    if part:
        open_parts_root(root)
    try:
        with output_lock(lock_target):
            return _build_locked(recipe, source, out, metadata, seed, limit, workers, overwrite, progress,
                                 executor, num_shards, shard_index, partial, reads, t0)
    except OSError as exc:
        if _disk_full(exc):
            raise DefectbenchError(f"disk full while building {out}: free some space and run the same command "
                                   "to resume") from None
        raise


def _build_locked(recipe: Recipe, source: str, out: Path, metadata: Path | None, seed: int, limit: int | None,
                  workers: int, overwrite: bool, progress: bool, executor: Executor | None,
                  num_shards: int | None, shard_index: int | None, partial: Path, reads: list[Path],
                  t0: float) -> BuildResult:
    part = num_shards is not None
    if not part and (out.exists() or out.is_symlink()):
        if not overwrite:
            raise DefectbenchError(f"{out} already exists; pass --overwrite to replace it")
        check_removable(out, ("dataset",), reads, why=" (--overwrite)")  # before any work: refuse early
        old = out.with_name(out.name + ".old")
        if os.path.lexists(old):
            check_removable(old, ("dataset",), reads, why=" (left by an interrupted --overwrite)")
    pipeline = recipe.make_pipeline()
    features = build_features(pipeline.features(), recipe.source.rate)
    listing = list_source(source, metadata, seed)
    info = {"description": listing.description, "license": listing.license,
            "skipped": [list(s) for s in listing.skipped], "notes": list(listing.notes)}
    spec = BuildSpec(recipe, source, metadata, seed, limit, out, partial, features.arrow_schema, info)
    open_partial(partial, spec.key, "part" if part else "partial", reads)
    spec.shard_dir.mkdir(exist_ok=True)

    tasks = make_tasks(listing, spec)
    if not tasks:
        raise DefectbenchError(f"source {source!r} gave no items to build")
    notes = list(listing.notes)
    empty = [s for s in SPLITS if not any(t.split == s for t in tasks)]
    if empty:
        notes.append(f"the source gives no {' and no '.join(empty)} items: the dataset will have no "
                     f"{', '.join(empty)} split (a detector's threshold is chosen on validation, scored on test)")
    spec.listing["notes"] = notes
    all_tasks = tasks
    if part:
        tasks = [t for pos, t in enumerate(tasks) if pos % num_shards == shard_index]
    done = _reusable(spec, tasks)
    todo = [t for t in tasks if t.name not in done]
    total_items = sum(len(t.items) for t in tasks)
    retried = _run_tasks(todo, workers, executor, progress, total_items,
                         sum(len(t.items) for t in tasks if t.name in done), f"build {recipe.name}")
    if part:
        part_info = {"key": spec.key, "recipe": {"name": recipe.name, "path": recipe.path, "sha256": recipe.sha256},
                     "source": source, "metadata": str(metadata) if metadata else None, "seed": seed, "limit": limit,
                     "defectbench_version": __version__, "num_shards": num_shards, "shard_index": shard_index,
                     "shards": [t.name for t in all_tasks], "shard_keys": {t.name: t.key for t in all_tasks},
                     "built": [t.name for t in tasks], "listing": spec.listing}
        tmp = partial / ".part.json.tmp"
        tmp.write_text(json.dumps(part_info, indent=1) + "\n")
        tmp.rename(partial / "part.json")  # written last: marks the part complete
        return BuildResult(partial, {}, time.perf_counter() - t0, reused_shards=len(done), retried=retried,
                           part=part_info, notes=notes)
    manifest = finish(spec, [t.name for t in tasks], overwrite, reads)
    return BuildResult(out, manifest, time.perf_counter() - t0, reused_shards=len(done),
                       skipped=manifest["skipped"], retried=retried, notes=manifest["notes"])


def _reusable(spec: BuildSpec, tasks: list[ShardTask]) -> set[str]:
    """Names of finished shards whose key still matches; every other file in the shard folder goes
    (stale shards of a changed source, ``.tmp`` files of killed workers). The folder is ours."""
    keys = {t.name: t.key for t in tasks}
    done = set()
    for summary_file in spec.shard_dir.glob("*.json"):
        name = summary_file.stem
        try:
            ok = keys.get(name) is not None and json.loads(summary_file.read_text()).get("key") == keys[name] \
                and (spec.shard_dir / f"{name}.parquet").is_file()
        except ValueError:
            ok = False
        if ok:
            done.add(name)
    for path in spec.shard_dir.iterdir():
        name = path.name.split(".")[0]
        if name not in done or path.name.startswith("."):
            path.unlink()
    return done


def _check_rows(spec: BuildSpec, summaries: list[dict[str, Any]]) -> None:
    """A build that gave no rows fails (naming why); a split that gave none is a note."""
    def why(entries) -> str:
        reasons: dict[str, int] = {}
        for s in (x for e in entries for x in e["skipped"]):
            kind = s["reason"].split(" (")[0].split(":")[0]
            reasons[kind] = reasons.get(kind, 0) + 1
        return ", ".join(f"{k}: {v}" for k, v in sorted(reasons.items())) or "no items"

    if not sum(s["rows"] for s in summaries):
        raise DefectbenchError(f"the build gave no rows: every source item was skipped ({why(summaries)}); "
                               "see the reasons with another --source, or fix the files")
    notes = spec.listing.setdefault("notes", [])
    for split in SPLITS:
        entries = [s for s in summaries if s["split"] == split]
        if entries and not sum(s["rows"] for s in entries):
            notes.append(f"split {split} has no rows: all its {sum(len(s['skipped']) for s in entries)} "
                         f"items were skipped ({why(entries)})")


def finish(spec: BuildSpec, names: list[str], overwrite: bool = False, reads: list[Path] = ()) -> dict[str, Any]:
    """Step 3: every shard in ``names`` is complete in ``spec.shard_dir``; assemble and rename to ``spec.out``.

    The caller holds the lock of ``spec.out``."""
    summaries = [json.loads((spec.shard_dir / f"{n}.json").read_text()) for n in names]
    _check_rows(spec, summaries)
    out = spec.out
    if out.exists() or out.is_symlink():  # checked again: the folder may have changed while we built
        if not overwrite:
            raise DefectbenchError(f"{out} already exists; pass --overwrite to replace it")
        check_removable(out, ("dataset",), reads, why=" (--overwrite)")
    manifest = _assemble(spec, summaries)
    if out.exists():
        old = out.with_name(out.name + ".old")
        remove_owned(old, ("dataset",), reads, why=" (left by an interrupted --overwrite)")
        out.rename(old)
        spec.partial.rename(out)
        shutil.rmtree(old)  # checked above: a defectbench dataset
    else:
        spec.partial.rename(out)
    return manifest


def _run_tasks(todo: list[ShardTask], workers: int, executor: Executor | None, progress: bool,
               total: int, completed: int, label: str) -> list[str]:
    """Build ``todo``; returns the names of shards rebuilt after a worker process died.

    A dead worker breaks a ``ProcessPoolExecutor`` (every unfinished future raises BrokenProcessPool):
    the unfinished shards go to a fresh pool, at most :data:`POOL_RESTARTS` times. A shard is written
    atomically, so a dead worker leaves no half shard behind. Any other failure (an item that failed,
    Ctrl-C, SIGTERM) stops the pool's workers at once (:func:`~defectbench.executors.stop_pool`) and
    propagates. (Dask reschedules a dead worker's tasks itself; see :mod:`defectbench.executors`.)
    """
    from .progress import item_progress

    retried: list[str] = []
    with item_progress(label, total, completed, enabled=progress) as advance:
        if not todo:
            return retried
        if executor is None and workers <= 1:
            for task in todo:
                build_shard(task, on_item=lambda: advance(1))
            return retried
        pending = todo
        for attempt in range(POOL_RESTARTS + 1):
            own = executor is None
            pool = executor or default_executor(workers)
            broken: list[ShardTask] = []
            futures: dict[Future, ShardTask] = {}
            try:
                for t in pending:
                    futures[pool.submit(build_shard, t)] = t
                for fut in as_completed(futures):
                    try:
                        fut.result()  # re-raises a worker's failure
                    except BrokenProcessPool:
                        broken.append(futures[fut])
                        continue
                    advance(len(futures[fut].items))
            except BaseException:
                if own:
                    stop_pool(pool)
                    for stale in pending[0].spec.shard_dir.glob(".*.tmp"):  # what the killed workers were writing
                        stale.unlink(missing_ok=True)
                else:
                    for fut in futures:
                        fut.cancel()
                raise
            if own:
                pool.shutdown(cancel_futures=True)
            if not broken:
                return retried
            names = ", ".join(sorted(t.name for t in broken))
            if not own or attempt == POOL_RESTARTS:
                raise DefectbenchError(f"a worker process died ({attempt + 1} pool(s) broken); shards not built: "
                                       f"{names}; finished shards are kept, run the same command to resume")
            print(f"warning: a worker process died; rebuilding the {len(broken)} unfinished shards on a "
                  f"fresh pool ({names})", file=sys.stderr)
            retried += [t.name for t in broken]
            pending = [t for t in pending if any(t is b for b in broken)]
    return retried


def _assemble(spec: BuildSpec, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    partial, recipe = spec.partial, spec.recipe
    pipeline = recipe.make_pipeline()
    features = build_features(pipeline.features(), recipe.source.rate)
    (partial / "build-key").unlink()  # from here on an interruption restarts the build from scratch
    data = partial / "data"
    data.mkdir(exist_ok=True)
    per_split: dict[str, list] = {s: [] for s in SPLITS}
    for summary in summaries:
        per_split[summary["split"]].append(summary)
    label_feature = features["label"]
    names = list(getattr(label_feature, "names", None) or ["clean", "defect"])
    splits: dict[str, Any] = {}
    hashes: list[str] = []
    listing = spec.listing
    skipped = [{"id": i, "split": "", "reason": r} for i, r in listing.get("skipped", [])]
    clipped: list[dict[str, Any]] = []
    counters: dict[str, float] = {}
    for split in SPLITS:
        entries = sorted(per_split[split], key=lambda s: s["index"])
        labels = {n: 0 for n in names}
        size = 0
        for i, summary in enumerate(entries):
            target = data / f"{split}-{i:05d}-of-{len(entries):05d}.parquet"
            (spec.shard_dir / f"{summary['name']}.parquet").rename(target)
            size += target.stat().st_size
            hashes += summary["hashes"]
            for k, v in summary["labels"].items():
                labels[names[int(k)]] += v
            skipped += summary["skipped"]
            clipped += summary.get("clipped", [])
            for k, v in summary["counters"].items():
                counters[k] = counters.get(k, 0) + v
        splits[split] = {"samples": sum(s["rows"] for s in entries), "items": sum(s["items"] for s in entries),
                         "skipped": sum(len(s["skipped"]) for s in entries), "shards": len(entries), "bytes": size,
                         "labels": labels,
                         "clipped_items": sum(1 for c in clipped if c["split"] == split)}
    shutil.rmtree(spec.shard_dir)
    reasons: dict[str, int] = {}
    for s in skipped:
        kind = s["reason"].split(" (")[0].split(":")[0]
        reasons[kind] = reasons.get(kind, 0) + 1
    manifest = {
        "defectbench_version": __version__,
        "recipe": {"name": recipe.name, "description": recipe.description, "paper": recipe.paper,
                   "pipeline": recipe.pipeline, "sha256": recipe.sha256, "options": recipe.options,
                   "source": recipe.source.model_dump()},
        "task": pipeline.task,
        "label_names": names,
        "seed": spec.seed,
        "limit": spec.limit,
        "source": {"spec": spec.source, "metadata": str(spec.metadata) if spec.metadata else None,
                   "description": listing.get("description", ""), "license": listing.get("license", "unknown")},
        "splits": splits,
        "skipped_counts": reasons,
        "skipped": skipped,
        "source_clipping": {"items": len(clipped), "samples": sum(c["samples"] for c in clipped), "per_item": clipped},
        "notes": listing.get("notes", []),
        "counters": counters,
        "columns": list(features),
        "fingerprint": fingerprint(hashes),
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    (partial / "README.md").write_text(dataset_card(manifest, features, pipeline.card_section()))
    mark(partial, "dataset", spec.key)
    return manifest
