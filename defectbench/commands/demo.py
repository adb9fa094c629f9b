"""``defectbench demo``: the main job on the built-in synth corpus, end to end.

Build ``fma-clicks`` from ``synth`` (and draw example spectrograms) -> score SigClick -> train a small Hook-Net on CPU (or GPU) and
score it -> submit both to the leaderboard and render it. Each step is the ordinary command a user
would type (printed before it runs), so the demo doubles as a walk-through; the leaderboard's
reference entries are exactly what this produces.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console

console = Console()


def demo_steps(minutes: float, config: str, epochs: int, batch_size: int, workers: int, device: str,
               train: bool) -> list[list[str]]:
    data = "datasets/fma-clicks"
    source = "synth" if minutes == 3 else f"synth:{minutes:g}"
    steps = [
        ["build", "fma-clicks", "--source", source, "--out", data, "--overwrite", "--workers", str(workers)],
        ["examples", data],
        ["run", "--model", "sigclick", "--dataset", data, "--out", "results/fma-clicks/sigclick.json",
         "--workers", str(workers)],
        ["submit", "results/fma-clicks/sigclick.json", "--name", "demo-sigclick", "--overwrite"],
    ]
    if train:
        ckpt = f"checkpoints/hooknet-{config}-fma-clicks"
        steps += [
            ["train", "--model", "hooknet", "--dataset", data, "--config", config, "--epochs", str(epochs),
             "--batch-size", str(batch_size), "--device", device, "--out", ckpt],
            ["run", "--model", "hooknet", "--checkpoint", ckpt, "--dataset", data,
             "--out", f"results/fma-clicks/hooknet-{config}.json"],
            ["submit", f"results/fma-clicks/hooknet-{config}.json", "--name", f"demo-hooknet-{config}", "--overwrite"],
        ]
    steps.append(["leaderboard", "--record", data])
    return steps


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        minutes: float = typer.Option(3.0, help="Minutes of synth training audio (validation and test get a third each)."),
        config: str = typer.Option("small", help="Hook-Net configuration to train (see `defectbench models`)."),
        epochs: int = typer.Option(3, help="Hook-Net training epochs."),
        batch_size: int = typer.Option(16, "--batch-size", help="Hook-Net batch size (the paper's 200 needs a GPU)."),
        workers: int = typer.Option(2, help="Worker processes for the build and SigClick."),
        device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
        train: bool = typer.Option(True, "--train/--no-train", help="Train and score Hook-Net (the longest step)."),
    ) -> None:
        """The main job: build fma-clicks from synth, score SigClick and Hook-Net, render the leaderboard."""
        steps = demo_steps(minutes, config, epochs, batch_size, workers, device, train)
        for i, args in enumerate(steps, 1):
            console.rule(f"[bold]step {i}/{len(steps)}: defectbench {shlex.join(args)}", align="left")
            code = app(args=args, standalone_mode=False)
            if isinstance(code, int) and code:
                raise typer.Exit(code)
        console.rule("[bold green]done", align="left")
        console.print(f"dataset: datasets/fma-clicks (load with datasets.load_dataset; examples.png)\n"
                      f"results: results/fma-clicks/\n"
                      f"leaderboard: {Path('leaderboard/README.md')} and {Path('leaderboard/index.html')}")
