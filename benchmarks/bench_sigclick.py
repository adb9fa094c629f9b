"""SigClick throughput: the runner's scoring pass next to raw Essentia calls on the same segments.

    python benchmarks/bench_sigclick.py [--dataset DIR] [--split test] [--workers 1 2] [--repeat 3] [--write]

Without ``--dataset`` it builds ``fma-clicks`` from the synth source (``--limit 2``) into a temporary
folder. Three figures per worker count, all over the same segments:

- *raw*: a bare loop over pre-decoded float32 segments calling ``essentia.standard.ClickDetector``
  (reset per segment, 7 sub-segments of 4096 with hop 2048); with N workers the segments are split
  in N equal parts over a process pool (pool started before timing). No reading, no mapping to frames.
- *predict*: ``SigClick.predict`` on the same pre-decoded rows in the runner's batches (frame mapping,
  pool IPC included).
- *runner*: the runner's test-split pass (``runner._score``): parquet reading, WAV decoding,
  batching, ``predict``, collecting scores.

Overhead = runner time / raw time - 1 (the goal is <= 10 %). The three are interleaved and the best
of ``--repeat`` rounds kept (the machine is shared).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def raw_essentia(segments: list[np.ndarray], rate: int, threshold: float) -> int:
    import essentia.standard as es

    detector = es.ClickDetector(frameSize=4096, hopSize=2048, sampleRate=rate, detectionThreshold=threshold)
    found = 0
    for x in segments:
        detector.reset()
        for begin in range(0, len(x) - 4096 + 1, 2048):
            starts, _ = detector(x[begin : begin + 4096])
            found += len(starts)
    return found


def _warm(_: int) -> int:
    import essentia.standard  # noqa: F401 - import cost paid before timing

    return 0


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path)
    parser.add_argument("--split", default="test")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=35.0)
    parser.add_argument("--write", action="store_true", help="Write the table into benchmarks/RESULTS.md (## SigClick).")
    args = parser.parse_args()

    from defectbench.baselines.sigclick import SigClick
    from defectbench.dataset import iter_rows
    from defectbench.progress import make_progress
    from defectbench.runner import Rows, _score

    dataset = args.dataset
    if dataset is None:
        from defectbench.engine import build

        dataset = Path(tempfile.mkdtemp()) / "fma-clicks"
        build("fma-clicks", "synth", dataset, limit=2, workers=1, progress=False)
    rows = list(iter_rows(dataset, args.split))
    segments = [np.ascontiguousarray(r["audio"], dtype=np.float32) for r in rows]
    rate = int(rows[0]["rate"])
    n = len(segments)
    from _results import machine, write_section

    print(f"{n} segments of {len(segments[0])} samples from {dataset} ({args.split}); {machine()}")
    raw_essentia(segments[:4], rate, args.threshold)  # warm-up: Essentia's first call pays its set-up
    lines = []
    for workers in args.workers:
        pool = None
        if workers > 1:
            pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
            list(pool.map(_warm, range(workers)))
        bounds = np.linspace(0, n, workers + 1).astype(int)

        def raw():
            if pool is None:
                return raw_essentia(segments, rate, args.threshold)
            futures = [pool.submit(raw_essentia, segments[a:b], rate, args.threshold) for a, b in zip(bounds[:-1], bounds[1:])]
            return sum(f.result() for f in futures)

        det = SigClick(threshold=args.threshold)
        det.workers = workers
        det.predict(rows[: 2 * workers])  # start the pool outside the timing, as the runner's validation pass does

        def predict_all():
            for i in range(0, n, det.batch_size):
                det.predict(rows[i : i + det.batch_size])

        # the machine is shared: the three measurements are interleaved, best of `repeat` rounds each
        t_raw, t_pred, t_run = [], [], []
        for _ in range(args.repeat):
            t_raw.append(best_of(1, raw))
            t_pred.append(best_of(1, predict_all))
            with make_progress("segments", enabled=False) as progress:
                t_run.append(_score(det, Rows(dataset, args.split), "framewise", 0, progress)[6])
        det.close()
        if pool is not None:
            pool.shutdown()
        raw_t, pred_t, run_t = min(t_raw), min(t_pred), min(t_run)
        # times, not rates: overhead = runner time / raw time - 1
        line = f"| {workers} | {n / raw_t:.0f} | {n / pred_t:.0f} | {n / run_t:.0f} | {100 * (pred_t / raw_t - 1):+.1f} % | {100 * (run_t / raw_t - 1):+.1f} % |"
        print(line, flush=True)
        lines.append(line)
    body = (
        f"Machine: {machine()}. `python benchmarks/bench_sigclick.py --repeat {args.repeat}` on {n} segments of "
        f"16384 samples ({args.split} split of {'a synth fma-clicks build, --limit 2' if args.dataset is None else dataset.name}), "
        f"threshold {args.threshold:g} dB. Segments per second, best of {args.repeat} interleaved rounds.\n\n"
        "- raw: a bare loop of `essentia.standard.ClickDetector` calls (reset per segment, 7 sub-segments) over "
        "pre-decoded float32 segments, split over a process pool for N > 1; no reading, no frame mapping.\n"
        "- predict: `SigClick.predict` on the same pre-decoded rows, in the runner's batches of 256.\n"
        "- runner: the runner's scoring pass (parquet reading, WAV decoding, batching, predict, collecting scores).\n\n"
        "| workers | raw seg/s | predict seg/s | runner seg/s | predict overhead | runner overhead |\n|---|---|---|---|---|---|\n"
        + "\n".join(lines)
    )
    if args.write:
        write_section("SigClick", body)


if __name__ == "__main__":
    main()
