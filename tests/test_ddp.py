"""Training and scoring under torchrun (issue 8): 2 CPU processes (gloo) launched with ``torch.distributed.run``.

What is exactly comparable with one process, and what is not:

* One DDP step: the loss is computed from sums over the global batch (``distributed.global_sum``), so its
  gradient is the one-process gradient of the same global batch -- tested with BatchNorm in eval mode,
  because in training mode each CPU rank normalises with its own share's statistics: torch has no CPU
  SyncBatchNorm (on GPUs ``wrap_model`` converts to SyncBatchNorm, which would make training-mode steps
  match too; no GPU here, so that path is untested).
* A training run's trajectory: not comparable on CPU (per-rank BatchNorm statistics, a shuffle buffer per
  shard, and row groups that do not split evenly give a different sequence of batches). Tested instead:
  identical replicas, rank-0-only files and log, the expected number of steps, finite losses, and that
  the split-and-gathered evaluation equals a one-process evaluation of the saved checkpoint.
* Scoring: every row scored once and gathered in dataset order; equal to one process up to float
  rounding of batched convolutions (the per-process batches differ).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from defectbench.models.hooknet import HookNetDetector
from defectbench.training import ParquetRows, TrainOptions, evaluate, loader, train

ENV = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}


def torchrun(args: list[str], logs: Path, check: bool = True) -> subprocess.CompletedProcess:
    """2 processes on this machine; each rank's stdout/stderr goes to its own file under ``logs``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--log-dir", str(logs), "--redirects", "3", *args]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=180)
    if check:
        assert r.returncode == 0, r.stderr[-3000:] + "\n".join(rank_log(logs, i) for i in range(2))
    return r


def rank_log(logs: Path, rank: int) -> str:
    files = [f for f in logs.rglob("*.log") if f.parent.name == str(rank)]
    assert files, f"no log of rank {rank} under {logs}"
    return "\n".join(f.read_text() for f in sorted(files))


@pytest.fixture(scope="module")
def clicks(model_clicks) -> Path:
    return model_clicks  # built by the engine: 24 rows per split, one file and row group of 8 rows per piece


def test_ranks_and_workers_stream_disjoint_shares_of_every_row(clicks):
    def rows(rank: int, workers: int, epoch: int) -> list[float]:
        data = ParquetRows(clicks, "train", shuffle=True, seed=5, buffer=4, rank=rank, world=2)
        data.epoch = epoch
        return [float(x) for b in loader(data, 3, workers, False) for x in b["audio"][:, 0]]

    everything = sorted(float(r[0][0]) for r in ParquetRows(clicks, "train", shuffle=False))
    for workers in (0, 2):  # 2 ranks x 2 workers = 4 shards of 3 row groups: one shard is empty
        for epoch in (0, 1):
            a, b = rows(0, workers, epoch), rows(1, workers, epoch)
            assert not set(a) & set(b) and sorted(a + b) == everything
    assert rows(0, 0, 0) != rows(0, 0, 1)  # a new unit order every epoch, the same on every rank


GRAD_SCRIPT = '''
import json, sys
import torch
from defectbench import distributed as D
from defectbench.models.cnn6 import Cnn6Detector
from defectbench.models.hooknet import HookNetDetector
from defectbench.training import ParquetRows, collate

out, clicks, video = sys.argv[1:4]
ctx = D.init(device="cpu")
mine = slice(0, 5) if ctx.rank == 0 else slice(5, 8)  # unequal shares of the global batch of 8
res = {}
for cls, data in ((HookNetDetector, clicks), (Cnn6Detector, video)):
    torch.manual_seed(0)
    det, ref = cls(config="tiny", device="cpu"), cls(config="tiny", device="cpu")
    ref.model.load_state_dict(det.model.state_dict())
    det.model.eval(), ref.model.eval()  # BatchNorm from running statistics: the same on every rank
    batch = collate(list(ParquetRows(data, "train", shuffle=False))[:8])
    ref_loss = ref.loss(ref.model(batch["audio"]), batch, ref.recipe)  # one process, the global batch
    ref_loss.backward()
    model = D.wrap_model(det.model, ctx)
    share = {k: v[mine] for k, v in batch.items()}
    det.dist = ctx
    loss = det.loss(model(share["audio"]), share, det.recipe)
    loss.backward()
    trained = lambda m: [p for p in m.parameters() if p.requires_grad]  # CNN6's STFT/mel bank: frozen
    grads = [p.grad.clone() for p in trained(det.model)]
    model.zero_grad()
    det.dist = D.DistContext()  # the naive DDP loss: each rank's own loss, DDP averaging the gradients
    det.loss(model(share["audio"]), share, det.recipe).backward()
    refs = [p.grad for p in trained(ref.model)]
    err = lambda gs: max(float((g - r).abs().max() / r.abs().max()) for g, r in zip(gs, refs) if r.abs().max() > 0)
    res[cls.name] = {"loss": loss.item(), "ref_loss": ref_loss.item(), "err": err(grads),
                     "naive_err": err([p.grad for p in trained(det.model)])}
with open(f"{out}/rank{ctx.rank}.json", "w") as fh:
    json.dump(res, fh)
D.finish(ctx)  # a barrier first: tearing gloo down under a peer can abort the process
D.exit_process(0)  # and no interpreter finalization, where gloo's threads can abort it too
'''


