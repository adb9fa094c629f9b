"""Golden values of the benchmark builds: their fingerprints, a digest per shard and a few sample hashes.

One file, ``tests/golden/benchmark.json``, holds them; ``tests/test_golden.py`` compares against it
(one shard of each benchmark build built afresh, and the board's reference builds), so a change in
generated audio, targets or metadata is seen at once and must be made on purpose:

    defectbench build NAME --benchmark          # every paper recipe (leaderboard/make_reference.sh does it)
    python -m defectbench.golden --write --note "why the values changed"
    python -m defectbench.golden --check        # the full builds against the file

``--write`` recomputes every value from the builds' parquet files (not from their manifests) and adds
the note to the file's changelog.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path

from .core import SPLITS, DefectbenchError

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "benchmark.json"
SAMPLES = 3
"""Sample hashes kept per build: the first rows of the shard the test rebuilds."""


def shard_digests(dataset: Path) -> tuple[dict[str, str], dict[str, list[str]], str]:
    """(shard -> sha256 over its ordered sample hashes, shard -> its first sample hashes, the dataset's
    fingerprint), all from the parquet files."""
    import pyarrow.parquet as pq

    from .audio_io import read_wav_bytes
    from .dataset import data_files, fingerprint, row_hash

    digests, firsts, every = {}, {}, []
    for split in SPLITS:
        for index, file in enumerate(data_files(dataset, split)):
            hashes = []
            for batch in pq.ParquetFile(file).iter_batches():
                for row in batch.to_pylist():
                    audio, _ = read_wav_bytes(row.pop("audio")["bytes"])
                    hashes.append(row_hash(row, audio))
            key = f"{split}-{index:05d}"
            digests[key], firsts[key] = fingerprint(hashes), hashes[:SAMPLES]
            every += hashes
    return digests, firsts, fingerprint(every)


def record(bench_dir: Path) -> dict:
    """Golden values of every recipe's benchmark build under ``bench_dir`` (``datasets/bench``)."""
    from .dataset import read_manifest
    from .recipe import load_recipe, recipe_files

    builds = {}
    for name in sorted(recipe_files()):
        recipe = load_recipe(name)
        if not recipe.source.benchmark:
            continue
        folder = bench_dir / name
        m = read_manifest(folder)
        if m["source"]["spec"] != recipe.source.benchmark or m["seed"] != recipe.seed or m.get("limit"):
            raise DefectbenchError(f"{folder} is not the benchmark build of {name} (source {m['source']['spec']}, "
                                   f"seed {m['seed']}, limit {m.get('limit')}); build it with `defectbench build {name} --benchmark`")
        digests, firsts, again = shard_digests(folder)
        if again != m["fingerprint"]:  # the manifest must say what the parquet files give
            raise DefectbenchError(f"{folder}: its parquet files give fingerprint {again[:16]}, its manifest "
                                   f"{m['fingerprint'][:16]}: the build was altered; rebuild it")
        order = [k for s in SPLITS for k in sorted(digests) if k.startswith(s + "-")]
        check = next(i for i, k in enumerate(order) if k.startswith("test-"))  # the first test shard
        builds[name] = {"source": recipe.source.benchmark, "seed": recipe.seed, "fingerprint": m["fingerprint"],
                        "test_samples": m["splits"]["test"]["samples"], "test_labels": m["splits"]["test"]["labels"],
                        "num_shards": len(order),
                        "check_shard": check, "shards": {k: digests[k] for k in order},
                        "samples": firsts[order[check]]}
    return builds


def check(bench_dir: Path, golden: dict) -> list[str]:
    """Differences between the builds under ``bench_dir`` and the golden file (empty: all equal)."""
    problems = []
    got = record(bench_dir)
    for name, want in golden["builds"].items():
        have = got.get(name)
        if have is None:
            problems.append(f"{name}: no benchmark build")
            continue
        for key in ("fingerprint", "test_samples", "test_labels", "num_shards", "samples"):
            if have[key] != want[key]:
                problems.append(f"{name}: {key} differs ({str(have[key])[:40]} vs golden {str(want[key])[:40]})")
        bad = [k for k in want["shards"] if have["shards"].get(k) != want["shards"][k]]
        if bad:
            problems.append(f"{name}: {len(bad)} shard(s) differ, first {bad[0]}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m defectbench.golden", description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench-dir", type=Path, default=Path("datasets/bench"))
    ap.add_argument("--golden", type=Path, default=GOLDEN)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="recompute the golden values from the builds")
    group.add_argument("--check", action="store_true", help="compare the builds with the golden file")
    ap.add_argument("--note", default="", help="--write: the changelog line (why the values changed)")
    args = ap.parse_args(argv)
    try:
        old = json.loads(args.golden.read_text()) if args.golden.is_file() else {}
        if args.check:
            problems = check(args.bench_dir, old)
            for p in problems:
                print(p)
            print("golden values match" if not problems else f"{len(problems)} difference(s)")
            return 1 if problems else 0
        if not args.note:
            raise DefectbenchError("--write needs --note: the changelog line saying why the generated data changed")
        builds = record(args.bench_dir)
    except DefectbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changelog = old.get("changelog", []) + [f"{_dt.date.today().isoformat()}: {args.note}"]
    doc = {"about": "Golden values of the benchmark builds (defectbench/golden.py; tests/test_golden.py). "
                    "Regenerate with `python -m defectbench.golden --write --note WHY` after building every "
                    "`defectbench build NAME --benchmark`, on purpose only.",
           "changelog": changelog, "builds": builds}
    args.golden.parent.mkdir(parents=True, exist_ok=True)
    args.golden.write_text(json.dumps(doc, indent=1) + "\n")
    summary = ", ".join(f"{k} {v['fingerprint'][:16]}" for k, v in builds.items())
    print(f"wrote {args.golden} ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
