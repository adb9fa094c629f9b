"""The dataset on disk (SPEC 2): parquet shards per split, a dataset card, a manifest.

Layout of a built dataset folder::

    data/train-00000-of-00004.parquet ...   one file per shard, row groups of ROW_GROUP rows
    README.md                               dataset card: YAML (configs, splits, features, licence)
    manifest.json                           recipe, seed, source, counts, skipped items, fingerprint
    .defectbench                            ownership marker (:mod:`defectbench.ownership`)

:func:`row_hash` and :func:`fingerprint` define the fingerprint, which :mod:`defectbench.verify`
recomputes from the files (the README states it byte for byte). ``datasets.load_dataset(folder)`` opens it offline. The toolkit itself reads it with
:func:`iter_rows` (pyarrow + soundfile, no Hub-side decoding), which is much faster than decoding
the ``Audio`` column through ``datasets``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .audio_io import read_wav_bytes, wav_bytes
from .core import SPLITS, DefectbenchError, Sample, canonical_json, to_builtin

ROW_GROUP = 64
MANIFEST = "manifest.json"


ENGINE_COLUMNS = ("source_clipped_samples",)
"""Columns the engine adds to every row after the pipeline's: ``source_clipped_samples`` counts the
samples of the item's (used, resampled) source audio that lay outside [-1, 1] and were clipped."""


def build_features(pipeline_features: dict[str, Any], rate: int):
    """The ``datasets.Features`` of a recipe's rows: id, audio, the pipeline's columns, then :data:`ENGINE_COLUMNS`."""
    from datasets import Audio, Features, Value

    return Features({"id": Value("string"), "audio": Audio(sampling_rate=rate), **pipeline_features,
                     "source_clipped_samples": Value("int64")})


def sample_row(sample: Sample) -> dict[str, Any]:
    """One sample as an Arrow row: WAV bytes in the Audio struct (built through Arrow directly, so
    ``datasets``' own audio encoder, which needs torchcodec, is never involved)."""
    row = {"id": sample.id, "audio": {"bytes": wav_bytes(sample.audio, sample.rate), "path": None},
           "target": np.asarray(sample.target, dtype=np.uint8).tolist(), "label": sample.label}
    row.update(to_builtin(sample.meta))
    row["params"] = json.dumps(to_builtin(sample.params), sort_keys=True)
    return row


def row_hash(row: dict[str, Any], audio: np.ndarray) -> str:
    """Hash of one stored row: its PCM samples, target, label and every other column as stored.

    The per-sample unit of the dataset fingerprint. It hashes the decoded samples rather than the
    WAV bytes (independent of the container writer) and the columns as Arrow gives them back (so
    that anyone can recompute it from the parquet files with :func:`iter_rows`).
    """
    h = hashlib.sha256()
    audio = np.ascontiguousarray(audio)
    h.update(str(audio.dtype).encode() + b"|")
    h.update(audio.astype(audio.dtype.newbyteorder("<"), copy=False).tobytes())
    h.update(np.asarray(row["target"], dtype="<u1").tobytes())
    rest = {k: v for k, v in row.items() if k not in ("audio", "rate", "target")}
    h.update(canonical_json(rest).encode())
    return h.hexdigest()


