"""A real small fma-clicks build and real scoring runs on it, shared by the leaderboard tests.

The detectors here are tiny numpy click detectors (second-difference peak, frame energy, first-difference
energy): real detectors scored by the real runner (threshold chosen on validation, predictions, plots,
bootstrap intervals), only faster than SigClick, so the board tests stay within seconds.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from defectbench.detectors import Detector

FRAMES = 128


def _frames(x: np.ndarray) -> np.ndarray:
    return x.reshape(FRAMES, -1)


class PeakDiff(Detector):
    """Largest deviation of a sample from the mean of its neighbours, per frame (clicks are impulses)."""

    name = "peakdiff"
    tasks = ("framewise",)
    description = "second-difference peak per frame"

    def predict(self, batch):
        out = []
        for r in batch:
            x = np.asarray(r["audio"], dtype=np.float32)
            d = np.abs(x - 0.5 * (np.roll(x, 1) + np.roll(x, -1)))
            out.append(_frames(d).max(axis=1))
        return np.stack(out)


class Energy(Detector):
    """Frame RMS: a poor click detector (loud music looks like clicks)."""

    name = "energy"
    tasks = ("framewise",)
    description = "frame RMS"

    def predict(self, batch):
        return np.stack([np.sqrt((_frames(np.asarray(r["audio"], np.float32)) ** 2).mean(axis=1)) for r in batch])


class DiffEnergy(Detector):
    """RMS of the first difference per frame (a crude high-pass energy)."""

    name = "diffenergy"
    tasks = ("framewise",)
    description = "first-difference RMS"

    def predict(self, batch):
        out = []
        for r in batch:
            x = np.asarray(r["audio"], np.float32)
            out.append(np.sqrt((_frames(np.diff(x, prepend=x[:1])) ** 2).mean(axis=1)))
        return np.stack(out)


DETECTORS = (PeakDiff, Energy, DiffEnergy)
_cache: dict[str, object] = {}


def board_data(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """(datasets dir holding ``fma-clicks`` (synth, limit 2), {detector name: result.json})."""
    if "data" not in _cache:
        from defectbench.engine import build
        from defectbench.runner import run

        base = tmp_path_factory.mktemp("board-data")
        datasets = base / "datasets"
        build("fma-clicks", "synth", datasets / "fma-clicks", limit=2, progress=False)
        results = {}
        for cls in DETECTORS:
            out = base / "results" / "fma-clicks" / f"{cls.name}.json"
            run(cls(), datasets / "fma-clicks", out=out, workers=1, criterion="f1", show_progress=False)
            results[cls.name] = out
        _cache["data"] = (datasets, results)
    return _cache["data"]  # type: ignore[return-value]


def fresh_board(tmp_path: Path, results: dict[str, Path], names=None) -> Path:
    """A leaderboard folder with the given results submitted (copied with predictions and plots)."""
    from defectbench.leaderboard import submit

    root = tmp_path / "leaderboard"
    for name in names or results:
        submit(results[name], name, root)
    return root


def copy_board(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------- a small 5-way task ---

LABELS = ["no_defect", "hum", "hiss", "distortion", "click"]


def five_way_dataset(folder: Path, rate: int = 8000) -> Path:
    """A small hand-written 5-way dataset in the engine's format (parquet shards + manifest, the
    fingerprint over the engine's per-row hashes): each row is 0.1 s of a tone whose level grows with
    the class index, with noise, in 4 "videos" per split (the bootstrap groups)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from defectbench.audio_io import read_wav_bytes, wav_bytes
    from defectbench.dataset import fingerprint as content_fingerprint
    from defectbench.dataset import row_hash

    (folder / "data").mkdir(parents=True)
    rng = np.random.default_rng(7)
    hashes, splits = [], {}
    for split in ("train", "validation", "test"):
        rows = []
        for video in range(4):
            for k in range(len(LABELS)):
                for rep in range(3):
                    t = np.arange(rate // 10) / rate
                    x = (0.1 * (k + 1) * np.sin(2 * np.pi * 440 * t) + 0.08 * rng.standard_normal(len(t))).astype(np.float32)
                    rid = f"{split}-v{video}-{k}-{rep}"
                    rows.append({"id": rid, "audio": {"bytes": wav_bytes(x, rate), "path": None},
                                 "target": [int(k > 0)] * 10, "label": k, "split": split, "item_id": f"{split}-v{video}",
                                 "params": json.dumps({LABELS[k]: {"level": 0.1 * (k + 1)}} if k else {})})
                    stored = {k: v for k, v in rows[-1].items() if k != "audio"}
                    hashes.append(row_hash(stored, read_wav_bytes(rows[-1]["audio"]["bytes"])[0]))
        pq.write_table(pa.Table.from_pylist(rows), folder / "data" / f"{split}-00000-of-00001.parquet")
        splits[split] = {"samples": len(rows), "items": 4, "skipped": 0, "shards": 1,
                         "labels": {n: 12 for n in LABELS}}
    fingerprint = content_fingerprint(hashes)
    manifest = {"defectbench_version": "test", "recipe": {"name": "toy-5way", "sha256": "0" * 64},
                "task": "multiclass", "label_names": LABELS, "seed": 0, "limit": None,
                "source": {"spec": "hand-written test rows", "description": "", "license": "CC0-1.0"},
                "splits": splits, "fingerprint": fingerprint}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


class Level(Detector):
    """Class from the RMS level (the toy data's classes differ in level): mostly right."""

    name = "level"
    tasks = ("multiclass",)

    def predict(self, batch):
        rms = np.array([np.sqrt(np.mean(np.asarray(r["audio"], np.float32) ** 2)) for r in batch])
        centres = np.sqrt((0.1 * np.arange(1, 6)) ** 2 / 2 + 0.08 ** 2)
        return -np.abs(rms[:, None] - centres[None, :])


class Always(Detector):
    """Always "no_defect": balanced accuracy 0.2."""

    name = "always"
    tasks = ("multiclass",)

    def predict(self, batch):
        out = np.zeros((len(batch), len(LABELS)), np.float32)
        out[:, 0] = 1.0
        return out


def five_way_data(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """(datasets dir holding ``toy-5way``, {detector name: result.json})."""
    if "five" not in _cache:
        from defectbench.runner import run

        base = tmp_path_factory.mktemp("five-way")
        dataset = five_way_dataset(base / "datasets" / "toy-5way")
        results = {}
        for cls in (Level, Always):
            out = base / "results" / "toy-5way" / f"{cls.name}.json"
            run(cls(), dataset, out=out, workers=1, show_progress=False)
            results[cls.name] = out
        _cache["five"] = (base / "datasets", results)
    return _cache["five"]  # type: ignore[return-value]
