"""``defectbench demo``: the main job on the built-in synth corpus, end to end.

Build the benchmark build of ``fma-clicks`` from ``synth:60`` (about 3,000 test segments, about 300
of them clicked: enough for meaningful 95 % intervals) and draw example spectrograms -> score SigClick
(threshold chosen on validation) -> score the **shipped** Hook-Net for ``fma-clicks`` (no training:
``models/weights/``) -> submit both to the leaderboard and render it. Training stays a documented
step: ``--train`` trains a Hook-Net on fresh defects drawn every epoch and scores it too. Each step is
the ordinary command a user would type (printed before it runs), so the demo doubles as a
walk-through. The board is reached through its command-line entry point only (``leaderboard``).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console

console = Console()

DATA = "datasets/fma-clicks"
BOARD = "results/demo-leaderboard"
"""The demo's own board: the shipped board (leaderboard/) re-scores every recipe's reference entries and would
first build each benchmark dataset it lacks (about 10 minutes); the demo ranks its own two entries instead."""


def demo_steps(minutes: float, workers: int, device: str, shipped: bool, train: bool, config: str = "cpu",
               epochs: int = 3, batch_size: int = 32, train_minutes: float = 20.0) -> list[list[str]]:
    source = "synth" if minutes == 3 else f"synth:{minutes:g}"
    steps = [
        ["build", "fma-clicks", "--source", source, "--out", DATA, "--overwrite", "--workers", str(workers)],
        ["examples", DATA],
        ["run", "--model", "sigclick", "--dataset", DATA, "--out", "results/fma-clicks/sigclick.json",
         "--workers", str(workers)],
        ["submit", "results/fma-clicks/sigclick.json", "--name", "demo-sigclick", "--root", BOARD, "--overwrite"],
    ]
    if shipped:  # the shipped weights for the dataset's recipe: no --checkpoint
        steps += [
            ["run", "--model", "hooknet", "--dataset", DATA, "--criterion", "f1",
             "--out", "results/fma-clicks/hooknet.json"],
            ["submit", "results/fma-clicks/hooknet.json", "--name", "demo-hooknet", "--root", BOARD, "--overwrite"],
        ]
    if train:
        ckpt = f"checkpoints/hooknet-{config}-fma-clicks"
        steps += [
            ["train", "--model", "hooknet", "--dataset", DATA, "--config", config, "--epochs", str(epochs),
             "--batch-size", str(batch_size), "--source", f"synth:{train_minutes:g}", "--set", "defect.probability=0.5",
             "--metric", "f1", "--device", device, "--out", ckpt],
            ["run", "--model", "hooknet", "--checkpoint", ckpt, "--dataset", DATA, "--criterion", "f1",
             "--out", f"results/fma-clicks/hooknet-{config}-trained.json"],
            ["submit", f"results/fma-clicks/hooknet-{config}-trained.json", "--name", f"demo-hooknet-{config}-trained",
             "--root", BOARD, "--overwrite"],
        ]
    steps.append(["leaderboard", "--root", BOARD, "--record", DATA])
    return steps


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        minutes: float = typer.Option(60.0, help="Minutes of synth training audio for the build (validation and test get a third each); 60 is the benchmark build."),
        workers: int = typer.Option(2, help="Worker processes for the build and SigClick."),
        device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
        train: bool = typer.Option(False, "--train/--no-train", help="Also train a Hook-Net on fresh defects and score it (the long step)."),
        config: str = typer.Option("cpu", help="With --train: the Hook-Net configuration (see `defectbench models`)."),
        epochs: int = typer.Option(3, help="With --train: epochs."),
        batch_size: int = typer.Option(32, "--batch-size", help="With --train: batch size (the paper's 200 needs a GPU)."),
    ) -> None:
        """The main job: build fma-clicks from synth, score SigClick and the shipped Hook-Net, render the leaderboard."""
        from ..weights import available

        shipped = any(s.model == "hooknet" and s.recipe == "fma-clicks" for s in available())
        if not shipped:
            console.print("[yellow]no shipped Hook-Net weights for fma-clicks in this installation: that step is "
                          "left out (--train trains one)[/]")
        steps = demo_steps(minutes, workers, device, shipped, train, config, epochs, batch_size)
        for i, args in enumerate(steps, 1):
            console.rule(f"[bold]step {i}/{len(steps)}: defectbench {shlex.join(args)}", align="left")
            code = app(args=args, standalone_mode=False)
            if isinstance(code, int) and code:
                raise typer.Exit(code)
        console.rule("[bold green]done", align="left")
        console.print(f"dataset: {DATA} (load with datasets.load_dataset; examples.png)\n"
                      f"results: results/fma-clicks/\n"
                      f"leaderboard: {Path(BOARD) / 'README.md'} and {Path(BOARD) / 'index.html'} (the shipped board with "
                      "every recipe's reference entries: leaderboard/README.md)")
