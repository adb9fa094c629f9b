"""Hook-Net (SPEC 3): shapes, the reference parameter count, the architecture's reading, the loss."""

import math

import numpy as np
import pytest
import torch

from defectbench.core import DefectbenchError
from defectbench.models.hooknet import CONFIGURATIONS, PAPER_PARAMETERS, HookNet, HookNetConfig, HookNetDetector, parameter_count
from defectbench.neural import weighted_bce_loss, weighted_rms_loss


def count_by_hand(cfg: HookNetConfig) -> int:
    """Trainable parameters from SPEC 3's description, term by term (independent of the nn.Module code)."""
    c = [cfg.fc * (i + 1) for i in range(cfg.depth)]
    kd, ku, n = cfg.kernel_down, cfg.kernel_up, 0
    for i in range(cfg.depth):
        cin = 1 if i == 0 else c[i - 1]
        n += cin * c[i] * kd + c[i] + 2 * c[i]  # conv1 + bias, BN1 (weight, bias)
        n += c[i] * c[i] * kd + c[i] + 2 * c[i]  # conv2 + bias, BN2
        n += cin * c[i] + c[i]  # residual 1x1 conv (channels always change here)
    if cfg.bottleneck:
        n += c[-1] * c[-1] * ku + c[-1] + 2 * c[-1]
    cin = c[-1]
    for j in range(cfg.depth):
        co = c[cfg.depth - 1 - j]
        n += cin * co * ku + co  # transposed conv
        n += (co + co) * co * ku + co + 2 * co  # conv over [upsampled, skip] + BN
        cin = co
    return n + c[0] + 1  # 1x1 output conv


@pytest.mark.parametrize("name", ["tiny", "small"])
def test_output_shape_16384_to_128(name):
    model = HookNet(CONFIGURATIONS[name]).eval()
    with torch.no_grad():
        y = model(torch.randn(3, 16384))
    assert y.shape == (3, 128)
    assert torch.isfinite(y).all()


def test_reference_count_within_3_percent_of_paper():
    cfg = CONFIGURATIONS["reference"]
    assert (cfg.depth, cfg.kernel_down, cfg.kernel_up) == (13, 15, 5)
    n = parameter_count(HookNet(cfg))
    assert abs(n - PAPER_PARAMETERS) / PAPER_PARAMETERS <= 0.03
    assert n == count_by_hand(cfg)


@pytest.mark.parametrize("name", ["plain", "small", "tiny"])
def test_counts_match_the_spec_reading(name):
    assert parameter_count(HookNet(CONFIGURATIONS[name])) == count_by_hand(CONFIGURATIONS[name])


def test_plain_fc27_is_the_spec_s_26_7_million():
    # SPEC 3: "Fc = 27 gives about 26.7 M (2.2 % short)"
    n = count_by_hand(CONFIGURATIONS["plain"])
    assert 26.6e6 < n < 26.8e6
    assert 0.015 < (PAPER_PARAMETERS - n) / PAPER_PARAMETERS < 0.025


def test_expanding_path_doubles_six_times_every_second_block():
    strides = CONFIGURATIONS["reference"].up_strides()
    assert len(strides) == 13 and strides.count(2) == 6
    assert all(s == (2 if j % 2 else 1) for j, s in enumerate(strides))
    assert 16384 // 2**13 * 2 ** strides.count(2) == 128


def test_output_is_framewise_local():
    """A change confined to frame 100's input region moves that frame's output more than distant frames'."""
    torch.manual_seed(0)
    model = HookNet(CONFIGURATIONS["tiny"]).eval()
    x = 0.05 * torch.randn(1, 16384)
    x2 = x.clone()
    x2[0, 100 * 128 + 60 : 100 * 128 + 62] += 0.9
    with torch.no_grad():
        d = (model(x2) - model(x)).abs()[0]
    assert d[99:102].max() > d[:60].max()


def test_output_bias_is_logit_of_positive_rate():
    cfg = HookNetConfig(fc=2, depth=9, positive_rate=0.00078)
    model = HookNet(cfg)
    assert model.out.bias.item() == pytest.approx(math.log(0.00078 / (1 - 0.00078)), rel=1e-6)


def test_weighted_rms_loss_by_hand():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0]])  # sigmoid = 0.5 everywhere
    target = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    # errors^2 = 0.25 each; weights (3, 1, 1, 1): sqrt((3*.25 + 3*.25) / 6) = 0.5
    assert weighted_rms_loss(logits, target, 3.0).item() == pytest.approx(0.5)
    logits = torch.tensor([[10.0, -10.0]])  # ~1, ~0
    target = torch.tensor([[0.0, 0.0]])
    err = torch.sigmoid(torch.tensor(10.0)).item()
    assert weighted_rms_loss(logits, target, 5.0).item() == pytest.approx(math.sqrt(err**2 / 2), rel=1e-5)
    # a missed positive costs more with a larger positive weight
    miss = torch.tensor([[-10.0, -10.0]]), torch.tensor([[1.0, 0.0]])
    assert weighted_rms_loss(*miss, 10.0) > weighted_rms_loss(*miss, 1.0)


def test_weighted_bce_loss_by_hand():
    # logit 0: -log(0.5) = log 2 for either target, whatever the weights
    assert weighted_bce_loss(torch.zeros(1, 4), torch.tensor([[1.0, 0.0, 0.0, 0.0]]), 3.0).item() == pytest.approx(math.log(2))
    # a positive scored at logit 2 costs -log(sigmoid(2)) = log(1 + e^-2), weight 4; a negative at logit 2
    # costs log(1 + e^2), weight 1: (4 log(1 + e^-2) + log(1 + e^2)) / 5
    want = (4 * math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2))) / 5
    assert weighted_bce_loss(torch.tensor([[2.0, 2.0]]), torch.tensor([[1.0, 0.0]]), 4.0).item() == pytest.approx(want, rel=1e-6)
    # confidently wrong: the RMS loss's gradient all but vanishes, cross-entropy's does not
    logits = torch.tensor([[-12.0, -12.0]], requires_grad=True)
    target = torch.tensor([[1.0, 0.0]])
    rms_grad = torch.autograd.grad(weighted_rms_loss(logits, target, 1.0), logits)[0][0, 0].item()
    bce_grad = torch.autograd.grad(weighted_bce_loss(logits, target, 1.0), logits)[0][0, 0].item()
    assert abs(rms_grad) < 1e-4 and bce_grad == pytest.approx(-0.5, rel=1e-4)  # (p - y) / 2 frames


def test_bad_config_and_bad_rows_fail_clearly():
    with pytest.raises(ValueError):
        HookNetConfig(depth=13, input_length=16000)
    det = HookNetDetector(config="tiny", device="cpu")
    with pytest.raises(DefectbenchError, match="16384"):
        det.predict([{"id": "x", "audio": np.zeros(16000, np.float32)}])
    with pytest.raises(DefectbenchError, match="configuration"):
        HookNetDetector(config="huge", device="cpu")


def test_detector_predicts_sigmoid_scores():
    det = HookNetDetector(config="tiny", device="cpu", batch_size=2)
    rows = [{"id": str(i), "audio": np.zeros(16384, np.float32)} for i in range(3)]
    rows.append({"id": "int16", "audio": np.zeros(16384, np.int16)})
    p = det.predict(rows)
    assert p.shape == (4, 128) and p.dtype == np.float32
    assert (p > 0).all() and (p < 1).all()
    assert det.runtime()["samples"] == 4 and det.runtime()["device"] == "cpu"
