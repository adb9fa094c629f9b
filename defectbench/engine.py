"""The build engine: recipe + source + seed -> a dataset folder, reproducibly and resumably.

1. List the source's items (cheap), sort them by (split, id), cut each split into shards of
   ``recipe.items_per_shard`` items. Shards depend only on the listing, never on the worker count.
2. Build every shard in a worker (a ``concurrent.futures`` executor: a local process pool by default).
   A worker decodes, checks, resamples and converts each item, runs the recipe's pipeline and streams
   the rows to the shard's parquet file. A shard appears (atomic rename) only when complete, with a
   JSON summary beside it (per-sample hashes, label counts, skipped items, pipeline counters).
3. When every shard is there, name the files ``data/{split}-{i}-of-{n}.parquet``, write the manifest
   and the dataset card, and rename ``OUT.partial`` to ``OUT``.

An interrupted build leaves only ``OUT.partial``, which never looks like a dataset (no manifest); the
next run of the same build (same recipe file, source, seed, limit) reuses the finished shards and
builds the rest. A different build wipes it first.

Job arrays (Slurm, Kubernetes; issue 8): ``num_shards=N, shard_index=i`` builds only the shards whose
position in the fixed task list is ``i`` mod ``N`` (so the shards themselves never depend on N) into
``OUT.parts/IIIII-of-NNNNN/`` with a ``part.json``; ``defectbench merge`` (:mod:`defectbench.merge`)
checks the parts and runs step 3 on them (:func:`finish`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .audio_io import convert_channels, resample
from .core import SPLITS, DefectbenchError, Item, SkipItem
from .dataset import MANIFEST, ShardWriter, build_features, dataset_card, fingerprint
from .recipe import Recipe, load_recipe
from .sources import Listing, list_source

SILENCE = 1e-4
"""Peak below which a source item counts as silent (-80 dBFS)."""

POOL_RESTARTS = 2
"""How often a build replaces a process pool whose worker died (each time rebuilding the shards in flight)."""

KILL_HOOK = "DEFECTBENCH_TEST_KILL_SHARD"
"""Test hook (tests/test_dist.py): ``NAME:MARKER`` makes the worker building shard NAME exit abruptly, once
(it first creates the file MARKER; with MARKER present it builds normally). Unset, it does nothing."""


@dataclass
class ShardTask:
    split: str
    index: int
    items: list[Item]
    recipe_path: str
    seed: int
    out_dir: str
    schema: Any  # pyarrow.Schema (picklable), computed once in the parent

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:05d}"


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


def prepare(audio: np.ndarray, rate: int, recipe: Recipe, min_samples: int) -> np.ndarray:
    """Check a decoded item and bring it to the recipe's rate and channel count, or raise SkipItem."""
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
    n = audio.shape[1]
    if n < min_samples:
        raise SkipItem(f"too short ({n / src.rate:.2f} s at {src.rate} Hz; needs {min_samples / src.rate:.2f} s)")
    if float(np.max(np.abs(audio))) < SILENCE:
        raise SkipItem("silent (peak below -80 dBFS)")
    return np.clip(audio, -1.0, 1.0)


_PIPELINES: dict[str, Any] = {}


def _pipeline_for(recipe_path: str):
    """One recipe + pipeline per worker process (read once, reused across shards)."""
    if recipe_path not in _PIPELINES:
        recipe = load_recipe(Path(recipe_path))
        _PIPELINES[recipe_path] = (recipe, recipe.make_pipeline())
    return _PIPELINES[recipe_path]


def build_shard(task: ShardTask, on_item: Callable[[], None] | None = None) -> dict[str, Any]:
    """Build one shard: write ``NAME.parquet`` and ``NAME.json`` into ``task.out_dir`` atomically."""
    recipe, pipeline = _pipeline_for(task.recipe_path)
    pipeline.counters = {}
    out_dir = Path(task.out_dir)
    tmp = out_dir / f".{task.name}.{os.getpid()}.tmp"
    json_tmp = out_dir / f".{task.name}.json.tmp"
    writer = None
    labels: dict[str, int] = {}
    skipped: list[dict[str, str]] = []
    used = 0
    try:
        writer = ShardWriter(tmp, task.schema)
        for n, item in enumerate(task.items):
            try:
                audio, rate = item.load()
                audio = prepare(audio, rate, recipe, pipeline.min_samples)
                n_before = sum(labels.values())
                for sample in pipeline.process(item, audio, recipe.source.rate, task.seed):
                    sample.meta.setdefault("split", item.split)
                    writer.add(sample)
                    labels[str(sample.label)] = labels.get(str(sample.label), 0) + 1
                if sum(labels.values()) == n_before:
                    raise SkipItem("gave no samples")
                used += 1
            except SkipItem as exc:
                skipped.append({"id": item.id, "split": item.split, "reason": str(exc)})
            except Exception as exc:  # odd audio that trips a library: report it, keep building
                skipped.append({"id": item.id, "split": item.split,
                                "reason": f"processing failed: {type(exc).__name__}: {exc}"})
            if on_item:
                on_item()
            if n == 0:
                _maybe_die(task.name)  # test hook: dies with one item in the .tmp file
        writer.close()
        summary = {"name": task.name, "split": task.split, "index": task.index, "rows": writer.count,
                   "items": used, "hashes": writer.hashes, "labels": labels, "skipped": skipped,
                   "counters": pipeline.counters}
        tmp.rename(out_dir / f"{task.name}.parquet")
        json_tmp.write_text(json.dumps(summary))
        json_tmp.rename(out_dir / f"{task.name}.json")  # the .json marks the shard complete
    except BaseException:  # Ctrl-C included: leave no half-written file behind
        try:
            if writer is not None:
                writer.writer.close()
        finally:
            tmp.unlink(missing_ok=True)
            json_tmp.unlink(missing_ok=True)
        raise
    return summary


