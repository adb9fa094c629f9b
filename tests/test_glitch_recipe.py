"""The ``fma-mp3-glitch`` recipe and ``mp3-glitch`` pipeline (SPEC 1.3) on the built-in synth corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectbench import mp3
from defectbench.core import DefectbenchError, Item
from defectbench.dataset import iter_rows, read_manifest, row_hash, sample_row
from defectbench.engine import build
from defectbench.recipe import load_recipe
from defectbench.sources import list_source

SEG = 16384


def pipeline_with(**defect):
    recipe = load_recipe("fma-mp3-glitch")
    options = {**recipe.options, "defect": {**recipe.options["defect"], **defect}}
    cls = type(recipe.make_pipeline())
    return cls(cls.Config.model_validate(options), 44100, 1)


@pytest.fixture(scope="module")
def synth_pieces():
    items = list_source("synth").items[:2]
    return [(item, item.load()[0]) for item in items]


@pytest.fixture(scope="module")
def built(synth_pieces):
    """Samples of two synth pieces (50 segments each) with the recipe's own settings, seed 0."""
    pipe = pipeline_with()
    out = [(item, audio, list(pipe.process(item, audio, 44100, 0))) for item, audio in synth_pieces]
    return pipe, out


def reach(frame: int) -> tuple[int, int]:
    """SPEC 1.3, read independently: frame i damages decoded blocks i..i+3, shifted back by the delay."""
    return frame * 1152 - 1105, (frame + 4) * 1152 - 1105


def test_recipe_states_the_distance_and_threshold():
    recipe = load_recipe("fma-mp3-glitch")
    d = recipe.options["defect"]
    assert (recipe.pipeline, recipe.source.default, recipe.source.rate, recipe.source.channels) == ("mp3-glitch", "synth", 44100, 1)
    assert d["distance"] == "log-spectral" and d["threshold_db"] > 0 and d["probability"] == 0.05
    assert list(recipe.make_pipeline().features())[:2] == ["target", "label"]


@pytest.mark.parametrize("options,key", [
    ({"defect": {"kind": "click"}}, "options.defect"),
    ({"defect": {"kind": "mp3-glitch", "hop": 64}}, "options"),
    ({"defect": {"kind": "mp3-glitch", "threshold": 1.0}}, "options.defect"),
])
def test_bad_options_are_one_clear_error(tmp_path, options, key):
    text = ('name = "x"\ndescription = "x"\npaper = "x"\npipeline = "mp3-glitch"\n'
            '[source]\nrate = 44100\nchannels = 1\n[options.defect]\n'
            + "".join(f"{k} = {json.dumps(v)}\n" for k, v in options["defect"].items()))
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(DefectbenchError, match=f"key '{key}"):
        load_recipe(path)


@pytest.mark.parametrize("rate,channels", [(22050, 1), (44100, 2)])
def test_source_must_be_mono_mpeg1(tmp_path, rate, channels):
    path = tmp_path / "odd.toml"
    path.write_text('name = "x"\ndescription = "x"\npaper = "x"\npipeline = "mp3-glitch"\n'
                    f"[source]\nrate = {rate}\nchannels = {channels}\n")
    with pytest.raises(DefectbenchError, match="mono MPEG-1"):
        load_recipe(path).make_pipeline()


def test_segments_ids_and_metadata(built):
    _, pieces = built
    for item, audio, samples in pieces:
        span = audio[0][: 50 * SEG]
        data = mp3.encode(span, 44100)
        frames = mp3.read_frames(data)
        assert len(samples) == 50
        params = samples[0].params["defect"]
        runs = params["corruptions"]
        assert all(s.params["defect"] == params for s in samples)  # the piece's draws, on every row
        for run in runs:  # headers intact: runs start after the 4-byte header and stay in the frame
            f = frames[run["frame"]]
            assert 4 <= run["offset"] and run["offset"] + run["length"] <= f.length
            assert run["byte"] == f.offset + run["offset"] and 1 <= run["length"] <= f.length - 4
        for k, s in enumerate(samples):
            start = k * SEG
            assert s.id == f"{item.id}/{k:03d}"
            assert s.meta["segment_index"] == k and s.meta["start_sample"] == start
            assert s.meta["segments_in_piece"] == 50 and s.meta["item_id"] == item.id
            near = [r for r in runs if reach(r["frame"])[0] < start + SEG and reach(r["frame"])[1] > start]
            assert s.meta["mp3_frames"] == [r["frame"] for r in near]
            assert s.meta["mp3_byte_offsets"] == [frames[r["frame"]].offset + r["offset"] for r in near]
            assert s.meta["mp3_run_lengths"] == [r["length"] for r in near]
            assert s.meta["positive_fraction"] == pytest.approx(s.target.mean())
            assert s.label == int(s.target.any()) and s.target.shape == (128,) and s.target.dtype == np.uint8
            assert s.audio.dtype == np.float32 and len(s.audio) == SEG and np.abs(s.audio).max() <= 1.0


