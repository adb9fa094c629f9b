"""Algorithm 1 and the five video defects (video paper, section 4; SPEC 1.4), checked against the spec."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import signal, stats

from defectbench.defects import make
from defectbench.defects.click_reductive import allowed_positions
from defectbench.intervals import IntervalConfig, simulate_intervals
from video_media import loud_signal

RATE = 48000


def audio(seconds=4.0, seed=0):
    return loud_signal(seconds, RATE, 2, seed)


# -- Algorithm 1 -----------------------------------------------------------------------------------
def test_intervals_tile_the_audio_and_alternate():
    for seed in range(20):
        ivs = simulate_intervals(np.random.default_rng(seed), 100 * RATE + 17, RATE)
        assert ivs[0].start == 0 and ivs[-1].end == 100 * RATE + 17  # min(...), not max(...)
        assert all(a.end == b.start for a, b in zip(ivs, ivs[1:]))
        assert all(a.defective != b.defective for a, b in zip(ivs, ivs[1:]))
        # every interval but the last (cut at the end of the audio) has its drawn length
        assert all(iv.end - iv.start == round(iv.seconds * RATE) for iv in ivs[:-1])
    firsts = {simulate_intervals(np.random.default_rng(s), RATE * 60, RATE)[0].defective for s in range(20)}
    assert firsts == {True, False}  # the first state is random


def test_interval_lengths_follow_half_second_plus_gamma_1_10():
    rng = np.random.default_rng(1)
    ivs = simulate_intervals(rng, 20000 * RATE, RATE)
    seconds = np.array([iv.seconds for iv in ivs[:-1]])
    assert len(seconds) > 1000
    assert seconds.min() >= 0.5
    # the law 0.5 + Gamma(shape=1, scale=10) = 0.5 + Exponential(mean 10)
    assert stats.kstest(seconds - 0.5, stats.gamma(a=1, scale=10).cdf).pvalue > 0.01
    # and not another scale (the test can fail)
    assert stats.kstest(seconds - 0.5, stats.gamma(a=1, scale=8).cdf).pvalue < 0.01
    # a configured law is honoured too
    cfg = IntervalConfig(min_seconds=1.0, gamma_shape=2.0, gamma_scale=3.0)
    s2 = np.array([iv.seconds for iv in simulate_intervals(rng, 5000 * RATE, RATE, cfg)[:-1]])
    assert stats.kstest(s2 - 1.0, stats.gamma(a=2, scale=3).cdf).pvalue > 0.01


# -- hum -------------------------------------------------------------------------------------------
def test_hum_frequency_and_amplitude_inside_their_integer_ranges():
    hum = make({"kind": "hum"})
    x = audio()
    peak = int(np.abs(x.astype(np.int32)).max())
    freqs, amps = [], []
    for seed in range(300):
        p = hum.sample(np.random.default_rng(seed), x, RATE)
        assert p["applicable"] and p["max_abs"] == peak
        assert isinstance(p["frequency"], int) and isinstance(p["amplitude"], int)
        freqs.append(p["frequency"])
        amps.append(p["amplitude"])
    assert 20 < min(freqs) and max(freqs) < 1220
    assert 60 < min(amps) and max(amps) < 32768 - peak
    # uniform over the range: both ends of it are reached within 15 %
    assert min(freqs) < 20 + 0.15 * 1200 and max(freqs) > 1220 - 0.15 * 1200


def test_hum_adds_the_sine_it_records():
    hum = make({"kind": "hum"})
    x = np.zeros((2, RATE), dtype=np.int16)
    p = {"applicable": True, "frequency": 50, "amplitude": 10000, "max_abs": 0}
    y, mask = hum.apply(x, RATE, p)
    expected = np.round(10000 * np.sin(2 * np.pi * 50 * np.arange(RATE) / RATE))
    assert np.array_equal(y[0], expected) and np.array_equal(y[1], expected)
    assert np.array_equal(mask, y != 0)
    spectrum = np.abs(np.fft.rfft(y[0]))
    assert np.argmax(spectrum) == 50  # 1 s of audio: bin k is k Hz
    # the phase continues across intervals: the second half applied with an offset joins the first
    y2, _ = hum.apply(x[:, RATE // 2 :], RATE, {**p, "offset": RATE // 2})
    assert np.array_equal(y2, y[:, RATE // 2 :])


def test_hum_and_hiss_not_applicable_where_the_amplitude_range_is_empty():
    loud = audio()
    loud[0, 10] = 32707  # 32768 - 32707 = 61: no integer strictly inside (60, 61)
    for kind in ("hum", "hiss"):
        d = make({"kind": kind})
        p = d.sample(np.random.default_rng(0), loud, RATE)
        assert p["applicable"] is False and "amplitude" not in p
        y, mask = d.apply(loud, RATE, p)
        assert np.array_equal(y, loud) and not mask.any()
    loud[0, 10] = 32706  # (60, 62) holds 61 only
    assert make({"kind": "hum"}).sample(np.random.default_rng(0), loud, RATE)["amplitude"] == 61


# -- hiss ------------------------------------------------------------------------------------------
def test_hiss_noise_is_uniform_in_plus_minus_a():
    hiss = make({"kind": "hiss"})
    x = np.zeros((2, 4 * RATE), dtype=np.int16)
    p = hiss.sample(np.random.default_rng(3), x, RATE)
    assert 60 < p["amplitude"] < 32768
    p["amplitude"] = 1000
    y, mask = hiss.apply(x, RATE, p)
    assert y.min() == -1000 and y.max() == 1000
    assert not np.array_equal(y[0], y[1])  # independent per channel
    assert stats.kstest((y[0].astype(float) + 1000.5) / 2001, "uniform").pvalue > 0.001
    assert np.array_equal(mask, y != 0)
    assert np.array_equal(hiss.apply(x, RATE, p)[0], y)  # replayable from params


# -- distortion ------------------------------------------------------------------------------------
def test_distortion_really_clips_at_r_times_max_abs():
    dist = make({"kind": "distortion"})
    x = audio()
    ratios = set()
    for seed in range(40):
        p = dist.sample(np.random.default_rng(seed), x, RATE)
        ratios.add(p["ratio"])
        y, mask = dist.apply(x, RATE, p)
        for ch in range(2):
            m = int(np.abs(x[ch].astype(np.int32)).max())
            v = p["ratio"] * m
            assert np.abs(y[ch].astype(np.int32)).max() <= v  # never above r * max|x|
            assert np.abs(y[ch].astype(np.int32)).max() > v - 1  # and clipped right at it
            above = np.abs(x[ch].astype(np.int32)) > v
            assert np.array_equal(mask[ch], above)
            assert np.array_equal(y[ch][~above], x[ch][~above])
            assert np.array_equal(np.abs(y[ch][above].astype(np.int32)), np.full(above.sum(), math.floor(v)))
    assert ratios == {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7}


# -- additive click --------------------------------------------------------------------------------
def test_additive_click_is_a_butterworth_filtered_impulse_and_saturates():
    click = make({"kind": "click_additive"})
    x = np.zeros((2, RATE), dtype=np.int16)
    p = click.sample(np.random.default_rng(0), x, RATE)
    assert 0.05 < p["cutoff"] < 0.45
    p = {"cutoff": 0.2, "positions": [1000]}
    y, mask = click.apply(x, RATE, p)
    # independent reading: 3rd-order Butterworth, cut-off 0.2 of the sampling rate = 0.4 of Nyquist
    b, a = signal.butter(3, 0.4)
    h = signal.lfilter(b, a, np.r_[32768.0, np.zeros(199)])
    assert np.array_equal(y[0, 1000:1200], np.clip(np.round(h), -32768, 32767))
    assert not y[:, :1000].any() and np.array_equal(y[0], y[1])
    assert np.array_equal(mask, y != 0)
    # on loud audio the sum saturates to int16 instead of wrapping
    loud = np.full((2, 2000), 30000, dtype=np.int16)
    z, _ = click.apply(loud, RATE, p)
    assert z.max() == 32767 and z.min() >= 0


def test_additive_click_rate_per_second():
    click = make({"kind": "click_additive", "rate_per_s": 2.0})
    x = np.zeros((2, 100 * RATE), dtype=np.int16)
    counts = [len(click.sample(np.random.default_rng(s), x, RATE)["positions"]) for s in range(20)]
    assert 180 < np.mean(counts) < 220


# -- reductive click -------------------------------------------------------------------------------
def test_reductive_click_leaves_a_big_jump_after_removing_a_zero_crossing():
    red = make({"kind": "click_reductive", "rate_per_s": 3.0})
    x = audio(seconds=3.0, seed=5)
    p = red.sample(np.random.default_rng(7), x, RATE)
    assert len(p["removed"]) >= 3
    y, mask = red.apply(x, RATE, p)
    assert y.shape[1] == x.shape[1] - sum(length for _, length in p["removed"])
    shift = 0
    for (pos, length), jumps in zip(p["removed"], p["jumps"]):
        assert 48 <= length <= 960
        j = pos - shift  # output index of the first sample after the junction
        for ch in range(2):
            gone = x[ch, pos : pos + length].astype(np.int32)
            assert gone.min() < 0 < gone.max()  # the removed segment crosses zero
            jump = abs(int(y[ch, j]) - int(y[ch, j - 1]))
            assert jump >= 3277 and jump == jumps[ch]
            assert y[ch, j] == x[ch, pos + length] and y[ch, j - 1] == x[ch, pos - 1]
        assert mask[:, j].all()
        shift += length
    assert mask.sum() == 2 * len(p["removed"])


def test_reductive_click_not_placed_where_no_position_qualifies():
    red = make({"kind": "click_reductive", "rate_per_s": 5.0})
    quiet = (audio(seed=2) // 10).astype(np.int16)  # |steps| far below 3277
    assert not allowed_positions(quiet, 100, 3277).any()
    p = red.sample(np.random.default_rng(0), quiet, RATE)
    assert p["removed"] == [] and p["not_placed"] > 0
    y, mask = red.apply(quiet, RATE, p)
    assert np.array_equal(y, quiet) and not mask.any()


def test_bad_defect_ranges_are_rejected():
    with pytest.raises(ValueError):
        make({"kind": "click_additive", "cutoff": [0.3, 0.6]})
    with pytest.raises(Exception):
        make({"kind": "hum", "frequncy": [1, 2]})  # a typo is an error, not ignored
