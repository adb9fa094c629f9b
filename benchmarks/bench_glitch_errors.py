"""What an MP3-glitch detector's errors sit on, in a ``fma-mp3-glitch`` build from ``synth`` (issue 11).

    python benchmarks/bench_glitch_errors.py [leaderboard/submissions/fma-mp3-glitch/hooknet/result.json]
        [--splits validation,test] [--threshold T] [--print-only]

The glitch target (SPEC 1.3) is 1 where the log-spectral distance between the corrupted and the clean
decode passes ``threshold_db`` (0.5 dB), frame by frame. The detector sees only the corrupted audio. This
script replays each piece of the scored build with the recipe's own defect (``Mp3Glitch.run`` on the
piece's recorded params, the same call the build made), checks that the replayed target is the stored
one, and sorts the detector's frame errors by what the clean-vs-corrupted distance says about them:

- **missed frames**: at a region's edge (within one frame of a 0/1 transition of the target), inside a
  region the detector found elsewhere, or in a region it missed entirely; and by the frame's own distance;
- **regions** (runs of positive frames): the fraction found (any frame flagged), by the region's largest
  distance;
- **false-alarm frames**: next to a region (within three frames), on damage below the target's
  threshold (distance above 0.01 dB: the corruption reached the frame, too faintly to be labelled), or
  on undamaged audio;
- the level of the damage (corrupted minus clean decode) against the music's, in the regions found and
  in those missed;
- the F1 with a collar: frames within 1, 2 or 3 frames of a target edge left out of the count, which
  says how much of the gap to a perfect score is the placement of region edges.

Reads a result JSON written by ``defectbench run`` (or a board submission's ``result.json``) and its
predictions parquets. Nothing is trained or tuned; the threshold is the result's unless ``--threshold``
names another (a card's F1-chosen one).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, finish_figure, machine, read_result, result_arguments, write_section  # noqa: E402

DISTANCE_BINS = (0.5, 1.0, 3.0, 10.0, 30.0, np.inf)  # dB; the target's threshold is the first edge
SUB_THRESHOLD_DB = 0.01  # frames no corruption reaches measured at most 0.0054 dB (RESULTS, "fma-mp3-glitch")
LEVEL_FROM_DB = 3.0  # regions this damaged or more: found and missed ones compared by their damage's level
NEAR = 3  # a false alarm within this many frames of a region is "next to a region"
MISS_KINDS = ("region edge", "inside a found region", "region missed entirely")
FA_KINDS = ("next to a region", "sub-threshold damage", "undamaged audio")


def replay(source: str, items: set[str]) -> tuple[dict, object]:
    """The build's source items by id, and the recipe's pipeline whose defect replays their params."""
    from defectbench.recipe import load_recipe
    from defectbench.sources import list_source

    pipe = load_recipe("fma-mp3-glitch").make_pipeline()
    wanted = [it for it in list_source(source).items if it.id in items]
    return {it.id: it for it in wanted}, pipe


def rms_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return list(zip(edges[::2], edges[1::2]))


def near(mask: np.ndarray, width: int) -> np.ndarray:
    """Frames within ``width`` frames of a True frame of ``mask``."""
    if width == 0:
        return mask.copy()
    return np.convolve(mask.astype(int), np.ones(2 * width + 1, dtype=int), mode="same") > 0


def analyse(result: dict, result_path: Path, split: str, threshold: float) -> dict:
    from defectbench.dataset import iter_rows

    key = "predictions" if split == result["dataset"]["split"] else "validation_predictions"
    table = pq.read_table(result_path.parent / result[key]["path"], columns=["id", "scores"]).to_pylist()
    scores = {r["id"]: np.asarray(r["scores"], dtype=np.float32) for r in table}
    manifest = json.loads((Path(result["dataset"]["path"]) / "manifest.json").read_text())
    rows = list(iter_rows(result["dataset"]["path"], split, decode_audio=False,
                          columns=["id", "item_id", "start_sample", "segments_in_piece", "target", "params"]))
    items, pipe = replay(manifest["source"]["spec"], {r["item_id"] for r in rows})
    hop, seg = pipe.defect.config.hop, pipe.config.segment_length
    piece: tuple[str, object] | None = None  # rows come piece by piece: keep one replayed piece
    a = {"misses": dict.fromkeys(MISS_KINDS, 0), "false_alarms": dict.fromkeys(FA_KINDS, 0),
         "missed_by_distance": [], "positives_by_distance": [], "regions": [], "segments": 0,
         "level": {True: [], False: []}}
    target_all, flag_all, edge_all = [], [], []
    for row in rows:
        item = row["item_id"]
        if not item.startswith("synth-"):
            raise SystemExit(f"{item}: this analysis needs a build from the synth source")
        if piece is None or piece[0] != item:
            mono = items[item].load()[0][0]
            span = np.ascontiguousarray(mono[: int(row["segments_in_piece"]) * seg], dtype=np.float32)
            piece = (item, pipe.defect.run(span, 44100, json.loads(row["params"])["defect"]))
        out = piece[1]
        s0 = int(row["start_sample"])
        f0 = s0 // hop
        s = scores[row["id"]]
        distance = out.distance[f0 : f0 + len(s)]
        target = row["target"] > 0
        if not np.array_equal(target, distance > pipe.defect.config.threshold_db):
            raise SystemExit(f"{row['id']}: the replayed target differs from the stored one (another build?)")
        flagged = s >= threshold
        edge = np.zeros_like(target)
        change = target[1:] != target[:-1]
        edge[1:] |= change
        edge[:-1] |= change
        found_regions = []
        for lo, hi in runs(target):
            found = bool(flagged[lo:hi].any())
            a["regions"].append((float(distance[lo:hi].max()), found))
            found_regions.append((lo, hi, found))
            if distance[lo:hi].max() > LEVEL_FROM_DB:
                span = slice(s0 + lo * hop, s0 + hi * hop)
                a["level"][found].append(rms_db(out.degraded[span] - out.clean[span]) - rms_db(out.clean[span]))
        for lo, hi, found in found_regions:
            for f in range(lo, hi):
                a["positives_by_distance"].append(float(distance[f]))
                if flagged[f]:
                    continue
                a["missed_by_distance"].append(float(distance[f]))
                kind = "region missed entirely" if not found else ("region edge" if edge[f] else "inside a found region")
                a["misses"][kind] += 1
        close = near(target, NEAR)
        for f in np.flatnonzero(flagged & ~target):
            kind = ("next to a region" if close[f] else
                    "sub-threshold damage" if distance[f] > SUB_THRESHOLD_DB else "undamaged audio")
            a["false_alarms"][kind] += 1
        target_all.append(target)
        flag_all.append(flagged)
        edge_all.append(edge)
        a["segments"] += 1
    t, p, e = np.concatenate(target_all), np.concatenate(flag_all), np.concatenate(edge_all)
    a["collar"] = {}
    for width in (0, 1, 2, 3):
        keep = ~near(e, width - 1) if width else np.ones_like(t)
        tp, fp, fn = int((t & p & keep).sum()), int((~t & p & keep).sum()), int((t & ~p & keep).sum())
        a["collar"][width] = (200 * tp / max(2 * tp + fp + fn, 1), tp, fp, fn, 100 * float((t & ~keep).sum()) / max(int(t.sum()), 1))
    return a


def by_bin(values: list[float], hits: list[bool] | None = None) -> list[tuple[int, int]]:
    """(hits, count) per distance bin; without ``hits``, (count, count)."""
    v = np.asarray(values)
    h = np.ones(len(v), dtype=bool) if hits is None else np.asarray(hits, dtype=bool)
    return [(int(h[(v > lo) & (v <= hi)].sum()), int(((v > lo) & (v <= hi)).sum()))
            for lo, hi in zip(DISTANCE_BINS, DISTANCE_BINS[1:])]


def bin_label(lo: float, hi: float) -> str:
    return f"> {lo:g} dB" if np.isinf(hi) else f"{lo:g} to {hi:g} dB"


def quartiles(values: list[float]) -> str:
    return " / ".join(f"{q:+.1f}" for q in np.percentile(values, [25, 50, 75])) + " dB" if values else "-"


def rate(hits: int, count: int) -> str:
    return f"{100 * hits / count:.1f} % ({hits} / {count})" if count else "-"


def report(split: str, a: dict) -> str:
    misses, fas = a["misses"], a["false_alarms"]
    region_bins = by_bin([d for d, _ in a["regions"]], [f for _, f in a["regions"]])
    frame_missed = by_bin(a["missed_by_distance"])
    frame_all = by_bin(a["positives_by_distance"])
    rows = "\n".join(
        f"| {bin_label(lo, hi)} | {rate(*regions)} | {rate(all_[1] - missed[1], all_[1])} |"
        for lo, hi, regions, missed, all_ in zip(DISTANCE_BINS, DISTANCE_BINS[1:], region_bins, frame_missed, frame_all))
    collar = "; ".join(f"{w} frame{'s' if w != 1 else ''}: F1 {f1:.2f} ({fp} false-alarm and {fn} missed frames; "
                       f"{left:.1f} % of the positive frames left out)" if w else f"none: F1 {f1:.2f} ({fp} false-alarm and {fn} missed frames)"
                       for w, (f1, _, fp, fn, left) in a["collar"].items())
    found = sum(f for _, f in a["regions"])
    return f"""**{split}** ({a['segments']} segments, {len(a['regions'])} labelled regions, {found} found):
