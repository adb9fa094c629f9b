"""Figures written beside a result: precision-recall curve (framewise tasks), confusion matrix (5-way)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402

from . import metrics as M  # noqa: E402


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
    fig.savefig(path, dpi=120)
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
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