def _maybe_die(name: str) -> None:
    """The :data:`KILL_HOOK` test hook: simulate a worker killed mid-shard (no cleanup, no exception)."""
    hook = os.environ.get(KILL_HOOK)
    if hook and hook.split(":", 1)[0] == name:
        marker = Path(hook.split(":", 1)[1])
        try:
            marker.touch(exist_ok=False)
        except FileExistsError:
            return
        os._exit(13)


def make_tasks(listing: Listing, recipe: Recipe, seed: int, limit: int | None, shard_dir: Path, schema) -> list[ShardTask]:
    tasks = []
    for split in SPLITS:
        items = [it for it in listing.items if it.split == split]
        if limit is not None:
            items = items[:limit]
        size = recipe.items_per_shard
        for index, start in enumerate(range(0, len(items), size)):
            tasks.append(ShardTask(split, index, items[start : start + size], recipe.path, seed, str(shard_dir), schema))
    return tasks


def build_key(recipe: Recipe, source: str, metadata: Path | None, seed: int, limit: int | None) -> str:
    text = json.dumps({"recipe": recipe.sha256, "source": source, "metadata": str(metadata or ""),
                       "seed": seed, "limit": limit, "version": __version__}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def default_executor(workers: int) -> Executor:
    # spawn: workers start clean (no inherited threads from pyarrow or torch in the parent).
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))


