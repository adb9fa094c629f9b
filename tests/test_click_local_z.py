"""benchmarks/bench_click_errors.local_z: how far a click's jump stands above the jumps around it.

Checked against what Gaussian noise gives by hand: in white noise of standard deviation s, a jump
n[k] - n[k-1] has standard deviation s*sqrt(2), so a one-sample click of offset a makes a jump of
about a / (s*sqrt(2)) in those units, and the robust scale (1.4826 x median |jump|) estimates s*sqrt(2).
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def local_z(bench_script):
    return bench_script("bench_click_errors").local_z


def noise(seed: int, sigma: float, n: int = 16384) -> np.ndarray:
    return (sigma * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_clear_click_in_white_noise_stands_at_its_expected_z_with_no_rivals(local_z, seed):
    sigma, a, p = 0.01, 0.2, 8000
    x = noise(seed, sigma)
    x[p] += a
    z, rivals = local_z(x, p, 1)
    expected = a / (sigma * np.sqrt(2))  # 14.1; the noise moves it by about one unit either way
    assert abs(z - expected) < 3.5
    assert rivals == 0


def test_a_click_buried_in_noise_has_rivals(local_z):
    """A 2-sigma offset: Gaussian noise makes jumps that large every few dozen samples."""
    sigma, p = 0.05, 8000
    x = noise(3, sigma)
    x[p : p + 2] += 2 * sigma
    z, rivals = local_z(x, p, 2)
    assert z < 4
    assert rivals > 10


def test_the_scale_follows_the_local_envelope(local_z):
    """The same click is far less prominent inside a loud burst than in the quiet music beside it."""
    x = noise(4, 0.002)
    burst = slice(8000 - 300, 8000 + 300)
    x[burst] += noise(5, 0.1, 600)
    quiet = x.copy()
    quiet[2000] += 0.3
    loud = x.copy()
    loud[8000] += 0.3
    z_quiet, _ = local_z(quiet, 2000, 1)
    z_loud, _ = local_z(loud, 8000, 1)
    assert z_quiet > 50
    assert z_loud < 5


def test_a_click_at_the_edge_of_the_segment(local_z):
    x = noise(6, 0.01)
    x[0] += 0.3
    z, rivals = local_z(x, 0, 1)
    assert z > 10
    assert rivals == 0
    x = noise(7, 0.01)
    x[-3:] += 0.3
    z, rivals = local_z(x, len(x) - 3, 3)
    assert z > 10
    assert rivals == 0
