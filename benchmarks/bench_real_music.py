"""The shipped detectors on real music (issue 11): a music recipe built from a folder of real songs, scored
at the decision settings chosen on the synth benchmark's validation split.

    python benchmarks/bench_real_music.py DIR [--recipes fma-clicks,fma-clicks-post,fma-mp3-glitch]
                                              [--segments 400] [--splits train,validation,test] [--print-only]

DIR is any folder of full mixes (``folder:`` source). On Debian, the free packages
``fretsonfire-songs-muldjord`` (CC BY-SA), ``fretsonfire-songs-sectoid`` and ``asc-music`` (GPL) install
real songs under /usr/share/games; the RESULTS figures link each ``song.ogg`` (the full mix; the
``guitar.ogg`` stems are left out) and the three asc-music MP3s into one folder per song, in the
train/validation/test layout that ``python benchmarks/real_music_folder.py DIR`` makes. No audio is
shipped or kept.

What it does, with the real engine and no shortcut:
- builds each recipe from ``folder:DIR`` (the recipe's own defects, targets and seed), with
  ``segments_per_piece`` raised from the paper's 50 (18.6 s) to ``--segments`` so that each song gives
  more of itself (a copy of the recipe with that one option changed; everything else is the recipe's);
- the splits named by ``--splits`` are scored, pooled: all three where the weights never saw DIR's
  songs; ``validation,test`` where DIR has train/validation/test folders (the folder source's
  audiofolder layout) and the weights were trained on its ``train`` songs (``--source synth:40+folder:DIR``);
- Hook-Net at its **shipped** threshold (chosen on synth validation), SigClick at the dB the board chose on
  the synth benchmark's validation (its reference entry): no threshold is tuned on the real songs;
- framewise precision/recall/F1 with 95 % bootstrap intervals over songs, and the threshold-free AP;
  a PR-curve PNG per recipe beside RESULTS.md (``benchmarks/real_music-RECIPE.png``).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import RESULTS, machine, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ("train", "validation", "test")


def variant_recipe(recipe: str, segments: int, folder: Path) -> Path:
    """A copy of ``recipes/RECIPE.toml`` whose only change is ``segments_per_piece``."""
    text = (ROOT / "recipes" / f"{recipe}.toml").read_text()
    new, n = re.subn(r"^segments_per_piece\s*=\s*\d+", f"segments_per_piece = {segments}", text, flags=re.M)
    if n != 1:
        raise SystemExit(f"{recipe}: no segments_per_piece option to change")
    path = folder / f"{recipe}.toml"
    path.write_text(f"# bench_real_music.py: recipes/{recipe}.toml with segments_per_piece = {segments}\n" + new)
    return path


def build(recipe: str, source: Path, segments: int, work: Path) -> tuple[Path, float]:
    out = work / f"{recipe}-real"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "defectbench.cli", "build", str(variant_recipe(recipe, segments, work)),
                    "--source", f"folder:{source}", "--out", str(out), "--workers", "2", "--quiet"], check=True)
    return out, time.perf_counter() - t0


def scores_of(detector, dataset: Path, splits: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Scores, targets and song ids of every row of ``splits``, in dataset order."""
    from defectbench.dataset import iter_rows
    from defectbench.runner import batched

    scores, targets, songs = [], [], []
    for batch in batched((row for split in splits for row in iter_rows(dataset, split)), 64):
        scores.append(np.asarray(detector.predict(batch), dtype=np.float32))
        targets += [np.asarray(row["target"]) > 0.5 for row in batch]
        songs += [row["item_id"] for row in batch]
    return np.concatenate(scores), np.stack(targets), songs


def sigclick_db(recipe: str) -> float:
    """The dB the board chose on the synth benchmark's validation split (its reference entry)."""
    result = ROOT / "leaderboard" / "submissions" / recipe / "sigclick" / "result.json"
    return float(json.loads(result.read_text())["threshold"]["value"])