def parts_dir(out: str | Path) -> Path:
    """Where job-array parts of the build ``out`` go: ``OUT.parts/IIIII-of-NNNNN/``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


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
    if num_shards is not None and not (num_shards >= 1 and 0 <= shard_index < num_shards):
        raise DefectbenchError(f"--shard-index must be in 0..{num_shards - 1} and --num-shards at least 1 "
                               f"(got {shard_index} of {num_shards})")
    recipe = load_recipe(recipe_name)
    source = source or recipe.source.default
    seed = recipe.seed if seed is None else seed
    out = Path(out) if out else Path("datasets") / recipe.name
    metadata = Path(metadata) if metadata else None
    if limit is not None and limit < 1:
        raise DefectbenchError("--limit must be at least 1")
    if out.exists() and not overwrite:
        raise DefectbenchError(f"{out} already exists; pass --overwrite to replace it")
    pipeline = recipe.make_pipeline()
    features = build_features(pipeline.features(), recipe.source.rate)
    listing = list_source(source, metadata, seed)

    part = num_shards is not None
    partial = parts_dir(out) / f"{shard_index:05d}-of-{num_shards:05d}" if part else out.with_name(out.name + ".partial")
    shard_dir = partial / "shards"
    key = build_key(recipe, source, metadata, seed, limit)
    key_file = partial / "build-key"
    if partial.exists() and not (key_file.is_file() and key_file.read_text() == key):
        shutil.rmtree(partial)  # an interrupted build of something else: start over
    shard_dir.mkdir(parents=True, exist_ok=True)
    for stale in shard_dir.glob(".*.tmp"):  # left by a worker that was killed outright
        stale.unlink()
    key_file.write_text(key)

    tasks = make_tasks(listing, recipe, seed, limit, shard_dir, features.arrow_schema)
    if not tasks:
        raise DefectbenchError(f"source {source!r} gave no items to build")
    all_tasks = tasks
    if part:
        tasks = [t for pos, t in enumerate(tasks) if pos % num_shards == shard_index]
    done = {t.name for t in tasks if (shard_dir / f"{t.name}.json").is_file()}
    todo = [t for t in tasks if t.name not in done]
    total_items = sum(len(t.items) for t in tasks)
    retried = _run_tasks(todo, workers, executor, progress, total_items,
                         sum(len(t.items) for t in tasks if t.name in done), f"build {recipe.name}")
    if part:
        info = {"key": key, "recipe": {"name": recipe.name, "path": recipe.path, "sha256": recipe.sha256},
                "source": source, "metadata": str(metadata) if metadata else None, "seed": seed, "limit": limit,
                "defectbench_version": __version__, "num_shards": num_shards, "shard_index": shard_index,
                "shards": [t.name for t in all_tasks], "built": [t.name for t in tasks],
                "listing": {"description": listing.description, "license": listing.license,
                            "skipped": [list(s) for s in listing.skipped]}}
        tmp = partial / ".part.json.tmp"
        tmp.write_text(json.dumps(info, indent=1) + "\n")
        tmp.rename(partial / "part.json")  # written last: marks the part complete
        return BuildResult(partial, {}, time.perf_counter() - t0, reused_shards=len(done), retried=retried, part=info)

    manifest = finish(partial, out, tasks, recipe, pipeline, listing, source, metadata, seed, limit, features)
    return BuildResult(out, manifest, time.perf_counter() - t0, reused_shards=len(done),
                       skipped=manifest["skipped"], retried=retried)


def finish(partial: Path, out: Path, tasks, recipe: Recipe, pipeline, listing: Listing, source: str,
           metadata: Path | None, seed: int, limit: int | None, features) -> dict[str, Any]:
    """Step 3: every shard of ``tasks`` is complete in ``partial/shards``; assemble and rename to ``out``."""
    summaries = [json.loads((partial / "shards" / f"{t.name}.json").read_text()) for t in tasks]
    manifest = _assemble(partial, tasks, summaries, recipe, pipeline, listing, source, metadata, seed, limit, features)
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        partial.rename(out)
        shutil.rmtree(old)
    else:
        partial.rename(out)
    return manifest


def _run_tasks(todo: list[ShardTask], workers: int, executor: Executor | None, progress: bool,
               total: int, completed: int, label: str) -> list[str]:
    """Build ``todo``; returns the names of shards rebuilt after a worker process died.

    A dead worker breaks a ``ProcessPoolExecutor`` (every unfinished future raises BrokenProcessPool):
    the unfinished shards go to a fresh pool, at most :data:`POOL_RESTARTS` times. A shard is written
    atomically, so a dead worker leaves no half shard behind. (Dask reschedules a dead worker's tasks
    itself; see :mod:`defectbench.executors`.)
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
            try:
                futures: dict[Future, ShardTask] = {pool.submit(build_shard, t): t for t in pending}
                for fut in as_completed(futures):
                    try:
                        fut.result()  # re-raises a worker's failure
                    except BrokenProcessPool:
                        broken.append(futures[fut])
                        continue
                    advance(len(futures[fut].items))
            finally:
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


def _assemble(partial: Path, tasks, summaries, recipe: Recipe, pipeline, listing: Listing, source: str,
              metadata: Path | None, seed: int, limit: int | None, features) -> dict[str, Any]:
    (partial / "build-key").unlink()  # from here on an interruption restarts the build from scratch
    data = partial / "data"
    data.mkdir(exist_ok=True)
    per_split: dict[str, list] = {s: [] for s in SPLITS}
    for task, summary in zip(tasks, summaries):
        per_split[task.split].append((task, summary))
    label_feature = features["label"]
    names = list(getattr(label_feature, "names", None) or ["clean", "defect"])
    splits: dict[str, Any] = {}
    hashes: list[str] = []
    skipped = [{"id": i, "split": "", "reason": r} for i, r in listing.skipped]
    counters: dict[str, float] = {}
    for split in SPLITS:
        entries = per_split[split]
        labels = {n: 0 for n in names}
        size = 0
        for i, (task, summary) in enumerate(entries):
            target = data / f"{split}-{i:05d}-of-{len(entries):05d}.parquet"
            (partial / "shards" / f"{task.name}.parquet").rename(target)
            size += target.stat().st_size
            hashes += summary["hashes"]
            for k, v in summary["labels"].items():
                labels[names[int(k)]] += v
            skipped += summary["skipped"]
            for k, v in summary["counters"].items():
                counters[k] = counters.get(k, 0) + v
        splits[split] = {"samples": sum(s["rows"] for _, s in entries), "items": sum(s["items"] for _, s in entries),
                         "skipped": sum(len(s["skipped"]) for _, s in entries), "shards": len(entries), "bytes": size,
                         "labels": labels}
    shutil.rmtree(partial / "shards")
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
        "seed": seed,
        "limit": limit,
        "source": {"spec": source, "metadata": str(metadata) if metadata else None,
                   "description": listing.description, "license": listing.license},
        "splits": splits,
        "skipped_counts": reasons,
        "skipped": skipped,
        "counters": counters,
        "columns": list(features),
        "fingerprint": fingerprint(hashes),
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    (partial / "README.md").write_text(dataset_card(manifest, features, pipeline.card_section()))
    return manifest
