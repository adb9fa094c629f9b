"""What a click detector's errors sit on, in the built-in ``synth`` corpus (issue 11).

    python benchmarks/bench_click_errors.py [results/bench/fma-clicks-post/hooknet.json] [--splits validation,test]
        [--threshold T] [--print-only]

The synth corpus holds *intentional* transients on purpose (SPEC 1.5): "ticks" (one to three samples,
like a click, with a faint 1 ms noise tail), electronic snares (a one-sample step into a noise burst),
hi-hats (short noise bursts). This script regenerates each piece of a scored synth build with
``generate_piece(..., events=...)``, which records every drum hit (kind, start sample, peak in the
normalised piece) without changing the audio, and sorts the detector's errors by what the synth put
there:

- **false alarms**: frames at or above the threshold whose target is 0, by the drum hit that starts in
  the frame (a tick, an electronic snare's step, a hi-hat's onset, ...), or "next to a click" (within two
  frames of a labelled click), or "nothing";
- **ticks**: every tick in the split and the fraction the detector flags, by the tick's peak amplitude,
  beside the click recall for the same amplitude bins: where the two ranges overlap, a detector that
  looks only at the transient must trade one for the other;
- **missed clicks**: inside a noise burst (within 50 ms after a snare or hi-hat onset) or not;
- **clicks found by local z**: the click's largest sample-to-sample jump in the audio the detector
  sees, over the robust scale (1.4826 x median) of the jumps within 64 samples either side, the click
  left out; and how many such clicks have *rivals*, other samples within 1024 whose own jump stands as
  high by the same measure (``local_z``). Where prominence averages over 46 ms, this follows a drum
  hit's envelope at the click.
- **clicks found by prominence**: a click's offset ``a`` over the RMS of the clean piece's sample-to-sample
  jumps within 1024 samples (23 ms) either side. The jumps into and out of a click of prominence 3 stand 3
  sigma above the music's jumps around it, as a few in every thousand of those jumps do if they are
  Gaussian. It is a measure of difficulty, not a bound: a 2- or 3-sample click adds its offset to each of
  its samples, which a filter matched to it sums, and music is not Gaussian noise. For
  ``fma-clicks-post`` it is measured before the SoX chain.

Reads a result JSON written by ``defectbench run`` on ``fma-clicks`` or ``fma-clicks-post`` built from
``synth`` and its predictions parquets (``--splits validation,test``: the validation predictions the same
run stored, and the scored split's). Nothing is trained or tuned; the threshold is the result's (chosen on validation) unless
``--threshold`` names another (a card's F1-chosen one).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, finish_figure, machine, read_result, result_arguments, write_section  # noqa: E402

BURST_SAMPLES = int(0.05 * 44100)  # a snare's or hi-hat's noise is loudest over its first 50 ms
AMPLITUDE_BINS = (0.0, 0.15, 0.3, 0.45, 0.65, 1.0)
FRAME = 128
ORDER = ["tick", "snare-electronic", "hihat", "snare", "kick"]  # which hit names an error when several lie there
PROMINENCE_WINDOW = 1024  # samples either side of a click over which the music's jumps are measured
PROMINENCE_BINS = (0.0, 3.0, 4.0, 6.0, 8.0, np.inf)
LOCAL_Z_WINDOW = 64  # samples either side over which the robust scale of the jumps around a sample is taken
LOCAL_Z_GUARD = 4  # samples either side of a click left out of its own scale
LOCAL_Z_BINS = (0.0, 3.0, 4.0, 5.0, 6.0, 8.0, np.inf)


def piece_hits(item_id: str) -> tuple[list[tuple[str, int, float]], np.ndarray]:
    """The drum hits of a synth piece and its clean audio (1-D float32)."""
    from defectbench.sources.synth import generate_piece, piece_style

    events: list[tuple[str, int, float]] = []
    audio, _ = generate_piece(item_id, piece_style(item_id), events=events)
    return events, audio[0]


def prominence(clean: np.ndarray, position: int, amplitude: float) -> float:
    """``amplitude`` over the RMS of ``clean``'s sample-to-sample jumps within PROMINENCE_WINDOW of ``position``."""
    local = np.diff(clean[max(0, position - PROMINENCE_WINDOW) : position + PROMINENCE_WINDOW + 1].astype(np.float64))
    rms = float(np.sqrt(np.mean(local**2)))
    return amplitude / rms if rms > 0 else np.inf


