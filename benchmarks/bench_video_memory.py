"""Peak memory of a video-artifacts build against the length of the video: flat when the source streams.

For each length it writes one video with PyAV (stereo AAC at 48 kHz in MP4, a tiny picture stream),
then builds ``video-artifacts`` from it in a fresh process (``python -m defectbench.cli build ...
--workers 1``) and reads the peak resident memory of that process and its pool worker
(``RUSAGE_CHILDREN``'s ``ru_maxrss``: the largest of them). The engine spools a streamed video's
audio to disk (``defectbench/spool.py``); before that, the worker held the whole decoded audio
(float32) and each degraded copy in memory.

    python benchmarks/bench_video_memory.py [--minutes 1,5,20] [--code DIR] [--print-only]

``--code DIR`` measures another checkout (its folder goes first on PYTHONPATH), for a before/after.
Writes the "video-artifacts build memory" section of RESULTS.md unless ``--print-only``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402
from video_media import make_video  # noqa: E402

MEASURE = """
import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
if r.returncode:
    sys.exit(r.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, wall)
"""


def measure(video_dir: Path, out: Path, code: str | None) -> tuple[float, float, int]:
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = code + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-c", MEASURE, sys.executable, "-m", "defectbench.cli", "build", "video-artifacts",
           "--source", f"video:{video_dir}", "--out", str(out), "--workers", "1", "--quiet"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    rss, wall = map(float, r.stdout.split())
    rows = sum(s["samples"] for s in json.loads((out / "manifest.json").read_text())["splits"].values())
    return rss, wall, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="1,5,20")
    ap.add_argument("--code", help="measure the checkout in this folder instead (put first on PYTHONPATH)")
    ap.add_argument("--print-only", action="store_true")
    args = ap.parse_args()
    lines = ["| video | audio (stereo, 48 kHz) | rows | build wall s | peak RSS MB |", "|---|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for minutes in [float(m) for m in args.minutes.split(",")]:
            folder = Path(tmp) / f"v{minutes:g}"
            folder.mkdir()
            t = time.perf_counter()
            make_video(folder / "video.mp4", minutes * 60, 48000, 2, codec="aac", seed=1)
            made = time.perf_counter() - t
            rss, wall, rows = measure(folder, Path(tmp) / f"ds{minutes:g}", args.code)
            decoded_mb = minutes * 60 * 48000 * 2 * 4 / 2**20  # the whole audio as float32
            print(f"{minutes:g} min: {rows} rows, build {wall:.1f} s, peak RSS {rss:.0f} MB "
                  f"(the decoded audio alone would be {decoded_mb:.0f} MB as float32; video written in {made:.1f} s)")
            lines.append(f"| {minutes:g} min AAC in MP4 | {decoded_mb:.0f} MB as float32 | {rows} | {wall:.1f} | {rss:.0f} |")
    if args.print_only:
        print("\n".join(lines))
        return
    body = (
        f"Machine: {machine()}. `python benchmarks/bench_video_memory.py --minutes {args.minutes}`: one video per "
        "build, `--workers 1`, a fresh process each; peak RSS is the largest of the build process and its "
        "pool worker. The engine spools the video's audio to an unlinked file beside the shard "
        "(`defectbench/spool.py`) and the pipeline keeps at most one interval of a degraded copy in memory.\n\n"
        + "\n".join(lines)
    )
    write_section("video-artifacts build memory", body)


if __name__ == "__main__":
    main()
