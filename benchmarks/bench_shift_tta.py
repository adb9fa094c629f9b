"""Shift averaging at test time for a Hook-Net: does scoring each segment at several frame offsets help?

Hook-Net pools 16384 samples down to 2 before expanding to 128 frames, so it is not equivariant to a shift
of whole frames (128 samples): the same click, moved by k frames, meets its pooling grid at another place.
This script scores every segment of a split as it is and shifted by k frames (zero-padded at the side it
moves away from), maps each view's frames back to the segment's own frames (a view has no score for the
k frames its padding replaced), and reports, for every combination of views that includes the segment
as it is, the mean of the logits: the best frame F1 over all thresholds (an oracle threshold, for
analysis only, read on a validation split), its false-alarm and missed frames, and the average precision.

    python benchmarks/bench_shift_tta.py datasets/bench/fma-clicks-post --recipe fma-clicks-post --shifts 0,2,-2,5,-5
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _results import machine, write_section  # noqa: E402

HOP = 128  # samples per Hook-Net output frame (16384 in, 128 out)


def shift(x: torch.Tensor, k: int, hop: int = HOP) -> torch.Tensor:
    """``x`` [B, n] moved k frames later (k > 0) or earlier (k < 0), zeros where it moved away from."""
    if k == 0:
        return x
    pad = torch.zeros(len(x), abs(k) * hop, dtype=x.dtype)
    return torch.cat([pad, x[:, : -k * hop]], 1) if k > 0 else torch.cat([x[:, -k * hop :], pad], 1)


def shifted_views(frames_of, x: torch.Tensor, shifts: list[int], hop: int = HOP) -> np.ndarray:
    """[B, len(shifts), F]: ``frames_of`` ([B, n] -> [B, F]) on each shifted copy of ``x``, each view's
    frame f being the frame that holds the segment's own samples [f*hop, (f+1)*hop); NaN where a view's
    frame holds only padding."""
    out = None
    for j, k in enumerate(shifts):
        v = np.asarray(frames_of(shift(x, k, hop)), dtype=np.float32)
        if out is None:
            out = np.full((len(x), len(shifts), v.shape[1]), np.nan, np.float32)
        n = v.shape[1]
        if k >= 0:
            out[:, j, : n - k] = v[:, k:]
        else:
            out[:, j, -k:] = v[:, : n + k]
    return out


def best_f1(targets: np.ndarray, scores: np.ndarray) -> tuple[float, int, int]:
    """Best frame F1 (percent) over all thresholds (the runner's own choice with ``--criterion f1``), with
    its false-alarm and missed frames."""
    from defectbench.runner import best_score_threshold

    threshold, metrics = best_score_threshold(targets, scores, "f1")
    targets, flagged = np.asarray(targets, dtype=bool), np.asarray(scores) >= threshold
    return metrics["f1"], int((flagged & ~targets).sum()), int((~flagged & targets).sum())


def score_split(dataset: Path, split: str, weights: Path, shifts: list[int], batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    from defectbench.audio_io import as_float32
    from defectbench.dataset import count_rows, iter_rows
    from defectbench.progress import item_progress
    from models.hooknet import HookNetDetector

    model = HookNetDetector(checkpoint=weights, device="cpu").model.eval()
    views, targets, buf = [], [], []

    with item_progress(f"{split}: {len(shifts)} views", count_rows(dataset, split), unit="segments") as advance:

        def flush() -> None:
            with torch.inference_mode():
                views.append(shifted_views(lambda v: model(v).numpy(), torch.from_numpy(np.stack(buf)), shifts))
            advance(len(buf))
            buf.clear()

        for row in iter_rows(dataset, split, columns=["target", "audio"]):
            targets.append(np.asarray(row["target"]) > 0)
            buf.append(as_float32(row["audio"]))
            if len(buf) == batch:
                flush()
        if buf:
            flush()
    return np.concatenate(views), np.stack(targets)


def main() -> None:
    from defectbench import weights as W
    from defectbench.metrics import average_precision

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--recipe", required=True, help="whose shipped Hook-Net weights to score")
    ap.add_argument("--split", default="validation")
    ap.add_argument("--shifts", default="0,2,-2,5,-5", help="frame offsets; 0 (the segment as it is) must be one")
    ap.add_argument("--print-only", action="store_true")
    args = ap.parse_args()
    shifts = [int(s) for s in args.shifts.split(",")]
    if 0 not in shifts:
        raise SystemExit("--shifts must include 0, the segment as it is")
    weights = W.resolve("hooknet", args.recipe)
    views, targets = score_split(args.dataset, args.split, weights, shifts)
    lines = ["| views (frame offsets) | best F1 over thresholds | false-alarm frames | missed frames | AP |", "|---|---:|---:|---:|---:|"]
    zero = shifts.index(0)
    for r in range(1, len(shifts) + 1):
        for combo in itertools.combinations(range(len(shifts)), r):
            if zero not in combo:
                continue
            scores = np.nanmean(views[:, list(combo)], axis=1)  # every frame has the unshifted view
            f1, fa, miss = best_f1(targets, scores)
            lines.append(f"| {', '.join(f'{shifts[i]:+d}' if shifts[i] else '0' for i in combo)} | {f1:.2f} | {fa} | {miss} | "
                         f"{average_precision(targets, scores):.2f} |")
    body = (f"Machine: {machine()}.\n\n`python benchmarks/bench_shift_tta.py {args.dataset} --recipe {args.recipe} --split "
            f"{args.split} --shifts {args.shifts}`: shipped weights `{W.sha256_file(weights)[:8]}`, {len(targets)} segments, "
            f"{int(targets.sum())} positive frames; the mean of the logits of the views.\n\n" + "\n".join(lines) + "\n")
    print(body)
    if not args.print_only:
        write_section(f"Shift averaging at test time, {args.recipe} (issue 11)", body)


if __name__ == "__main__":
    main()