def test_a_ddp_step_has_the_one_process_loss_and_gradient(clicks, model_video, tmp_path):
    """Hook-Net's RMS loss and CNN6's mean NLL over a global batch of 8 split 5 + 3 over two ranks."""
    video = model_video
    script = tmp_path / "step.py"
    script.write_text(GRAD_SCRIPT)
    torchrun([str(script), str(tmp_path), str(clicks), str(video)], tmp_path / "logs")
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for name in ("hooknet", "cnn6"):
        for r in ranks:
            assert r[name]["loss"] == pytest.approx(r[name]["ref_loss"], rel=1e-6)
            assert r[name]["err"] < 1e-4  # relative to each parameter's largest gradient (measured: 2e-6, 6e-6)
            assert r[name]["naive_err"] > 1e-3  # the per-rank losses would not give it
        assert ranks[0][name]["loss"] == ranks[1][name]["loss"]


def test_two_process_training(clicks, tmp_path):
    out, logs = tmp_path / "ck", tmp_path / "logs"
    torchrun(["-m", "defectbench.cli", "train", "--model", "hooknet", "--dataset", str(clicks), "--config", "tiny",
              "--batch-size", "8", "--epochs", "1", "--device", "cpu", "--out", str(out)], logs)
    summary = json.loads((out / "config.json").read_text())
    assert summary["train"]["processes"] == 2 and summary["train"]["sync_batchnorm"] is False  # CPU
    hashes = summary["ddp"]["parameters_sha256_per_rank"]
    assert len(hashes) == 2 and hashes[0] == hashes[1]

    # steps: an epoch lasts while every rank has a batch of 8 / 2 rows (row groups of 8 split unevenly)
    shares = []
    for rank in range(2):
        data = ParquetRows(clicks, "train", shuffle=True, seed=0, rank=rank, world=2)
        shares.append(sum(1 for _ in data))
    assert sum(shares) == 24
    steps = min(math.ceil(n / 4) for n in shares)
    assert summary["steps"] == steps
    assert summary["ddp"]["rows_left_out"] == 24 - sum(min(n, 4 * steps) for n in shares)
    assert len(summary["curve"]) == 1 and math.isfinite(summary["curve"][0]["train_loss"])

    assert "best accuracy" in rank_log(logs, 0) and "replicas identical" in rank_log(logs, 0)
    assert "best accuracy" not in rank_log(logs, 1) and "torchrun:" not in rank_log(logs, 1)  # rank 0 logs
    assert sorted(p.name for p in out.iterdir()) == [".defectbench", "config.json", "curve.png", "last.pt", "model.pt"]  # rank 0 writes

    # one evaluation, at the end: the checkpoint is the final replica, and the evaluation the two ranks
    # split and gathered is a one-process evaluation of it over every validation row
    det = HookNetDetector(checkpoint=out, device="cpu")
    h = hashlib.sha256()
    for p in det.model.parameters():
        h.update(p.detach().contiguous().numpy().tobytes())
    assert h.hexdigest() == hashes[0]
    val = evaluate(det, loader(ParquetRows(clicks, "validation", shuffle=False), 8, 0, False), "framewise", 2)
    assert val["accuracy"] == summary["curve"][0]["val_accuracy"]


def test_two_process_scoring_matches_one_process(clicks, tmp_path):
    from defectbench.runner import run

    ck = tmp_path / "ck"
    train(TrainOptions(model="hooknet", dataset=str(clicks), out=str(ck), config="tiny", max_steps=2, batch_size=8,
                       device="cpu", progress=False), log=lambda s: None)
    one = run("hooknet", clicks, checkpoint=ck, out=tmp_path / "one" / "h.json", options={"device": "cpu"},
              n_resamples=50, show_progress=False, make_plots=False)
    logs = tmp_path / "logs"
    torchrun(["-m", "defectbench.cli", "run", "--model", "hooknet", "--checkpoint", str(ck), "--dataset", str(clicks),
              "--out", str(tmp_path / "two" / "h.json"), "--resamples", "50", "--quiet", "-o", "device=cpu"], logs)
    two = json.loads((tmp_path / "two" / "h.json").read_text())
    assert two["throughput"]["device"] == "torchrun 2 x cpu" and two["dataset"]["count"] == 24
    assert two["threshold"]["validation_count"] == 24
    assert two["threshold"]["value"] == pytest.approx(one.threshold.value, rel=1e-5)
    for key in ("accuracy", "precision", "recall", "f1", "average_precision"):
        assert two["metrics"][key] == pytest.approx(getattr(one.metrics, key), abs=1e-9)
    a = pq.read_table(tmp_path / "one" / "h.predictions.parquet").to_pydict()
    b = pq.read_table(tmp_path / "two" / "h.predictions.parquet").to_pydict()
    shards = sorted((clicks / "data").glob("test-*.parquet"))
    order = [i for f in shards for i in pq.read_table(f, columns=["id"])["id"].to_pylist()]
    assert b["id"] == a["id"] == order and len(set(order)) == 24  # dataset order
    np.testing.assert_allclose(np.array(b["scores"]), np.array(a["scores"]), rtol=1e-5, atol=1e-7)
    assert "segments/s" in rank_log(logs, 0) and "segments/s" not in rank_log(logs, 1)

    r = torchrun(["-m", "defectbench.cli", "run", "--model", "sigclick", "--dataset", str(clicks),
                  "--out", str(tmp_path / "s.json")], tmp_path / "logs-sigclick", check=False)
    assert r.returncode != 0 and "torchrun scores the neural detectors" in rank_log(tmp_path / "logs-sigclick", 0)