missed frames {sum(misses.values())}: {', '.join(f'{k} {v}' for k, v in misses.items())}.
False-alarm frames {sum(fas.values())}: {', '.join(f'{k} {v}' for k, v in fas.items())}.
Collar (frames within N of a target edge left out): {collar}.
Regions whose largest distance passes {LEVEL_FROM_DB:g} dB, damage level (RMS of corrupted minus clean decode) relative
to the clean music over the region, quartiles: found {quartiles(a['level'][True])} ({len(a['level'][True])} regions),
missed {quartiles(a['level'][False])} ({len(a['level'][False])} regions).

| distance (dB) | regions found (by the region's largest distance) | positive frames found (by the frame's distance) |
|---|---|---|
{rows}
"""


def plot(analyses: dict[str, dict], threshold: float, path: Path) -> Path:
    """Per split: regions and frames found by distance bin; the error frames by kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(analyses), figsize=(5.5 * len(analyses), 6), squeeze=False)
    labels = [bin_label(lo, hi).replace(" dB", "") for lo, hi in zip(DISTANCE_BINS, DISTANCE_BINS[1:])]
    x = np.arange(len(labels))
    for col, (split, a) in enumerate(analyses.items()):
        ax = axes[0][col]
        regions = by_bin([d for d, _ in a["regions"]], [f for _, f in a["regions"]])
        missed, all_ = by_bin(a["missed_by_distance"]), by_bin(a["positives_by_distance"])
        ax.bar(x - 0.2, [100 * h / c if c else np.nan for h, c in regions], width=0.4, color="C0",
               label="regions found (largest distance)")
        ax.bar(x + 0.2, [100 * (c - m) / c if c else np.nan for (_, m), (_, c) in zip(missed, all_)], width=0.4,
               color="C2", label="positive frames found (own distance)")
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_xlabel("log-spectral distance, corrupted vs clean decode (dB)", fontsize=8)
        ax.set_ylabel("%", fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_title(f"{split}: {sum(f for _, f in a['regions'])} of {len(a['regions'])} regions found", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
        ax = axes[1][col]
        kinds = [*MISS_KINDS, *FA_KINDS]
        counts = [*a["misses"].values(), *a["false_alarms"].values()]
        ax.barh(np.arange(len(kinds)), counts, color=["C3"] * len(MISS_KINDS) + ["C1"] * len(FA_KINDS))
        ax.set_yticks(np.arange(len(kinds)), [f"missed: {k}" for k in MISS_KINDS] + [f"false alarm: {k}" for k in FA_KINDS],
                      fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("frames", fontsize=8)
        f1 = a["collar"]
        ax.set_title(f"F1 {f1[0][0]:.2f}; with a 1-frame collar {f1[1][0]:.2f}, 3 frames {f1[3][0]:.2f}", fontsize=8)
    fig.suptitle(f"fma-mp3-glitch at threshold {threshold:.4f}: what the errors sit on", fontsize=9)
    return finish_figure(fig, path)


def main() -> None:
    ap = result_arguments(__doc__, Path("leaderboard/submissions/fma-mp3-glitch/hooknet/result.json"))
    args = ap.parse_args()
    result = read_result(args.result, ("fma-mp3-glitch",))
    threshold = result["threshold"]["decision"] if args.threshold is None else args.threshold
    weights = (result["model"].get("weights_sha256") or "-")[:8]
    body = f"""Machine: {machine()}.

`python benchmarks/bench_glitch_errors.py {args.result} --splits {args.splits}{'' if args.threshold is None else f' --threshold {threshold:g}'}`:
`{result['dataset']['path']}`, model `{result['model']['name']}` (weights `{weights}`), threshold {threshold:.4f}. Each piece
is replayed with the recipe's own defect on its recorded params; the replayed targets equal the stored ones.
A region is a run of positive target frames; distance is the log-spectral distance between the corrupted
and the clean decode that defines the target (positive above 0.5 dB).

"""
    analyses = {split: analyse(result, args.result, split, threshold) for split in args.splits.split(",")}
    body += "\n".join(report(split, a) for split, a in analyses.items())
    print(body)
    if not args.print_only:
        png = plot(analyses, threshold, RESULTS.parent / "glitch_errors-fma-mp3-glitch.png")
        body += f"\nFigure: `{png.name}`.\n"
        write_section("What the fma-mp3-glitch errors sit on (issue 11)", body)


if __name__ == "__main__":
    main()
