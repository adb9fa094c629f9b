"""Training the neural detectors (SPEC 4): data loading, the two papers' recipes, the training loop.

The inference side (:class:`~defectbench.neural.TorchDetector`, checkpoint files, device choice,
autocast) lives in :mod:`defectbench.neural`; scoring imports that module, never this one.

- Data: :class:`ParquetRows` streams ``data/<split>-*.parquet`` of a defectbench dataset with pyarrow
  (row group by row group, audio WAV bytes decoded by ``audio_io.read_wav_float``), shuffled per epoch
  from the seed through a shuffle buffer, sharded over DataLoader workers by row group; or
  :class:`~defectbench.fresh.FreshDefects` (``--source``): new defects every epoch.
- Recipes (:class:`~defectbench.neural.TrainingRecipe`, one per model, declared by its detector class):
  Hook-Net (music paper, section 6.1): Adam lr 1e-3, batch 200, root-mean-square loss weighted toward
  the positive class, output bias at logit(positive rate), validation after every epoch, the best epoch
  by validation (framewise) accuracy; the glitch recipe adds reduce-on-plateau (factor 0.1, patience 10).
  CNN6 (video paper, section 5): NLL loss, Adam lr 1e-4 betas (0.9, 0.999), batch 512, every 100
  iterations balanced accuracy on a fixed 1 % of validation, the best evaluation kept.
- Validation metrics come from :mod:`defectbench.metrics` (the scorer's own formulas), as fractions.
- Mixed precision (bf16 autocast) on CUDA, float32 on CPU; a fixed seed for init, shuffling and dropout.
- Several GPUs: under ``torchrun`` (``defectbench.distributed``) :func:`train` runs DistributedDataParallel
  with ``batch_size`` the global batch split over the ranks, each rank streaming a disjoint share of the
  row groups, the loss taken over the global batch, BatchNorm synchronised on GPUs, evaluation split over
  the ranks and decided on rank 0, and only rank 0 writing files. Without torchrun: one process, as before.
- Output folder: ``model.pt`` (the best weights), ``last.pt`` (what ``--resume`` continues from, with the
  optimiser state), ``config.json`` (everything but the weights, with the command line that ran) and
  ``curve.png``. Progress: a rich bar on a terminal, else a log line with rate and ETA every
  ``log_every`` seconds and at every epoch end (``nohup ... > log`` stays readable).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from . import distributed as D
from . import metrics as M
from .audio_io import read_wav_float
from .core import DefectbenchError, buffer_shuffle
from .dataset import data_files, read_manifest
from .owned_files import write_text, written_by
from .ownership import claim_training_folder
from .neural import (CHECKPOINT_FORMAT, TorchDetector, TrainingRecipe, autocast, load_checkpoint,  # noqa: F401
                     LOSSES, resolve_device, save_checkpoint, weighted_rms_loss)

# --------------------------------------------------------------------------------------- data ---


def split_files(dataset: str | Path, split: str) -> list[Path]:
    files = data_files(dataset, split)
    if not files:
        raise DefectbenchError(f"{dataset}: no data/{split}-*.parquet: the split is empty")
    return files


class ParquetRows(IterableDataset):
    """Rows of one split as ``(audio float32 [n], target float32 [frames], label int64)``.

    Order: the list of (file, row group) units is shuffled from ``(seed, epoch)`` (the same on every
    rank), DataLoader worker w of rank r takes every ``(world x num_workers)``-th unit from the
    ``(r x num_workers + w)``-th, and rows pass through a shuffle buffer of ``buffer`` rows.
    ``shuffle=False`` gives file order. ``rows`` (global row numbers in file order) restricts to a
    subset, e.g. CNN6's fixed 1 % of validation. ``rank``/``world``: the torchrun share.
    """

    def __init__(self, dataset: str | Path, split: str, *, shuffle: bool, seed: int = 0, buffer: int = 2048,
                 rows: set[int] | None = None, rank: int = 0, world: int = 1) -> None:
        import pyarrow.parquet as pq

        self.files = split_files(dataset, split)
        self.units: list[tuple[Path, int, int, int]] = []  # (file, row group, first global row, n rows)
        start = 0
        for f in self.files:
            meta = pq.ParquetFile(f).metadata
            for rg in range(meta.num_row_groups):
                n = meta.row_group(rg).num_rows
                self.units.append((f, rg, start, n))
                start += n
        self.num_rows = start if rows is None else len(rows)
        self.shuffle, self.seed, self.buffer, self.rows = shuffle, seed, buffer, rows
        self.rank, self.world = rank, world
        self.epoch = 0

    def __len__(self) -> int:
        return self.num_rows

    def _unit_rows(self, unit: tuple[Path, int, int, int]) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        import pyarrow.parquet as pq

        path, rg, first, _ = unit
        pf = pq.ParquetFile(path)
        for batch in pf.iter_batches(row_groups=[rg], batch_size=256, columns=["audio", "target", "label"]):
            cols = batch.to_pydict()
            for i, (audio, target, label) in enumerate(zip(cols["audio"], cols["target"], cols["label"])):
                if self.rows is not None and first + i not in self.rows:
                    continue
                yield read_wav_float(audio["bytes"]), np.asarray(target, dtype=np.float32), int(label)
            first += batch.num_rows

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        units = list(self.units)
        if self.shuffle:
            units = [units[i] for i in rng.permutation(len(units))]
        info = get_worker_info()
        if info is not None or self.world > 1:
            workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
            shard = self.rank * workers + worker
            units = units[shard :: self.world * workers]
            rng = np.random.default_rng([self.seed, self.epoch, shard])
        rows = (row for unit in units for row in self._unit_rows(unit))
        yield from buffer_shuffle(rows, rng, self.buffer) if self.shuffle else rows


def positive_rate(dataset: str | Path, split: str = "train") -> float:
    """Fraction of 1s among every target value of a split (reads only the ``target`` column)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ones = total = 0
    for f in split_files(dataset, split):
        col = pc.list_flatten(pq.read_table(f, columns=["target"]).column("target"))
        ones += int(pc.sum(col).as_py() or 0)
        total += len(col)
    return ones / total if total else 0.0


