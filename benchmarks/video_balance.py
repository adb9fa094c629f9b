"""Class balance of video-artifacts against the video paper's Table 1 (ratios to no_defect).

Base audios of ``--minutes`` each are made by concatenating ``synth`` pieces (resampled to 48 kHz,
stereo, as the engine does), since the paper's videos are long (127 h / 162 = 47 min on average)
while synth pieces last 20 s. Prints each class's count divided by the no_defect count.

    python benchmarks/video_balance.py --audios 3 --minutes 5
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from defectbench.audio_io import convert_channels, resample
from defectbench.core import Item
from defectbench.pipelines.video_chunks import LABELS, VideoChunks, VideoChunksConfig
from defectbench.sources import list_source

PAPER = {"train": [447168, 241990, 241870, 174711, 147742], "validation": [146282, 78976, 80160, 56423, 49300],
         "test": [288702, 146301, 147672, 104359, 89210]}


def balance(audios: int, minutes: float) -> tuple[Counter, dict[str, float]]:
    """Label counts and pipeline counters over ``audios`` base audios of ``minutes`` each."""
    per = int(minutes * 3)
    items = list_source(f"synth:{audios * minutes}").items
    pieces = [it for it in items if it.split == "train"][: audios * per]
    pipe = VideoChunks(VideoChunksConfig(), 48000, 2)
    counts: Counter = Counter()
    for a in range(audios):
        parts = []
        for it in pieces[a * per : (a + 1) * per]:
            x, rate = it.load()
            parts.append(convert_channels(resample(x, rate, 48000), 2))
        audio = np.clip(np.concatenate(parts, axis=1), -1, 1)
        for s in pipe.process(Item(f"base{a}", "train", None, {}), audio, 48000, 0):
            counts[LABELS[s.label]] += 1
    return counts, pipe.counters


def table(counts: Counter) -> str:
    """Markdown: each class per no_defect chunk, next to the paper's Table 1 ratios."""
    nd = counts["no_defect"]
    lines = [f"| class | this build ({nd} no_defect chunks) | paper train | paper validation | paper test |",
             "|---|---|---|---|---|"]
    for k, name in enumerate(LABELS):
        paper = " | ".join(f"{PAPER[s][k] / PAPER[s][0]:.2f}" for s in PAPER)
        lines.append(f"| {name} | {counts[name] / nd:.2f} | {paper} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audios", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=5.0)
    args = ap.parse_args()
    counts, counters = balance(args.audios, args.minutes)
    print(table(counts))
    print({k: v for k, v in sorted(counters.items()) if not k.startswith("chunks_")})


if __name__ == "__main__":
    main()
