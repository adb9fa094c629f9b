"""How severe each sample's defect is, as numbers to bin by: one small reader per recipe.

The board's breakdowns (recall, and precision where it applies, per severity bin) need the few
parameters that grade a defect, out of everything a sample records (``params`` JSON and the metadata
columns). For a recipe not listed here every numeric leaf of ``params`` is used.

- clicks (SPEC 1.1, 1.2): the click's amplitude offset, its length in samples, and whether it lies
  in the first or last 1024 samples of the segment (where the paper's SigClick framing never searches);
- MP3 glitches (SPEC 1.3): the longest overwritten byte run that reaches the segment (``mp3_run_lengths``);
- video artifacts (SPEC 1.4): hum and hiss amplitude relative to the channel's peak, hum frequency,
  the clip ratio, the additive click's low-pass cut-off and the reductive click's removed length.
"""

from __future__ import annotations

from typing import Any, Callable

from .metrics import flatten_params

COLUMNS = ("params", "mp3_run_lengths")
"""Columns the readers below use (those a split has are read)."""


EDGE = 1024
"""Samples at each end of a 16384-sample segment that SigClick's paper framing never searches."""
SEGMENT = 16384


def _clicks(row: dict[str, Any]) -> dict[str, float]:
    d = row["params"].get("defect") or {}
    if not d.get("present"):
        return {}
    pos = int(d["position"])
    edge = pos < EDGE or pos + int(d["length"]) > SEGMENT - EDGE
    return {"click amplitude": float(d["amplitude"]), "click length (samples)": float(d["length"]),
            "click in the first/last 1024 samples (0 no, 1 yes)": float(edge)}


def _glitch(row: dict[str, Any]) -> dict[str, float]:
    runs = row.get("mp3_run_lengths") or []
    return {"glitch run length (bytes)": float(max(runs))} if runs else {}


def _video(row: dict[str, Any]) -> dict[str, float]:
    p = row["params"]
    kind = p.get("defect")
    intervals = p.get("intervals") or []
    if not intervals:
        return {}
    q = intervals[0].get("params") or {}
    if kind in ("hum", "hiss") and q.get("max_abs"):
        out = {f"{kind} amplitude / peak": float(q["amplitude"]) / float(q["max_abs"])}
        if kind == "hum":
            out["hum frequency (Hz)"] = float(q["frequency"])
        return out
    if kind == "distortion":
        return {"clip ratio": float(q["ratio"])}
    if kind == "click_additive":
        return {"click cut-off (fraction of rate)": float(q["cutoff"])}
    if kind == "click_reductive" and q.get("removed"):
        return {"removed samples": float(max(n for _, n in q["removed"]))}
    return {}


READERS: dict[str, Callable[[dict[str, Any]], dict[str, float]]] = {
    "fma-clicks": _clicks,
    "fma-clicks-post": _clicks,
    "fma-mp3-glitch": _glitch,
    "video-artifacts": _video,
}


def severity(recipe: str, row: dict[str, Any]) -> dict[str, float]:
    """Severity values of one sample (``row`` holds the parsed ``params`` and the :data:`COLUMNS` it has)."""
    reader = READERS.get(recipe)
    return reader(row) if reader else flatten_params(row["params"])
