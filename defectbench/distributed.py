"""Training and scoring on several GPUs with ``torchrun`` (issue 8): the generic pieces.

Launch any training/scoring script unchanged with ``torchrun --nproc_per_node=G script ...``; the script
calls :func:`init` and gets a :class:`DistContext`. Without torchrun (or with one process) everything is
a no-op: one GPU or the CPU, no process group -- the default stays exactly what it was.

Conventions (so that a run on G GPUs trains the same model as a run on one):

* ``batch_size`` is the **global** batch (the paper's hyper-parameter); each rank takes
  ``batch_size / world_size`` samples of it. :func:`train_loader` uses ``DistributedSampler``, whose
  shuffled order on rank r is ``perm[r::world]``, so one step's G per-rank batches together are the
  single-process batch, and DDP's gradient average over ranks equals the gradient of the mean loss over
  the global batch (``tests/test_dist.py`` checks this against a one-process run).
* Streaming data (``training.ParquetRows``) is sharded by parquet row groups over rank x DataLoader
  worker, so the ranks get a few rows more or less; :func:`every_rank_has` ends an epoch's loop when
  the first rank runs out, so that every rank takes the same number of DDP steps.
* A loss that is not a mean of per-row terms (Hook-Net's root-mean-square) is computed from global sums
  (:func:`global_sum`): the single-process loss of the global batch, with its exact gradient.
* BatchNorm becomes ``SyncBatchNorm`` on GPUs (:func:`wrap_model`): statistics over the global batch,
  as the papers' one-GPU training had them. torch has no CPU SyncBatchNorm, so on CPU (gloo) each
  rank normalises with its own share's statistics and DDP copies rank 0's running statistics to the
  other ranks before every forward (``broadcast_buffers``); :func:`sync_buffers` does the same before
  an evaluation.
* Only rank 0 writes checkpoints and logs (:func:`save_on_main`, ``ctx.is_main``).
* Scoring splits the rows ``r, r+G, r+2G, ...`` over ranks with no padding (``DistributedSampler``
  would repeat rows to even out the ranks, which would bias metrics); :func:`gather_in_order`
  puts the per-row outputs back in dataset order.

Backends: NCCL on GPUs, gloo on CPU (which is what the tests use: 2 processes on one CPU).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, NoReturn

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from .core import DefectbenchError

_STARTED = False  # init() set up a process group in this process (the CLI then ends with exit_process)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # init() set the process group up (cleanup() tears it down)

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def main_before_init() -> bool:
    """What :attr:`DistContext.is_main` will be, read from torchrun's environment before :func:`init`:
    the only process, or rank 0."""
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1 or os.environ.get("RANK") == "0"


def init(device: str | None = None) -> DistContext:
    """Set up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT).

    ``device``: ``cpu`` forces CPU/gloo; default: GPU ``LOCAL_RANK`` when CUDA is there, else CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if world <= 1:
        dev = torch.device(device) if device else torch.device("cuda" if use_cuda else "cpu")
        return DistContext(device=dev)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise DefectbenchError(f"torchrun started {local_rank + 1}+ processes on a node with "
                                   f"{torch.cuda.device_count()} GPUs; use --nproc_per_node={torch.cuda.device_count()}")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    owns = not dist.is_initialized()
    if owns:
        global _STARTED
        dist.init_process_group("nccl" if use_cuda else "gloo")
        _STARTED = True
    return DistContext(rank, world, local_rank, dev, owns)


def cleanup(ctx: DistContext) -> None:
    if ctx.enabled and ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def finish(ctx: DistContext) -> None:
    """The end of a command under torchrun: wait for every rank (rank 0 writing), then :func:`cleanup`."""
    if ctx.enabled:
        dist.barrier()
    cleanup(ctx)


def group_started() -> bool:
    """Whether this process set up a process group (:func:`init` under torchrun with several ranks)."""
    return _STARTED


