"""Benchmark and calibration of the ``fma-mp3-glitch`` recipe (SPEC 1.3) on the synth corpus.

    python benchmarks/bench_glitch.py [--pieces 6] [--calibrate] [--build]

Speed (one process = one worker): pieces/s for LAME encode only, encode + one clean decode, and the
whole ``mp3-glitch`` pipeline on a 50-segment piece (encode, draw, corrupt, clean + corrupted decode,
spectral-distance target, cut). ``--build`` adds an end-to-end ``defectbench build`` (synth
generation and parquet writing included). ``--calibrate`` measures the log-spectral distance where
no corruption can reach (decoded blocks i..i+3 of a corrupted frame i, widened by the analysis
window) and inside the reach, and the positive rate for a few thresholds: the figures behind the
recipe's ``threshold_db``. Prints markdown for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import numpy as np
from rich.progress import track

from _results import machine  # benchmarks/_results.py (this folder is on sys.path)
from defectbench import mp3
from defectbench.core import rng_for
from defectbench.defects.mp3_glitch import log_spectral_distance, reach
from defectbench.recipe import load_recipe
from defectbench.sources import list_source

SEG = 16384


def timed(fn, pieces) -> tuple[float, float]:
    """(pieces per CPU second, pieces per wall second): the machine is shared, so CPU time is the
    figure for one worker on an idle core; wall time shows what this run got."""
    w0, c0 = time.perf_counter(), time.process_time()
    for p in track(pieces, description=fn.__name__, transient=True):
        fn(p)
    return len(pieces) / (time.process_time() - c0), len(pieces) / (time.perf_counter() - w0)


def cpu_with_children() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pieces", type=int, default=6)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--build", action="store_true")
    args = ap.parse_args()

    items = list_source("synth:6").items[: args.pieces]
    pieces = [(it, it.load()[0][:, : 50 * SEG]) for it in track(items, description="synth", transient=True)]
    recipe = load_recipe("fma-mp3-glitch")
    pipe = recipe.make_pipeline()
    seconds = pieces[0][1].shape[1] / 44100

    def encode_only(p):
        mp3.encode(p[1][0], 44100)

    def encode_decode(p):
        mp3.decode(mp3.encode(p[1][0], 44100))

    def full_pipeline(p):
        list(pipe.process(p[0], p[1], 44100, 0))

    rows = [(fn.__name__.replace("_", " "), *timed(fn, pieces)) for fn in (encode_only, encode_decode, full_pipeline)]
    print(f"machine: {machine()}, "
          f"load average {' / '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}; "
          f"{len(pieces)} synth pieces of 50 x {SEG} samples ({seconds:.1f} s each)\n")
    print("| stage (1 worker) | pieces/s (CPU time) | x real time | pieces/s (wall, shared machine) |\n|---|---|---|---|")
    for name, cpu, wall in rows:
        print(f"| {name} | {cpu:.2f} | {cpu * seconds:.0f} | {wall:.2f} |")
    c = pipe.counters
    print(f"\npipeline counters: {c['corrupted_frames']:g} of {c['mp3_frames']:g} MP3 frames corrupted, "
          f"{c['fallback_frames']:g} fallbacks, {c['decoder_stderr_lines']:g} decoder stderr lines, "
          f"positive rate {100 * c['positive_frames'] / c['frames']:.2f} %, "
          f"positives outside reach {c['positive_frames_outside_reach']:g}")

    if args.build:
        from defectbench.engine import build

        with tempfile.TemporaryDirectory() as tmp:
            for workers in (1, 2):
                c0 = cpu_with_children()
                r = build("fma-mp3-glitch", "synth:6", f"{tmp}/w{workers}", limit=args.pieces // 3 or 1,
                          workers=workers, progress=False)
                n = r.manifest["counters"]["pieces"]
                cpu = cpu_with_children() - c0
                print(f"\nbuild --workers {workers}: {n:g} pieces, wall {r.seconds:.1f} s ({n / r.seconds:.2f} pieces/s), "
                      f"CPU {cpu:.1f} s ({n / cpu:.2f} pieces per CPU second), fingerprint {r.manifest['fingerprint'][:16]}")

    if args.calibrate:
        calibrate(pipe, pieces)


def calibrate(pipe, pieces) -> None:
    d = pipe.defect.config
    half = (d.n_fft - d.hop) // 2
    inside, outside, diff_out = [], [], 0.0
    for item, audio in track(pieces, description="calibrate", transient=True):
        span = audio[0]
        params = pipe.defect.sample(rng_for(0, item.id, stream="mp3-glitch"), span, 44100)  # as the build
        out = pipe.defect.run(span, 44100, params)
        reachable = np.zeros(len(out.target), dtype=bool)
        for r in out.corruptions:
            a, b = reach(r["frame"])
            reachable[max(0, (a - half) // d.hop) : max(0, -(-(b + half) // d.hop))] = True
        dist = log_spectral_distance(out.clean, out.degraded, d.n_fft, d.hop, d.floor_db)
        inside.append(dist[reachable])
        outside.append(dist[~reachable])
        diff_out = max(diff_out, float(np.abs(out.degraded - out.clean)[np.repeat(~reachable, d.hop)].max()))
    inside, outside = np.concatenate(inside), np.concatenate(outside)
    total = len(inside) + len(outside)
    print(f"\ncalibration ({len(pieces)} pieces, {total} frames, {100 * len(inside) / total:.1f} % within reach):")
    print(f"- outside reach: max |diff| {diff_out:.2g}, max distance {outside.max():.4f} dB, "
          f"99.9th percentile {np.percentile(outside, 99.9):.4f} dB")
    q = np.percentile(inside, [25, 50, 75, 90])
    print(f"- inside reach: quartiles {q[0]:.4f} / {q[1]:.4f} / {q[2]:.2f} dB, 90th {q[3]:.1f} dB")
    print("- positive rate by threshold: " + ", ".join(
        f"{t:g} dB: {100 * (inside > t).sum() / total:.2f} %" for t in (0.01, 0.1, 0.5, 1, 3, 10)))


if __name__ == "__main__":
    main()
