"""Known dataset builds: the reference builds of ``fingerprints.json`` and local builds under ``datasets/``.

A submission is re-scored only against a build whose fingerprint the board knows: one listed in
``fingerprints.json`` (the benchmark builds, recorded with ``defectbench leaderboard --record``) or a
local build of the current recipe file. ``build_missing`` builds the listed ones that are not here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..core import DefectbenchError

FINGERPRINTS = "fingerprints.json"
RESULT = "result.json"
SPLIT = "test"


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
    from ..dataset import read_manifest

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
    from ..recipe import load_recipe

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
    from ..engine import build

    refs = read_fingerprints(root)
    have = {b.fingerprint for b in local_builds(datasets_dir, {r.fingerprint for r in refs})}
    built, problems = [], []
    for ref in refs:
        if ref.fingerprint in have or (only is not None and ref.fingerprint not in only):
            continue
        out = datasets_dir / f"{ref.recipe}--{ref.source.replace(':', '_').replace('/', '_')}--seed{ref.seed}" \
                             f"--limit{ref.limit or 'all'}"
        if _is_benchmark(ref) and not (datasets_dir / "bench" / ref.recipe).exists():
            out = datasets_dir / "bench" / ref.recipe  # where `defectbench build RECIPE --benchmark` puts it
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


def _is_benchmark(ref: Build) -> bool:
    from ..recipe import load_recipe

    try:
        r = load_recipe(ref.recipe)
    except DefectbenchError:
        return False
    return ref.limit is None and ref.seed == r.seed and ref.source == r.source.benchmark


def wanted_fingerprints(root: Path) -> set[str]:
    """Dataset fingerprints that the submissions' result files name (read as plain JSON, unvalidated)."""
    out = set()
    for path in (root / "submissions").glob(f"*/*/{RESULT}"):
        try:
            out.add(str(json.loads(path.read_text())["dataset"]["fingerprint"]))
        except (ValueError, KeyError, TypeError, OSError):
            continue  # validation will say what is wrong with it
    return out
