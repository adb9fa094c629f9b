"""The leaderboard: validate submitted result files, re-score them, rank them, render the board.

Layout (``leaderboard/``)::

    fingerprints.json                      reference builds: recipe, source, seed, limit -> fingerprint
    submissions/<task>/<name>/result.json  a result file (``defectbench.results.Result``)
    submissions/<task>/<name>/*.parquet    its test and validation predictions (paths and SHA-256 in result.json)
    submissions/<task>/<name>/*.png        its plots (optional)
    README.md, index.html                  generated from templates/: tables per task and build
    plots/<task>-<n>.png                   generated: recall by severity and genre, one line per detector
    export/<task>/<name>/                  generated: ``.eval_results/<task>.yaml`` and ``model-index.yaml``

The package, one job per module: :mod:`.registry` (known dataset builds), :mod:`.validation` (the
checks, ``collect`` and ``submit``), :mod:`.ranking`, :mod:`.render` (templates and plots),
:mod:`.export` (Hub eval results). The figures come from :func:`defectbench.rescore.rescore`, the
same recomputation ``defectbench.results.verify`` uses.
"""

from __future__ import annotations

from pathlib import Path

from .export import eval_results, export_eval_results
from .ranking import PRIMARY, PRIMARY_LABEL, Board, Entry, Rejection, rank, rank_text
from .registry import (FINGERPRINTS, RESULT, SPLIT, Build, build_missing, known_builds, local_builds,
                       read_fingerprints, record_fingerprint, wanted_fingerprints)
from .render import cell, columns, plot_paths, render_html, render_markdown, write_plots
from .validation import (DATA_SUFFIXES, MARKER, MAX_FILE_BYTES, NAME, ROOT, Rejected, check_files, collect,
                         known_recipes, submit, validate)

_rank_text = rank_text  # the CLI's name for it

__all__ = ["Board", "Build", "DATA_SUFFIXES", "Entry", "FINGERPRINTS", "MARKER", "MAX_FILE_BYTES", "NAME",
           "PRIMARY", "PRIMARY_LABEL", "RESULT", "ROOT", "Rejected", "Rejection", "SPLIT", "build_missing",
           "cell", "check_files", "collect", "columns", "eval_results", "export_eval_results", "known_builds",
           "known_recipes", "local_builds", "plot_paths", "rank", "rank_text", "read_fingerprints", "record_fingerprint",
           "render_html", "render_markdown", "submit", "validate", "wanted_fingerprints", "write", "write_plots"]


def write(board: Board, namespace: str = "defectbench") -> list[Path]:
    """README.md, index.html, the breakdown plots and the Hub exports of a collected board."""
    import os
    import re

    from ..owned_files import check_replaceable, is_ours, vouch, write_text
    from ..ownership import check_removable

    readme, page = board.root / "README.md", board.root / "index.html"
    if is_ours(readme):  # the plots an earlier render drew (unsigned where an older defectbench drew them)
        vouch(board.root / link for link in re.findall(r"\]\((plots/[\w.-]+\.png)\)", readme.read_text()))
    # before anything is written: every file this replaces, and the export folder it removes, must be ours
    check_replaceable([readme, page, *plot_paths(board)], " (the board's pages)")
    if os.path.lexists(board.root / "export"):
        check_removable(board.root / "export", ("board-export",), why=" (the board's Hub export)")
    board.root.mkdir(parents=True, exist_ok=True)
    plots = write_plots(board)
    write_text(readme, render_markdown(board))
    write_text(page, render_html(board))
    return [readme, page, *plots, *export_eval_results(board, namespace)]
