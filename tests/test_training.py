"""Training (SPEC 4): data loading, a few steps lower the loss, checkpoints, best-evaluation selection, CLI."""

import json
import re

import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from defectbench.core import DefectbenchError
from defectbench.models.cnn6 import Cnn6Detector
from defectbench.models.hooknet import CONFIGURATIONS, HookNet, HookNetDetector
from defectbench.neural import TrainingRecipe, load_checkpoint, weighted_rms_loss
from defectbench.training import (ParquetRows, TrainOptions, collate, loader, positive_rate, train, validation_metrics,
                                  validation_rows)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clicks(model_clicks):
    return model_clicks  # fma-clicks variant built by the engine: 24 rows per split (conftest.py)


@pytest.fixture(scope="module")
def video(model_video):
    return model_video


def test_rows_decode_and_each_epoch_is_a_seeded_permutation(clicks):
    data = ParquetRows(clicks, "train", shuffle=True, seed=3, buffer=5)
    assert len(data) == 24
    first = [r for r in data]
    assert len(first) == 24
    ids = lambda rows: [tuple(np.flatnonzero(r[1])) + (round(float(r[0][0]), 6),) for r in rows]  # noqa: E731
    ordered = ids(ParquetRows(clicks, "train", shuffle=False))
    assert sorted(ids(first)) == sorted(ordered)  # every row exactly once
    assert ids(first) != ordered
    assert ids(ParquetRows(clicks, "train", shuffle=True, seed=3, buffer=5)) == ids(first)  # same seed, same order
    data.epoch = 1
    assert ids(data) != ids(first)
    audio, target, label = first[0]
    assert audio.dtype == np.float32 and audio.shape == (16384,) and target.shape == (128,)
    assert label == int(target.any())


def test_workers_share_the_rows_without_overlap(clicks):
    data = ParquetRows(clicks, "train", shuffle=True, seed=0, buffer=4)
    batches = list(loader(data, batch_size=5, workers=2, pin=False))
    assert sum(len(b["label"]) for b in batches) == 24
    first = torch.cat([b["audio"][:, 0] for b in batches]).sort().values
    ref = torch.tensor(sorted(float(r[0][0]) for r in ParquetRows(clicks, "train", shuffle=False)))
    assert torch.equal(first, ref)


def test_validation_subset_is_fixed_and_at_least_the_minimum():
    r = TrainingRecipe(lr=1e-4, batch_size=512, val_fraction=0.01, val_min_rows=100)
    a, b = validation_rows(50_000, r, seed=0), validation_rows(50_000, r, seed=0)
    assert a == b and len(a) == 500 and max(a) < 50_000
    assert len(validation_rows(3_000, r, seed=0)) == 100
    assert validation_rows(40, r, seed=0) == set(range(40))
    assert validation_rows(10, TrainingRecipe(lr=1, batch_size=1), seed=0) is None  # fraction 1: all rows


def test_positive_rate_counts_every_target_value(clicks):
    ones = sum(int(r[1].sum()) for r in ParquetRows(clicks, "train", shuffle=False))
    assert positive_rate(clicks) == pytest.approx(ones / (24 * 128))
    assert 0 < positive_rate(clicks) < 0.02


