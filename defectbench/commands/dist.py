"""Commands for builds that outgrow one machine (issue 8): ``defectbench merge``.

(``defectbench build`` itself takes ``--executor dask``, ``--scheduler`` and ``--num-shards/--shard-index``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("merge")
    def merge_cmd(
        out: Path = typer.Argument(..., help="The dataset folder OUT whose parts are in OUT.parts/ (the build's --out)."),
        recipe: Optional[str] = typer.Option(None, help="Recipe file, if not at the path the parts recorded (checked by hash)."),
        overwrite: bool = typer.Option(False, help="Replace an existing output folder."),
    ) -> None:
        """Join the parts of a job-array build (--num-shards N --shard-index i) into the dataset folder."""
        from ..cli import _print_summary, console
        from ..merge import merge

        result = merge(out, recipe=recipe, overwrite=overwrite)
        _print_summary(result.out, result.manifest)
        console.print(f"merged {result.out} in {result.seconds:.1f} s")
