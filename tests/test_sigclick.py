"""SigClick on signals made here: a quiet sine with one large click, whose frame we know (SPEC 3)."""

import numpy as np
import pytest

from defectbench.baselines.sigclick import SigClick, detect_segment
from defectbench.core import DefectbenchError

RATE = 44100
N = 16384


def sine(amplitude=0.1, freq=440.0):
    t = np.arange(N) / RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def clicked(position, size=0.8):
    x = sine()
    x[position] += size
    return x


def row(audio, rate=RATE):
    return {"id": "x", "audio": audio, "rate": rate, "target": np.zeros(128, np.uint8), "label": 0}


@pytest.mark.parametrize("position", [2000, 64 * 128 + 64, 117 * 128 + 24])
def test_single_click_maps_to_its_frame(position):
    # positions fall in the 1st, 4th and 7th 4096-sample sub-segment: a wrong clock (index within the
    # sub-segment, or seconds read as indexes) would land in another frame or nowhere
    out = detect_segment(clicked(position), RATE, threshold=35)
    assert out.shape == (128,)
    assert np.flatnonzero(out).tolist() == [position // 128]


def test_quiet_sine_has_no_detection():
    assert detect_segment(sine(), RATE, threshold=30).sum() == 0


def test_clock_restarts_every_segment():
    # the same clicked segment twice in one batch: a detector that kept its clock would put the
    # second segment's click 7 * 2048 samples later (outside the segment)
    det = SigClick(threshold=35)
    out = det.predict([row(clicked(5000)), row(clicked(5000)), row(sine())])
    assert np.flatnonzero(out[0]).tolist() == [5000 // 128]
    assert np.array_equal(out[0], out[1])
    assert out[2].sum() == 0


def test_edges_are_never_searched():
    # Essentia searches only the central hop of each 4096 frame: the first 1024 samples are not seen
    assert detect_segment(clicked(300), RATE, threshold=30).sum() == 0


def test_int16_audio_and_grid():
    pcm = np.round(clicked(9000, size=0.5) * 32767).astype(np.int16)
    det = SigClick()
    grid = det.predict_grid([row(pcm)])
    assert grid.shape == (5, 1, 128)
    assert grid[:, 0, 9000 // 128].tolist() == [1.0] * 5  # a large click passes every threshold
    assert det.threshold == 35.0
    assert np.array_equal(det.predict([row(pcm)]), grid[2])  # 35 dB is the third grid value


def test_higher_threshold_detects_less():
    rng = np.random.default_rng(0)
    x = sine() + (0.001 * rng.standard_normal(N)).astype(np.float32)
    for p, size in ((3000, 0.03), (7000, 0.05), (11000, 0.4)):  # small, medium, large click
        x[p] += size
    grid = SigClick().predict_grid([row(x)])[:, 0]
    counts = grid.sum(axis=1)
    assert counts[-1] > 0 and counts[-1] < counts[0]  # 50 dB keeps the large click, drops the small
    assert all(a >= b for a, b in zip(counts, counts[1:]))


def test_workers_give_the_same_result():
    batch = [row(clicked(p)) for p in (2000, 5000, 9000, 12000)]
    serial = SigClick().predict(batch)
    det = SigClick()
    det.workers = 2
    try:
        assert np.array_equal(det.predict(batch), serial)
    finally:
        det.close()


def test_short_segment_is_a_clear_error():
    with pytest.raises(DefectbenchError, match="4096"):
        detect_segment(np.zeros(2048, np.float32), RATE, 35)


@pytest.mark.parametrize("position", [300, 900, N - 700, N - 200])
def test_clicks_in_the_blind_edges_are_found_only_with_edges_true(position):
    # the paper's framing never searches the first and last 1024 samples (a recall ceiling of 87.5 %)
    x = clicked(position)
    assert detect_segment(x, RATE, threshold=35).sum() == 0
    out = detect_segment(x, RATE, threshold=35, edges=True)
    assert np.flatnonzero(out).tolist() == [position // 128]


def test_edges_true_adds_no_detection_to_a_clean_signal_and_keeps_the_middle():
    assert detect_segment(sine(), RATE, threshold=30, edges=True).sum() == 0
    out = detect_segment(clicked(64 * 128 + 64), RATE, threshold=35, edges=True)
    assert np.flatnonzero(out).tolist() == [64]
    det = SigClick(edges="true")
    assert det.edges is True and det.options["edges"] is True
    with pytest.raises(DefectbenchError, match="edges='maybe'"):
        SigClick(edges="maybe")
