"""Figures written beside a result: precision-recall curve (framewise tasks), confusion matrix (5-way)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402

from . import metrics as M  # noqa: E402
from .owned_files import save_figure  # noqa: E402


def precision_recall(
    path: Path, targets: np.ndarray, scores: np.ndarray, decision: float | None, title: str
) -> Path | None:
    """Step precision-recall curve of the framewise scores, the operating point marked. None if no positive."""
    if not np.asarray(targets).any():
        return None
    precision, recall, _ = M.precision_recall_curve(targets, scores)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.step(np.r_[0.0, recall], np.r_[precision[0], precision], where="post", color="C0")
    if decision is not None:
        m = M.binary_from_counts(M.binary_counts(targets, np.asarray(scores) >= decision))
        if m["precision"] is not None and m["recall"] is not None:
            ax.plot(m["recall"] / 100, m["precision"] / 100, "o", color="C3", label=f"threshold (score >= {decision:g})")
            ax.legend(loc="lower left")
    ap = M.average_precision(targets, scores)
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1.01), ylim=(0, 1.01), title=f"{title}\nAP {ap:.2f} %")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


def confusion(path: Path, normalized: Sequence[Sequence[float | None]], label_names: Sequence[str], title: str) -> Path:
    """Confusion matrix normalised per true class (rows), as the video paper's figure."""
    cm = np.array([[np.nan if v is None else v for v in row] for row in normalized], dtype=float)
    k = len(label_names)
    fig, ax = plt.subplots(figsize=(1.1 * k + 2, 1.0 * k + 1.5))
    ax.imshow(cm, vmin=0, vmax=1, cmap="Blues")
    for i in range(k):
        for j in range(k):
            if not np.isnan(cm[i, j]):
                ax.text(j, i, f"{cm[i, j]:.3f}", ha="center", va="center", color="white" if cm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), label_names, rotation=30, ha="right")
    ax.set_yticks(range(k), label_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


def _numbers(params, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a params dict (nested dicts and the first list item followed), for a title.

    Position-like keys (offsets, indexes, boundaries) are left out: they say where, not what."""
    skip = ("index", "start", "end", "offset", "seed", "segment")
    out: dict[str, float] = {}
    if isinstance(params, list):
        return _numbers(params[0], prefix) if params and isinstance(params[0], dict) else out
    for k, v in params.items() if isinstance(params, dict) else []:
        if isinstance(v, (dict, list)):
            out.update(_numbers(v, prefix))
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and not any(s in k for s in skip):
            out[prefix + k] = v
    return out


def example_spectrograms(dataset: str | Path, path: Path, per_label: int = 3, split: str = "test") -> Path:
    """A grid of log spectrograms of the first ``per_label`` rows of each label of ``split``, with the
    framewise target drawn under each (red where the target is 1) and the row's main parameters in
    its title: what a defect looks like, and where the target says it is."""
    import json

    from scipy.signal import stft

    from .dataset import iter_rows, read_manifest

    names = read_manifest(dataset)["label_names"]
    picked: dict[int, list[dict]] = {i: [] for i in range(len(names))}
    for row in iter_rows(dataset, split):
        if len(picked[row["label"]]) < per_label:
            picked[row["label"]].append(row)
        if all(len(v) == per_label for v in picked.values()):
            break
    fig, axes = plt.subplots(2 * len(names), per_label, figsize=(4 * per_label, 2.6 * len(names)),
                             gridspec_kw={"height_ratios": [8, 1] * len(names)}, squeeze=False,
                             layout="constrained")
    for i, name in enumerate(names):
        for j in range(per_label):
            spec_ax, target_ax = axes[2 * i, j], axes[2 * i + 1, j]
            if j >= len(picked[i]):
                spec_ax.axis("off"), target_ax.axis("off")
                continue
            row = picked[i][j]
            x = row["audio"].astype(np.float32)
            x = x / 32768.0 if row["audio"].dtype == np.int16 else x
            f, t, z = stft(x, fs=row["rate"], nperseg=512, noverlap=384)
            spec_ax.pcolormesh(t, f / 1000, 20 * np.log10(np.abs(z) + 1e-7), shading="auto", vmin=-120, vmax=-20, cmap="magma")
            shown = _numbers(json.loads(row.get("params") or "{}"))
            detail = ", ".join(f"{k} {v:.3g}" for k, v in list(shown.items())[:3])
            spec_ax.set_title(f"{name}: {row['id']}\n{detail}", fontsize=8)
            spec_ax.set_ylabel("kHz", fontsize=8)
            spec_ax.set_xticks([])
            target = np.asarray(row["target"], dtype=float)[None, :]
            target_ax.imshow(target, aspect="auto", cmap="Reds", vmin=0, vmax=1, interpolation="nearest",
                             extent=(0, len(x) / row["rate"], 0, 1))
            target_ax.set_yticks([])
            target_ax.tick_params(labelsize=7)
            target_ax.set_xlabel("seconds; target (red: 1)", fontsize=7)
    fig.suptitle(f"{read_manifest(dataset)['recipe']['name']}: {split} examples per label", fontsize=10)
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path


def detection_timeline(result, path: Path, threshold: float | None, max_points: int = 4000) -> Path:
    """One file's ``defectbench detect`` timeline: waveform envelope, frame scores and threshold, events.

    ``result``: a ``detect.FileResult`` (per-frame scores and waveform min/max for framewise models;
    events only for CNN6). Long files are reduced to ``max_points`` columns (min/max of the envelope,
    max of the scores), so a peak is never averaged away.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fs = result.frame_seconds or 1.0
    has_frames = result.frames is not None and len(result.frames) > 0
    fig, axes = plt.subplots(2 if has_frames else 1, 1, figsize=(11, 4.5 if has_frames else 2.5), sharex=True,
                             squeeze=False)
    axes = axes[:, 0]
    if has_frames:
        env, scores = np.asarray(result.envelope), np.asarray(result.frames)
        n = min(len(env), len(scores))
        k = max(1, int(np.ceil(n / max_points)))
        m = n // k * k
        t = np.arange(m // k) * k * fs
        lo, hi = env[:m, 0].reshape(-1, k).min(axis=1), env[:m, 1].reshape(-1, k).max(axis=1)
        axes[0].fill_between(t, lo, hi, color="0.4", linewidth=0)
        axes[0].set(ylabel="waveform", ylim=(-1.05, 1.05))
        axes[1].plot(t, scores[:m].reshape(-1, k).max(axis=1), color="C0", linewidth=0.8)
        if threshold is not None:
            axes[1].axhline(threshold, color="C3", linestyle="--", linewidth=0.8, label=f"threshold {threshold:.3g}")
            axes[1].legend(loc="upper right", fontsize="small")
        axes[1].set(ylabel="score", ylim=(-0.02, 1.02))
    for e in result.events:
        for ax in axes:
            ax.axvspan(e.start, max(e.end, e.start + fs), color="C3", alpha=0.3, linewidth=0)
        axes[-1].plot([e.start], [1.0 if has_frames else 0.9], "v", color="C3", markersize=5)
        if not has_frames:
            axes[0].text(e.start, 0.5, e.label, fontsize="x-small", rotation=90, va="center")
    if not has_frames:
        axes[0].set(yticks=[], ylabel="events")
    axes[-1].set(xlabel="time (s)", xlim=(0, max(result.seconds, fs)))
    axes[0].set_title(f"{Path(result.path).name}: {len(result.events)} event(s)", fontsize="medium")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