def _robust_scale(jumps: np.ndarray) -> np.ndarray | float:
    """1.4826 x the median absolute jump: the standard deviation where the jumps are Gaussian, unmoved by a click."""
    return 1.4826 * np.median(jumps, axis=-1) + 1e-12


def local_z(audio: np.ndarray, position: int, length: int) -> tuple[float, int]:
    """How far a click's largest jump stands above the jumps around it, in the audio the detector sees.

    Returns ``(z, rivals)``: ``z`` is the click's largest sample-to-sample jump (into, within or out of it)
    over the robust scale of the jumps within LOCAL_Z_WINDOW samples either side (the click and
    LOCAL_Z_GUARD samples around it left out); ``rivals`` counts the other samples within
    PROMINENCE_WINDOW whose own jump stands at least as high by the same measure. A detector that only
    weighs a jump against its neighbours' cannot flag a click with rivals without flagging them too; one
    that knows more (the click's shape, the music's structure) may, so this is a difficulty, not a bound.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    w, guard = LOCAL_Z_WINDOW, LOCAL_Z_GUARD
    jumps = np.abs(np.diff(audio.astype(np.float64), prepend=float(audio[0])))
    lo, hi = max(0, position - w), min(len(jumps), position + length + 1 + w)
    around = np.r_[jumps[lo : max(lo, position - guard)], jumps[min(hi, position + length + 1 + guard) : hi]]
    z = float(jumps[position : position + length + 1].max() / _robust_scale(around))
    a, b = max(0, position - PROMINENCE_WINDOW), min(len(jumps), position + PROMINENCE_WINDOW)
    padded = np.pad(jumps, w, mode="reflect")[a : b + 2 * w]  # each sample's +-w neighbourhood (itself included)
    zs = jumps[a:b] / _robust_scale(sliding_window_view(padded, 2 * w + 1))
    keep = np.ones(b - a, dtype=bool)
    keep[max(0, position - guard - a) : position + length + 1 + guard - a] = False
    return z, int((zs[keep] >= z).sum())


def analyse(result: dict, result_path: Path, split: str, threshold: float) -> dict:
    from defectbench.audio_io import as_float32
    from defectbench.dataset import iter_rows

    key = "predictions" if split == result["dataset"]["split"] else "validation_predictions"
    table = pq.read_table(result_path.parent / result[key]["path"], columns=["id", "scores"]).to_pylist()
    scores = {r["id"]: np.asarray(r["scores"], dtype=np.float32) for r in table}
    hits_of: dict[str, tuple[list, np.ndarray]] = {}
    false_alarms: Counter = Counter()
    ticks, missed, clicks = [], [], []
    columns = ["id", "item_id", "start_sample", "target", "click_position", "click_amplitude", "click_length", "audio"]
    for row in iter_rows(result["dataset"]["path"], split, columns=columns):
        if not row["item_id"].startswith("synth-"):
            raise SystemExit(f"{row['item_id']}: this analysis needs a build from the synth source")
        s, target = scores[row["id"]], np.asarray(row["target"]) > 0
        n = len(s) * FRAME
        if row["item_id"] not in hits_of:
            hits_of[row["item_id"]] = piece_hits(row["item_id"])
        hits, piece = hits_of[row["item_id"]]
        start = int(row["start_sample"])
        local = [(kind, pos - start, peak) for kind, pos, peak in hits if start - BURST_SAMPLES <= pos < start + n]
        flagged = s >= threshold
        near_click = np.convolve(target.astype(int), np.ones(5, dtype=int), mode="same") > 0
        for f in np.flatnonzero(flagged & ~target):
            kinds = [kind for kind, pos, _ in local if f * FRAME <= pos < (f + 1) * FRAME]
            cause = "next to a click" if near_click[f] else (sorted(kinds, key=ORDER.index)[0] if kinds else "nothing")
            false_alarms[cause] += 1
        for kind, pos, peak in local:
            if kind == "tick" and 0 <= pos < n:
                ticks.append((peak, bool(flagged[pos // FRAME])))
        if row["click_position"] is not None:
            p = int(row["click_position"])
            found = bool(flagged[target].any())
            amplitude = float(row["click_amplitude"])
            z, rivals = local_z(as_float32(row["audio"]), p, int(row["click_length"]))
            clicks.append((amplitude, found, prominence(piece[start : start + n], p, amplitude), z, rivals))
            if not found:
                burst = [kind for kind, pos, _ in local
                         if kind in ("snare", "snare-electronic", "hihat") and 0 <= p - pos < BURST_SAMPLES]
                missed.append(sorted(burst, key=ORDER.index)[0] if burst else "no burst")
    return {"false_alarms": false_alarms, "ticks": ticks, "clicks": clicks, "missed": Counter(missed)}


def by_bin(rows: list[tuple], bins: tuple[float, ...] = AMPLITUDE_BINS, key: int = 0) -> list[tuple[int, int]]:
    """(hits, count) of ``(value, hit, ...)`` rows in each bin of ``row[key]``."""
    out = []
    for lo, hi in zip(bins, bins[1:]):
        chosen = [row[1] for row in rows if lo <= row[key] < hi]
        out.append((sum(chosen), len(chosen)))
    return out


def rate(hits: int, count: int) -> str:
    return f"{100 * hits / count:.1f} % ({hits} / {count})" if count else "-"


def plot(analyses: dict[str, dict], recipe: str, threshold: float, path: Path) -> Path:
    """Per split (a column each): ticks flagged and clicks found by amplitude bin; below, clicks found by prominence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(analyses), figsize=(5 * len(analyses), 9.0), squeeze=False)
    labels = [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(AMPLITUDE_BINS, AMPLITUDE_BINS[1:])]
    x = np.arange(len(labels))
    for ax, (split, a) in zip(axes[0], analyses.items()):
        for offset, (name, pairs, colour) in zip((-0.2, 0.2), (("ticks flagged (false alarms)", a["ticks"], "C3"),
                                                               ("clicks found", a["clicks"], "C0"))):
            values = [100 * hits / count if count else np.nan for hits, count in by_bin(pairs)]
            ax.bar(x + offset, values, width=0.4, color=colour, label=name)
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_xlabel("amplitude (tick peak / click offset)", fontsize=8)
        ax.set_ylabel("%", fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_title(f"{split}: {sum(a['false_alarms'].values())} false-alarm frames, "
                     f"{sum(a['missed'].values())} clicks missed", fontsize=8)
        ax.legend(fontsize=7, loc="center left")
    p_labels = [f"{lo:g}-{hi:g}".replace("-inf", "+") for lo, hi in zip(PROMINENCE_BINS, PROMINENCE_BINS[1:])]
    for ax, (split, a) in zip(axes[1], analyses.items()):
        counts = by_bin(a["clicks"], PROMINENCE_BINS, 2)
        px = np.arange(len(p_labels))
        ax.bar(px, [100 * h / c if c else np.nan for h, c in counts], width=0.6, color="C0")
        for i, (h, c) in enumerate(counts):  # the counts above each bar ("-": no click in the bin)
            ax.text(i, min(100 * h / c, 90) + 3 if c else 3, f"{h}/{c}" if c else "-", ha="center", fontsize=7)
        ax.set_xticks(px, p_labels, fontsize=7)
        ax.set_xlabel("click prominence (offset / RMS of the music's local jumps)", fontsize=8)
        ax.set_ylabel("clicks found, %", fontsize=8)
        ax.set_ylim(0, 105)
    z_labels = [f"{lo:g}-{hi:g}".replace("-inf", "+") for lo, hi in zip(LOCAL_Z_BINS, LOCAL_Z_BINS[1:])]
    for ax, (split, a) in zip(axes[2], analyses.items()):
        counts = by_bin(a["clicks"], LOCAL_Z_BINS, 3)
        zx = np.arange(len(z_labels))
        ax.bar(zx, [100 * h / c if c else np.nan for h, c in counts], width=0.6, color="C2")
        for i, (h, c) in enumerate(counts):
            ax.text(i, min(100 * h / c, 90) + 3 if c else 3, f"{h}/{c}" if c else "-", ha="center", fontsize=7)
        ax.set_xticks(zx, z_labels, fontsize=7)
        ax.set_xlabel(f"click local z (largest jump / robust scale of the jumps within {LOCAL_Z_WINDOW} samples)", fontsize=8)
        ax.set_ylabel("clicks found, %", fontsize=8)
        ax.set_ylim(0, 105)
    fig.suptitle(f"{recipe} at threshold {threshold:.4f}: intentional ticks against clicks", fontsize=9)
    return finish_figure(fig, path)


def report(split: str, a: dict) -> str:
    fa = a["false_alarms"]
    fa_cells = ", ".join(f"{cause} {count}" for cause, count in fa.most_common()) or "none"
    bins = "\n".join(f"| {lo:.2f} to {hi:.2f} | {rate(*ticks)} | {rate(*clicks)} |"
                     for lo, hi, ticks, clicks in zip(AMPLITUDE_BINS, AMPLITUDE_BINS[1:], by_bin(a["ticks"]), by_bin(a["clicks"])))
    prominent = "\n".join(f"| {lo:g} to {hi:g} | {rate(*found)} |".replace("to inf", "and above")
                          for lo, hi, found in zip(PROMINENCE_BINS, PROMINENCE_BINS[1:], by_bin(a["clicks"], PROMINENCE_BINS, 2)))
    z_rows = []
    for lo, hi in zip(LOCAL_Z_BINS, LOCAL_Z_BINS[1:]):
        chosen = [c for c in a["clicks"] if lo <= c[3] < hi]
        found = sum(c[1] for c in chosen)
        rivalled = [c for c in chosen if c[4] > 0]
        z_rows.append(f"| {lo:g} to {hi:g} | {rate(found, len(chosen))} | {len(rivalled)} | {sum(c[1] for c in rivalled)} |"
                      .replace("to inf", "and above"))
    local = "\n".join(z_rows)
    missed = ", ".join(f"{kind} {count}" for kind, count in a["missed"].most_common()) or "none"
    return f"""**{split}**: false-alarm frames {sum(fa.values())}, by what starts in the frame: {fa_cells}.
Missed clicks {sum(a['missed'].values())}, by the noise burst they sit in (50 ms after a snare or hi-hat onset): {missed}.

| amplitude | ticks flagged (tick peak) | clicks found (click offset) |
|---|---|---|
{bins}

| prominence (offset / local RMS jump) | clicks found |
|---|---|
{prominent}

| local z (largest jump / robust scale of the jumps within {LOCAL_Z_WINDOW} samples) | clicks found | with rivals (a sample within {PROMINENCE_WINDOW} at or above it) | of those, found |
|---|---|---|---|
{local}
"""


def main() -> None:
    ap = result_arguments(__doc__, Path("results/bench/fma-clicks-post/hooknet.json"))
    args = ap.parse_args()
    result = read_result(args.result, ("fma-clicks", "fma-clicks-post"))
    threshold = result["threshold"]["decision"] if args.threshold is None else args.threshold
    splits = args.splits.split(",")
    recipe = result["dataset"]["recipe"]
    weights = (result["model"].get("weights_sha256") or "-")[:8]
    body = f"""Machine: {machine()}.

`python benchmarks/bench_click_errors.py {args.result} --splits {args.splits}{'' if args.threshold is None else f' --threshold {threshold:g}'}`:
`{result['dataset']['path']}`, model `{result['model']['name']}` (weights `{weights}`), threshold {threshold:.4f}. Each
piece is regenerated with its drum hits recorded (`generate_piece(..., events=...)`). A tick's amplitude
is its peak in the normalised piece, a click's is its offset `a` (SPEC 1.1: `a ~ U[0.3, 1)`).

"""
    analyses = {split: analyse(result, args.result, split, threshold) for split in splits}
    body += "\n".join(report(split, a) for split, a in analyses.items())
    print(body)
    if not args.print_only:
        png = plot(analyses, recipe, threshold, RESULTS.parent / f"click_errors-{recipe}.png")
        body += f"\nFigure: `{png.name}`.\n"
        write_section(f"What the {recipe} errors sit on (issue 11)", body)


if __name__ == "__main__":
    main()
