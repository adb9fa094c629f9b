"""Hook-Net's log-spectrum branch (``spectral > 0``, models/hooknet.py) and ``train --lr-new``: the branch
frames the audio as the glitch target does, starts at zero output so that weights without it load and
score the same, and trains at its own rate while the loaded weights are fine-tuned."""

from pathlib import Path

import numpy as np
import pytest
import torch

from defectbench.core import DefectbenchError
from defectbench.defects.mp3_glitch import power_spectra
from defectbench.models.hooknet import CONFIGURATIONS, HookNet, HookNetDetector
from defectbench.training import TrainOptions, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = Path(__file__).parent / "data" / "weights" / "hooknet-fma-clicks.pt"  # a trained "tiny" checkpoint


def test_branch_frames_the_audio_as_the_glitch_target_does():
    """Frame f of the branch is the target's frame f (mp3_glitch.power_spectra, numpy, float64)."""
    cfg = CONFIGURATIONS["tiny-spectral"]
    branch = HookNet(cfg).spectral
    x = np.random.default_rng(0).uniform(-0.5, 0.5, cfg.input_length)
    x[5000:5040] += 0.4  # a burst: frames 38..39 (and their neighbours' window tails) differ
    want = 10 * np.log10(power_spectra(x, cfg.spectral_fft, cfg.input_length // cfg.output_length) + 1e-8).T
    got = branch.log_power(torch.from_numpy(x).float()[None])[0].numpy()
    assert got.shape == want.shape == (cfg.spectral_fft // 2 + 1, cfg.output_length)
    assert np.abs(got - want).max() < 0.01  # dB; float32 against float64


def test_weights_without_the_branch_load_and_score_the_same():
    plain = HookNetDetector(config="tiny", device="cpu")
    plain.load_init(TINY)
    spec = HookNetDetector(config="tiny-spectral", device="cpu")
    spec.load_init(TINY)
    assert spec.config.spectral == 8 and spec.config.positive_rate == plain.config.positive_rate
    assert spec.new_parameters == {n for n, _ in spec.model.named_parameters() if n.startswith("spectral.")}
    assert plain.new_parameters == frozenset()
    x = torch.from_numpy(np.random.default_rng(1).uniform(-0.3, 0.3, (3, 16384))).float()
    plain.model.eval(), spec.model.eval()
    with torch.no_grad():
        assert torch.equal(plain.model(x), spec.model(x))
        torch.nn.init.normal_(spec.model.spectral.out.weight)  # once the branch has learnt, it counts
        assert not torch.allclose(plain.model(x), spec.model(x))
    with pytest.raises(DefectbenchError, match="does not fit this model"):
        HookNetDetector(config="cpu-spectral", device="cpu").load_init(TINY)  # another waveform path


def test_lr_new_trains_the_branch_at_its_own_rate(model_clicks, tmp_path):
    common = dict(model="hooknet", dataset=str(model_clicks), config="tiny-spectral", max_steps=2, batch_size=4,
                  device="cpu", progress=False, seed=4, init=str(TINY), loss="bce")
    summary = train(TrainOptions(out=str(tmp_path / "a"), lr=1e-12, lr_new=1e-2, **common), log=lambda s: None)
    assert summary["train"]["lr_new"] == 1e-2
    start = torch.load(TINY, weights_only=True)["state_dict"]
    got = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    loaded = [k for k in start if k.endswith("weight") and "bn" not in k]
    assert max((got[k] - start[k]).abs().max().item() for k in loaded) < 1e-9  # fine-tuned at 1e-12
    assert (got["spectral.out.weight"].abs() > 1e-3).any()  # from zero, at 1e-2 (Adam: about lr per step)
    with pytest.raises(DefectbenchError, match="--lr-new .* needs --init"):
        train(TrainOptions(**{**common, "init": None}, out=str(tmp_path / "b"), lr_new=1e-3))
    with pytest.raises(DefectbenchError, match="nothing is new"):
        train(TrainOptions(**{**common, "config": "tiny"}, out=str(tmp_path / "c"), lr_new=1e-3))
    with pytest.raises(DefectbenchError, match="--lr-new must be above 0"):
        train(TrainOptions(out=str(tmp_path / "d"), lr_new=0.0, **common))


@pytest.mark.parametrize("name", ["tiny-spectral", "cpu-spectral"])
def test_branch_parameters_by_hand(name):
    """The branch adds, term by term: BN per bin; three kernel-3 convs; the kernel-3 mix over the branch and
    the waveform path's last block (fc channels) with its BN; the bias-free 1x1 output."""
    cfg = CONFIGURATIONS[name]
    bins, s, c0 = cfg.spectral_fft // 2 + 1, cfg.spectral, cfg.fc
    extra = 2 * bins + (bins * s * 3 + s) + 2 * (s * s * 3 + s) + 3 * 2 * s + ((s + c0) * s * 3 + s) + 2 * s + s
    plain = HookNet(CONFIGURATIONS["cpu" if name == "cpu-spectral" else "tiny"])
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(HookNet(cfg)) - count(plain) == extra
