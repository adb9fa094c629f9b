"""Builds that outgrow one machine (issue 8): Dask executor, job-array parts + merge, dead workers.

Every build here is fma-clicks from the synth corpus, 2 pieces per split, one piece per shard (6 shards)
and 10 segments per piece, so that sharding has something to split while the builds stay small.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from defectbench.core import DefectbenchError
from defectbench.dataset import read_manifest
from defectbench.engine import build, parts_dir
from defectbench.merge import merge

SHARDS = ["train-00000", "train-00001", "validation-00000", "validation-00001", "test-00000", "test-00001"]


def file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def recipe(write_recipe) -> Path:
    return write_recipe("fma-clicks", {"items_per_shard = 4": "items_per_shard = 1",
                                       "segments_per_piece = 50": "segments_per_piece = 10"}, name="clicks-small")


@pytest.fixture(scope="module")
def pool_build(recipe, tmp_path_factory) -> Path:
    """The reference: the local process pool, 2 workers."""
    out = tmp_path_factory.mktemp("pool") / "ds"
    result = build(recipe, "synth", out, limit=2, workers=2, progress=False)
    assert result.retried == [] and result.manifest["splits"]["train"]["shards"] == 2
    return out


@pytest.fixture(scope="module")
def parts_template(recipe, tmp_path_factory) -> Path:
    """Job-array parts 0 and 1 of 2 (serial builds, as two array jobs would run them); copied per test."""
    out = tmp_path_factory.mktemp("array") / "ds"
    for i in range(2):
        build(recipe, "synth", out, limit=2, num_shards=2, shard_index=i, progress=False)
    return out


def copy_parts(template: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(parts_dir(template), parts_dir(out))
    return out


def test_dask_local_cluster_gives_the_process_pool_dataset(recipe, pool_build, tmp_path):
    from defectbench.executors import open_executor

    with open_executor("dask", workers=2) as ex:
        assert type(ex).__name__ == "ClientExecutor"
        result = build(recipe, "synth", tmp_path / "dask", limit=2, progress=False, executor=ex)
    assert result.manifest["fingerprint"] == read_manifest(pool_build)["fingerprint"]
    assert file_hashes(tmp_path / "dask") == file_hashes(pool_build)  # byte-identical, card and manifest too


def test_job_array_parts_take_every_nth_shard(parts_template):
    infos = [json.loads((parts_dir(parts_template) / f"{i:05d}-of-00002" / "part.json").read_text()) for i in range(2)]
    assert infos[0]["shards"] == infos[1]["shards"] == SHARDS  # fixed order: split, then index
    assert infos[0]["built"] == SHARDS[0::2] and infos[1]["built"] == SHARDS[1::2]
    for i, info in enumerate(infos):
        on_disk = sorted(p.stem for p in (parts_dir(parts_template) / f"{i:05d}-of-00002" / "shards").glob("*.parquet"))
        assert on_disk == sorted(info["built"])
    assert not parts_template.exists()  # parts never look like a dataset


def test_merged_parts_are_the_local_build(parts_template, pool_build, tmp_path):
    out = copy_parts(parts_template, tmp_path)
    result = merge(out)
    assert result.manifest["fingerprint"] == read_manifest(pool_build)["fingerprint"]
    assert file_hashes(out) == file_hashes(pool_build)
    assert not parts_dir(out).exists() and not out.with_name("ds.partial").exists()


def test_merge_fails_on_a_missing_part(parts_template, tmp_path):
    out = copy_parts(parts_template, tmp_path)
    shutil.rmtree(parts_dir(out) / "00001-of-00002")
    with pytest.raises(DefectbenchError, match=r"3 of 6 shards missing .*--shard-index 1: run those jobs"):
        merge(out)
    assert not out.exists()


def test_merge_fails_on_a_missing_shard_and_on_an_unfinished_part(parts_template, tmp_path):
    out = copy_parts(parts_template, tmp_path)
    (parts_dir(out) / "00000-of-00002" / "shards" / "validation-00000.json").unlink()
    with pytest.raises(DefectbenchError, match=r"1 of 6 shards missing \(validation-00000\).*--shard-index 0"):
        merge(out)
    (parts_dir(out) / "00000-of-00002" / "part.json").unlink()
    with pytest.raises(DefectbenchError, match="part 00000-of-00002 is unfinished"):
        merge(out)


def test_merge_fails_on_a_duplicated_shard(parts_template, tmp_path):
    out = copy_parts(parts_template, tmp_path)
    shutil.copytree(parts_dir(out) / "00001-of-00002", parts_dir(out) / "00001-of-00002-copy")
    with pytest.raises(DefectbenchError, match=r"3 shard\(s\) found more than once, e\.g\. train-00001 in parts "
                                               r"00001-of-00002, 00001-of-00002-copy"):
        merge(out)
    assert not out.exists()


def test_merge_fails_on_parts_of_another_build(recipe, parts_template, tmp_path):
    out = copy_parts(parts_template, tmp_path)
    shutil.rmtree(parts_dir(out) / "00001-of-00002")
    build(recipe, "synth", out, limit=2, seed=7, num_shards=2, shard_index=1, progress=False, workers=1)
    with pytest.raises(DefectbenchError, match="come from different builds .*differ in: seed"):
        merge(out)


class KillWorkerOf(threading.Thread):
    """SIGKILL, from outside, the worker process that is building shard ``name`` of the build into ``out``.

    A worker writes ``.NAME.PID.tmp`` in ``OUT.partial/shards`` while it builds a shard: the watcher
    waits for that file and kills the pid in its name, once (as the OOM killer or an operator would)."""

    def __init__(self, out: Path, name: str) -> None:
        super().__init__(daemon=True)
        self.shards, self.name, self.killed = out.with_name(out.name + ".partial") / "shards", name, None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for tmp in self.shards.glob(f".{self.name}.*.tmp") if self.shards.is_dir() else []:
                pid = int(tmp.name.split(".")[2])
                os.kill(pid, signal.SIGKILL)
                self.killed = pid
                return
            time.sleep(0.005)


def test_a_killed_pool_worker_loses_only_its_shard(recipe, pool_build, tmp_path):
    killer = KillWorkerOf(tmp_path / "ds", "train-00001")
    killer.start()
    try:
        result = build(recipe, "synth", tmp_path / "ds", limit=2, workers=2, progress=False)
    finally:
        killer.stop.set()
    assert killer.killed  # a worker really died (SIGKILL) in the middle of train-00001
    assert "train-00001" in result.retried
    assert file_hashes(tmp_path / "ds") == file_hashes(pool_build)


def test_a_killed_dask_worker_loses_only_its_shard(recipe, pool_build, tmp_path):
    from defectbench.executors import open_executor

    killer = KillWorkerOf(tmp_path / "ds", "validation-00000")
    with open_executor("dask", workers=2) as ex:
        killer.start()
        try:
            build(recipe, "synth", tmp_path / "ds", limit=2, progress=False, executor=ex)
        finally:
            killer.stop.set()
    assert killer.killed
    assert file_hashes(tmp_path / "ds") == file_hashes(pool_build)


def test_cli_errors_are_one_line(tmp_path):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "defectbench.cli", *args], capture_output=True, text=True)

    r = cli("merge", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "error: no parts to merge" in r.stderr and "Traceback" not in r.stderr
    r = cli("build", "fma-clicks", "--out", str(tmp_path / "x"), "--executor", "spark")
    assert r.returncode == 2 and "unknown executor 'spark'" in r.stderr
    r = cli("build", "fma-clicks", "--out", str(tmp_path / "x"), "--num-shards", "2")
    assert r.returncode == 2 and "--num-shards and --shard-index go together" in r.stderr
    r = cli("build", "fma-clicks", "--out", str(tmp_path / "x"), "--num-shards", "2", "--shard-index", "2")
    assert r.returncode == 2 and "--shard-index must be in 0..1" in r.stderr


DDP_SCRIPT = '''
import json, sys
import numpy as np
import torch
from torch.utils.data import TensorDataset
from defectbench import distributed as D

out = sys.argv[1]
ctx = D.init(device="cpu")
torch.manual_seed(0)
g = torch.Generator().manual_seed(1)
x = torch.randn(40, 8, generator=g)
y = (x @ torch.randn(8, 1, generator=g) > 0).float()
data = TensorDataset(x, y)
model = D.wrap_model(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)), ctx)
opt = torch.optim.SGD(model.parameters(), lr=0.5)
loader = D.train_loader(data, 8, ctx, seed=3)
losses = []
for epoch in range(3):
    D.set_epoch(loader, epoch)
    for xb, yb in loader:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(D.mean_over_ranks(loss.item(), ctx))
wrote = D.save_on_main(D.unwrap(model).state_dict(), out + "/model.pt", ctx)
with torch.no_grad():
    local = np.concatenate([model(xb).numpy()[:, 0] for xb, _ in D.score_loader(data, 6, ctx)])
scores = D.gather_in_order(local, len(data), ctx)
params = torch.cat([p.detach().flatten() for p in D.unwrap(model).parameters()]).tolist()
with open(f"{out}/rank{ctx.rank}.json", "w") as fh:
    json.dump({"rank": ctx.rank, "world": ctx.world_size, "wrote": wrote, "params": params, "losses": losses,
               "n_local": len(local), "scores": scores.tolist()}, fh)
D.finish(ctx)  # a barrier first: tearing gloo down under a peer can abort the process
if D.group_started():
    D.exit_process(0)  # and no interpreter finalization, where gloo's threads can abort it too
'''


def test_ddp_on_two_cpu_processes_trains_the_one_process_model(tmp_path):
    """torchrun, 2 processes, gloo: DDP + DistributedSampler with a global batch of 8 give the parameters
    of one process training on the same global batches; rank 0 alone saves; scores come back in order."""
    import torch

    script = tmp_path / "train.py"
    script.write_text(DDP_SCRIPT)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir(), two.mkdir()
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    subprocess.run([sys.executable, str(script), str(one)], check=True, env=env, timeout=120)
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                    str(script), str(two)], check=True, env=env, timeout=240, capture_output=True)
    ref = json.loads((one / "rank0.json").read_text())
    ranks = [json.loads((two / f"rank{r}.json").read_text()) for r in range(2)]
    assert ref["world"] == 1 and [r["world"] for r in ranks] == [2, 2]
    assert [r["wrote"] for r in ranks] == [True, False] and (two / "model.pt").is_file()
    assert ranks[0]["params"] == ranks[1]["params"]  # DDP keeps the replicas identical
    assert len(ranks[0]["losses"]) == len(ref["losses"]) == 3 * 5  # 40 rows / global batch 8, 3 epochs
    assert np.mean(ref["losses"][-5:]) < np.mean(ref["losses"][:5])  # it did learn something
    np.testing.assert_allclose(ranks[0]["params"], ref["params"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ranks[0]["losses"], ref["losses"], rtol=1e-5, atol=1e-6)
    assert [r["n_local"] for r in ranks] == [20, 20]  # every row scored once, no padding
    np.testing.assert_allclose(ranks[0]["scores"], ranks[1]["scores"])
    np.testing.assert_allclose(ranks[0]["scores"], ref["scores"], rtol=1e-5, atol=1e-6)
    state = torch.load(two / "model.pt")
    np.testing.assert_allclose(torch.cat([v.flatten() for v in state.values()]).tolist(), ranks[0]["params"])
