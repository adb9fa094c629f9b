"""``defectbench train`` (SPEC 4). ``defectbench models`` (in ``scoring.py``) prints each neural configuration's
parameter count through the detectors' ``configurations()``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        model: str = typer.Option(..., "--model", help="hooknet or cnn6"),
        dataset: Path = typer.Option(..., "--dataset", help="a dataset folder built by defectbench build"),
        config: str = typer.Option("reference", "--config", help="named configuration (see defectbench models)"),
        epochs: Optional[int] = typer.Option(None, help="epochs (default: the paper's recipe)"),
        max_steps: Optional[int] = typer.Option(None, "--max-steps", help="stop after this many optimiser steps (cnn6 default: the paper's 98,000)"),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="default: 200 (hooknet), 512 (cnn6)"),
        lr: Optional[float] = typer.Option(None, help="default: 1e-3 (hooknet), 1e-4 (cnn6)"),
        pos_weight: Optional[float] = typer.Option(None, "--pos-weight", help="hooknet: weight of positive frames in the loss"),
        loss: Optional[str] = typer.Option(None, "--loss", help="hooknet: rms (the paper's RMS of sigmoid outputs, default) or bce (binary cross-entropy)"),
        eval_every: Optional[int] = typer.Option(None, "--eval-every", help="iterations between evaluations (default: epoch / 100)"),
        patience: Optional[int] = typer.Option(None, help="early stop after N evaluations without improvement"),
        reduce_on_plateau: Optional[bool] = typer.Option(None, "--reduce-on-plateau/--no-reduce-on-plateau", help="the glitch recipe's LR schedule"),
        init: Optional[Path] = typer.Option(None, "--init", help="start from a checkpoint (cnn6: also a PANN Cnn6_mAP=0.343.pth)"),
        out: Optional[Path] = typer.Option(None, "--out", help="checkpoint folder (default checkpoints/MODEL-DATASET)"),
        device: str = typer.Option("auto", help="auto, cpu or cuda"),
        seed: int = typer.Option(0, help="seed for initialisation, shuffling and dropout"),
        workers: int = typer.Option(0, help="DataLoader worker processes"),
        source: Optional[str] = typer.Option(None, "--source", help="train on fresh defects drawn every epoch from this source's clean train audio (synth:200, folder:PATH, ...); the dataset gives validation"),
        metadata: Optional[Path] = typer.Option(None, "--metadata", help="the source's metadata (FMA tracks.csv, video CSV), with --source"),
        set_: list[str] = typer.Option([], "--set", help="with --source: change a recipe option for training only, e.g. defect.probability=0.5 (repeatable)"),
        metric: Optional[str] = typer.Option(None, "--metric", help="validation metric that picks the best weights: accuracy (the paper's), f1, ap, balanced_accuracy"),
        val_fraction: Optional[float] = typer.Option(None, "--val-fraction", help="share of validation used to pick the best weights (cnn6 default: the paper's 0.01)"),
        lr_decay: Optional[float] = typer.Option(None, "--lr-decay", help="multiply the learning rate by this after every epoch"),
        lr_new: Optional[float] = typer.Option(None, "--lr-new", help="with --init: learning rate of the parameters the checkpoint lacks (e.g. hooknet --config cpu-spectral's branch)"),
        resume: bool = typer.Option(False, "--resume", help="continue the run in --out from its last finished epoch"),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)"),
        balance_classes: Optional[bool] = typer.Option(None, "--balance-classes/--no-balance-classes", help="cnn6: weigh every class in a batch the same in the loss (the paper's NLL does not)"),
        ema: Optional[float] = typer.Option(None, "--ema", help="evaluate and keep an exponential moving average of the weights, this decay per step (e.g. 0.999)"),
    ) -> None:
        """Train a neural detector with its paper's recipe; saves model.pt, config.json and curve.png."""
        from ..training import TrainOptions, train as run_training

        if threads:
            import torch

            torch.set_num_threads(threads)
        overrides = None
        if set_:
            if not source:
                from ..core import DefectbenchError

                raise DefectbenchError("--set needs --source (it changes the fresh training defects)")
            from ..fresh import parse_overrides

            overrides = parse_overrides(set_)

        out_dir = out or Path("checkpoints") / f"{model}-{Path(dataset).name}"
        run_training(TrainOptions(
            model=model, dataset=str(dataset), out=str(out_dir), config=config, epochs=epochs, max_steps=max_steps,
            batch_size=batch_size, lr=lr, pos_weight=pos_weight, loss=loss, eval_every=eval_every, patience=patience,
            reduce_on_plateau=reduce_on_plateau, init=None if init is None else str(init), device=device,
            seed=seed, workers=workers, source=source, metadata=None if metadata is None else str(metadata),
            overrides=overrides, metric=metric, resume=resume, val_fraction=val_fraction, lr_decay=lr_decay, lr_new=lr_new,
            balance_classes=balance_classes, ema=ema, command=command_line(),
        ), log=typer.echo)


def command_line() -> list[str] | None:
    """The ``defectbench train ...`` command as typed (``sys.argv``), for config.json and the model card;
    None when train was not started from the command line (e.g. the demo calls it in-process)."""
    import sys

    args = sys.argv[1:]
    return ["defectbench", *args] if args[:1] == ["train"] else None