class ShardWriter:
    """Writes rows to one parquet file in row groups of ``ROW_GROUP``, committing whole items only.

    Rows come in per source item: :meth:`add` buffers them, :meth:`commit_item` hands them to the
    file and :meth:`discard_item` drops them, so a shard never holds rows of an item that did not
    finish. Memory stays bounded whatever the item's length: an item's rows beyond
    ``SPILL_ROWS`` are converted to Arrow (their hashes computed) and spilled to a temporary Arrow
    IPC file beside the shard, which the commit streams back in row groups.
    """

    SPILL_ROWS = 4 * ROW_GROUP

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.hashes: list[str] = []
        self.count = 0
        self._rows: list[dict[str, Any]] = []  # the current item's rows not yet converted
        self._audio: list[np.ndarray] = []
        self._item: list[tuple[pa.Table, list[str]]] = []  # the current item's converted batches
        self._item_rows = 0
        self._spill_path = path.with_name(path.stem + ".item.tmp")  # swept with the shard's own .tmp files
        self._spill: pa.ipc.RecordBatchStreamWriter | None = None
        self._spilled: list[list[str]] = []  # hashes of the spilled batches, in order
        self._pending: pa.Table | None = None  # committed rows not yet written (< ROW_GROUP)
        self._pending_hashes: list[str] = []
        self.writer = pq.ParquetWriter(path, schema)

    def add(self, sample: Sample) -> None:
        self._rows.append(sample_row(sample))
        self._audio.append(sample.audio)
        if len(self._rows) >= ROW_GROUP:
            self._convert()

    def _convert(self) -> None:
        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=self.schema)
        stored = table.drop_columns(["audio"]).to_pylist()
        hashes = [row_hash(row, audio) for row, audio in zip(stored, self._audio)]
        self._rows, self._audio = [], []
        self._item_rows += table.num_rows
        if self._item_rows > self.SPILL_ROWS or self._spill is not None:
            if self._spill is None:
                self._spill = pa.ipc.new_stream(str(self._spill_path), self.schema)
                for t, h in self._item:  # the batches held so far go first
                    self._spill.write_table(t)
                    self._spilled.append(h)
                self._item = []
            self._spill.write_table(table)
            self._spilled.append(hashes)
        else:
            self._item.append((table, hashes))

    def commit_item(self) -> None:
        """The current item finished: its rows become part of the shard."""
        self._convert()
        if self._spill is not None:
            self._spill.close()
            self._spill = None
            # read, not memory-mapped: mapped pages would count toward resident memory as the
            # batches are touched, which then grows with the item's length again
            with pa.OSFile(str(self._spill_path)) as source:
                reader = pa.ipc.open_stream(source)
                for batch, hashes in zip(reader, self._spilled):
                    self._append(pa.Table.from_batches([batch], schema=self.schema), hashes)
            self._spill_path.unlink()
        for table, hashes in self._item:
            self._append(table, hashes)
        self._reset_item()

    def discard_item(self) -> None:
        """The current item was skipped: drop every row it gave."""
        if self._spill is not None:
            self._spill.close()
        self._spill_path.unlink(missing_ok=True)
        self._reset_item()

    def _reset_item(self) -> None:
        self._rows, self._audio, self._item, self._spilled, self._item_rows, self._spill = [], [], [], [], 0, None

    def _append(self, table: pa.Table, hashes: list[str]) -> None:
        table = table if self._pending is None else pa.concat_tables([self._pending, table])
        hashes = self._pending_hashes + hashes
        full = (table.num_rows // ROW_GROUP) * ROW_GROUP
        if full:
            self.writer.write_table(table.slice(0, full), row_group_size=ROW_GROUP)
            self.hashes += hashes[:full]
            self.count += full
        self._pending = table.slice(full) if full < table.num_rows else None
        self._pending_hashes = hashes[full:]

    def close(self) -> None:
        """Write the last (short) row group and close the file; an uncommitted item is dropped."""
        self.discard_item()
        if self._pending is not None:
            self.writer.write_table(self._pending, row_group_size=ROW_GROUP)
            self.hashes += self._pending_hashes
            self.count += self._pending.num_rows
            self._pending, self._pending_hashes = None, []
        self.writer.close()

    def abort(self) -> None:
        """Close without finishing (the caller removes the file)."""
        try:
            if self._spill is not None:
                self._spill.close()
        finally:
            self._spill_path.unlink(missing_ok=True)
            self.writer.close()


def fingerprint(sample_hashes: Iterable[str]) -> str:
    """Content fingerprint: sha256 over the ordered per-sample hashes (split order, shard order, row order)."""
    h = hashlib.sha256()
    for s in sample_hashes:
        h.update(s.encode())
        h.update(b"\n")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------- reading


def check_dataset(path: str | Path) -> Path:
    path = Path(path)
    if not (path / MANIFEST).is_file():
        named = path if path.name else path.resolve()  # "." and ".." have no name to put ".partial" after
        if named.name and named.with_name(named.name + ".partial").exists():
            raise DefectbenchError(f"{path}: the build did not finish (a .partial folder exists); run the build again to resume")
        raise DefectbenchError(f"{path} is not a defectbench dataset (no {MANIFEST}); build one with `defectbench build`")
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = check_dataset(path)
    return json.loads((path / MANIFEST).read_text())


def data_files(path: str | Path, split: str) -> list[Path]:
    path = check_dataset(path)
    if split not in SPLITS:
        raise DefectbenchError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return sorted((path / "data").glob(f"{split}-*.parquet"))


def iter_rows(path: str | Path, split: str, batch_size: int = ROW_GROUP, columns: list[str] | None = None,
              decode_audio: bool = True) -> Iterator[dict[str, Any]]:
    """Rows of one split in dataset order, audio decoded to a 1-D numpy array (float32 or int16)."""
    for file in data_files(path, split):
        pf = pq.ParquetFile(file)
        for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
            for row in batch.to_pylist():
                if "audio" in row and decode_audio:
                    audio, rate = read_wav_bytes(row["audio"]["bytes"])
                    row["audio"], row["rate"] = audio, rate
                if "target" in row:
                    row["target"] = np.asarray(row["target"], dtype=np.uint8)
                yield row


def count_rows(path: str | Path, split: str) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in data_files(path, split))


def load_hf(path: str | Path, **kwargs):
    """``datasets.load_dataset`` on a built folder, offline (a convenience for users and tests)."""
    import os

    from datasets import load_dataset

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return load_dataset(str(check_dataset(path)), **kwargs)


