"""``defectbench detect`` throughput (x real time) on a 10-minute file and its peak memory for a 1-minute
vs a 10-minute file (issue 11: memory flat in file length).

    .venv/bin/python benchmarks/bench_detect.py [--config cpu] [--minutes 1,10] [--print-only]

Files: music from the built-in synth corpus (six 20 s pieces repeated to length), written as 48 kHz
stereo FLAC so that the streaming path does its whole job (FLAC decode in blocks, soxr stream to
44.1 kHz, downmix). Each run is a fresh process (``python -m defectbench.cli detect``); peak RSS is
that process's ``ru_maxrss``; x real time counts the scan (the CLI's own figure: audio seconds / wall
seconds from the first file to the last), not the start-up. The model: a Hook-Net of configuration
``--config`` (``cpu``: the shipped configuration) saved as a checkpoint from its initialisation, with
``--threshold 0.5``: the speed and memory do not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402

RUN = """
import json, resource, sys, torch
from defectbench.detect import detect
if {threads}: torch.set_num_threads({threads})
r = detect([sys.argv[1]], sys.argv[2], checkpoint=sys.argv[3], threshold=0.5, progress=False, log=lambda s: None)
print(json.dumps({{"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **r.meta}}))
"""


def make_file(path: Path, minutes: float) -> None:
    import soxr

    from defectbench.sources import list_source

    items = [it for it in list_source("synth", None, 0).items][:6]
    pieces = [it.load()[0].mean(axis=0) for it in items]
    n = int(minutes * 60 * 48000)
    with sf.SoundFile(path, "w", 48000, 2, subtype="PCM_16", format="FLAC") as f:
        written, i = 0, 0
        while written < n:  # streamed out piece by piece: the generator does not hold the file either
            p = soxr.resample(pieces[i % len(pieces)], 44100, 48000)[: n - written]
            f.write(np.stack([p, 0.8 * p], axis=1))
            written += len(p)
            i += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="cpu")
    ap.add_argument("--minutes", default="1,10")
    ap.add_argument("--threads", default="1,2", help="torch thread counts to measure")
    ap.add_argument("--print-only", action="store_true")
    args = ap.parse_args()
    import torch

    from defectbench.models.hooknet import CONFIGURATIONS, HookNet
    from defectbench.neural import CHECKPOINT_FORMAT, save_checkpoint

    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        cfg = CONFIGURATIONS[args.config]
        model = HookNet(cfg)
        from dataclasses import asdict

        ck = tmp / "model.pt"
        save_checkpoint(ck, {"format": CHECKPOINT_FORMAT, "model": "hooknet", "config_name": args.config,
                             "config": asdict(cfg), "state_dict": model.state_dict(), "best": {}, "curve": []})
        for m in map(float, args.minutes.split(",")):
            audio = tmp / f"music-{m:g}min.flac"
            make_file(audio, m)
            for threads in map(int, args.threads.split(",")):
                proc = subprocess.run([sys.executable, "-c", RUN.format(threads=threads), str(audio), str(tmp / "e.csv"),
                                       str(ck)], capture_output=True, text=True, check=True)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                rows.append((m, threads, r["audio_seconds"], r["wall_seconds"], r["audio_seconds"] / r["wall_seconds"],
                             r["rss_mb"]))
                print(rows[-1], flush=True)
    head = (f"Machine: {machine()}; load average {load:.1f} at the start (shared machine: a training job and other "
            f"engineers' tests ran beside, so the speed here is pessimistic).\n\n"
            f"`python benchmarks/bench_detect.py --config {args.config} --minutes {args.minutes} --threads {args.threads}`: Hook-Net "
            f"`{args.config}` on 48 kHz stereo FLAC music (synth corpus), each file in a fresh process; decode, "
            f"soxr stream to 44.1 kHz, downmix, windows of 16384 with hop 8192, events.")
    table = ["| file | torch threads | audio s | wall s | x real time | peak RSS MB |", "|---|---:|---:|---:|---:|---:|"]
    table += [f"| {m:g} min | {t} | {a:.0f} | {w:.1f} | {x:.2f} | {rss:.0f} |" for m, t, a, w, x, rss in rows]
    print(head + "\n" + "\n".join(table))
    if not args.print_only:
        write_section("detect: throughput and memory", head + "\n\n" + "\n".join(table))


if __name__ == "__main__":
    main()
