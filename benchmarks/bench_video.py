"""Throughput of the video-artifacts recipe: chunks/s per worker next to decode-only (SPEC 1.4).

Writes a few test videos with PyAV (stereo AAC at 44.1 kHz in MP4, a tiny picture stream), then
measures, in one process (= one worker):

- decode-only: ``sources.video.decode_audio`` (demux, decode, downmix, resample to 48 kHz int16),
  reported as base-audio chunks (1 s x channel) per second;
- pipeline: ``VideoChunks.process`` on the decoded audio (Algorithm 1, five defects, chunking),
  output chunks (dataset rows) per second;
- build: ``defectbench build video-artifacts --source video:DIR --workers 1`` end to end (listing,
  decoding, pipeline, WAV encoding, hashing, parquet), output rows per second.

    python benchmarks/bench_video.py --videos 3 --seconds 60
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from video_media import make_video  # noqa: E402

from defectbench.core import Item  # noqa: E402
from defectbench.engine import build  # noqa: E402
from defectbench.pipelines.video_chunks import VideoChunks, VideoChunksConfig  # noqa: E402
from defectbench.sources.video import decode_audio  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "videos"
        root.mkdir()
        paths = [root / f"v{i}.mp4" for i in range(args.videos)]
        for i, p in enumerate(paths):
            make_video(p, args.seconds, 44100, 2, codec="aac", seed=i)

        best = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            decoded = [decode_audio(p) for p in paths]
            best = min(best, time.perf_counter() - t)
        base_chunks = sum(2 * (a.shape[1] // 48000) for a in decoded)
        print(f"decode-only: {base_chunks / best:8.1f} base chunks/s  ({base_chunks} chunks, {best:.2f} s)")

        pipe = VideoChunks(VideoChunksConfig(), 48000, 2)
        best, rows = float("inf"), 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            rows = 0
            for i, a in enumerate(decoded):
                item = Item(f"v{i}.mp4", "train", None, {})
                rows += sum(1 for _ in pipe.process(item, a.astype(np.float32) / 32768, 48000, 0))
            best = min(best, time.perf_counter() - t)
        print(f"pipeline:    {rows / best:8.1f} output chunks/s  ({rows} rows, {best:.2f} s)")

        total = float("inf")
        for k in range(2):  # the first run also pays for importing datasets/pyarrow
            t = time.perf_counter()
            res = build("video-artifacts", f"video:{root}", Path(tmp) / f"ds{k}", workers=1, progress=False)
            total = min(total, time.perf_counter() - t)
        n = sum(s["samples"] for s in res.manifest["splits"].values())
        print(f"build (1 worker): {n / total:8.1f} output chunks/s  ({n} rows, {total:.2f} s, incl. listing and parquet)")
        print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}")


if __name__ == "__main__":
    main()
