"""Inference throughput of the neural detectors: segments/s, x real time, and the fraction of the CPU's
peak FLOP rate the model reaches (issue 11).

    .venv/bin/python benchmarks/bench_inference.py [--configs hooknet/tiny,hooknet/cpu,...] [--batch 16] [--print-only]

- FLOPs per segment: ``torch.utils.flop_counter.FlopCounterMode`` over one forward pass (it counts
  convolutions and matmuls, 2 FLOPs per multiply-add; batch norm, activations and pooling are left out,
  so the fraction is a slight under-estimate of the work done).
- Peak: the best of 20 float32 ``torch.mm`` of 2048 x 2048 matrices on the same threads (what the
  BLAS reaches, not the datasheet figure), measured before and after the models and the higher kept;
  on a loaded machine the peak itself is under-measured, so a fraction can even pass 100 %.
- x real time: audio seconds per wall second. Hook-Net: a segment is 16384 samples at 44.1 kHz
  (0.372 s); ``defectbench detect`` windows with hop 8192, so it scores two segments per 0.372 s of
  audio and runs at half the segment rate's x real time. CNN6: a segment is 1 s of one channel; stereo
  audio needs two.
Model time only (random input in inference mode); best of ``--repeats`` after a warm-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import machine, write_section  # noqa: E402

from defectbench.models.cnn6 import CONFIGURATIONS as CNN6, Cnn6  # noqa: E402
from defectbench.models.hooknet import CONFIGURATIONS as HOOKNET, HookNet  # noqa: E402


def best_of(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_flops(repeats: int) -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    return 2 * 2048**3 / best_of(lambda: torch.mm(a, b), repeats)


def flops_per_segment(model: torch.nn.Module, x: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(x[:1])
    return float(counter.get_total_flops())


def shipped_for() -> dict[str, list[str]]:
    """``model/config`` -> the recipes whose shipped weights have that configuration (read with weights_only)."""
    from defectbench.neural import load_checkpoint
    from defectbench.weights import available

    out: dict[str, list[str]] = {}
    for w in available():
        config = load_checkpoint(w.path)["config_name"]
        out.setdefault(f"{w.model}/{config}", []).append(w.recipe)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="hooknet/tiny,hooknet/cpu,hooknet/small,cnn6/tiny,cnn6/cpu-48k-wave,cnn6/reference")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's)")
    ap.add_argument("--print-only", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = os.getloadavg()[0]
    peak = peak_flops(20)
    rows = []
    for spec in args.configs.split(","):
        family, config = spec.split("/")
        if family == "hooknet":
            model, x, seconds, per_detect = HookNet(HOOKNET[config]), 0.1 * torch.randn(args.batch, 16384), 16384 / 44100, 0.5
        else:
            model, x, seconds, per_detect = Cnn6(CNN6[config]), 0.1 * torch.randn(args.batch, 48000), 1.0, 0.5
        model.eval()
        flops = flops_per_segment(model, x)

        def forward():
            with torch.inference_mode():
                model(x)

        rate = args.batch / best_of(forward, args.repeats)
        rows.append((spec, sum(p.numel() for p in model.parameters() if p.requires_grad), flops, rate, rate * seconds,
                     rate * seconds * per_detect, rate * flops / peak))
        print(rows[-1], flush=True)
    after = peak_flops(20)
    if after > peak:
        rows = [(*r[:6], r[6] * peak / after) for r in rows]
        peak = after
    busy = " (the machine was busy, so every figure here is pessimistic)" if load > 1.0 else ""
    head = (f"Machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
            f"{load:.1f} at the start{busy}. Peak float32 matmul rate measured: {peak / 1e9:.1f} GFLOP/s.\n\n"
            f"`python benchmarks/bench_inference.py --batch {args.batch} --threads {torch.get_num_threads()}`: model time only, random input, best of "
            f"{args.repeats} after a warm-up; FLOPs from `torch.utils.flop_counter.FlopCounterMode` (conv + matmul).")
    shipped = shipped_for()
    table = ["| model/config | shipped for | parameters | GFLOP per segment | segments/s | x real time (segments) | x real time (detect: hop 1/2 / stereo) | fraction of peak |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    table += [f"| {s} | {', '.join(shipped.get(s, [])) or '-'} | {n:,} | {f / 1e9:.3f} | {r:.1f} | {rt:.1f} | {d:.1f} | {frac:.1%} |"
              for s, n, f, r, rt, d, frac in rows]
    print(head + "\n" + "\n".join(table))
    if not args.print_only:
        note = ("Hook-Net segment: 16384 samples at 44.1 kHz (0.372 s); detect scores each 0.372 s twice (hop 8192). "
                "CNN6 segment: 1 s of one channel; detect scores both channels.")
        write_section(f"Inference throughput (CPU, {torch.get_num_threads()} torch threads)", head + "\n\n" + "\n".join(table) + "\n\n" + note)


if __name__ == "__main__":
    main()
