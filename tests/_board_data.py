"""A real small fma-clicks build and real scoring runs on it, shared by the leaderboard tests.

The detectors here are tiny numpy click detectors (second-difference peak, frame energy, first-difference
energy): real detectors scored by the real runner (threshold chosen on validation, predictions, plots,
bootstrap intervals), only faster than SigClick, so the board tests stay within seconds. The 5-way task is
an engine build too (a ``video-artifacts`` variant from synth, tests/models_fixtures.py), scored with an oracle
that is deaf to one class and a constant detector.
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


def five_way_dataset(folder: Path) -> Path:
    """``folder/toy-5way``: a 5-way dataset built by the real engine from synth, with a test variant of the
    ``video-artifacts`` recipe (short defect intervals, so that one piece per split holds every class); its
    recipe name is no shipped recipe's, so the board accepts it only as a recorded reference build."""
    from models_fixtures import video_dataset

    return video_dataset(folder, name="toy-5way")


class DeafToDistortion(Detector):
    """Reads each row's own label (an oracle) but never says "distortion": says "no_defect" instead, so its
    balanced accuracy is 0.8 wherever every class is present, and its weakest class is distortion."""

    name = "deaf"
    tasks = ("multiclass",)

    def predict(self, batch):
        labels = np.array([int(r["label"]) for r in batch])
        labels[labels == LABELS.index("distortion")] = 0
        return np.eye(len(LABELS), dtype=np.float32)[labels]


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
        dataset = five_way_dataset(base / "datasets")
        results = {}
        for cls in (DeafToDistortion, Always):
            out = base / "results" / "toy-5way" / f"{cls.name}.json"
            run(cls(), dataset, out=out, workers=1, show_progress=False)
            results[cls.name] = out
        _cache["five"] = (base / "datasets", results)
    return _cache["five"]  # type: ignore[return-value]
