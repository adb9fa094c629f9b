"""``defectbench verify``: recompute a dataset's fingerprint from its parquet files (issue 13).

:func:`verify_dataset` reads every row of ``data/{split}-*.parquet`` (splits in the order train,
validation, test; files in name order; rows in file order), hashes each row exactly as the build did
(:func:`defectbench.dataset.row_hash`; the README defines it byte for byte) and compares the sha256
over those hashes with the manifest's ``fingerprint``. It also checks that the files are the ones the
manifest counts (shards per split, rows per split). Any difference is one :class:`DefectbenchError`
line: a swapped, edited, added or missing parquet file cannot pass.

Recomputing decodes every row, so a successful verification is remembered: the stored verification
(a JSON file in :func:`cache_dir`, one per dataset folder) records the manifest's sha256, the
fingerprint and, per parquet file, its name, size, mtime and sha256. A later call trusts it only
when the manifest and every file still match all of those (sizes and mtimes first, then the
sha256 of every file's bytes: reading the bytes is much cheaper than decoding every row, and it is
the bytes, not the mtime, that are vouched for). ``use_cache=False`` always recomputes.
The cache lives outside the dataset folder (``$DEFECTBENCH_CACHE`` or ``~/.cache/defectbench``),
so verifying never changes a dataset's files.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .core import SPLITS, DefectbenchError
from .dataset import MANIFEST, data_files, fingerprint, iter_rows, read_manifest, row_hash

CACHE_VERSION = 1


@dataclass
class VerifyReport:
    path: Path
    fingerprint: str
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    cached: bool = False
    """True when a stored verification of the same bytes was used instead of recomputing."""


def cache_dir() -> Path:
    return Path(os.environ.get("DEFECTBENCH_CACHE") or Path.home() / ".cache" / "defectbench") / "verified"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(path: Path) -> list[Path]:
    return [f for s in SPLITS for f in data_files(path, s)]


def _stats(files: list[Path], root: Path) -> list[list]:
    out = []
    for f in files:
        st = f.stat()
        out.append([f.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return out


def _cache_file(path: Path) -> Path:
    return cache_dir() / (hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:32] + ".json")


def _stored(path: Path, manifest_sha: str, expected: str, files: list[Path]) -> bool:
    try:
        stored = json.loads(_cache_file(path).read_text())
    except (OSError, ValueError):
        return False
    if (stored.get("version") != CACHE_VERSION or stored.get("manifest_sha256") != manifest_sha
            or stored.get("fingerprint") != expected):
        return False
    entries = stored.get("files", [])
    if [e[:3] for e in entries] != _stats(files, path):
        return False
    return all(e[3] == _sha256(f) for e, f in zip(entries, files))


def _store(path: Path, manifest_sha: str, expected: str, files: list[Path]) -> None:
    entries = [s + [_sha256(f)] for s, f in zip(_stats(files, path), files)]
    record = {"version": CACHE_VERSION, "dataset": str(path.resolve()), "manifest_sha256": manifest_sha,
              "fingerprint": expected, "files": entries}
    target = _cache_file(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(record) + "\n")
        tmp.rename(target)
    except OSError:  # a read-only home: verification still worked, it is only not remembered
        pass


def check_counts(path: Path, manifest: dict) -> None:
    """The parquet files are the ones the manifest counts: shards and rows per split."""
    import pyarrow.parquet as pq

    for split in SPLITS:
        info = manifest["splits"].get(split, {})
        files = data_files(path, split)
        if len(files) != info.get("shards", 0):
            raise DefectbenchError(f"{path}: split {split} has {len(files)} shard files but the manifest lists "
                                   f"{info.get('shards', 0)}: the folder was altered; rebuild it")
        rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        if rows != info.get("samples", 0):
            raise DefectbenchError(f"{path}: split {split} has {rows} rows but the manifest says "
                                   f"{info.get('samples', 0)}: the folder was altered; rebuild it")


def recompute_fingerprint(path: str | Path, progress: bool = False, total: int = 0) -> tuple[str, dict[str, int]]:
    """The fingerprint of the rows in ``path``'s parquet files, and the rows per split (no cache)."""
    from .progress import item_progress

    hashes: list[str] = []
    rows: dict[str, int] = {}
    with item_progress(f"verify {Path(path).name}", total, unit="rows", enabled=progress) as advance:
        for split in SPLITS:
            n = 0
            for row in iter_rows(path, split):
                audio = row.pop("audio")
                row.pop("rate", None)
                hashes.append(row_hash(row, audio))
                n += 1
                if n % 64 == 0:
                    advance(64)
            advance(n % 64)
            rows[split] = n
    return fingerprint(hashes), rows


def verify_dataset(path: str | Path, use_cache: bool = True, progress: bool = False) -> VerifyReport:
    """Recompute ``path``'s fingerprint from its parquet files and compare it with the manifest's.

    Returns a :class:`VerifyReport`; raises :class:`DefectbenchError` (one line) when the folder is not a
    dataset, the files are not those the manifest counts, or the recomputed fingerprint differs.
    See the module docstring for the stored verification (``use_cache``); ``progress`` shows a bar
    (rows, rate, ETA) while recomputing.
    """
    path = Path(path)
    manifest = read_manifest(path)
    manifest_sha = hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest()
    expected = manifest.get("fingerprint", "")
    files = _files(path)
    rows = {s: manifest["splits"].get(s, {}).get("samples", 0) for s in SPLITS}
    try:
        check_counts(path, manifest)
        if use_cache and _stored(path, manifest_sha, expected, files):
            return VerifyReport(path, expected, rows, len(files), cached=True)
        actual, rows = recompute_fingerprint(path, progress, sum(rows.values()))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # an unreadable or foreign parquet file
        raise DefectbenchError(f"{path}: cannot read its parquet files ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); the folder was altered; rebuild it") from None
    if actual != expected:
        raise DefectbenchError(f"{path}: the fingerprint recomputed from the parquet files is {actual[:16]}..., the "
                               f"manifest says {expected[:16]}...: the data files were altered or swapped; rebuild it")
    _store(path, manifest_sha, expected, files)
    return VerifyReport(path, expected, rows, len(files), cached=False)