# ------------------------------------------------------------------------------------ the card


def _yaml_license(text: str) -> str:
    t = text.lower()
    if t.startswith("cc0"):
        return "cc0-1.0"
    return "other" if t != "unknown" else "unknown"


def dataset_card(manifest: dict[str, Any], features, card_section: str) -> str:
    """README.md: YAML front matter the Hub and ``load_dataset`` read, then the human part."""
    import yaml

    splits = [s for s in SPLITS if manifest["splits"].get(s, {}).get("shards", 0)]
    info = {
        "license": _yaml_license(manifest["source"]["license"]),
        "pretty_name": f"defectbench {manifest['recipe']['name']}",
        "task_categories": ["audio-classification"],
        "tags": ["audio", "defect-detection", "audio-quality", "defectbench", manifest["recipe"]["name"]],
        "configs": [{"config_name": "default",
                     "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": s, "num_bytes": manifest["splits"][s]["bytes"],
                        "num_examples": manifest["splits"][s]["samples"]} for s in splits],
        },
    }
    recipe = manifest["recipe"]
    lines = [
        "---", yaml.safe_dump(info, sort_keys=False).rstrip(), "---", "",
        f"# defectbench `{recipe['name']}`", "",
        f"{recipe['description']} Simulated as described in the {recipe['paper']}, by "
        f"defectbench {manifest['defectbench_version']}.", "",
        "## How it was built", "",
        f"- Recipe: `{recipe['name']}` (pipeline `{recipe['pipeline']}`, recipe file sha256 `{recipe['sha256'][:16]}...`)",
        f"- Source: `{manifest['source']['spec']}`: {manifest['source']['description']}",
        f"- Source licence: {manifest['source']['license']}",
        f"- Seed: {manifest['seed']}" + (f"; limit: {manifest['limit']} items per split" if manifest.get("limit") else ""),
        f"- Fingerprint: `{manifest['fingerprint']}` (sha256 over ordered per-sample hashes of audio, target, label and metadata)",
        f"- Rebuild: `defectbench build {recipe['name']} --source {manifest['source']['spec']} --seed {manifest['seed']}`"
        + (f" --limit {manifest['limit']}" if manifest.get("limit") else ""),
        "", card_section, "",
        "## Splits and labels", "",
        "| split | samples | " + " | ".join(manifest["label_names"]) + " | source items | skipped items |",
        "|---|---|" + "---|" * len(manifest["label_names"]) + "---|---|",
    ]
    for s in SPLITS:
        info_s = manifest["splits"].get(s, {})
        labels = info_s.get("labels", {})
        lines.append(f"| {s} | {info_s.get('samples', 0)} | " + " | ".join(str(labels.get(n, 0)) for n in manifest["label_names"])
                     + f" | {info_s.get('items', 0)} | {info_s.get('skipped', 0)} |")
    if manifest.get("task") == "multiclass":
        base = manifest["label_names"][0]
        lines += ["", f"Chunks per `{base}` chunk (all splits; the video paper's Table 1 is the model):", "",
                  "| " + " | ".join(manifest["label_names"][1:]) + " |", "|" + "---|" * (len(manifest["label_names"]) - 1)]
        totals = {n: sum(manifest["splits"].get(s, {}).get("labels", {}).get(n, 0) for s in SPLITS) for n in manifest["label_names"]}
        lines.append("| " + " | ".join(f"{totals[n] / totals[base]:.2f}" if totals[base] else "-" for n in manifest["label_names"][1:]) + " |")
    clipping = manifest.get("source_clipping") or {}
    if clipping.get("items"):
        lines += ["", f"{clipping['items']} source items had samples outside [-1, 1] ({clipping['samples']} samples "
                  "in all), clipped; each row's `source_clipped_samples` counts its item's."]
    for note in manifest.get("notes") or []:
        lines += ["", f"Note: {note}."]
    if manifest.get("counters"):
        lines += ["", "Build counters (summed over all splits): " + ", ".join(
            f"`{k}` {v:g}" for k, v in sorted(manifest["counters"].items())) + "."]
    lines += ["", "## Columns", "",
              "`audio` holds WAV bytes; `target` the framewise target; `label` the row's class; `params` "
              "every sampled defect parameter as JSON (passing it back to the defect's `apply` replays it); "
              "the other columns are the source and defect metadata.", "",
              "Load it with `datasets.load_dataset(\"<folder>\")`, or read it with "
              "`defectbench.dataset.iter_rows(folder, split)`.", ""]
    if manifest["skipped"]:
        lines += ["## Skipped source items", "", f"{len(manifest['skipped'])} source items were skipped; "
                  "`manifest.json` lists each with its reason.", ""]
    return "\n".join(lines)
