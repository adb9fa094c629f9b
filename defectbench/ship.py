"""``defectbench ship``: a training output folder -> shipped weights, model card and curve (issue 11).

From ``checkpoints/X`` (``model.pt``, ``config.json``, ``curve.png`` as ``defectbench train`` writes
them) this writes into the registry (``models/weights/``, :mod:`defectbench.weights`):

- ``<model>-<recipe>.pt``: the best weights as a defectbench checkpoint dict without optimiser state
  (``model.pt`` never holds one; ``last.pt`` is not shipped), read with ``torch.load(weights_only=True)``,
  at most 20 MB, plus a ``shipped`` entry: recipe, validation threshold, test figures.
- ``<model>-<recipe>.md``: the model card: data (validation dataset fingerprint, recipe sha256, source,
  fresh-training overrides), seed, the exact training command, training time and machine, the
  validation threshold (framewise: the score that maximises validation F1; CNN6: arg-max) and the test
  figures with 95 % intervals, measured here by scoring the dataset's test split with the runner.
- ``<model>-<recipe>.png``: the training curve, drawn from the run's recorded curve.

Each of the three replaces only a file defectbench wrote (:mod:`defectbench.owned_files`), checked
before the test split is scored.

The dataset scored is the one the model was validated on (its fingerprint is checked), normally the
benchmark build (``datasets/bench-fma-clicks``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

from .core import DefectbenchError
from .neural import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from .owned_files import check_replaceable, is_ours, vouch, write_text
from .weights import MAX_BYTES, Shipped, file_name, sha256_file, weights_dir

KEPT = ("format", "model", "config_name", "config", "state_dict", "dataset", "training_data", "dataset_fingerprint",
        "recipe", "train", "best", "curve", "selected")


def ship(source: str | Path, recipe: str, *, dataset: str | Path | None = None, out_dir: str | Path | None = None,
         workers: int = 1, resamples: int = 1000, command: str | None = None,
         log: Callable[[str], None] = print) -> Shipped:
    """Write ``<model>-<recipe>.pt/.md/.png`` into ``out_dir`` (default: the registry) from a training folder.

    ``command``: the training command line, for runs whose ``config.json`` did not record it (trained
    before ``defectbench train`` recorded its argv); a recorded one is never replaced.
    """
    from .dataset import read_manifest
    from .detectors import get
    from .runner import run

    source = Path(source)
    ckpt = load_checkpoint(source)
    if "optimizer" in ckpt:  # OUT/last.pt: the run's state after its last finished epoch, shipped on purpose
        entry = (ckpt.get("curve") or [{}])[-1]
        ckpt["selected"] = {"state": "last", "epoch": int(ckpt["epoch"]), "step": int(ckpt["step"]),
                            "seconds": float(ckpt["seconds"]), "value": entry.get(f"val_{ckpt['best']['metric']}")}
    folder = source if source.is_dir() else source.parent
    # read once: the staleness check and the curve of a stopped run (a last.pt source is that file)
    last = ckpt if "selected" in ckpt else _last_state(folder)
    summary = _summary(folder, last)
    trained_for = (ckpt.get("recipe") or {}).get("name") if isinstance(ckpt.get("recipe"), dict) else ckpt.get("recipe")
    if trained_for != recipe:
        raise DefectbenchError(f"{ckpt['path']} was validated on recipe {trained_for!r}, not {recipe!r}")
    dataset = Path(dataset or ckpt["dataset"])
    manifest = read_manifest(dataset)
    if manifest.get("fingerprint") != ckpt.get("dataset_fingerprint"):
        raise DefectbenchError(f"{dataset} (fingerprint {str(manifest.get('fingerprint'))[:16]}) is not the dataset "
                               f"{ckpt['path']} was validated on ({str(ckpt.get('dataset_fingerprint'))[:16]}); "
                               "pass --dataset with that build")
    cls = get(ckpt["model"])
    out_dir = Path(out_dir) if out_dir else weights_dir()
    target = out_dir / file_name(cls.name, recipe)
    shipped = Shipped(cls.name, recipe, target)
    if is_ours(shipped.card):
        vouch([shipped.curve])  # the curve beside a card of ours (unsigned where an older defectbench drew it)
    check_replaceable([target, shipped.card, shipped.curve], " (ship --out)")  # before scoring the test split
    detector = cls.from_checkpoint(ckpt["path"], device="cpu")
    with tempfile.TemporaryDirectory(prefix="defectbench-ship-") as tmp:
        result = run(detector, dataset, split="test", out=Path(tmp) / f"{cls.name}.json", workers=workers,
                     criterion="f1", n_resamples=resamples, show_progress=False, make_plots=False)
    framewise = result.task == "framewise"
    threshold = result.threshold.value if framewise else None

    out_dir.mkdir(parents=True, exist_ok=True)
    test = _test_figures(result)
    payload = {k: ckpt[k] for k in KEPT if k in ckpt}
    if command and not (payload.get("train") or {}).get("command"):
        import shlex

        payload["train"] = {**payload.get("train", {}), "command": shlex.split(command), "command_given_at_ship": True}
    train = payload.get("train") or {}
    if train.get("init") and not train.get("init_sha256"):  # a run from before training recorded it
        from .training import init_sha256

        payload["train"] = {**train, "init_sha256": init_sha256(train["init"])}
    payload["format"] = CHECKPOINT_FORMAT
    payload["shipped"] = {
        "recipe": recipe, "threshold": threshold,
        "threshold_rule": "score maximising validation F1" if framewise else "arg-max",
        "test": test, "test_dataset_fingerprint": manifest.get("fingerprint"),
        "label_names": list(manifest.get("label_names") or []),
        "source": dict((manifest.get("recipe") or {}).get("source") or {}),  # rate and channels detect decodes to
    }
    save_checkpoint(target, payload)
    size = target.stat().st_size
    if size > MAX_BYTES:
        target.unlink()
        raise DefectbenchError(f"{target.name}: {size / 2**20:.1f} MB, over the 20 MB a shipped weights file may hold")
    check = torch.load(target, map_location="cpu", weights_only=True)  # what every user will do
    assert check["state_dict"].keys() == ckpt["state_dict"].keys()

    from .training import plot_curve

    # a last.pt source is the whole run; a run stopped before its end: last.pt holds every evaluation,
    # model.pt only those up to the best one
    whole = ckpt.get("curve") if "selected" in ckpt else list((last or {}).get("curve") or [])
    plot_curve(summary.get("curve") or whole or ckpt.get("curve") or [], ckpt["best"]["metric"], shipped.curve)
    write_text(shipped.card, model_card(payload, summary, result, sha256_file(target), size, dataset))
    log(f"shipped {target} ({size / 2**20:.2f} MB), {shipped.card.name}, {shipped.curve.name}")
    return shipped


def _summary(folder: Path, last: dict | None) -> dict[str, Any]:
    """``config.json`` of the training folder (the full curve, steps, seconds), or {} when absent or stale.

    Stale: ``last`` (the folder's ``last.pt``) has gone past the steps it records. A run that ended
    (writing config.json), was resumed with more epochs (``--resume``) and stopped before its new end
    keeps the first end's config.json, whose time and curve describe weights older than the ones shipped."""
    path = folder / "config.json"
    if not path.is_file():
        return {}
    summary = json.loads(path.read_text())
    if last is not None and int(last.get("step", 0)) > int(summary.get("steps") or 0):
        return {}
    return summary


def _last_state(folder: Path) -> dict | None:
    last = folder / "last.pt"
    return torch.load(last, map_location="cpu", weights_only=True) if last.is_file() else None


def _selection(payload: dict) -> str:
    best, chosen = payload.get("best", {}), payload.get("selected")
    text = (f"validation {best.get('metric')} (best {_fmt(best.get('value'), 4)} at step {best.get('step')}, "
            f"epoch {best.get('epoch')})")
    if not chosen:
        return "selection by " + text
    return (f"shipped: the run's last finished epoch ({chosen['epoch']}, step {chosen['step']}, validation "
            f"{best.get('metric')} {_fmt(chosen.get('value'), 4)}; `ship --from OUT/last.pt`), not the best by " + text)


def _time_line(summary: dict, payload: dict, device: str | None) -> str:
    """Wall time of the run (config.json, written when training ends), or, for a run stopped before its
    end, the wall time to the best evaluation (its curve entry in the checkpoint)."""
    if payload.get("selected"):
        chosen = payload["selected"]
        return f"- Time: {chosen['seconds'] / 60:.1f} min to the shipped state (epoch {chosen['epoch']}), device {device}"
    if summary.get("seconds"):
        return f"- Time: {summary['seconds'] / 60:.1f} min, {summary.get('steps', '-')} steps, device {device}"
    best = payload.get("best", {})
    at = next((e for e in payload.get("curve") or [] if e.get("step") == best.get("step")), {})
    wall = f"{at['seconds'] / 60:.1f} min" if at.get("seconds") else "-"
    return (f"- Time: {wall} to the best evaluation (step {best.get('step', '-')}); the run was stopped before its "
            f"last epoch (no config.json of its end), device {device}")


def _fmt(v: float | int | None, digits: int = 2) -> str:
    return "-" if v is None else str(v) if isinstance(v, int) else f"{v:.{digits}f}"


def _test_figures(result) -> dict[str, Any]:
    m = result.metrics
    keys = ("precision", "recall", "f1", "average_precision", "accuracy") if result.task == "framewise" \
        else ("balanced_accuracy", "accuracy")
    out: dict[str, Any] = {"split": result.dataset.split, "count": result.dataset.count}
    for k in keys:
        ci = m.intervals.get(k)
        out[k] = getattr(m, k)
        out[f"{k}_ci95"] = None if ci is None else [ci.low, ci.high]
    if result.task == "framewise":
        out["positive_frames"] = m.counts.tp + m.counts.fn
    else:
        out["per_class_recall"] = dict(m.per_class_recall)
    return out


def model_card(payload: dict, summary: dict, result, sha256: str, size: int, dataset: Path) -> str:
    train = payload.get("train", {})
    data = payload.get("training_data", {})
    recipe = payload.get("recipe") or {}
    shipped = payload["shipped"]
    test = shipped["test"]
    command = train.get("command")
    machine = train.get("machine") or {}
    best = payload.get("best", {})
    lines = [
        f"# {payload['model']} for `{shipped['recipe']}` (configuration `{payload.get('config_name')}`)",
        "",
        f"Weights: `{file_name(payload['model'], shipped['recipe'])}`, {size / 2**20:.2f} MB, sha256 `{sha256}`; "
        "a defectbench checkpoint dict without optimiser state, read with `torch.load(weights_only=True)`. "
        f"{train.get('parameters', 0):,} trainable parameters.",
        "",
        "## Data",
        f"- Training: {data.get('mode', 'built train split')}"
        + (f" from source `{data.get('source')}` ({data.get('items')} {data.get('split')} items)" if data.get("source") else ""),
        f"- Fresh-training overrides: `{json.dumps(data.get('overrides') or {})}`",
        f"- Recipe: `{recipe.get('name')}`, sha256 `{recipe.get('sha256')}`",
        f"- Validation dataset: `{payload.get('dataset')}`, fingerprint `{payload.get('dataset_fingerprint')}`",
        f"- Seed: {train.get('seed')}",
        *([f"- Initialised from: `{train['init']}`, sha256 `{train.get('init_sha256') or 'not recorded'}`"] if train.get("init") else []),
        "",
        "## Training",
        "- Command: " + (f"`{' '.join(command)}`" + (" (given to `defectbench ship`: the run predates recorded argv)"
                                                     if train.get("command_given_at_ship") else "")
                         if command else "not recorded (trained before defectbench recorded argv)"),
        f"- Recipe: lr {train.get('lr')}, batch {train.get('batch_size')}, pos_weight {train.get('pos_weight')}"
        + (f", loss {train['loss']}" if train.get("loss", "rms") != "rms" else "")
        + (f", lr {train['lr_new']} for the parameters the start lacked" if train.get("lr_new") is not None else "")
        + (f", lr x {train['lr_decay']} per epoch" if train.get("lr_decay") else "")
        + (f"; the weights are an exponential moving average (decay {train['ema']} per step), which was "
           "also what validation saw" if train.get("ema") is not None else "")
        + "; " + _selection(payload),
        _time_line(summary, payload, train.get("device")),
        f"- Machine: {machine.get('cpu', 'not recorded')}, {machine.get('cores', '-')} cores, "
        f"{machine.get('torch_threads', '-')} torch threads; torch {train.get('torch')}",
        "",
        "## Decision",
        f"- Threshold: {_fmt(shipped['threshold'], 6) if shipped['threshold'] is not None else 'arg-max'} "
        f"({shipped['threshold_rule']}, chosen on the validation split of `{dataset}`)",
        "",
        f"## Test figures (`{dataset}`, {test['split']} split, {test['count']} segments, 95 % bootstrap intervals over pieces)",
    ]
    for k, v in test.items():
        if k.endswith("_ci95") or k in ("split", "count", "per_class_recall"):
            continue
        ci = test.get(f"{k}_ci95")
        lines.append(f"- {k}: {_fmt(v, 4 if result.task != 'framewise' else 2)}"
                     + (f" [{_fmt(ci[0])}, {_fmt(ci[1])}]" if ci else ""))
    if "per_class_recall" in test:
        lines.append("- per-class recall: " + ", ".join(f"{k} {_fmt(v, 3)}" for k, v in test["per_class_recall"].items()))
    lines += ["", f"![training curve]({file_name(payload['model'], shipped['recipe'])[:-3]}.png)", ""]
    return "\n".join(lines)
