"""Forward and forward+backward throughput of the neural detectors (samples/s), and their parameter counts.

    .venv/bin/python benchmarks/bench_models.py [--batch 8] [--repeats 3] [--configs tiny,small,reference] [--print-only]

Measures on whatever device torch picks (``--device``); on this project's shared 2-core CPU machine the
figures are noisy (other jobs run beside), so each figure is the best of ``--repeats`` timed runs after
one warm-up. GPU figures (AMP bf16, the paper batch sizes 200 / 512) are to be taken in a session that
is lent a GPU: ``--device cuda --batch 200``.
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

from defectbench.models.cnn6 import CONFIGURATIONS as CNN6
from defectbench.models.cnn6 import Cnn6
from defectbench.models.hooknet import CONFIGURATIONS as HOOKNET
from defectbench.models.hooknet import PAPER_PARAMETERS, HookNet
from defectbench.neural import autocast, weighted_rms_loss


def timed(fn, repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def bench(name: str, model: torch.nn.Module, x: torch.Tensor, loss_fn, repeats: int, device: torch.device) -> dict:
    model.to(device)
    x = x.to(device)
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def forward():
        model.eval()
        with torch.inference_mode(), autocast(device):
            model(x)

    def step():
        model.train()
        with autocast(device):
            loss = loss_fn(model(x))
        loss.backward()
        model.zero_grad(set_to_none=True)

    f, b = timed(forward, repeats, device), timed(step, repeats, device)
    return {"model": name, "parameters": n, "batch": len(x), "forward": len(x) / f, "train": len(x) / b}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--configs", default="tiny,small,reference")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--print-only", action="store_true", help="do not write the table into benchmarks/RESULTS.md")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    configs = args.configs.split(",")
    ref = sum(p.numel() for p in HookNet(HOOKNET["reference"]).parameters())
    load = os.getloadavg()[0]
    head = [f"Machine: {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}; "
            f"load average {load:.1f} at the start (the machine is shared: under load the figures drop several-fold).",
            f"`python benchmarks/bench_models.py --batch {args.batch} --repeats {args.repeats} --configs {args.configs}`;"
            " best of the repeats after a warm-up; random input, model time only (no decoding).",
            f"Hook-Net reference: {ref:,} trainable parameters (paper {PAPER_PARAMETERS:,}, "
            f"{100 * (ref - PAPER_PARAMETERS) / PAPER_PARAMETERS:+.2f} %)."]
    print("\n".join(head))
    rows = []
    for c in configs:
        if c in HOOKNET:
            target = torch.zeros(args.batch, 128)
            target[:, 5] = 1
            rows.append(bench(f"hooknet/{c}", HookNet(HOOKNET[c]), 0.1 * torch.randn(args.batch, 16384),
                              lambda y: weighted_rms_loss(y, target.to(y.device), 10.0), args.repeats, device))
        if c in CNN6:
            labels = torch.arange(args.batch) % 5
            rows.append(bench(f"cnn6/{c}", Cnn6(CNN6[c]), 0.1 * torch.randn(args.batch, 48000),
                              lambda y: torch.nn.functional.nll_loss(y.float(), labels.to(y.device)), args.repeats, device))
    table = ["| model/config | trainable params | batch | forward samples/s | forward+backward samples/s |",
             "|---|---:|---:|---:|---:|"]
    table += [f"| {r['model']} | {r['parameters']:,} | {r['batch']} | {r['forward']:.1f} | {r['train']:.1f} |" for r in rows]
    print("\n".join(table))
    if not args.print_only:
        note = ("GPU figures (CUDA, bf16 autocast, the paper batch sizes 200 / 512) are still to be taken in a session "
                "that is lent a GPU: `python benchmarks/bench_models.py --device cuda --batch 200`.")
        write_section(f"Neural detectors ({device.type})", "\n".join(head) + "\n\n" + "\n".join(table) + "\n\n" + note)

if __name__ == "__main__":
    main()
