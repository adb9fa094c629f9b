"""Hook-Net's locally normalised jump input (``jump_z``, models/hooknet.py ``JumpZ``).

Checked against what white noise gives by hand: in white noise of standard deviation s a jump
n[k] - n[k-1] has standard deviation s*sqrt(2), so the local RMS of the jumps is about s*sqrt(2), a jump in
those units has unit variance, and a one-sample click of offset a stands at about a / (s*sqrt(2)).
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from defectbench.models.hooknet import CONFIGURATIONS, HookNet, HookNetDetector, JumpZ

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = Path(__file__).parent / "data" / "weights" / "hooknet-fma-clicks.pt"  # a trained "tiny" checkpoint


def jump_z() -> JumpZ:
    return HookNet(CONFIGURATIONS["tiny-symmetric-z"]).jump


def noise(seed: int, sigma: float, n: int = 16384) -> torch.Tensor:
    return torch.from_numpy(sigma * np.random.default_rng(seed).standard_normal((1, n))).float()


def test_window_sums_match_a_direct_sum_up_to_the_ends():
    v = torch.from_numpy(np.random.default_rng(0).uniform(0, 1, (2, 300)))
    got = JumpZ.window_sums(v, 64).numpy()
    want = np.array([[v[b, max(0, i - 64) : i + 65].sum().item() for i in range(300)] for b in range(2)])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_noise_jumps_have_unit_local_scale_and_a_click_stands_at_its_expected_z(seed):
    sigma, a, p = 0.01, 0.2, 8000
    x = noise(seed, sigma)
    z = torch.sinh(jump_z().z(x)[0]).double().numpy()  # undo the asinh: jumps in local RMS units
    assert abs(z[100:7000].std() - 1) < 0.05
    x[0, p] += a
    z = torch.sinh(jump_z().z(x)[0]).double().numpy()
    expected = a / (sigma * np.sqrt(2))  # 14.1; the click's own neighbourhood is left out of the scale
    assert abs(z[p] - expected) < 3.5 and abs(-z[p + 1] - expected) < 3.5  # its two edges, opposite signs
    assert np.abs(np.delete(z, [p, p + 1])).max() < 6


def test_quiet_audio_after_loud_keeps_its_own_scale():
    """The window sums are differences of a cumulative sum: in float32, the loud half's total would swamp
    the quiet half's local sums (catastrophic cancellation); in float64 the quiet half keeps unit scale."""
    x = torch.cat([noise(2, 0.5, 8192), noise(3, 1e-3, 8192)], 1)
    z = torch.sinh(jump_z().z(x)[0]).double().numpy()
    assert abs(z[9000:16000].std() - 1) < 0.05
    assert np.isfinite(jump_z().z(torch.zeros(1, 16384)).numpy()).all()  # digital silence: the floor, no division by 0


def test_it_is_odd_in_its_input_so_the_model_stays_polarity_invariant():
    x = noise(4, 0.1)
    j = jump_z()
    assert torch.allclose(j.z(-x), -j.z(x))
    model = HookNet(CONFIGURATIONS["tiny-symmetric-z"]).eval()
    torch.nn.init.normal_(model.jump.conv.weight, std=0.1)  # a trained input, not the zero start
    with torch.no_grad():
        assert torch.allclose(model(x), model(-x), atol=1e-5)


def test_weights_without_it_load_and_score_the_same_until_it_learns():
    """--init from a checkpoint without the input: the jump conv is the only new parameter and starts at
    zero, so the scores are the loaded weights'; once its weights move, they change."""
    plain = HookNetDetector.from_checkpoint(TINY, device="cpu")
    z = HookNetDetector(config="tiny-symmetric-z", device="cpu")
    z.load_init(TINY)
    z.model.eval()
    assert z.config.jump_z == 64 and z.config.positive_rate == plain.config.positive_rate
    assert z.new_parameters == {"jump.conv.weight", "jump.conv.bias"}
    x = noise(5, 0.1).repeat(3, 1)
    with torch.no_grad():
        want = (plain.model(x) + plain.model(-x)) / 2
        assert torch.allclose(z.model(x), want, atol=1e-5)
        torch.nn.init.normal_(z.model.jump.conv.weight, std=0.1)
        assert not torch.allclose(z.model(x), want, atol=1e-3)
