"""Which clicks a detector misses, and why (issue 11): every click of a scored split, found or not, against
how much its own sample-to-sample jump stands out of the music around it.

    python benchmarks/bench_click_misses.py [results/bench/fma-clicks/hooknet.json] [--context 4096] [--print-only]

Reads a result JSON written by ``defectbench run`` on a click recipe (``fma-clicks``, ``fma-clicks-post``),
its predictions parquet (framewise scores of the scored split) and the dataset it names, at the decision
threshold the result records (chosen on validation). For each click (the row's ``click_position`` and
``click_length``):

- found: at least one of its target frames scores at or above the threshold;
- its **jump**: the largest ``|x[n+1] - x[n]|`` over the click's samples and the two before it;
- **buried**: the largest jump within ``--context`` samples on either side (the click itself left out) is
  at least as large as the click's: a detector that looks for the sharpest edge nearby would pick the
  music's own transient first;
- the click's amplitude bin (the recipe draws the offset ``a ~ U[0.3, 1)``; SPEC 1.1).

Writes a RESULTS section (recall for buried and clear clicks, by amplitude) and a figure of the missed
clicks (waveform around each, the click's samples marked, the detector's frame scores on a second axis),
``benchmarks/click_misses-RECIPE.png``. Nothing is trained or tuned.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, finish_figure, machine, read_result, result_arguments, write_section  # noqa: E402

AMPLITUDE_BINS = (0.3, 0.45, 0.65, 1.0)


def clicks(result: dict, result_path: Path, context: int) -> list[dict]:
    from defectbench.audio_io import as_float32
    from defectbench.dataset import iter_rows

    scores = {r["id"]: np.asarray(r["scores"], dtype=np.float32)
              for r in pq.read_table(result_path.parent / result["predictions"]["path"], columns=["id", "scores"]).to_pylist()}
    threshold = result["threshold"]["decision"]
    dataset, split = result["dataset"]["path"], result["dataset"]["split"]
    out = []
    columns = ["id", "audio", "target", "click_position", "click_length", "click_amplitude"]
    for row in iter_rows(dataset, split, columns=columns):
        if row["click_position"] is None:
            continue
        x = as_float32(row["audio"])
        x = x if x.ndim == 1 else x.mean(axis=1)
        p, n = int(row["click_position"]), int(row["click_length"])
        jumps = np.abs(np.diff(x))
        own = slice(max(0, p - 2), min(len(jumps), p + n + 1))
        jump = float(jumps[own].max())
        around = np.concatenate([jumps[max(0, p - 2 - context): own.start], jumps[own.stop: own.stop + context]])
        s = scores[row["id"]]
        frames = row["target"] > 0
        around_max = float(around.max()) if around.size else 0.0
        out.append({"id": row["id"], "found": bool((s[frames] >= threshold).any()), "max_score": float(s[frames].max()),
                    "amplitude": float(row["click_amplitude"]), "length": n, "position": p, "jump": jump,
                    "around_max": around_max, "buried": around_max >= jump, "audio": x, "scores": s})
    return out


def recall(items: list[dict]) -> str:
    if not items:
        return "-"
    found = sum(c["found"] for c in items)
    return f"{100 * found / len(items):.1f} % ({found} / {len(items)})"


def plot(missed: list[dict], recipe: str, threshold: float, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = missed[:8]
    cols = 2
    rows = max(1, (len(shown) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(10, 2.2 * rows), squeeze=False)
    for ax, c in zip(axes.ravel(), shown):
        x, p, n = c["audio"], c["position"], c["length"]
        lo, hi = max(0, p - 1024), min(len(x), p + n + 1024)
        t = np.arange(lo, hi)
        ax.plot(t, x[lo:hi], lw=0.6, color="0.3")
        ax.axvline(p, color="C3", alpha=0.3, lw=3)
        ax.plot(np.arange(p, p + n), x[p: p + n], "o", color="C3", ms=3)
        frame = len(x) // len(c["scores"])
        ax2 = ax.twinx()
        f0, f1 = lo // frame, (hi - 1) // frame + 1
        ax2.step(np.arange(f0, f1) * frame, c["scores"][f0:f1], where="post", color="C0", lw=1.0)
        ax2.axhline(threshold, color="C0", ls=":", lw=0.8)
        ax2.set_ylim(0, 1.05)
        ax2.tick_params(labelsize=7)
        ax.set_title(f"amp {c['amplitude']:.2f}, {n} samples, {'buried' if c['buried'] else 'clear'} (nearby jump / own {c['around_max'] / c['jump']:.2f}), "
                     f"max score {c['max_score']:.2f}", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.ravel()[len(shown):]:
        ax.axis("off")
    fig.suptitle(f"{recipe}: clicks missed at threshold {threshold:.3f} (waveform grey, click samples red, frame scores blue, threshold dotted)", fontsize=9)
    return finish_figure(fig, path)


def main() -> None:
    ap = result_arguments(__doc__, Path("results/bench/fma-clicks/hooknet.json"), splits=False)
    ap.add_argument("--context", type=int, default=4096, help="samples on either side searched for a larger jump")
    args = ap.parse_args()
    result = read_result(args.result, ("fma-clicks", "fma-clicks-post"))
    recipe = result["dataset"]["recipe"]
    items = clicks(result, args.result, args.context)
    buried = [c for c in items if c["buried"]]
    clear = [c for c in items if not c["buried"]]
    missed = sorted((c for c in items if not c["found"]), key=lambda c: c["max_score"])
    threshold = result["threshold"]["decision"]
    png = plot(missed, recipe, threshold, RESULTS.parent / f"click_misses-{recipe}.png") if missed else None
    bins = []
    for lo, hi in zip(AMPLITUDE_BINS, AMPLITUDE_BINS[1:]):
        b = [c for c in items if lo <= c["amplitude"] < hi or (hi == AMPLITUDE_BINS[-1] and c["amplitude"] == hi)]
        bins.append(f"| {lo:.2f} to {hi:.2f} | {recall(b)} | {recall([c for c in b if c['buried']])} | {recall([c for c in b if not c['buried']])} |")
    weights = result["model"].get("weights_sha256") or "-"
    body = f"""Machine: {machine()}.

`python benchmarks/bench_click_misses.py {args.result}`: the {len(items)} clicks of `{result['dataset']['path']}`
({result['dataset']['split']} split), model `{result['model']['name']}` (weights `{weights[:8]}`) at its
validation-chosen threshold {threshold:.4f}. A click is **buried** where the music within {args.context} samples
({1000 * args.context / 44100:.0f} ms) on either side holds a sample-to-sample jump at least as large as the click's own.

| amplitude | recall, all | buried clicks | clear clicks |
|---|---|---|---|
{chr(10).join(bins)}
| all | {recall(items)} | {recall(buried)} | {recall(clear)} |

- {len(missed)} clicks missed; {sum(c['buried'] for c in missed)} of them are buried. Their max scores: {', '.join(f'{c["max_score"]:.2f}' for c in missed)}.
- {len(buried)} of {len(items)} clicks ({100 * len(buried) / max(1, len(items)):.1f} %) are buried; a detector that finds every clear
  click and none of the buried ones has recall {100 * len(clear) / max(1, len(items)):.1f} %.
""" + (f"- Figure: `{png.name}` (up to 8 missed clicks, lowest score first).\n" if png else "")
    print(body)
    if not args.print_only:
        write_section(f"Where the {recipe} clicks are missed (issue 11)", body)


if __name__ == "__main__":
    main()
