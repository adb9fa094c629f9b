"""``defectbench merge``: join the parts of a job-array build into the dataset folder (issue 8).

``defectbench build RECIPE --out OUT --num-shards N --shard-index i`` (one job per ``i``) leaves
``OUT.parts/IIIII-of-NNNNN/`` with ``part.json`` and finished shards. :func:`merge` checks that

* every part came from the same build (recipe file hash, source, metadata, seed, limit, version:
  the engine's build key),
* every shard of the build's fixed shard list is there exactly once (a part built twice with
  different N, or a part copied in twice, is a duplicate; an unfinished job leaves shards missing),

then moves the shards into ``OUT.partial/shards`` and runs the engine's own final step
(:func:`defectbench.engine.finish`), so the result is the dataset a single-machine build writes.
"""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .core import DefectbenchError
from .dataset import build_features
from .engine import BuildResult, BuildSpec, build_key, finish, open_partial, output_path, partial_dir, parts_dir, reads_of
from .locks import output_lock
from .ownership import kind_of, remove_owned
from .recipe import Recipe, load_recipe

KEY_FIELDS = ("recipe", "source", "metadata", "seed", "limit", "defectbench_version")


def read_parts(out: Path) -> list[tuple[Path, dict[str, Any]]]:
    root = parts_dir(out)
    if not root.is_dir():
        raise DefectbenchError(f"no parts to merge: {root} does not exist (build them with "
                               f"`defectbench build RECIPE --out {out} --num-shards N --shard-index i`)")
    if kind_of(root) != "parts":
        raise DefectbenchError(f"{root} is not a parts folder defectbench made (no marker); not merging it")
    parts = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        info_file = folder / "part.json"
        if not info_file.is_file():
            raise DefectbenchError(f"part {folder.name} is unfinished (no part.json): run its job again "
                                   "(it resumes), or remove the folder if it is left over")
        parts.append((folder, json.loads(info_file.read_text())))
    if not parts:
        raise DefectbenchError(f"no parts to merge in {root}")
    return parts


def _load_recipe(info: dict[str, Any], recipe: str | Path | None) -> Recipe:
    spec = recipe or (info["recipe"]["path"] if Path(info["recipe"]["path"]).is_file() else info["recipe"]["name"])
    loaded = load_recipe(spec)
    if loaded.sha256 != info["recipe"]["sha256"]:
        raise DefectbenchError(f"recipe {spec} is not the file the parts were built from (sha256 "
                               f"{loaded.sha256[:12]} vs {info['recipe']['sha256'][:12]}); pass --recipe with that file")
    return loaded


def merge(out: str | Path, *, recipe: str | Path | None = None, overwrite: bool = False) -> BuildResult:
    """Check the parts in ``parts_dir(out)`` and assemble them into the dataset folder ``out``."""
    t0 = time.perf_counter()
    out = output_path(out)
    with output_lock(out, what="merge"), ExitStack() as parts:
        root = parts_dir(out)
        for folder in sorted(root.iterdir()) if root.is_dir() else []:  # no job may write a part while it is merged
            if folder.is_dir() and not folder.name.startswith("."):
                parts.enter_context(output_lock(folder, what="merge"))
        return _merge(out, recipe, overwrite, t0)


def _merge(out: Path, recipe: str | Path | None, overwrite: bool, t0: float) -> BuildResult:
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise DefectbenchError(f"{out} already exists; pass --overwrite to replace it")
    parts = read_parts(out)
    first_dir, first = parts[0]
    for folder, info in parts[1:]:
        if info["key"] != first["key"]:
            diff = [k for k in KEY_FIELDS if info.get(k) != first.get(k)] or ["build key"]
            raise DefectbenchError(f"parts {first_dir.name} and {folder.name} come from different builds "
                                   f"(they differ in: {', '.join(diff)}); merge only parts of one build")
        if info.get("shard_keys") != first.get("shard_keys"):
            raise DefectbenchError(f"parts {first_dir.name} and {folder.name} saw different source listings (a file "
                                   "changed between their jobs); run the jobs again (they rebuild what changed)")
    keys: dict[str, str] = first["shard_keys"]

    loaded = _load_recipe(first, recipe)
    metadata = Path(first["metadata"]) if first["metadata"] else None
    if build_key(loaded, first["source"], metadata, first["seed"], first["limit"]) != first["key"]:
        raise DefectbenchError("the parts were built by another defectbench version; rebuild them with this one")
    pipeline = loaded.make_pipeline()
    features = build_features(pipeline.features(), loaded.source.rate)
    reads = reads_of(loaded, first["source"], metadata)
    spec = BuildSpec(loaded, first["source"], metadata, first["seed"], first["limit"], out, partial_dir(out),
                     features.arrow_schema, first["listing"])

    # An interrupted merge left some shards in OUT.partial: resume it (it is ours and of this build).
    open_partial(spec.partial, spec.key, "partial", reads)
    spec.shard_dir.mkdir(exist_ok=True)
    # Every shard of the build exactly once, of the listing the parts were built from.
    names: list[str] = first["shards"]
    found: dict[str, list[Path]] = {n: [] for n in names}
    for folder in [spec.partial] + [f for f, _ in parts]:
        for summary_file in sorted((folder / "shards").glob("*.json")):
            name = summary_file.stem
            if name not in found:
                raise DefectbenchError(f"part {folder.name} holds shard {name}, which is not in this build's shard list")
            if not (folder / "shards" / f"{name}.parquet").is_file():
                raise DefectbenchError(f"part {folder.name}: shard {name} has a summary but no parquet file")
            if json.loads(summary_file.read_text()).get("key") != keys[name]:
                raise DefectbenchError(f"part {folder.name}: shard {name} was built from another source listing; "
                                       "run its job again (it rebuilds the shard)")
            found[name].append(folder)
    dup = {n: f for n, f in found.items() if len(f) > 1}
    if dup:
        n, f = next(iter(dup.items()))
        raise DefectbenchError(f"{len(dup)} shard(s) found more than once, e.g. {n} in parts "
                               f"{', '.join(p.name for p in f)} (parts of runs with different --num-shards?); "
                               "remove the extra part folders and merge again")
    missing = [n for n, f in found.items() if not f]
    if missing:
        n = first["num_shards"]
        jobs = sorted({names.index(m) % n for m in missing})
        raise DefectbenchError(f"{len(missing)} of {len(names)} shards missing ({', '.join(missing[:5])}"
                               f"{', ...' if len(missing) > 5 else ''}); with --num-shards {n} they belong to "
                               f"--shard-index {', '.join(map(str, jobs))}: run those jobs (they resume), then merge again")

    for name in names:
        src = found[name][0] / "shards"
        if src != spec.shard_dir:
            for ext in (".parquet", ".json"):  # the .json last: it marks the shard complete
                shutil.move(src / f"{name}{ext}", spec.shard_dir / f"{name}{ext}")  # a rename on one filesystem
    manifest = finish(spec, names, overwrite, reads)
    remove_owned(parts_dir(out), ("parts",), reads)
    return BuildResult(out, manifest, time.perf_counter() - t0, skipped=manifest["skipped"])
