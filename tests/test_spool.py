"""Long base audio on disk instead of in memory: :mod:`defectbench.spool` and the engine's streamed video items."""

from __future__ import annotations

import numpy as np
import pytest

from defectbench.core import Item
from defectbench.dataset import iter_rows, row_hash, sample_row
from defectbench.defects.hum import peak_abs
from defectbench.engine import build, silent, streams
from defectbench.pipelines.video_chunks import VideoChunks, VideoChunksConfig
from defectbench.recipe import load_recipe
from defectbench.sources import list_source
from defectbench.sources.video import decode_audio
from defectbench.spool import SpooledAudio
from video_media import loud_signal, make_video

RATE = 48000


def test_slices_and_peaks_are_those_of_the_array(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(-20000, 20000, size=(2, 100_003), dtype=np.int16)
    x[1, 777] = -32768  # |-32768| is 32768, not an int16 overflow
    with SpooledAudio.from_array(x, tmp_path, block=4096) as sp:
        assert sp.shape == x.shape and sp.size == x.size
        for a, b in [(0, 10), (4090, 4200), (99_990, 100_003), (99_990, 200_000), (5, 5), (0, None)]:
            np.testing.assert_array_equal(sp[:, a:b], x[:, a:b])
            np.testing.assert_array_equal(sp[1, a:b], x[1, a:b])
        assert sp[:, 50:60].flags.writeable  # a copy, not a view of a buffer
        assert peak_abs(sp) == 32768 == peak_abs(x)
        assert [peak_abs(ch) for ch in sp] == [peak_abs(ch) for ch in x]
        assert list(tmp_path.iterdir()) == []  # the spool file has no name in the folder
        with pytest.raises(TypeError):
            sp[:, ::2]
        with pytest.raises(TypeError):
            sp[:, -5:]
    with pytest.raises(ValueError):
        SpooledAudio(2).append(np.zeros((1, 4), dtype=np.int16))
    with pytest.raises(TypeError):
        SpooledAudio.from_array(x.astype(np.float32))


def test_silence_is_judged_the_same_on_the_spool(tmp_path):
    loud = loud_signal(3.0, RATE, 2)
    quiet = loud.copy()
    quiet[:, 6000:] = 0  # one window in eight loud: silent
    for x in (loud, quiet):
        with SpooledAudio.from_array(x, tmp_path) as sp:
            assert silent(sp, RATE) == silent(x.astype(np.float32) / 32768, RATE)
    assert not silent(loud.astype(np.float32) / 32768, RATE) and silent(quiet.astype(np.float32) / 32768, RATE)


@pytest.mark.parametrize("per_interval", [False, True])
def test_the_pipeline_gives_the_same_samples_from_a_spool(tmp_path, per_interval):
    p = VideoChunks(VideoChunksConfig.model_validate(
        {"per_interval": per_interval, "intervals": {"min_seconds": 1.5, "gamma_shape": 1.0, "gamma_scale": 3.0}}), RATE, 2)
    x = loud_signal(30.4, RATE, 2, seed=3)
    item = Item("v", "train", lambda: None, {"genre": "g", "language": "l"})

    def hashes(audio):
        samples = list(p.process(item, audio, RATE, 5))
        assert {s.label for s in samples} == {0, 1, 2, 3, 4}  # every class: each defect's copy was cut
        return [row_hash(sample_row(s), s.audio) for s in samples]

    in_memory = hashes(x.astype(np.float32) / 32768)
    placed = p.counters.get("click_reductive_clicks_placed", 0)
    with SpooledAudio.from_array(x, tmp_path, block=12_345) as sp:
        spooled = hashes(sp)
    assert placed > 0  # reductive clicks shifted the copy: the shifted comparisons were exercised
    assert spooled == in_memory


def test_a_video_build_streams_its_items_and_gives_their_rows(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    make_video(root / "a.mp4", 4.3, 44100, 2, codec="aac", seed=1)
    make_video(root / "b.mkv", 3.2, 48000, 1, codec="pcm_s16le", seed=2)
    (root / "broken.mkv").write_bytes(b"")
    recipe = load_recipe("video-artifacts")
    pipeline = recipe.make_pipeline()
    items = list_source(f"video:{root}").items
    assert items and all(streams(it, recipe, pipeline) for it in items)
    assert not streams(items[0], recipe.model_copy(update={"source": recipe.source.model_copy(update={"rate": 44100})}),
                       pipeline)  # another rate: decoded whole and resampled, as before
    res = build("video-artifacts", f"video:{root}", tmp_path / "ds", progress=False)
    built = sorted(row_hash({k: v for k, v in r.items() if k not in ("audio", "source_clipped_samples")}, r["audio"])
                   for s in ("train", "validation", "test") for r in iter_rows(tmp_path / "ds", s))
    # the rows of the same pipeline on each whole decoded file, in memory
    expected = []
    for it in items:
        x = decode_audio(root / it.id).astype(np.float32) / 32768
        for smp in recipe.make_pipeline().process(it, x, RATE, recipe.seed):
            row = sample_row(smp)
            row.setdefault("split", it.split)
            expected.append(row_hash({k: v for k, v in row.items() if k != "audio"}, smp.audio))
    assert built == sorted(expected)
    assert {s["id"] for s in res.manifest["skipped"]} == {"broken.mkv"}
    assert not list((tmp_path / "ds").rglob("*spool*"))


def test_cutting_a_copy_as_it_is_made_gives_the_chunks_of_the_whole_copy():
    """The build cuts each degraded copy an interval at a time; cut the whole copy here instead."""
    p = VideoChunks(VideoChunksConfig.model_validate(
        {"defects": [{"kind": "click_reductive"}, {"kind": "hiss"}],
         "intervals": {"min_seconds": 0.5, "gamma_shape": 1.0, "gamma_scale": 2.0}}), RATE, 2)
    x = loud_signal(25.7, RATE, 2, seed=4)
    item = Item("v", "test", lambda: None, {})
    for defect in p.defects:
        whole = p.degrade("v", x, RATE, 9, defect)
        d, junctions, shifts = whole["audio"], whole["junctions"], whole["shifts"]
        expected = []
        for c in range(d.shape[1] // RATE):
            s = c * RATE
            k = int(shifts[np.searchsorted(junctions, s, side="right") - 1]) if (junctions <= s).any() else 0
            for ch in range(2):
                if (d[ch, s : s + RATE] != x[ch, s + k : s + k + RATE]).any():
                    expected.append((ch, c, k, d[ch, s : s + RATE].tobytes()))
        got = [(r.meta["channel"], r.meta["segment_index"], r.meta["shift"], r.audio.tobytes())
               for r in p._defective(item, x, RATE, 9, defect, p._source_meta(item))]
        assert len(got) > 10 and got == expected
        if defect.kind == "click_reductive":
            assert len(junctions) > 3 and shifts[-1] > 0


def test_fresh_training_rows_of_a_video_come_from_its_spool(tmp_path):
    from defectbench.fresh import FreshDefects, epoch_seed

    make_video(tmp_path / "v.mp4", 5.2, 48000, 2, codec="aac", seed=6)
    data = FreshDefects("video-artifacts", f"video:{tmp_path}", split="train", seed=2)
    item = data.items[0]
    assert streams(item, data.recipe, data._pipeline())
    got = [(i, a.tobytes(), t.tobytes(), lab) for i, a, t, lab in data.item_rows(item, 1)]
    x = decode_audio(tmp_path / "v.mp4").astype(np.float32) / 32768
    want = [(s.id, (s.audio.astype(np.float32) / 32768).tobytes(), np.asarray(s.target, np.float32).tobytes(), int(s.label))
            for s in data.recipe.make_pipeline().process(item, x, RATE, epoch_seed(2, 1))]
    assert len(got) > 10 and got == want