def collate(rows: list) -> dict[str, torch.Tensor]:
    audio = [r[0] for r in rows]
    if len({len(a) for a in audio}) != 1:
        raise DefectbenchError(f"audio rows of different lengths in one batch: {sorted({len(a) for a in audio})}")
    return {
        "audio": torch.from_numpy(np.stack(audio)),
        "target": torch.from_numpy(np.stack([r[1] for r in rows])),
        "label": torch.tensor([r[2] for r in rows], dtype=torch.int64),
    }


def loader(data: ParquetRows, batch_size: int, workers: int, pin: bool) -> DataLoader:
    return DataLoader(data, batch_size=batch_size, collate_fn=collate, num_workers=workers, pin_memory=pin,
                      persistent_workers=False)


# ------------------------------------------------------------------------------------ metrics ---


def validation_metrics(task: str, out: np.ndarray, targets: np.ndarray, labels: np.ndarray,
                       classes: int) -> dict[str, float]:
    """Selection metrics from :mod:`defectbench.metrics`, as fractions (AP too): framewise accuracy and F1
    of ``sigmoid(logit) >= 0.5`` (i.e. logit >= 0) and average precision; 5-way balanced accuracy and
    accuracy of the arg-max. An undefined value (no positive anywhere) counts as 0."""
    if task == "framewise":
        m = M.binary_from_counts(M.binary_counts(targets >= 0.5, out >= 0))
        ap = M.average_precision(targets >= 0.5, out)  # a monotone map of the logits: the same ranking
        return {"accuracy": (m["accuracy"] or 0.0) / 100, "f1": (m["f1"] or 0.0) / 100,
                "ap": (ap or 0.0) / 100}
    m = M.multiclass_from_confusion(M.confusion_matrix(labels, out.argmax(axis=1), classes))
    return {"balanced_accuracy": m["balanced_accuracy"] or 0.0, "accuracy": m["accuracy"] or 0.0}




