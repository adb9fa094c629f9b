"""The ``defectbench`` command line (typer). Core commands live here; each area adds its own from
``defectbench/commands/<area>.py`` (see that package's docstring)."""

from __future__ import annotations

import importlib
import pkgutil
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.exceptions import Abort
from typer._click.exceptions import ClickException
from rich.console import Console
from rich.table import Column, Table

from . import __version__
from .core import SPLITS, DefectbenchError

app = typer.Typer(help="defectbench: reproducible audio-defect datasets and a benchmark for defect detectors.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
console = Console()
err = Console(stderr=True, soft_wrap=True)  # one error, one line: never wrapped


@app.callback()
def _root(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        console.print(f"defectbench {__version__}")
        raise typer.Exit()


@app.command("recipes")
def recipes_cmd() -> None:
    """List the recipes with a one-line description and the paper section each follows."""
    from .recipe import load_recipe, recipe_files

    table = Table("pipeline", "default source", "description", "paper")
    table.columns.insert(0, Column("recipe", no_wrap=True))
    for name in sorted(recipe_files()):
        r = load_recipe(name)
        table.add_row(r.name, r.pipeline, r.source.default, r.description, r.paper)
    console.print(table)


@app.command("build")
def build_cmd(
    recipe: str = typer.Argument(..., help="Recipe name (see `defectbench recipes`) or path to a recipe .toml."),
    source: Optional[str] = typer.Option(None, help="synth | synth:MINUTES | folder:PATH | fma:PATH | video:PATH | benchmark (default: the recipe's)."),
    benchmark: bool = typer.Option(False, "--benchmark", help="The recipe's benchmark-size source (the board's reference build; same as --source benchmark), into datasets/bench/RECIPE by default."),
    metadata: Optional[Path] = typer.Option(None, help="Metadata: FMA's fma_metadata folder (tracks.csv), or a video CSV."),
    out: Optional[Path] = typer.Option(None, help="Output folder (default datasets/RECIPE)."),
    limit: Optional[int] = typer.Option(None, help="Use at most N source items (pieces, videos) per split."),
    workers: int = typer.Option(1, help="Worker processes (the output is identical for any count)."),
    seed: Optional[int] = typer.Option(None, help="Recipe seed (default: the recipe's)."),
    overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    executor: str = typer.Option("process", help="process (local pool) | dask (a LocalCluster of --workers, or --scheduler)."),
    scheduler: Optional[str] = typer.Option(None, help="Dask scheduler address tcp://HOST:PORT (with --executor dask)."),
    num_shards: Optional[int] = typer.Option(None, help="Job arrays: split the shards into N parts (with --shard-index)."),
    shard_index: Optional[int] = typer.Option(None, help="Job arrays: build part i (0..N-1) into OUT.parts/; then `defectbench merge`."),
) -> None:
    """Build a recipe into a Hugging Face dataset folder (parquet + card + manifest)."""
    from .engine import build
    from .executors import open_executor
    from .recipe import BENCHMARK_DIR, benchmark_source, load_recipe

    if benchmark or source == "benchmark":
        if benchmark and source not in (None, "benchmark"):
            raise DefectbenchError("--benchmark names the recipe's benchmark source; give it or --source, not both")
        r = load_recipe(recipe)
        source = benchmark_source(r)
        out = out or BENCHMARK_DIR / r.name
    with open_executor(executor, workers, scheduler) as ex:
        result = build(recipe, source, out, metadata=metadata, seed=seed, limit=limit, workers=workers,
                       overwrite=overwrite, progress=not quiet, executor=ex, num_shards=num_shards,
                       shard_index=shard_index)
    if result.retried:
        console.print(f"[yellow]rebuilt {len(result.retried)} shard(s) after a worker died:[/] {', '.join(result.retried)}")
    for note in result.notes:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
    if result.part:
        p = result.part
        console.print(f"built part {p['shard_index']} of {p['num_shards']} ({len(p['built'])} of {len(p['shards'])} shards) "
                      f"into {result.out} in {result.seconds:.1f} s; when every part is done: defectbench merge {result.out.parent.with_suffix('')}")
        return
    m = result.manifest
    _print_summary(result.out, m)
    console.print(f"built {result.out} in {result.seconds:.1f} s"
                  + (f" (reused {result.reused_shards} finished shards)" if result.reused_shards else ""))


def _print_summary(path: Path, m: dict) -> None:
    table = Table("split", "samples", *m["label_names"], "items", "skipped", title=f"{path} ({m['recipe']['name']})")
    for s in SPLITS:
        info = m["splits"].get(s, {})
        table.add_row(s, str(info.get("samples", 0)), *[str(info.get("labels", {}).get(n, 0)) for n in m["label_names"]],
                      str(info.get("items", 0)), str(info.get("skipped", 0)))
    console.print(table)
    if m["skipped"]:
        console.print(f"[yellow]skipped {len(m['skipped'])} source items:[/] "
                      + ", ".join(f"{k}: {v}" for k, v in sorted(m["skipped_counts"].items())))
        for s in m["skipped"][:10]:
            console.print(f"  [yellow]-[/] {s['id']}: {s['reason']}")
        if len(m["skipped"]) > 10:
            console.print(f"  ... and {len(m['skipped']) - 10} more (manifest.json lists every one)")
    clipping = m.get("source_clipping") or {}
    if clipping.get("items"):
        console.print(f"[yellow]source clipping:[/] {clipping['items']} items had samples outside [-1, 1] "
                      f"({clipping['samples']} samples, clipped; column source_clipped_samples)")
    for k, v in sorted(m.get("counters", {}).items()):
        console.print(f"  {k}: {v:g}")
    console.print(f"fingerprint {m['fingerprint']}")


@app.command("info")
def info_cmd(dataset: Path = typer.Argument(..., help="A dataset folder built by `defectbench build`.")) -> None:
    """Counts per split and label, skipped items and the fingerprint of a built dataset (verified)."""
    from .dataset import read_manifest
    from .verify import verify_dataset

    report = verify_dataset(dataset)
    _print_summary(dataset, read_manifest(dataset))
    console.print("verified: the parquet files give this fingerprint"
                  + (" (a stored verification of the same bytes)" if report.cached else ""), soft_wrap=True)


@app.command("verify")
def verify_cmd(
    dataset: Path = typer.Argument(..., help="A dataset folder built by `defectbench build`."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Trust a stored verification of the same bytes (sizes, mtimes, sha256)."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Recompute the fingerprint from the parquet files and compare it with the manifest's (exit 2 if it differs)."""
    from .verify import verify_dataset

    report = verify_dataset(dataset, use_cache=cache, progress=not quiet)
    rows = ", ".join(f"{s} {n}" for s, n in report.rows.items())
    how = "stored verification of the same bytes" if report.cached else "recomputed from the parquet files"
    console.print(f"{dataset}: fingerprint {report.fingerprint} verified ({how}; {report.files} files; rows {rows})",
                  highlight=False, soft_wrap=True)


@app.command("examples")
def examples_cmd(
    dataset: Path = typer.Argument(..., help="A dataset folder built by `defectbench build`."),
    out: Optional[Path] = typer.Option(None, help="PNG to write (default DATASET/examples.png)."),
    per_label: int = typer.Option(3, "--per-label", help="Examples per label."),
    split: str = typer.Option("test", help="Split to take them from."),
) -> None:
    """Draw example spectrograms per label with their framewise targets (a PNG)."""
    from .owned_files import check_replaceable
    from .plots import example_spectrograms

    out = out or Path(dataset) / "examples.png"
    if out.suffix.lower() != ".png":
        raise DefectbenchError(f"--out {out}: the examples are a PNG; name a .png file")
    check_replaceable(out, " (--out)")  # before reading the dataset
    path = example_spectrograms(dataset, out, per_label, split)
    console.print(f"wrote {path}")


def _register_command_modules() -> None:
    from . import commands

    for mod in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"{commands.__name__}.{mod.name}")
        if hasattr(module, "register"):
            module.register(app)


INTERRUPTED = "[yellow]interrupted[/]: run the same command again to resume (finished shards are kept)"


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (the same clean-up), exit status 143."""


_terminated: list[bool] = []  # set by the handler: typer returns Ctrl-C as exit code 130, SIGTERM included


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    _terminated.append(True)
    raise Terminated()


def main(argv: list[str] | None = None) -> None:
    code = _main(argv)
    dist = sys.modules.get("defectbench.distributed")  # imported only by the torch commands
    if dist is not None and dist.group_started():
        dist.exit_process(code)  # a torchrun worker: skip finalization, where gloo can abort the process
    if code:
        sys.exit(code)


def _main(argv: list[str] | None) -> int:
    from .engine import ItemFailed

    _register_command_modules()
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        # standalone_mode=False: errors come back to us (one line, no traceback); typer turns
        # Ctrl-C into exit code 130 and returns exit codes instead of raising.
        code = app(args=argv, standalone_mode=False)
    except DefectbenchError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except ItemFailed as exc:  # an internal error: not a skip, not the user's mistake; loud, with the cause
        err.print(f"[red]error:[/] build stopped: {exc} (an internal error, not a skipped item; "
                  "finished shards are kept)", highlight=False)
        if exc.detail:
            print(exc.detail, file=sys.stderr, end="")
        return 1
    except (KeyboardInterrupt, Abort):
        code = 130
    except ClickException as exc:  # usage errors: click's own one-line message
        exc.show()
        return exc.exit_code
    if code == 130 and _terminated:
        code = 143
    if code in (130, 143):
        err.print(INTERRUPTED)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
