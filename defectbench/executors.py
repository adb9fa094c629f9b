"""Where a build's shards run (issue 8): the local process pool (default) or a Dask cluster.

The engine takes any ``concurrent.futures.Executor``; Dask's ``Client.get_executor()`` is one, so a Dask
build runs exactly the same shard tasks as a local one (same shards, same fingerprint) -- there is no
second build path. Dask is an optional extra (``pip install 'defectbench[dask]'``).

A Dask worker that dies mid-shard is handled by the scheduler: the shards it held are rescheduled on
the other workers (up to ``distributed.scheduler.allowed-failures`` deaths per shard, default 3, then
the build fails with ``KilledWorker``); ``retries`` also re-runs a shard that raised. A shard's files
appear only when complete (atomic rename), so a dead worker leaves no half shard.

Workers write shards straight into ``OUT.partial/shards``: on a multi-machine cluster ``OUT``, the
source audio and the recipe file must be on a filesystem every worker sees at the same path, and the
workers must run the same defectbench version (the build key and the fingerprint check it).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from typing import Iterator

from .core import DefectbenchError

EXECUTORS = ("process", "dask")
RETRIES = 2
"""Dask re-runs a shard that raised at most this many times (worker deaths are counted separately)."""


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_SECONDS = 1.0


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(WATCH_SECONDS)
        if os.getppid() != parent:
            os._exit(1)


def worker_init(parent: int) -> None:
    """Initializer of every pool worker: it dies with the build, whatever kills the build.

    On Linux the kernel sends the worker SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``,
    through ctypes: the standard library has no binding); everywhere a daemon thread checks once a
    second that the parent is still the one that started it. Ctrl-C goes to the whole process
    group: the worker ignores it and the parent stops the pool (:func:`stop_pool`).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="defectbench-parent-watch").start()


def default_executor(workers: int) -> Executor:
    # spawn: workers start clean (no inherited threads from pyarrow or torch in the parent).
    return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                               initializer=worker_init, initargs=(os.getpid(),))


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now (an error, Ctrl-C, SIGTERM): kill its workers rather than wait for their shards.

    ``ProcessPoolExecutor`` has no public way to kill its workers (``shutdown`` waits for running
    tasks), so this reads its ``_processes`` map; a killed worker's shard leaves only a ``.tmp`` file,
    which the next run sweeps."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            proc.kill()
        except (OSError, ValueError):  # already gone
            pass
    pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def open_executor(kind: str = "process", workers: int = 1, scheduler: str | None = None) -> Iterator[Executor | None]:
    """Yield the executor for ``build(executor=...)``: None means the engine's own process pool.

    ``dask`` without ``scheduler`` starts a ``LocalCluster`` of ``workers`` single-threaded worker
    processes; with ``scheduler`` (``tcp://HOST:PORT``) it connects to a running cluster.
    """
    if kind not in EXECUTORS:
        raise DefectbenchError(f"unknown executor {kind!r}; use one of: {', '.join(EXECUTORS)}")
    if kind == "process":
        if scheduler:
            raise DefectbenchError("--scheduler needs --executor dask")
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DefectbenchError("--executor dask needs Dask: pip install 'defectbench[dask]' "
                               "(or pip install 'dask[distributed]')") from None
    cluster = None
    if scheduler:
        try:
            client = Client(scheduler, timeout="30s")
        except (OSError, TimeoutError) as exc:
            raise DefectbenchError(f"cannot reach the Dask scheduler {scheduler}: {exc}") from None
    else:
        # One thread per worker: a shard is CPU-bound Python/numpy work, like one pool process. The
        # workers' statistical profiler (a stack sample every 10 ms) fights the shard for the GIL:
        # off, a 2-worker build ran ~35 % faster (benchmarks/RESULTS.md, "Dask vs process pool").
        import dask

        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(cluster)
    try:
        # pure=False: a shard is a side-effecting task (it writes files), never deduplicated by key.
        yield client.get_executor(pure=False, retries=RETRIES)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
