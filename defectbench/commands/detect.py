"""``defectbench detect`` (find defects in audio files with a trained detector) and ``defectbench ship``
(a training output folder -> shipped weights, model card and curve)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect_cmd(
        paths: list[Path] = typer.Argument(..., help="Audio files of any length and format, or folders (recursively)."),
        out: Path = typer.Option(..., "--out", help="Events file: .csv (file,start,end,label,score), .tsv (DCASE) or .json."),
        model: str = typer.Option("hooknet", "--model", help="hooknet (framewise events) or cnn6 (per-second video-audio labels)."),
        task: Optional[str] = typer.Option(None, "--task", help="Which shipped weights: fma-clicks (default for hooknet), fma-clicks-post, fma-mp3-glitch; video-artifacts for cnn6."),
        threshold: Optional[float] = typer.Option(None, "--threshold", help="Decision threshold (default: the shipped validation threshold; cnn6: minimum probability, default 0)."),
        plot: Optional[Path] = typer.Option(None, "--plot", help="Folder for a timeline PNG per file (waveform, scores, events)."),
        checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", help="Your own trained weights instead of the shipped ones."),
        device: str = typer.Option("cpu", help="cpu, cuda or auto."),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
        quiet: bool = typer.Option(False, help="No progress bar."),
    ) -> None:
        """Scan audio files for defects; one row per detected event (seconds)."""
        from ..detect import detect

        if threads:
            import torch

            torch.set_num_threads(threads)

        detect(paths, out, model=model, task=task, checkpoint=checkpoint, threshold=threshold, plot_dir=plot,
               device=device, progress=not quiet, log=typer.echo)

    @app.command("ship")
    def ship_cmd(
        source: Path = typer.Option(..., "--from", help="A training output folder (model.pt: its best weights, config.json, curve.png), or its last.pt to ship the run's last finished epoch instead."),
        recipe: str = typer.Option(..., "--recipe", help="The recipe the weights are for (names the files)."),
        dataset: Optional[Path] = typer.Option(None, "--dataset", help="The validation/test build (default: the one the run validated on)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Registry folder (default models/weights/ of the package)."),
        workers: int = typer.Option(1, help="Worker processes."),
        resamples: int = typer.Option(1000, help="Bootstrap resamples for the card's 95 % intervals."),
        command: Optional[str] = typer.Option(None, "--command", help="The training command, for a run whose config.json did not record it."),
    ) -> None:
        """Write <model>-<recipe>.pt (weights, no optimiser state), .md (model card) and .png (curve)."""
        from ..ship import ship

        ship(source, recipe, dataset=dataset, out_dir=out, workers=workers, resamples=resamples,
             command=command, log=typer.echo)
