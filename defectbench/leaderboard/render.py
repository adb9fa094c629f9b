"""Rendering a collected board: ``README.md`` and ``index.html`` from the templates in ``templates/``,
and one breakdown plot per task and build (``plots/<task>-<n>.png``: recall by severity bin and by
genre, one line per detector).

Every figure shown is the board's recomputed one (:mod:`defectbench.rescore`); declared figures that
differ appear only in the "declared, not used" list. Untrusted text (names, model names) is escaped
for Markdown and HTML here; the templates hold only the layout.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..owned_files import remove_if_ours, save_figure
from .ranking import PRIMARY, PRIMARY_LABEL, Board, Entry, rank_text

TEMPLATES = Path(__file__).resolve().parent / "templates"
CLICKS = ("fma-clicks", "fma-clicks-post")
CEILING = ("SigClick as in the paper (frames of 4096 cut from sample 0, hop 2048) never searches the first and "
           "last 1024 samples of a 16384-sample segment: Essentia's ClickDetector looks only at the middle 2048 "
           "samples of each frame, so its recall on uniformly placed clicks cannot exceed 87.5 % (the paper reports "
           "90.52). `sigclick-edges` is the same detector with `-o edges=true` (the ends padded by an odd reflection "
           "so that they fall into searched frames); the breakdown by \"click in the first/last 1024 samples\" "
           "shows the difference.")


def _num(v: float | None, digits: int = 2) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def _digits(e: Entry) -> int:
    return 2 if e.result.task == "framewise" else 4


def _ci(ci: tuple[float, float] | None, digits: int) -> str:
    return "" if ci is None else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _params(n: int) -> str:
    return "0" if not n else (f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n / 1e3:.1f} k" if n >= 1e3 else str(n))


def threshold_text(e: Entry) -> str:
    """The board's threshold (chosen on validation by the declared criterion)."""
    th = e.rescored.threshold
    if th["value"] is None:
        return "arg-max"
    return f"{th['value']:g} {th['unit']}".strip() + f" (by {th['criterion']} on validation)"


def _device(e: Entry) -> str:
    t, env = e.result.throughput, e.result.environment
    where = env.gpu if t.device.startswith("cuda") and env.gpu else env.cpu
    return f"{t.device}, {t.workers} worker{'s' if t.workers != 1 else ''} ({where})"


def columns(task_kind: str) -> list[tuple[str, str]]:
    """(key, heading) of the main table for one task kind."""
    if task_kind == "framewise":
        metric = [("f1", "F1 % [95 % CI]"), ("precision", "precision %"), ("recall", "recall %"),
                  ("average_precision", "AP %"), ("event_f1", "event F1 % (±1 frame)"),
                  ("event_ap", "event AP % (±50 ms)"), ("accuracy", "accuracy %")]
    else:
        metric = [("balanced_accuracy", "balanced accuracy [95 % CI]"), ("macro_f1", "macro-F1"),
                  ("accuracy", "accuracy"), ("weakest", "weakest class recall")]
    return ([("rank", "rank"), ("submission", "submission"), ("model", "model")] + metric
            + [("threshold", "threshold"), ("parameters", "parameters"), ("throughput", "segments/s"),
               ("device", "device"), ("plots", "plots")])


NUMERIC = {"rank", "f1", "precision", "recall", "average_precision", "event_f1", "event_ap", "accuracy",
           "balanced_accuracy", "macro_f1", "weakest", "threshold", "parameters", "throughput", "plots"}


