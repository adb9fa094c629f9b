"""``defectbench run`` (score a detector on a dataset) and ``defectbench models`` (list detectors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..core import DefectbenchError, SPLITS

console = Console()


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_cmd(
        model: str = typer.Option(..., "--model", help="Detector name (see `defectbench models`)."),
        dataset: Path = typer.Option(..., "--dataset", help="A dataset folder built by `defectbench build`."),
        checkpoint: Optional[Path] = typer.Option(None, help="Restore the detector from this checkpoint (neural models: default the shipped weights for the dataset's recipe)."),
        untrained: bool = typer.Option(False, "--untrained", help="Neural models: score a random initialisation (never the default)."),
        out: Optional[Path] = typer.Option(None, help="Result JSON (default results/<dataset>/<model>.json)."),
        workers: Optional[int] = typer.Option(None, help="Processes the detector may use (default: all cores)."),
        split: str = typer.Option("test", help="Split to score (the threshold is always chosen on validation)."),
        option: list[str] = typer.Option([], "--option", "-o", help="Detector option KEY=VALUE (value read as JSON if it parses)."),
        criterion: str = typer.Option("accuracy", help="Validation criterion for the threshold: accuracy | f1."),
        resamples: int = typer.Option(1000, help="Bootstrap resamples for the 95 % intervals."),
        quiet: bool = typer.Option(False, help="No progress bar."),
    ) -> None:
        """Choose the threshold on validation, score a split, write the result, predictions and plots."""
        from ..runner import run

        if split not in SPLITS:
            raise DefectbenchError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
        run(
            model,
            dataset,
            split=split,
            out=out,
            workers=workers,
            options=parse_options(option),
            checkpoint=checkpoint,
            criterion=criterion,
            untrained=untrained,
            n_resamples=resamples,
            show_progress=not quiet,
            console=console,
        )

    @app.command("models")
    def models_cmd() -> None:
        """List the detectors: tasks, description, parameter counts of each named configuration."""
        from ..detectors import load_all

        table = Table("model", "tasks", "description", "configurations (trainable parameters)")
        for name, cls in sorted(load_all().items()):
            table.add_row(name, ", ".join(cls.tasks), cls.description, configurations_text(cls))
        console.print(table)


def parse_options(pairs: list[str]) -> dict:
    options = {}
    for pair in pairs:
        if "=" not in pair:
            raise DefectbenchError(f"option {pair!r} is not KEY=VALUE")
        key, value = pair.split("=", 1)
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def configurations_text(cls) -> str:
    """``name: count`` per configuration if the class offers ``configurations()`` (a dict name -> options)."""
    configurations = getattr(cls, "configurations", None)
    if configurations is None:
        return "-"
    parts = []
    for conf_name, options in configurations().items():
        try:
            count = cls(**options).parameter_count()
        except Exception as exc:  # a configuration that cannot be built is shown, not hidden
            parts.append(f"{conf_name}: error ({exc})")
            continue
        parts.append(f"{conf_name}: {count:,}")
    return "\n".join(parts) or "-"