def test_validation_metrics_by_hand():
    """Training selects on the scorer's own formulas (defectbench.metrics), as fractions."""
    labels = np.array([0, 0, 0, 0, 1, 2])
    scores = np.eye(3)[[0, 0, 0, 1, 1, 0]]  # arg-max predictions 0 0 0 1 1 0
    m = validation_metrics("multiclass", scores, np.zeros((6, 1)), labels, 3)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 1 + 0) / 3) and m["accuracy"] == pytest.approx(4 / 6)
    logits = np.array([[2.0, -1.0, 0.0, -3.0]])  # decisions at logit >= 0: 1 0 1 0
    targets = np.array([[1.0, 1.0, 0.0, 0.0]])
    m = validation_metrics("framewise", logits, targets, np.zeros(1), 2)
    assert m["accuracy"] == pytest.approx(0.5) and m["f1"] == pytest.approx(0.5)  # tp 1, fp 1, fn 1
    assert m["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)  # by score: + - + -: precision 1 at recall 1/2, 2/3 at 1


def test_a_few_hooknet_steps_lower_the_loss_on_a_fixed_batch(clicks):
    """The paper's recipe (lr 1e-3, bias at logit(positive rate), weighted RMS on sigmoid outputs).

    The sigmoid starts saturated near the rare positive rate, so the RMS loss falls slowly at first
    (measured on the engine-built clicks: 0.3 % over the first 10 steps, 2.4 % over 20); every step must
    still lower it.
    """
    torch.manual_seed(0)
    batch = collate(list(ParquetRows(clicks, "train", shuffle=False))[:8])
    cfg = CONFIGURATIONS["tiny"]
    model = HookNet(cfg.__class__(**{**cfg.__dict__, "positive_rate": positive_rate(clicks)})).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):
        loss = weighted_rms_loss(model(batch["audio"]), batch["target"], 10.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(b < a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.99 * losses[0]


def test_a_few_cnn6_steps_lower_the_loss_on_a_fixed_batch(video):
    torch.manual_seed(0)
    batch = collate(list(ParquetRows(video, "train", shuffle=False))[:10])
    det = Cnn6Detector(config="tiny", device="cpu")
    model = det.model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = det.loss(model(batch["audio"]), batch, det.recipe)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_hooknet_train_saves_the_best_epoch_and_reloads_identically(clicks, tmp_path):
    out = tmp_path / "ck"
    summary = train(TrainOptions(model="hooknet", dataset=str(clicks), out=str(out), config="tiny", epochs=3,
                                 batch_size=8, progress=False), log=lambda s: None)
    curve = summary["curve"]
    assert [c["epoch"] for c in curve] == [0, 1, 2]  # one evaluation per epoch
    best = max(range(len(curve)), key=lambda i: (curve[i]["val_accuracy"], -i))  # first maximum
    assert summary["best"]["step"] == curve[best]["step"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["best"] == summary["best"] and saved["train"]["lr"] == 1e-3
    assert (out / "curve.png").stat().st_size > 0

    ckpt = torch.load(out / "model.pt", weights_only=True)  # plain types only
    assert ckpt["best"]["step"] == summary["best"]["step"]
    rate = positive_rate(clicks)
    assert ckpt["config"]["positive_rate"] == pytest.approx(rate)
    model = HookNet(CONFIGURATIONS["tiny"].__class__(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()

    det = HookNetDetector(checkpoint=out, device="cpu")
    rows = list(ParquetRows(clicks, "test", shuffle=False))
    x = torch.from_numpy(np.stack([r[0] for r in rows]))
    with torch.no_grad():
        expected = torch.sigmoid(model(x)).numpy()
    got = det.predict([{"id": str(i), "audio": r[0]} for i, r in enumerate(rows)])
    assert np.array_equal(got, expected)


def test_cnn6_evaluates_every_n_iterations_on_a_fixed_subset(video, tmp_path):
    summary = train(TrainOptions(model="cnn6", dataset=str(video), out=str(tmp_path / "c"), config="tiny",
                                 max_steps=5, batch_size=4, eval_every=2, progress=False), log=lambda s: None)
    assert [c["step"] for c in summary["curve"]] == [2, 4, 5]  # every 2 iterations, and once at the end
    values = [c["val_balanced_accuracy"] for c in summary["curve"]]
    assert summary["best"]["value"] == max(values)
    assert summary["train"]["lr"] == 1e-4 and summary["train"]["val_fraction"] == 0.01
    det = Cnn6Detector(checkpoint=tmp_path / "c" / "model.pt", device="cpu")
    assert det.predict([{"id": "a", "rate": 48000, "audio": np.zeros(48000, np.int16)}]).shape == (1, 5)


def test_cnn6_init_from_a_defectbench_checkpoint(video, tmp_path):
    train(TrainOptions(model="cnn6", dataset=str(video), out=str(tmp_path / "a"), config="tiny", max_steps=1,
                       batch_size=4, progress=False), log=lambda s: None)
    det = Cnn6Detector(config="tiny", device="cpu")
    det.load_init(tmp_path / "a")
    ref = load_checkpoint(tmp_path / "a")["state_dict"]
    assert all(torch.equal(v, ref[k]) for k, v in det.model.state_dict().items())


def test_user_errors_are_one_line(clicks, video, tmp_path):
    with pytest.raises(DefectbenchError, match="framewise"):
        train(TrainOptions(model="hooknet", dataset=str(video), out=str(tmp_path / "x"), config="tiny"))
    with pytest.raises(DefectbenchError, match="not a defectbench dataset"):
        train(TrainOptions(model="hooknet", dataset=str(tmp_path / "nothing"), out=str(tmp_path / "x")))
    with pytest.raises(DefectbenchError, match="does not exist"):
        HookNetDetector(checkpoint=tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(DefectbenchError, match="cannot be read"):
        HookNetDetector(checkpoint=tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(DefectbenchError, match="not a defectbench checkpoint"):
        HookNetDetector(checkpoint=tmp_path / "foreign.pt")


def test_train_command(clicks, tmp_path):
    from defectbench.commands import scoring
    from defectbench.commands import training as cmd

    app = typer.Typer()
    cmd.register(app)
    scoring.register(app)  # `defectbench models` lives there
    out = tmp_path / "cli"
    r = CliRunner().invoke(app, ["train", "--model", "hooknet", "--dataset", str(clicks), "--config", "tiny",
                                 "--max-steps", "2", "--batch-size", "6", "--out", str(out), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    assert "best accuracy" in r.output
    assert load_checkpoint(out)["train"]["max_steps"] == 2
    r = CliRunner().invoke(app, ["models"], terminal_width=200)
    assert r.exit_code == 0, r.output
    assert "27,331,777" in r.output and "4,569,669" in r.output and "52,979" in r.output


def test_loss_choice_is_recorded_changes_training_and_is_checked(clicks, tmp_path):
    """--loss bce trains Hook-Net on cross-entropy: recorded in the checkpoint, other weights than the
    paper's RMS from the same seed; an unknown loss, or a loss for cnn6, is one clear error."""
    common = dict(model="hooknet", dataset=str(clicks), config="tiny", max_steps=3, batch_size=4, device="cpu",
                  progress=False, seed=3)
    rms = train(TrainOptions(out=str(tmp_path / "rms"), **common), log=lambda s: None)
    bce = train(TrainOptions(out=str(tmp_path / "bce"), loss="bce", **common), log=lambda s: None)
    assert load_checkpoint(tmp_path / "rms")["train"]["loss"] == "rms" == rms["train"]["loss"]
    assert load_checkpoint(tmp_path / "bce")["train"]["loss"] == "bce" == bce["train"]["loss"]
    a = torch.load(tmp_path / "rms" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "bce" / "model.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(DefectbenchError, match="--loss focal: hooknet trains with one of rms, bce"):
        train(TrainOptions(out=str(tmp_path / "x"), loss="focal", **common))
    with pytest.raises(DefectbenchError, match="cnn6 has its paper's loss only"):
        train(TrainOptions(**{**common, "model": "cnn6"}, out=str(tmp_path / "y"), loss="bce"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_runner_hooks_configurations_and_from_checkpoint(clicks, tmp_path):
    """What the runner and `defectbench models` call: cls(**options) per configuration, from_checkpoint."""
    for cls in (HookNetDetector, Cnn6Detector):
        confs = cls.configurations()
        assert "reference" in confs and "tiny" in confs
        det = cls(**confs["tiny"], device="cpu")
        built = cls.build(cls.model_configs()["tiny"])
        assert det.parameter_count() == sum(p.numel() for p in built.parameters() if p.requires_grad)
        assert det.device == "cpu"
    train(TrainOptions(model="hooknet", dataset=str(clicks), out=str(tmp_path / "h"), config="tiny", max_steps=1,
                       batch_size=4, progress=False), log=lambda s: None)
    det = HookNetDetector.from_checkpoint(str(tmp_path / "h"), device="cpu")
    assert det.checkpoint["best"]["step"] == 1 and len(det.weights_hash()) == 64


def test_resume_continues_to_the_same_weights(clicks_dataset, tmp_path):
    """Fresh-defect training (the shipped runs' mode): 2 epochs in one go == 1 epoch, then --resume to 2."""
    common = dict(model="hooknet", dataset=str(clicks_dataset), config="tiny", batch_size=16, device="cpu",
                  source="synth:1", overrides={"defect.probability": 0.5}, seed=5, progress=False)
    whole = train(TrainOptions(out=str(tmp_path / "whole"), epochs=2, **common), log=lambda s: None)
    train(TrainOptions(out=str(tmp_path / "cut"), epochs=1, **common), log=lambda s: None)
    resumed = train(TrainOptions(out=str(tmp_path / "cut"), epochs=2, resume=True, **common), log=lambda s: None)
    assert resumed["steps"] == whole["steps"] and resumed["best"] == whole["best"]
    assert [c["val_f1"] for c in resumed["curve"]] == [c["val_f1"] for c in whole["curve"]]
    for name in ("last.pt", "model.pt"):
        a = torch.load(tmp_path / "whole" / name, weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "cut" / name, weights_only=True)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_progress_is_logged_when_not_on_a_terminal(clicks, tmp_path):
    lines = []
    summary = train(TrainOptions(model="hooknet", dataset=str(clicks), out=str(tmp_path / "p"), config="tiny", epochs=2,
                                 batch_size=8, device="cpu", log_every=0.0, command=["defectbench", "train", "x"]),
                    log=lines.append)
    progress = [s for s in lines if s.startswith("train hooknet: ")]
    assert any("steps/s" in s and "ETA" in s and "loss" in s for s in progress), lines
    assert [s for s in progress if "[epoch 1 done]" in s and s.startswith("train hooknet: 6/6 steps (100 %)")]
    saved = json.loads((tmp_path / "p" / "config.json").read_text())
    assert saved["train"]["command"] == ["defectbench", "train", "x"] and saved["train"]["machine"]["cores"] >= 1
    assert summary["steps"] == 6


def test_fresh_training_progress_total_follows_the_measured_epochs(clicks_dataset, tmp_path):
    """``segments_per_piece`` above what a 20 s synth piece holds: the first row estimate (pieces x 400)
    overshoots; from the first finished epoch on, the total shown (and so the ETA) is the steps measured."""
    lines = []
    summary = train(TrainOptions(model="hooknet", dataset=str(clicks_dataset), out=str(tmp_path / "f"), config="tiny",
                                 epochs=3, batch_size=16, device="cpu", source="synth:1", log_every=0.0,
                                 overrides={"defect.probability": 0.5, "segments_per_piece": 400}), log=lambda s: None
                    if not s.startswith("train hooknet: ") else lines.append(s))
    steps = summary["steps"]
    estimate = 3 * (3 * 400 // 16)  # 3 epochs of 3 train pieces x 400 segments, batches of 16
    assert steps % 3 == 0 and steps < estimate // 2
    first = re.match(r"train hooknet: \d+/(\d+) steps", lines[0])
    assert int(first.group(1)) == estimate  # before any epoch finished
    for k in range(3):
        (line,) = [s for s in lines if f"[epoch {k} done]" in s]
        assert line.startswith(f"train hooknet: {steps // 3 * (k + 1)}/{steps} steps"), line


def test_scoring_never_imports_the_training_loop():
    import subprocess
    import sys

    code = ("import sys, defectbench.runner, defectbench.detect, defectbench.weights, defectbench.results; "
            "from defectbench.detectors import load_all; load_all(); "
            "assert 'defectbench.training' not in sys.modules, 'training imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1000:]


def test_a_run_that_logged_ap_in_percent_resumes_on_the_fraction_scale():
    from defectbench.training import ap_as_fraction

    curve = [{"step": 1, "val_ap": 91.5, "val_f1": 0.8}, {"step": 2, "val_ap": 95.0, "val_f1": 0.9}]
    c, b = ap_as_fraction(curve, {"metric": "ap", "value": 95.0, "step": 2})
    assert [x["val_ap"] for x in c] == [pytest.approx(0.915), pytest.approx(0.95)] and b["value"] == pytest.approx(0.95)
    assert ap_as_fraction(c, b) == (c, b)  # already fractions: unchanged


def test_init_fine_tunes_from_trained_weights_whatever_their_positive_rate():
    """``--init`` takes a checkpoint whose data-set fields (Hook-Net's positive rate) differ from the fresh
    configuration's, loads its weights exactly, and marks the detector so that training keeps its output bias."""
    from pathlib import Path

    import torch

    from defectbench.models.hooknet import HookNetDetector

    path = Path(__file__).parent / "data" / "weights" / "hooknet-fma-clicks.pt"
    saved = torch.load(path, map_location="cpu", weights_only=True)
    det = HookNetDetector(config="tiny", device="cpu")
    assert det.config.positive_rate != saved["config"]["positive_rate"]
    det.load_init(path)
    assert det.initialised and det.config.positive_rate == saved["config"]["positive_rate"]
    for k, v in det.model.state_dict().items():
        assert torch.equal(v, saved["state_dict"][k]), k
    with pytest.raises(DefectbenchError, match="does not fit this model"):
        HookNetDetector(config="cpu", device="cpu").load_init(path)  # another architecture


def test_weight_average_is_the_ema_of_the_weights_and_swaps_in_and_out():
    from defectbench.training import WeightAverage

    model = torch.nn.Sequential(torch.nn.Linear(2, 1), torch.nn.BatchNorm1d(1))
    avg = WeightAverage(model, 0.75)
    values = [1.0, 3.0, -2.0]
    for v in values:
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(v)
            model[1].running_mean.fill_(10 * v)  # a buffer: averaged too
        avg.update(model)
    expected = values[0]  # the first update copies, then e <- 0.75 e + 0.25 v
    for v in values[1:]:
        expected = 0.75 * expected + 0.25 * v
    with avg.swapped_in():
        assert all(torch.allclose(p, torch.full_like(p, expected)) for p in model.parameters())
        assert torch.allclose(model[1].running_mean, torch.tensor([10 * expected]))
    assert all(torch.equal(p, torch.full_like(p, values[-1])) for p in model.parameters())  # raw weights back
    with pytest.raises(DefectbenchError):
        WeightAverage(model, 1.0)


def test_ema_runs_keep_the_average_and_resume_it(clicks_dataset, tmp_path):
    common = dict(model="hooknet", dataset=str(clicks_dataset), config="tiny", batch_size=16, device="cpu",
                  source="synth:1", overrides={"defect.probability": 0.5}, seed=5, progress=False)
    quiet = dict(log=lambda s: None)

    def weights(folder, name="model.pt"):
        return torch.load(tmp_path / folder / name, weights_only=True)["state_dict"]

    plain = train(TrainOptions(out=str(tmp_path / "plain"), epochs=2, **common), **quiet)
    # decay 0: the average is the current weights, so evaluating it and swapping back changes nothing
    zero = train(TrainOptions(out=str(tmp_path / "zero"), epochs=2, ema=0.0, **common), **quiet)
    assert [c["val_f1"] for c in zero["curve"]] == [c["val_f1"] for c in plain["curve"]]
    assert all(torch.equal(weights("plain")[k], weights("zero")[k]) for k in weights("plain"))
    # a real average: other weights are evaluated and kept; a resumed run continues the same average
    whole = train(TrainOptions(out=str(tmp_path / "whole"), epochs=2, ema=0.9, **common), **quiet)
    assert whole["train"]["ema"] == 0.9
    assert not all(torch.equal(weights("plain")[k], weights("whole")[k]) for k in weights("plain"))
    train(TrainOptions(out=str(tmp_path / "cut"), epochs=1, ema=0.9, **common), **quiet)
    resumed = train(TrainOptions(out=str(tmp_path / "cut"), epochs=2, ema=0.9, resume=True, **common), **quiet)
    assert [c["val_f1"] for c in resumed["curve"]] == [c["val_f1"] for c in whole["curve"]]
    assert all(torch.equal(weights("whole")[k], weights("cut")[k]) for k in weights("whole"))
    ema_whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["ema"]
    ema_cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["ema"]
    assert ema_whole["n_averaged"] == ema_cut["n_averaged"] == whole["steps"]
    assert all(torch.equal(ema_whole["state_dict"][k], ema_cut["state_dict"][k]) for k in ema_whole["state_dict"])
    with pytest.raises(DefectbenchError, match="--ema"):
        train(TrainOptions(out=str(tmp_path / "plain"), epochs=3, ema=0.9, resume=True, **common), **quiet)