def cell(e: Entry, key: str) -> tuple[str, float | str | None]:
    """Display text and sort value of one cell (recomputed figures; throughput and device as declared)."""
    m, r = e.metrics, e.result
    d = _digits(e)
    if key == "rank":
        return rank_text(e), e.rank
    if key == "submission":
        return e.name, e.name.lower()
    if key == "model":
        return r.model.name, r.model.name.lower()
    if key in ("f1", "balanced_accuracy"):
        v = m[key]
        return f"{_num(v, d)} {_ci(e.intervals.get(key), d)}".strip(), v
    if key in ("precision", "recall", "average_precision", "accuracy", "macro_f1"):
        v = m.get(key)
        return _num(v, d), v
    if key == "event_f1":
        v = e.rescored.events.get("±1 frame", {}).get("f1")
        return _num(v), v
    if key == "event_ap":
        v = e.rescored.event_ap
        return _num(v), v
    if key == "weakest":
        names = r.dataset.label_names
        recalls = [(k, v) for k, v in zip(names, m["per_class_recall"]) if v is not None]
        if not recalls:
            return "–", None
        k, v = min(recalls, key=lambda kv: kv[1])  # ties: the first class in label order
        return f"{v:.4f} ({k})", v
    if key == "threshold":
        return threshold_text(e), e.rescored.threshold["value"]
    if key == "parameters":
        return _params(r.model.parameters), r.model.parameters
    if key == "throughput":
        return f"{r.throughput.segments_per_s:.1f}", r.throughput.segments_per_s
    if key == "device":
        return _device(e), _device(e).lower()
    if key == "plots":
        return ", ".join(Path(p).name for p in r.plots) or "–", len(r.plots)
    raise KeyError(key)


def _plot_links(e: Entry, root: Path) -> list[str]:
    return [(e.folder / p).relative_to(root).as_posix() for p in e.result.plots]


