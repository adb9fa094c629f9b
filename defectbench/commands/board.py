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




def leaderboard_cmd(
    root: Path = typer.Option(Path("leaderboard"), help="The leaderboard folder (submissions/, fingerprints.json)."),
    datasets_dir: Path = typer.Option(Path("datasets"), help="Where local dataset builds are (to recompute metrics)."),
    build_missing: bool = typer.Option(True, "--build-missing/--no-build-missing",
                                       help="Build the reference datasets (fingerprints.json) that submissions use and that are not built yet."),
    record: list[Path] = typer.Option([], "--record", help="Add a local build to fingerprints.json as a reference build (repeatable)."),
    namespace: str = typer.Option("defectbench", help="Hub namespace of the benchmark datasets in the .eval_results export."),
    quiet: bool = typer.Option(False, help="No progress bar while building missing datasets."),
) -> None:
    """Validate every submission, rank them, write README.md, index.html and the Hub eval-results export.

    Exit status 1 when any submission is rejected (the board is still written, listing each with its reason).
    """
    from .. import leaderboard as L
    from ..core import DefectbenchError

    if not root.is_dir():  # a mistyped --root would otherwise become a new, empty board
        raise DefectbenchError(f"--root {root}: {'not a folder' if root.exists() else 'no such folder'} "
                               "(the leaderboard folder, made by `defectbench submit`)")
    for dataset in record:
        b = L.record_fingerprint(root, dataset)
        console.print(f"recorded {b.recipe} ({b.describe()}) in {root / L.FINGERPRINTS}", highlight=False)
    if build_missing:
        built, problems = L.build_missing(root, datasets_dir, progress=not quiet, only=L.wanted_fingerprints(root))
        for out in built:
            console.print(f"built reference dataset {out}", highlight=False)
        for line in problems:
            console.print(f"[yellow]warning:[/] {line}", highlight=False)
    board = L.collect(root, datasets_dir)
    written = L.write(board, namespace)
    for task, builds in board.groups().items():
        for entries in builds.values():
            console.print(f"{task}: " + ", ".join(f"{L._rank_text(e)}. {e.name} ({e.primary} {e.value:.4g})"
                                                  if e.value is not None else f"{L._rank_text(e)}. {e.name}"
                                                  for e in entries), highlight=False)
    for r in board.rejected:
        console.print(f"[red]rejected[/] {r.task}/{r.name}: {r.reason}", highlight=False)
    console.print(f"{len(board.entries)} valid, {len(board.rejected)} rejected; wrote {written[0]} and {written[1]} "
                  f"(+{len(written) - 2} eval-results files)", highlight=False)
    if board.rejected:
        raise typer.Exit(1)


def submit_cmd(
    result: Path = typer.Argument(..., help="A result file written by `defectbench run`."),
    name: str = typer.Option(..., help="Submission name (folder under leaderboard/submissions/<recipe>/)."),
    root: Path = typer.Option(Path("leaderboard"), help="The leaderboard folder."),
    overwrite: bool = typer.Option(False, help="Replace an existing submission of that name."),
) -> None:
    """Copy a result with its predictions and plots into the leaderboard's submissions."""
    from .. import leaderboard as L

    folder = L.submit(result, name, root, overwrite)
    console.print(f"submitted {folder}; run `defectbench leaderboard` to validate and render", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("publish")(publish_cmd)
    app.command("leaderboard")(leaderboard_cmd)
    app.command("submit")(submit_cmd)
