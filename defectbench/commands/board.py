"""``defectbench publish`` (a dataset to the Hub) and ``defectbench leaderboard`` (validate and render)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console(soft_wrap=True)


def publish_cmd(
    dataset: Path = typer.Argument(..., help="A dataset folder built by `defectbench build`."),
    repo: str = typer.Option(..., "--repo", help="Hub dataset repo, ORG/NAME."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Stage the exact upload folder and print the plan; upload nothing."),
    staging: Optional[Path] = typer.Option(None, help="Staging folder (default build/publish/ORG__NAME)."),
    private: bool = typer.Option(False, help="Create the repo as private."),
    message: Optional[str] = typer.Option(None, help="Commit message on the Hub."),
) -> None:
    """Push a dataset folder (data/, README.md card, manifest.json) to the Hugging Face Hub."""
    from ..publish import publish

    plan = publish(dataset, repo, dry_run=dry_run, staging=staging, private=private, message=message)
    lines = plan.describe()
    if dry_run:
        for line in lines:
            console.print(line, highlight=False)
        console.print(f"dry run: nothing uploaded; the staged folder is {plan.staged}", highlight=False)
    else:
        console.print(f"published {plan.dataset} to https://huggingface.co/datasets/{repo} "
                      f"({len(plan.files)} files, fingerprint {plan.fingerprint})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_cmd)
