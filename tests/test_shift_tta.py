"""benchmarks/bench_shift_tta: a view shifted by k frames is mapped back onto the segment's own frames.

Checked with a function that is exactly equivariant to whole-frame shifts (each frame's sum of |x|): mapped
back, every view must equal the unshifted one wherever it has a score, and have none (NaN) exactly on the
frames its padding replaced. A sample lost or moved by the shift, or an off-by-one in the mapping,
changes a frame's sum and fails.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def tta(bench_script):
    return bench_script("bench_shift_tta")


def frame_sums(x: torch.Tensor, hop: int = 128) -> np.ndarray:
    return x.abs().reshape(len(x), -1, hop).sum(-1).numpy()


def test_shifted_views_map_back_onto_the_segments_own_frames(tta):
    rng = np.random.default_rng(0)
    x = torch.from_numpy((0.01 * rng.standard_normal((3, 16384))).astype(np.float32))
    clicks = [(0, 5), (1, 1000), (2, 16383)]  # a click per segment, in frames 0, 7 and 127
    for b, p in clicks:
        x[b, p] += 0.5
    shifts = [0, 2, -2, 5, -5]
    views = tta.shifted_views(frame_sums, x, shifts)
    assert views.shape == (3, 5, 128)
    own = frame_sums(x)
    for j, k in enumerate(shifts):
        missing = np.isnan(views[:, j])
        expect_missing = np.zeros(128, bool)
        if k > 0:
            expect_missing[128 - k:] = True
        elif k < 0:
            expect_missing[:-k] = True
        assert (missing == expect_missing[None]).all(), k
        np.testing.assert_array_equal(views[:, j][~missing], own[~missing])
    for b, p in clicks:  # the click's frame is where every view that covers it puts the largest sum
        f = p // 128
        assert np.nanargmax(np.nanmean(views[b], 0)) == f


def test_best_f1_counts_false_alarms_and_misses(tta):
    targets = np.array([1, 1, 0, 0, 1, 0], bool)
    scores = np.array([0.9, 0.8, 0.85, 0.1, 0.2, 0.3])
    # by hand, threshold by threshold (score >= t): 0.9 -> F1 2*1/(1+3) = 0.5; 0.85 -> 2/5; 0.8 -> 4/6;
    # 0.3 -> 4/7; 0.2 -> 6/8 = 0.75 (5 flagged: 3 hits, 2 false alarms, no miss); 0.1 -> 6/9
    f1, fa, miss = tta.best_f1(targets, scores)
    assert f1 == pytest.approx(75.0)
    assert (fa, miss) == (2, 0)