# ----------------------------------------------------------------------------------- training ---


@dataclass
class TrainOptions:
    model: str
    dataset: str
    out: str
    config: str = "reference"
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    pos_weight: float | None = None
    loss: str | None = None  # Hook-Net: rms (the paper's) or bce
    eval_every: int | None = None
    patience: int | None = None
    reduce_on_plateau: bool | None = None
    init: str | None = None
    device: str = "auto"
    seed: int = 0
    workers: int = 0
    progress: bool = True
    log_every: float = 30.0  # seconds between progress log lines when the output is not a terminal
    command: list[str] | None = None  # the command line that ran (recorded in config.json and the model card)
    source: str | None = None  # fresh defects every epoch from this source's clean train audio (defectbench.fresh)
    metadata: str | None = None
    overrides: dict[str, Any] | None = None  # recipe options changed for training only (fresh mode)
    val_fraction: float | None = None  # fixed share of validation used for selection (CNN6: the paper's 1 %)
    metric: str | None = None  # selection metric: accuracy, f1, ap, balanced_accuracy
    lr_decay: float | None = None  # multiply the learning rate by this after every epoch (lr * decay**epoch)
    lr_new: float | None = None  # with --init: learning rate of the parameters the checkpoint lacks (an added branch)
    resume: bool = False  # continue from OUT/last.pt (written at the end of every epoch)
    balance_classes: bool | None = None  # multiclass: class-balanced loss (the paper's NLL is unweighted)
    ema: float | None = None  # evaluate and keep an exponential moving average of the weights (decay per step)


def init_sha256(init: str | None) -> str | None:
    """SHA-256 of the ``--init`` file (a folder's ``model.pt``), so that a card names the exact start."""
    if not init:
        return None
    from .weights import sha256_file

    path = Path(init) / "model.pt" if Path(init).is_dir() else Path(init)
    return sha256_file(path) if path.is_file() else None


def validation_rows(n: int, recipe: TrainingRecipe, seed: int) -> set[int] | None:
    """The fixed validation subset: ``val_fraction`` of the rows, at least ``val_min_rows``; None: all."""
    if recipe.val_fraction >= 1.0:
        return None
    k = min(n, max(math.ceil(recipe.val_fraction * n), recipe.val_min_rows))
    return set(np.random.default_rng([seed, 0xDA7A]).choice(n, size=k, replace=False).tolist())


def evaluate(det: TorchDetector, batches: list[dict] | DataLoader, task: str, classes: int,
             ctx: D.DistContext = D.DistContext()) -> dict[str, float | None]:
    """Validation metrics. Under torchrun each rank scores its share of the rows with rank 0's weights
    and BatchNorm statistics; rank 0 computes the metrics from every share and every rank gets them."""
    model = det.model
    model.eval()
    D.sync_buffers(model, ctx)
    outs, targets, labels = [], [], []
    with torch.inference_mode():
        for b in batches:
            with autocast(det.torch_device):
                outs.append(model(b["audio"].to(det.torch_device, non_blocking=True)).float().cpu())
            targets.append(b["target"])
            labels.append(b["label"])
    local = [(torch.cat(outs).numpy(), torch.cat(targets).numpy(), torch.cat(labels).numpy())] if outs else []
    shares = D.gather_on_main(local, ctx)
    val = None
    if ctx.is_main:
        out, t, lab = (np.concatenate(parts) for parts in zip(*[x for share in shares for x in share]))
        val = validation_metrics(task, out, t, lab, classes)
    return D.broadcast_from_main(val, ctx)


