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
- **missed clicks**: inside a noise burst (within 50 ms after a snare or hi-hat onset) or not.

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


def piece_hits(item_id: str) -> list[tuple[str, int, float]]:
    from defectbench.sources.synth import generate_piece, piece_style

    events: list[tuple[str, int, float]] = []
    generate_piece(item_id, piece_style(item_id), events=events)
    return events


def analyse(result: dict, result_path: Path, split: str, threshold: float) -> dict:
    from defectbench.dataset import iter_rows

    key = "predictions" if split == result["dataset"]["split"] else "validation_predictions"
    table = pq.read_table(result_path.parent / result[key]["path"], columns=["id", "scores"]).to_pylist()
    scores = {r["id"]: np.asarray(r["scores"], dtype=np.float32) for r in table}
    hits_of: dict[str, list] = {}
    false_alarms: Counter = Counter()
    ticks, missed, clicks = [], [], []
    columns = ["id", "item_id", "start_sample", "target", "click_position", "click_amplitude"]
    for row in iter_rows(result["dataset"]["path"], split, columns=columns):
        if not row["item_id"].startswith("synth-"):
            raise SystemExit(f"{row['item_id']}: this analysis needs a build from the synth source")
        s, target = scores[row["id"]], np.asarray(row["target"]) > 0
        n = len(s) * FRAME
        if row["item_id"] not in hits_of:
            hits_of[row["item_id"]] = piece_hits(row["item_id"])
        hits = hits_of[row["item_id"]]
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
            clicks.append((float(row["click_amplitude"]), found))
            if not found:
                burst = [kind for kind, pos, _ in local
                         if kind in ("snare", "snare-electronic", "hihat") and 0 <= p - pos < BURST_SAMPLES]
                missed.append(sorted(burst, key=ORDER.index)[0] if burst else "no burst")
    return {"false_alarms": false_alarms, "ticks": ticks, "clicks": clicks, "missed": Counter(missed)}


def by_bin(pairs: list[tuple[float, bool]]) -> list[tuple[int, int]]:
    """(hits, count) of ``(amplitude, hit)`` pairs in each amplitude bin."""
    out = []
    for lo, hi in zip(AMPLITUDE_BINS, AMPLITUDE_BINS[1:]):
        chosen = [hit for amp, hit in pairs if lo <= amp < hi]
        out.append((sum(chosen), len(chosen)))
    return out


def rate(hits: int, count: int) -> str:
    return f"{100 * hits / count:.1f} % ({hits} / {count})" if count else "-"


def plot(analyses: dict[str, dict], recipe: str, threshold: float, path: Path) -> Path:
    """Per split: the fraction of ticks flagged and of clicks found, by amplitude bin (one bar each)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(analyses), figsize=(5 * len(analyses), 3.2), squeeze=False)
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
    fig.suptitle(f"{recipe} at threshold {threshold:.4f}: intentional ticks against clicks", fontsize=9)
    return finish_figure(fig, path)


def report(split: str, a: dict) -> str:
    fa = a["false_alarms"]
    fa_cells = ", ".join(f"{cause} {count}" for cause, count in fa.most_common()) or "none"
    bins = "\n".join(f"| {lo:.2f} to {hi:.2f} | {rate(*ticks)} | {rate(*clicks)} |"
                     for lo, hi, ticks, clicks in zip(AMPLITUDE_BINS, AMPLITUDE_BINS[1:], by_bin(a["ticks"]), by_bin(a["clicks"])))
    missed = ", ".join(f"{kind} {count}" for kind, count in a["missed"].most_common()) or "none"
    return f"""**{split}**: false-alarm frames {sum(fa.values())}, by what starts in the frame: {fa_cells}.
Missed clicks {sum(a['missed'].values())}, by the noise burst they sit in (50 ms after a snare or hi-hat onset): {missed}.

| amplitude | ticks flagged (tick peak) | clicks found (click offset) |
|---|---|---|
{bins}
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