def test_positive_frames_lie_within_the_reach_of_a_corrupted_frame(built):
    pipe, pieces = built
    half = (256 - 128) // 2  # the analysis window reaches 64 samples beyond its 128-sample frame
    positives = 0
    for _, _, samples in pieces:
        runs = samples[0].params["defect"]["corruptions"]
        for s in samples:
            for f in np.nonzero(s.target)[0]:
                a = s.meta["start_sample"] + f * 128 - half
                b = a + 128 + 2 * half
                assert any(reach(r["frame"])[0] < b and reach(r["frame"])[1] > a for r in runs), (s.id, f)
                positives += 1
    assert positives > 0
    assert pipe.counters["positive_frames_outside_reach"] == 0


def test_positive_rate_on_synth_is_near_the_papers(built):
    pipe, pieces = built
    targets = np.concatenate([s.target for _, _, samples in pieces for s in samples])
    rate = targets.mean()
    print(f"\npositive rate on synth (2 pieces, P = 0.05): {100 * rate:.2f} % of target frames; "
          f"{pipe.counters['corrupted_frames']:g} of {pipe.counters['mp3_frames']:g} MP3 frames corrupted")
    assert 0.03 < rate < 0.15  # the paper: 8.04 % (train/validation), 8.19 % (test)
    assert pipe.counters["positive_frames"] == targets.sum()
    assert 0.03 < pipe.counters["corrupted_frames"] / pipe.counters["mp3_frames"] < 0.07


def test_no_corruption_gives_zero_targets_and_the_clean_decode(synth_pieces):
    item, audio = synth_pieces[0]
    short = audio[:, : 3 * SEG + 5000]  # 3 whole segments fit
    samples = list(pipeline_with(probability=0.0).process(item, short, 44100, 0))
    assert len(samples) == 3 and all(s.meta["segments_in_piece"] == 3 for s in samples)
    y, _, _ = mp3.decode(mp3.encode(short[0, : 3 * SEG], 44100))
    clean = np.clip(y[1105 : 1105 + 3 * SEG], -1, 1)
    for k, s in enumerate(samples):
        assert not s.target.any() and s.label == 0 and s.meta["mp3_frames"] == []
        np.testing.assert_array_equal(s.audio, clean[k * SEG : (k + 1) * SEG])


def test_params_replay_the_segment(built):
    pipe, pieces = built
    _, audio, samples = pieces[0]
    degraded, mask = pipe.defect.apply(audio[0, : 50 * SEG], 44100, samples[0].params["defect"])
    for k in (0, 17, 49):
        np.testing.assert_array_equal(degraded[k * SEG : (k + 1) * SEG], samples[k].audio)
        np.testing.assert_array_equal(mask[k * SEG : (k + 1) * SEG].reshape(128, 128).any(1), samples[k].target.astype(bool))


def hashes(item, audio, seed):
    return [row_hash(sample_row(s), s.audio) for s in pipeline_with().process(item, audio, 44100, seed)]


def test_deterministic_and_seeded(synth_pieces):
    item, audio = synth_pieces[1]
    short = audio[:, : 4 * SEG]
    a = hashes(item, short, 0)
    assert a == hashes(item, short, 0) and a != hashes(item, short, 1)
    other = Item("another-id", item.split, item.load, item.meta)
    runs = [next(iter(pipeline_with().process(it, short, 44100, 0))).params["defect"]["corruptions"]
            for it in (item, other)]
    assert runs[0] != runs[1]  # the piece generator depends on the item id, not only the seed


@pytest.mark.slow
def test_build_is_identical_for_one_and_two_workers(tmp_path):
    one = build("fma-mp3-glitch", "synth", tmp_path / "w1", limit=1, workers=1, progress=False)
    two = build("fma-mp3-glitch", "synth", tmp_path / "w2", limit=1, workers=2, progress=False)
    assert one.manifest["fingerprint"] == two.manifest["fingerprint"]
    m = read_manifest(tmp_path / "w1")
    assert m["recipe"]["options"]["defect"]["threshold_db"] == load_recipe("fma-mp3-glitch").options["defect"]["threshold_db"]
    assert m["recipe"]["options"]["defect"]["distance"] == "log-spectral"
    assert m["label_names"] == ["clean", "glitch"] and m["task"] == "framewise"
    c = m["counters"]
    assert c["pieces"] == 3 and c["decoder_stderr_lines"] > 0 and c["positive_frames_outside_reach"] == 0
    rows = list(iter_rows(tmp_path / "w1", "train"))
    assert len(rows) == 50
    assert sum(r["label"] for r in rows) == m["splits"]["train"]["labels"]["glitch"]
    assert all(r["positive_fraction"] == pytest.approx(r["target"].mean()) for r in rows)