def exit_process(code: int = 0) -> NoReturn:
    """End a torchrun worker after :func:`finish` without interpreter finalization: flush stdio, ``os._exit``.

    With every rank finished, its files closed and the process group destroyed, gloo's C++ threads
    can still abort the process while Python finalizes: SIGABRT, "terminate called without an active
    exception", with no Python frame on the stack. The DDP test script did so in 4 of 102 torchrun
    runs on the 2-core machine, and in none of 100 with this exit (benchmarks/RESULTS.md). Nothing is
    left to do at that point, so the process skips finalization; files must be closed by then."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def wrap_model(model: torch.nn.Module, ctx: DistContext, sync_batchnorm: bool = True) -> torch.nn.Module:
    """Move to the rank's device; wrap in DistributedDataParallel when there are several ranks.

    ``sync_batchnorm``: on GPUs, BatchNorm layers become ``SyncBatchNorm`` first (statistics over the
    global batch; the state dict keeps its keys, so the checkpoint loads into the plain model). torch
    has no CPU SyncBatchNorm: on CPU the layers stay per rank. :func:`unwrap` gives the module trained.
    """
    model = model.to(ctx.device)
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if sync_batchnorm and ctx.device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)


def sync_buffers(model: torch.nn.Module, ctx: DistContext) -> None:
    """Rank 0's buffers (BatchNorm running statistics) on every rank, as DDP does before each forward."""
    if ctx.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer, 0)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model (for saving a state dict that loads without DDP)."""
    return model.module if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def train_loader(dataset: Dataset, batch_size: int, ctx: DistContext, *, seed: int, shuffle: bool = True,
                 drop_last: bool = True, **kwargs: Any) -> DataLoader:
    """A loader over this rank's share; ``batch_size`` is global. Call :func:`set_epoch` every epoch."""
    if batch_size % ctx.world_size:
        raise DefectbenchError(f"batch size {batch_size} does not split over {ctx.world_size} processes; "
                               f"use a multiple of {ctx.world_size}")
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=shuffle,
                                 seed=seed, drop_last=drop_last)
    return DataLoader(dataset, batch_size=batch_size // ctx.world_size, sampler=sampler, drop_last=drop_last, **kwargs)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)


def every_rank_has(batches: Iterable[Any], ctx: DistContext) -> Iterator[Any]:
    """``batches`` until the first rank runs out (one tiny all-reduce per step).

    DDP needs the same number of steps on every rank, and a stream sharded by row groups gives the
    ranks a few rows more or less. (torch's ``DistributedDataParallel.join`` instead lets the ranks that
    ran out shadow the others' all-reduces with zero gradients, which shrinks those steps' gradients.)
    """
    it = iter(batches)
    while True:
        batch = next(it, None)
        if ctx.enabled:
            more = torch.tensor([batch is not None], dtype=torch.int32, device=ctx.device)
            dist.all_reduce(more, op=dist.ReduceOp.MIN)
            if not more.item():
                return
        elif batch is None:
            return
        yield batch


def global_sum(x: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """``x.sum()`` over every rank's share of the global batch, differentiably.

    The backward of torch's differentiable all-reduce sums the gradient over the ranks, and DDP's
    average divides it back, so a loss built from global sums (the same value on every rank) gives
    each parameter exactly the gradient of the single-process loss on the global batch -- also for a
    loss that is not a mean of per-row terms, and for ranks with batches of different sizes.
    """
    total = x.sum()
    return _SumOverRanks.apply(total) if ctx.enabled else total


class _SumOverRanks(torch.autograd.Function):
    """An all-reduce (sum) whose backward sums the gradient over the ranks (every rank's output depends on
    every rank's input). Written here because torch's public differentiable one
    (``torch.distributed.nn.functional.all_reduce``) is deprecated and its successor is a private module."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def gather_on_main(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Every rank's ``obj`` (picklable), in rank order, on rank 0; None on the other ranks."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. an evaluation, so that every rank takes rank 0's decisions)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def parameter_hashes(model: torch.nn.Module, ctx: DistContext) -> list[str]:
    """sha256 of the parameters on each rank (on every rank): DDP keeps the replicas identical."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    if not ctx.enabled:
        return [h.hexdigest()]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, h.hexdigest())
    return out


def score_indices(n: int, ctx: DistContext) -> list[int]:
    """This rank's rows for scoring: ``rank, rank + G, ...`` (every row once, no padding)."""
    return list(range(ctx.rank, n, ctx.world_size))


def score_loader(dataset: Dataset, batch_size: int, ctx: DistContext, **kwargs: Any) -> DataLoader:
    return DataLoader(Subset(dataset, score_indices(len(dataset), ctx)), batch_size=batch_size, shuffle=False, **kwargs)


def gather_in_order(local: np.ndarray, n: int, ctx: DistContext) -> np.ndarray:
    """Per-row outputs of :func:`score_loader` on every rank -> all ``n`` rows in dataset order (on every rank)."""
    local = np.asarray(local)
    if not ctx.enabled:
        return local
    pieces: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(pieces, local)
    out = np.empty((n, *local.shape[1:]), dtype=local.dtype)
    for rank, piece in enumerate(pieces):
        out[rank::ctx.world_size] = piece
    return out


def mean_over_ranks(value: float, ctx: DistContext) -> float:
    """The mean of a scalar (a loss for the log) over the ranks."""
    if not ctx.enabled:
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item()) / ctx.world_size


def save_on_main(obj: Any, path: str | Path, ctx: DistContext) -> bool:
    """``torch.save`` on rank 0 only (atomically), then wait for it on every rank; True where it wrote."""
    wrote = False
    if ctx.is_main:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(obj, tmp)
        tmp.rename(path)
        wrote = True
    if ctx.enabled:
        dist.barrier()
    return wrote
