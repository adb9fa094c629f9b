"""The click rule of SPEC 1.1, checked against each sample's metadata and the clean source audio."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectbench.core import frames_from_mask, rng_for
from defectbench.dataset import iter_rows
from defectbench.defects import make
from defectbench.sources import list_source

SEG = 16384


def clean_segments() -> dict[str, np.ndarray]:
    """The synth pieces the fixture build used, decoded independently of the engine."""
    return {item.id: item.load()[0][0] for item in list_source("synth").items}


def test_click_rows_match_metadata_and_clean_audio(clicks_dataset):
    pieces = clean_segments()
    n_click = 0
    for split in ("train", "validation", "test"):
        for row in iter_rows(clicks_dataset, split):
            start = row["start_sample"]
            assert start == row["segment_index"] * SEG
            clean = pieces[row["item_id"]][start : start + SEG]
            audio = row["audio"]
            assert audio.dtype == np.float32 and audio.shape == (SEG,)
            assert np.all(np.abs(audio) <= 1.0)
            changed = np.flatnonzero(audio != clean)
            params = json.loads(row["params"])["defect"]
            if row["click_position"] is None:
                assert row["label"] == 0 and not row["target"].any() and changed.size == 0
                assert params == {"present": False}
                continue
            n_click += 1
            pos, length, amp = row["click_position"], row["click_length"], row["click_amplitude"]
            assert 1 <= length <= 3 and 0.3 <= amp < 1.0
            # Only the click samples changed, each by +-a (one amplitude per click).
            assert set(changed) <= set(range(pos, pos + length))
            diff = audio[pos : pos + length].astype(np.float64) - clean[pos : pos + length]
            np.testing.assert_allclose(np.abs(diff), amp, atol=1e-6)
            np.testing.assert_array_equal(np.sign(diff), row["click_signs"])
            # Target: exactly the 128-sample frames that hold a click sample.
            expected = np.zeros(128, np.uint8)
            expected[pos // 128 : (pos + length - 1) // 128 + 1] = 1
            np.testing.assert_array_equal(row["target"], expected)
            assert row["label"] == 1
    assert n_click > 0


def test_click_rate_near_probability():
    click = make({"kind": "click"})
    x = np.zeros(SEG, np.float32)
    n = 4000
    hits = sum(click.sample(rng_for(7, "rate", k), x, 44100)["present"] for k in range(n))
    # Binomial(4000, 0.1): sd = 19; 5 sd either side.
    assert abs(hits - 0.1 * n) < 5 * np.sqrt(n * 0.1 * 0.9)


def test_sign_inverted_where_sum_would_leave_range():
    click = make({"kind": "click", "probability": 1.0, "min_length": 3, "max_length": 3})
    x = np.full(SEG, 0.95, np.float32)
    x[::2] = -0.95
    for k in range(50):
        params = click.sample(rng_for(3, "sign", k), x, 44100)
        y, mask = click.apply(x, 44100, params)
        assert np.all(np.abs(y) <= 1.0)
        p = params["position"]
        # Near full scale every sample's sign must point back toward zero.
        assert all(np.sign(s) == -np.sign(x[p + i]) for i, s in enumerate(params["signs"]))
        assert mask.sum() == 3 and frames_from_mask(mask, 128).sum() in (1, 2)


def test_apply_replays_sample_exactly():
    click = make({"kind": "click", "probability": 1.0})
    x = np.random.default_rng(0).uniform(-0.5, 0.5, SEG).astype(np.float32)
    params = click.sample(rng_for(0, "replay", 1), x, 44100)
    a, _ = click.apply(x, 44100, params)
    b, _ = click.apply(x, 44100, json.loads(json.dumps(params)))
    assert a.tobytes() == b.tobytes()


def test_busy_fraction_zero_draws_what_the_recipe_draws():
    """The training-only option, left at 0, takes no random number: every build keeps its bytes."""
    x = np.random.default_rng(1).uniform(-0.5, 0.5, SEG).astype(np.float32)
    plain, zero = make({"kind": "click", "probability": 0.5}), make({"kind": "click", "probability": 0.5, "busy_fraction": 0.0})
    for k in range(200):
        assert plain.sample(rng_for(5, "busy", k), x, 44100) == zero.sample(rng_for(5, "busy", k), x, 44100)


def test_busy_clicks_go_where_the_music_jumps():
    """A quiet sine with one burst of noise: busy placement puts clicks in the burst by its weight."""
    rng = np.random.default_rng(2)
    n = np.arange(SEG)
    x = (0.05 * np.sin(2 * np.pi * 220 * n / 44100)).astype(np.float32)  # jumps of at most 0.0016
    burst = slice(8000, 9000)  # 6 % of the segment
    x[burst] += 0.2 * rng.standard_normal(1000).astype(np.float32)  # mean jump about 0.23
    # The weight the burst holds, computed here from the docstring's rule (mean |jump| over 64 samples).
    jumps = np.abs(np.diff(x.astype(np.float64), prepend=x[0]))
    local = np.convolve(jumps, np.ones(64) / 64, mode="same")[: SEG - 2]
    inside = local[7990:9000].sum() / local.sum()
    assert inside > 0.9
    k_total = 1000
    for fraction, expected in ((1.0, inside), (0.5, 0.5 * inside + 0.5 * 1010 / (SEG - 2))):
        click = make({"kind": "click", "probability": 1.0, "min_length": 3, "max_length": 3, "busy_fraction": fraction})
        pos = np.array([click.sample(rng_for(9, "busy", k), x, 44100)["position"] for k in range(k_total)])
        hits = np.mean((pos >= 7990) & (pos < 9000))
        assert abs(hits - expected) < 5 * np.sqrt(expected * (1 - expected) / k_total)
    # Silence has no jumps: placement falls back to uniform instead of failing.
    click = make({"kind": "click", "probability": 1.0, "busy_fraction": 1.0})
    pos = [click.sample(rng_for(9, "silent", k), np.zeros(SEG, np.float32), 44100)["position"] for k in range(200)]
    assert min(pos) < SEG // 4 and max(pos) > 3 * SEG // 4


@pytest.mark.parametrize("bad", [{"kind": "click", "probability": 1.5}, {"kind": "click", "min_amplitude": 0.9, "max_amplitude": 0.5},
                                 {"kind": "click", "lenght": 2}, {"kind": "click", "busy_fraction": 1.5}])
def test_bad_click_config_rejected(bad):
    with pytest.raises(ValueError):
        make(bad)