def md(text: Any) -> str:
    """Escape untrusted text for a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _bin_label(row: dict[str, Any]) -> str:
    lo, hi = row["low"], row["high"]
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g}–{hi:.3g}"


def severity_tables(entries: list[Entry]) -> list[dict[str, Any]]:
    """Per severity parameter: bins (heading) and, per entry, recall (precision) per bin."""
    kind = entries[0].result.task
    metric = "recall" if kind == "framewise" else "accuracy"
    tables = []
    for key, rows in entries[0].rescored.severity.items():
        heads = [f"{_bin_label(r)} (n={r['samples']})" for r in rows]
        body = []
        for e in entries:
            got = e.rescored.severity.get(key, [])
            cells = []
            for r in got:
                v = r.get(metric)
                text = _num(v, 1 if kind == "framewise" else 3)
                if kind == "framewise" and r.get("precision") is not None:
                    text += f" ({r['precision']:.1f})"
                cells.append(text)
            body.append({"name": e.name, "cells": cells})
        tables.append({"parameter": key, "bins": heads, "rows": body})
    return tables


def genre_table(entries: list[Entry]) -> dict[str, Any] | None:
    genres = [g["genre"] for g in entries[0].rescored.genres]
    if not genres:
        return None
    kind = entries[0].result.task
    rows = []
    for e in entries:
        by = {g["genre"]: g for g in e.rescored.genres}
        if kind == "framewise":
            cells = [f"{_num(by[g]['recall'], 1)} / {_num(by[g]['precision'], 1)}" for g in genres]
        else:
            cells = [_num(by[g]["accuracy"], 3) for g in genres]
        rows.append({"name": e.name, "cells": cells})
    n = {g["genre"]: g["samples"] for g in entries[0].rescored.genres}
    return {"genres": [f"{g} (n={n[g]})" for g in genres], "rows": rows,
            "what": "recall % / precision % of the positive frames" if kind == "framewise" else "accuracy"}


def event_table(entries: list[Entry]) -> list[dict[str, Any]]:
    rows = []
    for e in entries:
        ev = e.rescored.events
        rows.append({"name": e.name, "cells": [f"{_num(ev[t]['precision'], 1)} / {_num(ev[t]['recall'], 1)} / "
                                              f"{_num(ev[t]['f1'], 1)}" for t in ev],
                     "ap": _num(e.rescored.event_ap)})
    return rows


def class_table(entries: list[Entry]) -> dict[str, Any]:
    names = entries[0].result.dataset.label_names
    return {"classes": names,
            "rows": [{"name": e.name, "recall": [_num(v, 4) for v in e.metrics["per_class_recall"]],
                      "confusion": [[_num(v, 3) for v in row] for row in e.metrics["confusion_normalized"]]}
                     for e in entries]}


def plot_name(task: str, index: int) -> str:
    return f"plots/{task}-{index}.png"


def _groups(board: Board) -> list[dict[str, Any]]:
    esc = html.escape
    out = []
    for task, builds in board.groups().items():
        for b_index, (fingerprint, entries) in enumerate(builds.items()):
            kind = entries[0].result.task
            b = entries[0].build
            cols = columns(kind)
            rows = []
            for e in entries:
                cells = []
                for key, _ in cols:
                    text, value = cell(e, key)
                    sort = "" if value is None else (repr(float(value)) if isinstance(value, (int, float)) else str(value))
                    links = _plot_links(e, board.root)
                    if key == "plots":
                        md_text = ", ".join(f"[{Path(p).name}]({p})" for p in links) or "–"
                        body = "".join(f'<a href="{esc(p)}"><img class="plot" src="{esc(p)}" alt="{esc(Path(p).name)}"></a>'
                                       for p in links) or "–"
                    elif key in ("f1", "balanced_accuracy"):
                        d = _digits(e)
                        md_text = md(text)
                        body = f'{esc(_num(e.metrics[key], d))} <span class="ci">{esc(_ci(e.intervals.get(key), d))}</span>'
                    else:
                        md_text, body = md(text), esc(text)
                    cells.append({"key": key, "md": md_text, "html": body, "sort": sort,
                                  "num": key in NUMERIC and key != "plots"})
                rows.append({"name": e.name, "cells": cells})
            notes = [f"{e.name}: {n}" for e in entries for n in e.notes]
            declared = [f"{e.name}: {d}" for e in entries for d in e.differences]
            out.append({
                "task": task, "index": b_index, "fingerprint": fingerprint, "kind": kind,
                "measured": (f"Measured on the test split of {b.describe()}; {b.origin}. Primary metric: "
                             f"{PRIMARY_LABEL[PRIMARY[kind]]}. Thresholds: chosen by the board on the validation "
                             "split, by each submission's declared criterion."),
                "columns": cols, "numeric": NUMERIC, "rows": rows, "notes": notes, "declared": declared,
                "events": event_table(entries) if kind == "framewise" else [],
                "tolerances": list(entries[0].rescored.events) if kind == "framewise" else [],
                "classes": class_table(entries) if kind == "multiclass" else None,
                "severity": severity_tables(entries), "genres": genre_table(entries),
                "plot": plot_name(task, b_index) if entries[0].rescored.severity or entries[0].rescored.genres else None,
                "ceiling": CEILING if task in CLICKS else None,
                "entries": entries,
            })
    return out


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=jinja2.select_autoescape(["html", "html.j2"]),
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    env.filters["md"] = md
    return env


def render_markdown(board: Board) -> str:
    rejected = [{"where": f"{r.task}/{md(r.name)}", "reason": md(r.reason)} for r in board.rejected]
    return _env().get_template("README.md.j2").render(groups=_groups(board), rejected=rejected)


def render_html(board: Board) -> str:
    rejected = [{"where": f"{r.task}/{r.name}", "reason": r.reason} for r in board.rejected]
    return _env().get_template("index.html.j2").render(groups=_groups(board), rejected=rejected)


def breakdown_plot(path: Path, group: dict[str, Any]) -> Path:
    """One figure per task and build: a panel per severity parameter and one for genres, a line per entry."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries: list[Entry] = group["entries"]
    kind = group["kind"]
    metric = "recall" if kind == "framewise" else "accuracy"
    scale = 1.0 if kind == "framewise" else 100.0
    panels = [(k, rows) for k, rows in entries[0].rescored.severity.items()]
    if entries[0].rescored.genres:
        panels.append(("genre", entries[0].rescored.genres))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), squeeze=False)
    for ax, (key, rows) in zip(axes[0], panels):
        labels = [r["genre"] for r in rows] if key == "genre" else [_bin_label(r) for r in rows]
        for e in entries:
            got = e.rescored.genres if key == "genre" else e.rescored.severity.get(key, [])
            y = [float("nan") if r.get(metric) is None else r[metric] * scale for r in got]
            ax.plot(range(len(y)), y, marker="o", label=e.name)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        ax.set_title(key, fontsize=9)
        ax.set_ylim(-3, 103)
        ax.set_ylabel(f"{metric} %", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{group['task']}: {metric} by severity and genre (test split)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path, dpi=90)
    plt.close(fig)
    return path


def plot_paths(board: Board) -> list[Path]:
    """The breakdown plots a render writes."""
    return [board.root / g["plot"] for g in _groups(board) if g["plot"]]


def write_plots(board: Board) -> list[Path]:
    for old in (board.root / "plots").glob("*.png"):  # the previous render's plots: only PNGs defectbench signed
        remove_if_ours(old)
    return [breakdown_plot(board.root / g["plot"], g) for g in _groups(board) if g["plot"]]
