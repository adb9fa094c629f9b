"""Widening trained Hook-Net weights (models/hooknet_widen.py): the wide network computes what the narrow
one did, in training and evaluation mode, and its channel copies part from the first gradient step."""

from dataclasses import replace

import pytest
import torch

from defectbench.core import DefectbenchError
from defectbench.models.hooknet import CONFIGURATIONS, HookNet, HookNetConfig, HookNetDetector
from defectbench.models.hooknet_widen import widen_factor, widen_state_dict
from defectbench.neural import load_checkpoint
from defectbench.weights import available

NARROW = HookNetConfig(fc=2, depth=9)


def trained_like(cfg: HookNetConfig, seed: int) -> HookNet:
    """A randomly initialised model whose batch-norm statistics and affine parameters are not the defaults,
    so that a widening which forgot to copy them would show."""
    torch.manual_seed(seed)
    model = HookNet(cfg)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_wide_model_computes_the_narrow_one(k, mode):
    narrow = trained_like(NARROW, 1)
    wide_cfg = replace(NARROW, fc=NARROW.fc * k)
    wide = HookNet(wide_cfg)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), NARROW, wide_cfg))
    assert sum(p.numel() for p in wide.parameters()) > 2 * sum(p.numel() for p in narrow.parameters())
    x = torch.randn(4, 16384) * 0.3
    getattr(narrow, mode)(), getattr(wide, mode)()
    with torch.no_grad():
        a, b = narrow(x), wide(x)
    assert torch.allclose(a, b, atol=1e-4 * a.abs().max().item()), (a - b).abs().max()


def test_copies_get_different_gradients():
    """Copies share their incoming weights at the start; the random shares of their outgoing weights
    make one step of training move them apart (exact halves would keep them equal forever)."""
    narrow = trained_like(NARROW, 2)
    wide_cfg = replace(NARROW, fc=4)
    wide = HookNet(wide_cfg)
    wide.load_state_dict(widen_state_dict(narrow.state_dict(), NARROW, wide_cfg))
    wide.train()
    wide(torch.randn(4, 16384)).pow(2).mean().backward()
    g = wide.down[3].conv2.weight.grad  # 8 old channels -> 16: channel j copies j % 8
    assert torch.equal(wide.down[3].conv2.weight[0], wide.down[3].conv2.weight[8])
    assert not torch.allclose(g[0], g[8])


def test_widening_is_deterministic_and_refuses_what_is_not_a_widening():
    sd = trained_like(NARROW, 3).state_dict()
    a = widen_state_dict(sd, NARROW, replace(NARROW, fc=4))
    b = widen_state_dict(sd, NARROW, replace(NARROW, fc=4))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert widen_factor(NARROW, replace(NARROW, fc=5)) is None  # not a multiple
    assert widen_factor(NARROW, replace(NARROW, fc=4, kernel_down=9)) is None  # another architecture
    assert widen_factor(NARROW, NARROW) is None
    with pytest.raises(DefectbenchError, match="not a widening"):
        widen_state_dict(sd, NARROW, replace(NARROW, fc=3))


def test_init_of_small_from_the_shipped_cpu_weights_keeps_their_scores():
    """`defectbench train --config small --init <shipped cpu weights>` starts from the shipped detector
    (``small-symmetric`` from ``cpu-symmetric`` weights)."""
    narrow = {"cpu": "small", "cpu-symmetric": "small-symmetric"}
    cpu = [(s.path, narrow[name]) for s in available() if s.model == "hooknet"
           and (name := load_checkpoint(s.path)["config_name"]) in narrow]
    assert cpu, "no shipped Hook-Net of configuration cpu or cpu-symmetric to widen"
    path, config = next((c for c in cpu if "fma-clicks." in c[0].name), cpu[0])
    shipped = HookNetDetector(checkpoint=path, device="cpu")
    wide = HookNetDetector(config=config, device="cpu")
    wide.load_init(path)
    assert wide.initialised and wide.config.fc == CONFIGURATIONS[config].fc
    assert wide.config.symmetric == shipped.config.symmetric
    assert wide.config.positive_rate == shipped.config.positive_rate
    t = torch.arange(16384) / 44100
    x = 0.2 * torch.sin(2 * torch.pi * torch.tensor([[220.0], [330.0], [440.0]]) * t) + 0.01 * torch.randn(3, 16384)
    x[:, 5000] += 0.6  # a click on a quiet tone
    with torch.no_grad():
        a, b = torch.sigmoid(shipped.model(x)), torch.sigmoid(wide.model(x))
    assert (a - b).abs().max() < 1e-4
    assert a[:, 5000 // 128].min() > 0.5  # the shipped detector sees the click, and so does its widening
