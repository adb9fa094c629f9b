"""Shared by the benchmark scripts: the machine's description, writing a section of RESULTS.md, and the
plumbing of the scripts that analyse a scored result (arguments, reading it, saving a figure)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    from defectbench.core import cpu_model

    cpu = cpu_model()
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, Python {platform.python_version()}, {platform.system()}"


def write_section(title: str, body: str) -> None:
    """Replace (or append) the ``## title`` section of RESULTS.md with ``body``."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\nWritten by the scripts in this folder; each section names the machine it was measured on.\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    RESULTS.write_text(text.rstrip() + "\n")


def result_arguments(doc: str, default: Path, *, splits: bool = True) -> argparse.ArgumentParser:
    """The arguments of a script that analyses one scored result: RESULT.json, [--splits], [--threshold],
    --print-only (add its own before ``parse_args``)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("result", type=Path, nargs="?", default=default)
    if splits:
        ap.add_argument("--splits", default="validation,test", help="validation and/or the result's scored split")
        ap.add_argument("--threshold", type=float, default=None)
    ap.add_argument("--print-only", action="store_true")
    return ap


def read_result(path: Path, recipes: tuple[str, ...]) -> dict:
    """A result JSON written by ``defectbench run`` on one of ``recipes``; one clear line otherwise."""
    if not path.is_file():
        raise SystemExit(f"{path}: no result; score first, e.g. `defectbench run --model hooknet "
                         f"--dataset datasets/bench/{recipes[0]} --out results/bench/{recipes[0]}/hooknet.json`")
    result = json.loads(path.read_text())
    if result["dataset"]["recipe"] not in recipes:
        raise SystemExit(f"{path}: a result on {result['dataset']['recipe']}, not {' or '.join(recipes)}")
    return result


def finish_figure(fig, path: Path) -> Path:
    """Lay out, save (only where defectbench may write) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    from defectbench.owned_files import save_figure

    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
    return path