def check_train_options(opts: TrainOptions) -> None:
    """Numbers that torch or the loop would reject with a traceback, or run on to a meaningless end
    (``--epochs 0``), are one clear error before the run's folder is made."""
    rules = [
        ("--epochs", opts.epochs, lambda v: v >= 1, "at least 1"),
        ("--max-steps", opts.max_steps, lambda v: v >= 1, "at least 1"),
        ("--batch-size", opts.batch_size, lambda v: v >= 1, "at least 1"),
        ("--lr", opts.lr, lambda v: v > 0, "above 0"),
        ("--lr-new", opts.lr_new, lambda v: v > 0, "above 0"),
        ("--eval-every", opts.eval_every, lambda v: v >= 1, "at least 1"),
        ("--patience", opts.patience, lambda v: v >= 0, "at least 0"),
        ("--pos-weight", opts.pos_weight, lambda v: v > 0, "above 0"),
        ("--lr-decay", opts.lr_decay, lambda v: 0 < v <= 1, "in (0, 1]"),
        ("--val-fraction", opts.val_fraction, lambda v: 0 < v <= 1, "in (0, 1]"),
        ("--ema", opts.ema, lambda v: 0 <= v < 1, "in [0, 1)"),
        ("--workers", opts.workers, lambda v: v >= 0, "at least 0"),
    ]
    for flag, value, ok, want in rules:
        if value is not None and not ok(value):  # NaN fails every rule
            raise DefectbenchError(f"{flag} must be {want}, got {value}")
    if opts.loss is not None and (opts.model != "hooknet" or opts.loss not in LOSSES):
        raise DefectbenchError(f"--loss {opts.loss}: hooknet trains with one of {', '.join(LOSSES)}"
                               + ("" if opts.model == "hooknet" else f"; {opts.model} has its paper's loss only"))
    if opts.lr_new is not None and not opts.init:
        raise DefectbenchError("--lr-new sets the rate of the parameters --init does not provide: it needs --init")