def score(recipe: str, dataset: Path, splits: tuple[str, ...]) -> dict:
    from defectbench import metrics as M
    from defectbench import weights
    from defectbench.detectors import get
    from defectbench.neural import load_checkpoint

    path = weights.resolve("hooknet", recipe)
    hook = get("hooknet").from_checkpoint(str(path), device="cpu")
    threshold = float(load_checkpoint(path)["shipped"]["threshold"])
    t0 = time.perf_counter()
    s, t, songs = scores_of(hook, dataset, splits)
    hook_s = time.perf_counter() - t0
    out = {"segments": int(len(t)), "positive_frames": int(t.sum()), "songs": len(set(songs)),
           "defective_segments": int(t.any(1).sum()), "seconds_hooknet": hook_s}
    p = s >= threshold
    out["hooknet"] = {"threshold": threshold, **M.framewise_metrics(t, s, threshold),
                      "intervals": M.framewise_intervals(t, p, songs), "curve": M.precision_recall_curve(t.ravel(), s.ravel())}
    db = sigclick_db(recipe)
    sig = get("sigclick")(threshold=db)
    sig.workers = 2
    d, _, _ = scores_of(sig, dataset, splits)
    sig.close()
    out["sigclick"] = {"threshold_db": db, **M.framewise_metrics(t, d, 0.5), "intervals": M.framewise_intervals(t, d >= 0.5, songs)}
    return out


def fmt(m: dict, key: str) -> str:
    v = m.get(key)
    iv = (m.get("intervals") or {}).get(key)
    if v is None:
        return "-"
    return f"{v:.2f} [{iv[0]:.2f}, {iv[1]:.2f}]" if iv and None not in iv else f"{v:.2f}"


def plot(recipe: str, r: dict) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    precision, recall, _ = r["hooknet"]["curve"]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(100 * np.asarray(recall), 100 * np.asarray(precision), label=f"Hook-Net (AP {r['hooknet']['average_precision']:.1f})")
    h = r["hooknet"]
    ax.plot([h["recall"]], [h["precision"]], "o", color="C0", label="Hook-Net at its shipped threshold")
    s = r["sigclick"]
    ax.plot([s["recall"]], [s["precision"]], "s", color="C1", label=f"SigClick at {s['threshold_db']:.0f} dB")
    ax.set(xlabel="recall %", ylabel="precision %", xlim=(0, 101), ylim=(0, 101),
           title=f"{recipe} on real music: {r['songs']} songs, {r['positive_frames']} defect frames")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    path = RESULTS.parent / f"real_music-{recipe}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--recipes", default="fma-clicks,fma-clicks-post,fma-mp3-glitch")
    ap.add_argument("--segments", type=int, default=400)
    ap.add_argument("--splits", default=",".join(SPLITS), help="the held-out splits to score")
    ap.add_argument("--print-only", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    rows, notes = [], []
    splits = tuple(args.splits.split(","))
    with tempfile.TemporaryDirectory(prefix="defectbench-real-") as tmp:
        for recipe in args.recipes.split(","):
            try:
                from defectbench import weights

                weights.resolve("hooknet", recipe)
            except Exception as e:  # nothing shipped for this recipe: say so in the table
                notes.append(f"- {recipe}: not scored ({e})")
                continue
            dataset, build_s = build(recipe, args.folder.resolve(), args.segments, Path(tmp))
            r = score(recipe, dataset, splits)
            png = plot(recipe, r)
            h, s = r["hooknet"], r["sigclick"]
            rows.append(f"| {recipe} | {r['songs']} / {r['segments']:,} / {r['defective_segments']} / {r['positive_frames']} "
                        f"| {fmt(h, 'f1')} | {h['precision']:.2f} / {h['recall']:.2f} | {h['average_precision']:.2f} "
                        f"| {fmt(s, 'f1')} ({s['threshold_db']:.0f} dB) | {build_s:.0f} s |")
            notes.append(f"- {recipe}: PR curve `{png.name}`; Hook-Net threshold {h['threshold']:.4f} (shipped).")
    body = f"""Machine: {machine()}; torch on 1 thread.

`python benchmarks/bench_real_music.py DIR --segments {args.segments} --splits {args.splits}`: each recipe built
from `folder:DIR` (real songs) with `segments_per_piece = {args.segments}`; the held-out splits {args.splits} scored;
Hook-Net at its shipped threshold and SigClick at the board's dB, both chosen on synth validation. Intervals:
95 % bootstrap over songs.

| recipe | songs / segments / defective segments / defect frames | Hook-Net F1 | Hook-Net P / R | Hook-Net AP | SigClick F1 | build |
|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n\n" + "\n".join(notes)
    print(body)
    if not args.print_only:
        write_section("Shipped detectors on real music (issue 11)", body)


if __name__ == "__main__":
    main()
