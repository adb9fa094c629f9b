"""``defectbench detect`` throughput (x real time) on a 10-minute file and its peak memory for a 1-minute
vs a 10-minute file (issue 11: memory flat in file length).

    .venv/bin/python benchmarks/bench_detect.py [--config cpu] [--minutes 1,10] [--print-only]
    .venv/bin/python benchmarks/bench_detect.py --shipped fma-clicks,fma-clicks-post,video-artifacts --threads 1

Files: music from the built-in synth corpus (six 20 s pieces repeated to length), written as 48 kHz
stereo FLAC so that the streaming path does its whole job (FLAC decode in blocks, soxr stream to
44.1 kHz, downmix). Each run is a fresh process (``python -m defectbench.cli detect``); peak RSS is
that process's ``ru_maxrss``; x real time counts the scan (the CLI's own figure: audio seconds / wall
seconds from the first file to the last), not the start-up. The model: a Hook-Net of configuration
``--config`` (``cpu``: the shipped configuration) saved as a checkpoint from its initialisation, with
``--threshold 0.5``: the speed and memory do not depend on the weights' values. ``--shipped RECIPES``
scans with the shipped weights of each recipe instead (``detect --task RECIPE``; ``video-artifacts``
is CNN6 on 1 s chunks of both channels at 48 kHz, the others Hook-Net), at their shipped thresholds.
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
if sys.argv[3].startswith("task:"):  # task:MODEL:RECIPE, the shipped weights
    _, model, task = sys.argv[3].split(":")
    r = detect([sys.argv[1]], sys.argv[2], model=model, task=task, progress=False, log=lambda s: None)
else:
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


def shipped_scanners(recipes: list[str]) -> list[tuple[str, str]]:
    """(``task:MODEL:RECIPE`` for the scan, a table name with the configuration) for each recipe's shipped
    weights, from the registry (:func:`defectbench.weights.available`)."""
    from defectbench.neural import load_checkpoint
    from defectbench.weights import available

    shipped = {w.recipe: w for w in available()}
    if missing := [r for r in recipes if r not in shipped]:
        raise SystemExit(f"--shipped: no shipped weights for {', '.join(missing)} (shipped: {', '.join(shipped)})")
    return [(f"task:{shipped[r].model}:{r}", f"{r} ({shipped[r].model}/{load_checkpoint(shipped[r].path)['config_name']})")
            for r in recipes]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="cpu")
    ap.add_argument("--shipped", default="", help="comma-separated recipes: scan with their shipped weights instead")
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
        if args.shipped:
            scanners = shipped_scanners(args.shipped.split(","))
        else:
            from dataclasses import asdict

            torch.manual_seed(0)
            cfg = CONFIGURATIONS[args.config]
            model = HookNet(cfg)
            ck = tmp / "model.pt"
            save_checkpoint(ck, {"format": CHECKPOINT_FORMAT, "model": "hooknet", "config_name": args.config,
                                 "config": asdict(cfg), "state_dict": model.state_dict(), "best": {}, "curve": []})
            scanners = [(str(ck), f"hooknet/{args.config}")]
        for m in map(float, args.minutes.split(",")):
            audio = tmp / f"music-{m:g}min.flac"
            make_file(audio, m)
            for which, name in scanners:
                for threads in map(int, args.threads.split(",")):
                    proc = subprocess.run([sys.executable, "-c", RUN.format(threads=threads), str(audio),
                                           str(tmp / "e.csv"), which], capture_output=True, text=True, check=True)
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    rows.append((name, m, threads, r["audio_seconds"], r["wall_seconds"],
                                 r["audio_seconds"] / r["wall_seconds"], r["rss_mb"]))
                    print(rows[-1], flush=True)
    which = (f"--shipped {args.shipped}" if args.shipped else f"--config {args.config}")
    busy = " (the machine was busy, so the speed here is pessimistic)" if load > 1.0 else ""
    head = (f"Machine: {machine()}; load average {load:.1f} at the start{busy}.\n\n"
            f"`python benchmarks/bench_detect.py {which} --minutes {args.minutes} --threads {args.threads}`: "
            + (f"the shipped weights of {args.shipped}" if args.shipped else f"Hook-Net `{args.config}`")
            + " on 48 kHz stereo FLAC music (synth corpus), each file in a fresh process; decode in blocks; Hook-Net: "
            "soxr stream to 44.1 kHz, downmix, windows of 16384 with hop 8192; CNN6: 1 s chunks of each channel; events.")
    table = ["| weights | file | torch threads | audio s | wall s | x real time | peak RSS MB |",
             "|---|---|---:|---:|---:|---:|---:|"]
    table += [f"| {n} | {m:g} min | {t} | {a:.0f} | {w:.1f} | {x:.2f} | {rss:.0f} |" for n, m, t, a, w, x, rss in rows]
    print(head + "\n" + "\n".join(table))
    if not args.print_only:
        title = "detect: throughput and memory" + (" (shipped weights)" if args.shipped else "")
        write_section(title, head + "\n\n" + "\n".join(table))


if __name__ == "__main__":
    main()