def train(opts: TrainOptions, log: Callable[[str], None] = print) -> dict:
    """Train ``opts.model`` on ``opts.dataset`` with its paper's recipe; returns the saved config dict.

    Under ``torchrun --nproc_per_node G`` every process runs this: DistributedDataParallel over G ranks
    (see the module docstring); the files and the log are rank 0's. Without torchrun: one process.
    """
    from . import detectors

    cls = detectors.get(opts.model)
    if not issubclass(cls, TorchDetector):
        raise DefectbenchError(f"{opts.model!r} is not a trainable (neural) detector")
    check_train_options(opts)
    manifest = read_manifest(opts.dataset)
    task = manifest.get("task")
    if task not in cls.tasks:
        raise DefectbenchError(f"{opts.model} is a {'/'.join(cls.tasks)} detector; {opts.dataset} is a {task} dataset")
    if D.main_before_init():  # before any work: the run's folder must be new, empty or a run's own
        claim_training_folder(Path(opts.out))
    classes = len(manifest.get("label_names") or [0, 1])
    recipe = TrainingRecipe(**{**asdict(cls.recipe), **{k: v for k, v in {
        "lr": opts.lr, "batch_size": opts.batch_size, "epochs": opts.epochs, "max_steps": opts.max_steps, "pos_weight": opts.pos_weight,
        "loss": opts.loss, "lr_new": opts.lr_new,
        "eval_every": opts.eval_every, "patience": opts.patience, "reduce_on_plateau": opts.reduce_on_plateau,
        "metric": opts.metric, "val_fraction": opts.val_fraction, "balance_classes": opts.balance_classes,
    }.items() if v is not None}})

    resolve_device(opts.device)  # --device cuda without CUDA: the error before any process group
    ctx = D.init(None if opts.device == "auto" else opts.device)  # torchrun's rank; else a no-op
    if recipe.batch_size % ctx.world_size:
        raise DefectbenchError(f"batch size {recipe.batch_size} does not split over {ctx.world_size} processes; "
                               f"use a multiple of {ctx.world_size}")
    per_rank = recipe.batch_size // ctx.world_size
    if not ctx.is_main:
        log = lambda s: None  # noqa: E731

    torch.manual_seed(opts.seed)
    np.random.seed(opts.seed)  # nothing of ours uses numpy's global RNG; set for third-party code
    det = cls(config=opts.config, device=str(ctx.device) if ctx.enabled else opts.device)
    device, model = det.torch_device, det.model
    if task == "multiclass" and getattr(det.config, "classes", classes) != classes:
        raise DefectbenchError(f"{opts.dataset} has {classes} classes; the {opts.model} model has {det.config.classes}")
    if opts.init:
        det.load_init(opts.init)
    if not det.initialised:  # fine-tuning keeps the trained output bias
        det.prepare(opts.dataset)
    if ctx.enabled:  # DDP (SyncBatchNorm on GPUs); det.model stays the plain module: evaluation, checkpoints
        model = D.wrap_model(model, ctx)
        det.model, det.dist = D.unwrap(model), ctx
        torch.manual_seed(int(np.random.SeedSequence([opts.seed, ctx.rank]).generate_state(1)[0]))  # dropout per rank

    share = {"rank": ctx.rank, "world": ctx.world_size}
    if opts.source:
        from .fresh import FreshDefects

        recipe_ref = (manifest.get("recipe") or {}).get("name")
        val_split = (manifest.get("splits") or {}).get("validation") or {}
        per_item = val_split["samples"] / val_split["items"] if val_split.get("items") else None
        train_data = FreshDefects(recipe_ref, opts.source, metadata=opts.metadata, seed=opts.seed,
                                  overrides=opts.overrides, rows_per_item=per_item, **share)
        from .recipe import load_recipe

        if load_recipe(recipe_ref).options != (manifest.get("recipe") or {}).get("options"):
            raise DefectbenchError(f"recipe {recipe_ref!r}: its options changed since {opts.dataset} was built: "
                                   "rebuild the validation dataset or restore the recipe file")
    else:
        train_data = ParquetRows(opts.dataset, "train", shuffle=True, seed=opts.seed, **share)
    val_full = ParquetRows(opts.dataset, "validation", shuffle=False)
    val_data = ParquetRows(opts.dataset, "validation", shuffle=False,
                           rows=validation_rows(len(val_full), recipe, opts.seed), **share)
    if len(train_data) == 0 or len(val_data) == 0:
        raise DefectbenchError(f"{opts.dataset}: train and validation splits must both be non-empty")
    if len(train_data.units) < ctx.world_size:
        raise DefectbenchError(f"{opts.dataset}: {len(train_data.units)} training row groups cannot feed "
                               f"{ctx.world_size} processes")
    pin = device.type == "cuda"
    val_loader = loader(val_data, recipe.batch_size, opts.workers, pin)
    if recipe.val_fraction < 1.0:  # a fixed small subset evaluated often: decode it once
        val_loader = list(val_loader)

    if opts.lr_new is not None and not det.new_parameters:
        raise DefectbenchError(f"--lr-new: {opts.init} provides every parameter of this model; nothing is new")
    # with --lr-new an added branch learns from scratch in its own group while the loaded weights are fine-tuned
    new = det.new_parameters if recipe.lr_new is not None else frozenset()
    trainable = [(n, p) for n, p in D.unwrap(model).named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trainable if n not in new], "base_lr": recipe.lr}]
    if new:
        groups.append({"params": [p for n, p in trainable if n in new], "base_lr": recipe.lr_new})
    optim = torch.optim.Adam([{**g, "lr": g["base_lr"]} for g in groups], betas=recipe.betas)
    ema = WeightAverage(det.model, opts.ema) if opts.ema is not None else None
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(optim, mode="max", factor=0.1, patience=10) \
        if recipe.reduce_on_plateau else None
    steps_per_epoch = math.ceil(len(train_data) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    if recipe.max_steps is not None:
        total = min(total, recipe.max_steps)

    out = Path(opts.out)  # made (and marked) by claim_training_folder on rank 0
    curve: list[dict] = []
    best: dict[str, Any] = {"metric": recipe.metric, "value": None, "step": None, "epoch": None}
    stale = 0
    first_epoch, step, seconds_before = 0, 0, 0.0
    if opts.resume:
        state = load_resume_state(out, cls.name, opts)
        model.load_state_dict(state["state_dict"]) if not ctx.enabled else D.unwrap(model).load_state_dict(state["state_dict"])
        optim.load_state_dict(state["optimizer"])
        if sched is not None and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if ema is not None:
            ema.load_state_dict(state.get("ema"), out / "last.pt")
        curve, best, stale = list(state["curve"]), dict(state["best"]), int(state["stale"])
        curve, best = ap_as_fraction(curve, best)
        first_epoch, step, seconds_before = int(state["epoch"]) + 1, int(state["step"]), float(state["seconds"])
        log(f"resuming from {out / 'last.pt'}: epoch {first_epoch}, step {step}")
    meta = {
        "format": CHECKPOINT_FORMAT, "model": cls.name, "config_name": opts.config,
        "config": asdict(det.config), "dataset": str(opts.dataset),
        "training_data": train_data.describe() if hasattr(train_data, "describe") else {"mode": "built train split"},
        "dataset_fingerprint": manifest.get("fingerprint"), "recipe": manifest.get("recipe"),
        "train": {**asdict(recipe), "seed": opts.seed, "init": opts.init, "init_sha256": init_sha256(opts.init),
                  "lr_decay": opts.lr_decay, "ema": opts.ema,
                  "device": str(device), "amp": "bf16" if device.type == "cuda" else None,
                  "processes": ctx.world_size, "sync_batchnorm": ctx.enabled and device.type == "cuda",
                  "parameters": det.parameter_count(), "torch": str(torch.__version__),
                  "command": list(opts.command) if opts.command else None, "machine": machine()},
    }

    last_eval = {"step": 0}

    def checkpoint_eval(step: int, epoch: int) -> bool:
        """Evaluate, log a curve point, keep the best weights; True when early stopping says stop."""
        nonlocal stale
        loss = float(np.mean(losses)) if losses else None
        losses.clear()
        last_eval["step"] = step
        with (ema.swapped_in() if ema is not None else contextlib.nullcontext()):
            # with --ema the average is what is evaluated and kept as model.pt
            val = evaluate(det, val_loader, task, classes, ctx)  # the same values on every rank
            value = val[recipe.metric]
            improved = best["value"] is None or value > best["value"]
            if improved and ctx.is_main:
                best_state = {k: v.detach().cpu().clone() for k, v in det.model.state_dict().items()}
        model.train()
        curve.append({"step": step, "epoch": epoch, "seconds": round(time.perf_counter() - t_start, 1),
                      "train_loss": loss, "lr": optim.param_groups[0]["lr"],
                      **{f"val_{k}": v for k, v in val.items()}})
        if sched is not None:
            sched.step(value)
        if improved:
            best.update(value=value, step=step, epoch=epoch)
            stale = 0
            if ctx.is_main:
                save_checkpoint(out / "model.pt", {**meta, "state_dict": best_state, "curve": curve, "best": dict(best)})
        else:
            stale += 1
        progress.update(bar, val=f"{recipe.metric} {value:.4f} (best {best['value']:.4f})")
        plain.fields["val"] = f"{recipe.metric} {value:.4f} (best {best['value']:.4f})"
        return recipe.patience is not None and stale >= recipe.patience

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from .progress import LogProgress

    show = opts.progress and ctx.is_main
    on_terminal = Console().is_terminal
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TextColumn("loss {task.fields[loss]}"),
                        TextColumn("val {task.fields[val]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                        disable=not (show and on_terminal))
    def shown_total(steps_done: int, steps_per_epoch: float, epochs_done: int) -> int:
        """Fresh defects: the row count is an estimate (a piece shorter than ``segments_per_piece`` gives
        fewer segments), so the total shown (progress, ETA) follows the epochs measured so far; the step
        budget that ends the run stays ``total``."""
        return min(total, steps_done + round(steps_per_epoch * (recipe.epochs - epochs_done)))

    shown = shown_total(step, step / first_epoch, first_epoch) if opts.source and first_epoch > 0 and step > 0 else total
    plain = LogProgress(f"train {cls.name}", shown, log if show and not on_terminal else (lambda s: None),
                        completed=step, unit="steps", every=opts.log_every)
    if ctx.enabled:
        log(f"torchrun: {ctx.world_size} processes ({torch.distributed.get_backend()}), global batch "
            f"{recipe.batch_size} = {ctx.world_size} x {per_rank}, BatchNorm "
            + ("synchronised (SyncBatchNorm)" if meta["train"]["sync_batchnorm"] else "per process (torch has no CPU SyncBatchNorm)"))
    stop, t_start, losses, left_out = False, time.perf_counter() - seconds_before, [], 0
    last_eval["step"] = step
    model.train()
    first_step, t_run = step, time.perf_counter()
    with progress:
        bar = progress.add_task(f"train {cls.name}", total=shown, completed=step, loss="-", val="-", rate="-")
        for epoch in range(first_epoch, recipe.epochs):
            train_data.epoch = epoch
            epoch_start = step
            if opts.lr_decay:  # a pure function of the epoch, so a resumed run follows the same schedule
                for group in optim.param_groups:
                    group["lr"] = group.get("base_lr", recipe.lr) * opts.lr_decay ** epoch  # runs before --lr-new: lr
            seen = 0
            for b in D.every_rank_has(loader(train_data, per_rank, opts.workers, pin), ctx):
                b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
                with autocast(device):
                    output = model(b["audio"])
                loss = det.loss(output, b, recipe)
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                if ema is not None:
                    ema.update(det.model)
                step += 1
                seen += len(b["label"])
                losses.append(float(loss.detach()))  # the global batch's loss, the same on every rank
                progress.update(bar, advance=1, loss=f"{losses[-1]:.4f}",
                                rate=f"{(step - first_step) / (time.perf_counter() - t_run):.2f} it/s")
                plain.update(step, loss=f"{losses[-1]:.4f}")
                if recipe.eval_every and step % recipe.eval_every == 0:
                    stop = checkpoint_eval(step, epoch)
                if stop or step >= total:
                    break
            else:  # the first rank ran out: the others' remaining rows sit this epoch out
                left_out += len(train_data) - round(D.mean_over_ranks(seen, ctx) * ctx.world_size)
                if opts.source and step > epoch_start:  # the epoch just measured
                    plain.total = shown_total(step, step - epoch_start, epoch + 1)
                    progress.update(bar, total=plain.total)
            finished = stop or step >= total or epoch == recipe.epochs - 1
            if not stop and step != last_eval["step"] and (not recipe.eval_every or finished):
                stop = checkpoint_eval(step, epoch)  # every epoch (Hook-Net), or once at the end
            if ctx.is_main:  # what --resume continues from: the state at the end of this epoch
                save_checkpoint(out / "last.pt", {
                    **meta, "state_dict": {k: v.detach().cpu().clone() for k, v in det.model.state_dict().items()},
                    "optimizer": optim.state_dict(), "scheduler": sched.state_dict() if sched is not None else None,
                    "torch_rng": torch.get_rng_state(), "curve": curve, "best": dict(best), "stale": stale,
                    "ema": ema.state_dict() if ema is not None else None,
                    "epoch": epoch, "step": step, "seconds": time.perf_counter() - t_start})
            plain.line(f"epoch {epoch} done")
            if stop or step >= total:
                break

    summary = {**meta, "curve": curve, "best": best, "steps": step, "seconds": round(time.perf_counter() - t_start, 2)}
    if ctx.enabled:
        hashes = D.parameter_hashes(det.model, ctx)
        summary["ddp"] = {"parameters_sha256_per_rank": hashes, "rows_left_out": left_out}
        log(f"torchrun: replicas {'identical' if len(set(hashes)) == 1 else 'DIFFER'} at the end; "
            f"{left_out} row(s) in all left out of their epoch (row groups do not split evenly over the processes)")
    if ctx.is_main:
        write_text(out / "config.json", json.dumps({"written_by": written_by(), **summary}, indent=2))
        plot_curve(curve, recipe.metric, out / "curve.png")
    log(f"best {recipe.metric} {best['value']:.4f} at step {best['step']} (epoch {best['epoch']}); "
        f"checkpoint {out / 'model.pt'}")
    D.finish(ctx)
    return summary


class WeightAverage:
    """An exponential moving average of a model's weights and buffers (``--ema DECAY``, per step).

    torch's ``AveragedModel`` with its EMA update does the averaging (``use_buffers``: BatchNorm's
    running statistics are averaged too, so the average needs no pass over the data to re-estimate
    them). Evaluation swaps the average into the model and back (:meth:`swapped_in`), so validation,
    the kept ``model.pt`` and the shipped weights are all the average; training continues on the raw
    weights. ``last.pt`` keeps both, so ``--resume`` continues the same average."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        if not 0.0 <= decay < 1.0:
            raise DefectbenchError(f"--ema must be in [0, 1), got {decay}")
        self.decay = decay
        self._model = model
        self.average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
        self.average.requires_grad_(False)

    def update(self, model: torch.nn.Module) -> None:
        self.average.update_parameters(model)

    @contextlib.contextmanager
    def swapped_in(self):
        model = self._model
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.average.module.state_dict())
        try:
            yield
        finally:
            model.load_state_dict(raw)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "n_averaged": int(self.average.n_averaged),
                "state_dict": {k: v.detach().cpu().clone() for k, v in self.average.module.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any] | None, path: Path) -> None:
        if not state or state.get("decay") != self.decay:
            raise DefectbenchError(f"--resume: {path} was not trained with --ema {self.decay}")
        self.average.module.load_state_dict(state["state_dict"])
        self.average.n_averaged.fill_(int(state["n_averaged"]))


def machine() -> dict[str, Any]:
    """Where a run trained: CPU model and cores, torch threads, GPU (for the model card's "training machine")."""
    import os
    import platform

    from .core import cpu_model

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu,
            "platform": platform.platform()}


def ap_as_fraction(curve: list[dict], best: dict) -> tuple[list[dict], dict]:
    """Runs started before validation AP became a fraction (it was in percent) resume on one scale:
    their ``val_ap`` values and an AP best are divided by 100 (AP <= 1 as a fraction, so > 1 is percent)."""
    if not any((c.get("val_ap") or 0) > 1 for c in curve):
        return curve, best
    curve = [{**c, "val_ap": c["val_ap"] / 100 if c.get("val_ap") is not None else None} for c in curve]
    if best.get("metric") == "ap" and best.get("value") is not None:
        best = {**best, "value": best["value"] / 100}
    return curve, best


def load_resume_state(out: Path, model: str, opts: TrainOptions) -> dict:
    """``OUT/last.pt`` (read with ``weights_only=True``), checked to be the same run's."""
    path = out / "last.pt"
    if not path.is_file():
        raise DefectbenchError(f"--resume: {path} does not exist (no epoch of this run has finished)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DefectbenchError(f"--resume: {path} cannot be read: {e.__class__.__name__}") from None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("model") != model or state.get("config_name") != opts.config:
        raise DefectbenchError(f"--resume: {path} is not a {model} {opts.config!r} run")
    if state["train"].get("seed") != opts.seed:
        raise DefectbenchError(f"--resume: {path} was trained with seed {state['train'].get('seed')}, not {opts.seed}")
    if model == "hooknet" and state["train"].get("loss", "rms") != (opts.loss or "rms"):  # runs before --loss: rms
        raise DefectbenchError(f"--resume: {path} was trained with --loss {state['train'].get('loss', 'rms')}, "
                               f"not {opts.loss or 'rms'}")
    if state["train"].get("lr_new") != opts.lr_new:  # another optimiser layout (one or two parameter groups)
        raise DefectbenchError(f"--resume: {path} was trained with --lr-new {state['train'].get('lr_new')}, not {opts.lr_new}")
    return state


def plot_curve(curve: list[dict], metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .owned_files import save_figure

    steps = [c["step"] for c in curve]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, [c["train_loss"] for c in curve], "o-", label="train loss")
    ax.set_xlabel("step")
    ax.set_ylabel("train loss")
    ax2 = ax.twinx()
    ax2.plot(steps, [c[f"val_{metric}"] for c in curve], "s-", color="C1", label=f"validation {metric}")
    ax2.set_ylabel(f"validation {metric}")
    fig.legend(loc="upper center", ncol=2, fontsize="small")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
    plt.close(fig)
