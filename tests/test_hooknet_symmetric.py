"""Polarity-invariant Hook-Net (``symmetric``, models/hooknet.py): its logits are the mean of the network's
logits for x and -x, so a click and its negation score the same; weights trained without it load as its
starting point, and its state dict (so its weights hash) tells it from the same weights without it."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from defectbench.models.hooknet import CONFIGURATIONS, HookNet, HookNetDetector
from defectbench.neural import load_checkpoint
from defectbench.training import TrainOptions, train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = Path(__file__).parent / "data" / "weights" / "hooknet-fma-clicks.pt"  # a trained "tiny" checkpoint


def audio(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(-0.3, 0.3, (n, 16384))).float()


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_a_signal_and_its_negation_score_the_same(mode):
    """In training mode too: batch norm then normalises by the statistics of the batch [x; -x], which are
    those of [-x; x]."""
    torch.manual_seed(0)
    model = HookNet(CONFIGURATIONS["tiny-symmetric"])
    getattr(model, mode)()
    x = audio(3, 0)
    with torch.no_grad():
        assert torch.allclose(model(x), model(-x), atol=1e-5)
    plain = HookNet(CONFIGURATIONS["tiny"])
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if k != "polarity"})
    plain.eval()
    with torch.no_grad():
        assert not torch.allclose(plain(x), plain(-x), atol=1e-3)  # the unconstrained network is not invariant


def test_weights_without_it_load_as_the_mean_of_their_two_views():
    """--init from a plain checkpoint: the same parameters; the logits are the mean of the plain model's
    logits for x and -x, computed here from the plain model."""
    plain = HookNetDetector.from_checkpoint(TINY, device="cpu")
    sym = HookNetDetector(config="tiny-symmetric", device="cpu")
    sym.load_init(TINY)
    sym.model.eval()
    assert sym.config.symmetric and sym.config.positive_rate == plain.config.positive_rate
    assert sym.new_parameters == frozenset()
    x = audio(4, 1)
    with torch.no_grad():
        want = (plain.model(x) + plain.model(-x)) / 2
        assert torch.allclose(sym.model(x), want, atol=1e-5)
        assert not torch.allclose(sym.model(x), plain.model(x), atol=1e-3)
    assert "polarity" in sym.model.state_dict() and "polarity" not in plain.model.state_dict()
    assert sym.weights_hash() != plain.weights_hash()  # a result file tells the two detectors apart


def test_symmetric_weights_load_back_widen_and_train(model_clicks, tmp_path):
    """A symmetric run's checkpoint loads with weights_only=True as a symmetric detector; it starts a plain
    model (polarity dropped) and a wider symmetric one (Net2Net widening keeps the outputs)."""
    common = dict(model="hooknet", dataset=str(model_clicks), max_steps=2, batch_size=4, device="cpu",
                  progress=False, seed=5, init=str(TINY))
    train(TrainOptions(out=str(tmp_path / "sym"), config="tiny-symmetric", lr=1e-3, **common), log=lambda s: None)
    ckpt = torch.load(tmp_path / "sym" / "model.pt", weights_only=True)
    assert ckpt["config"]["symmetric"] is True and "polarity" in ckpt["state_dict"]
    det = HookNetDetector.from_checkpoint(tmp_path / "sym" / "model.pt", device="cpu")
    x = audio(2, 2)
    with torch.no_grad():
        assert torch.allclose(det.model(x), det.model(-x), atol=1e-5)

    back = HookNetDetector(config="tiny", device="cpu")
    back.init_from(load_checkpoint(tmp_path / "sym" / "model.pt"))
    back.model.eval()
    with torch.no_grad():
        assert torch.allclose((back.model(x) + back.model(-x)) / 2, det.model(x), atol=1e-5)

    wide = HookNetDetector(config="tiny-symmetric", device="cpu")
    wide.config = replace(CONFIGURATIONS["tiny-symmetric"], fc=4)
    wide.model = HookNet(wide.config)
    wide.init_from(load_checkpoint(tmp_path / "sym" / "model.pt"))
    wide.model.eval()
    with torch.no_grad():
        assert torch.allclose(wide.model(x), det.model(x), atol=1e-4)
