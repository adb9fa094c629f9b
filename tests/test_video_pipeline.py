"""The ``video-chunks`` pipeline and the ``video-artifacts`` recipe end to end (video paper, section 4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from defectbench.core import Item
from defectbench.dataset import iter_rows, read_manifest, row_hash, sample_row
from defectbench.engine import build
from defectbench.pipelines.video_chunks import LABELS, VideoChunks, VideoChunksConfig
from video_media import loud_signal, make_video

RATE, C = 48000, 48000
SHORT_INTERVALS = {"min_seconds": 1.5, "gamma_shape": 1.0, "gamma_scale": 1.0}


def pipeline(**options) -> VideoChunks:
    return VideoChunks(VideoChunksConfig.model_validate(options), RATE, 2)


def run(p: VideoChunks, x: np.ndarray, seed: int = 0, item_id: str = "v1"):
    item = Item(item_id, "train", lambda: None, {"genre": "news", "language": "en", "title": "t"})
    return list(p.process(item, x.astype(np.float32) / 32768, RATE, seed))


def test_clean_chunks_once_and_exact():
    x = loud_signal(5.5, RATE, 2)
    rows = run(pipeline(defects=[{"kind": "hum"}]), x)
    clean = [r for r in rows if r.label == 0]
    assert len(clean) == 2 * 5  # every whole second of both channels; the last half second dropped
    for r in clean:
        ch, s = r.meta["channel"], r.meta["start_sample"]
        assert r.audio.dtype == np.int16 and np.array_equal(r.audio, x[ch, s : s + C])
        assert not r.target.any() and r.meta["defect"] == "none"
    assert clean[0].meta["genre"] == "news" and json.loads(clean[0].meta["source_meta"]) == {"title": "t"}


def test_hum_chunks_are_those_overlapping_defective_intervals():
    x = loud_signal(12.0, RATE, 2, seed=3)
    p = pipeline(defects=[{"kind": "hum"}], intervals=SHORT_INTERVALS)
    rows = [r for r in run(p, x) if r.label == LABELS.index("hum")]
    copy = p.degrade("v1", x, RATE, 0, p.defects[0])
    spans = [(iv.start, iv.end) for iv, _ in copy["intervals"]]
    assert spans and len(spans) < 12
    expected = {(ch, c) for ch in range(2) for c in range(12) for s, e in spans if s < (c + 1) * C and e > c * C}
    assert {(r.meta["channel"], r.meta["segment_index"]) for r in rows} == expected
    for r in rows:  # the target marks exactly the 10 ms frames inside defective intervals
        c = r.meta["segment_index"]
        frames = [any(s < c * C + (f + 1) * 480 and e > c * C + f * 480 for s, e in spans) for f in range(100)]
        assert np.array_equal(r.target.astype(bool), frames)
        params = json.loads(json.dumps(r.params))["intervals"][0]["params"]
        assert 20 < params["frequency"] < 1220 and 60 < params["amplitude"] < 32768 - params["max_abs"]


def test_parameters_per_base_audio_or_per_interval():
    x = loud_signal(30.0, RATE, 2, seed=4)
    for per_interval, distinct in ((False, 1), (True, None)):
        p = pipeline(defects=[{"kind": "hum"}, {"kind": "distortion"}], intervals=SHORT_INTERVALS, per_interval=per_interval)
        for d in p.defects:
            ivs = p.degrade("v1", x, RATE, 0, d)["intervals"]
            assert len(ivs) >= 3
            key = "frequency" if d.kind == "hum" else "ratio"
            values = {params[key] for _, params in ivs}
            assert len(values) == 1 if distinct == 1 else len(values) > 1


def test_reductive_click_only_the_chunk_holding_the_junction_is_click():
    x = loud_signal(20.0, RATE, 2, seed=6)
    p = pipeline(defects=[{"kind": "click_reductive", "rate_per_s": 1.5}], intervals=SHORT_INTERVALS)
    rows = [r for r in run(p, x) if r.label == LABELS.index("click")]
    # Rebuild the degraded copy independently from the recorded removals (clean coordinates).
    ivs = p.degrade("v1", x, RATE, 0, p.defects[0])["intervals"]
    removals = sorted((iv.start + pos, length) for iv, prm in ivs for pos, length in prm["removed"])
    assert len(removals) >= 5
    keep = np.ones(x.shape[1], dtype=bool)
    junctions, gone = [], 0
    for pos, length in removals:
        keep[pos : pos + length] = False
        gone += length
        junctions.append(pos + length - gone)  # where the sample after the removal lands
    y = x[:, keep]
    holding = {j // C for j in junctions if j % C}  # a junction on a chunk boundary is inside no chunk
    assert {(r.meta["channel"], r.meta["segment_index"]) for r in rows} == {(ch, c) for ch in range(2) for c in holding}
    for r in rows:
        ch, c = r.meta["channel"], r.meta["segment_index"]
        assert np.array_equal(r.audio, y[ch, c * C : (c + 1) * C])
        inside = [j - c * C for j in junctions if c * C < j < (c + 1) * C]
        for j in inside:  # the discontinuity is there, and the target marks its frame
            assert abs(int(r.audio[j]) - int(r.audio[j - 1])) >= 3277 and r.target[j // 480] == 1
        assert r.target.sum() == len({j // 480 for j in inside})
        assert r.meta["shift"] == sum(length for (pos, length), j in zip(removals, junctions) if j <= c * C)
    # every chunk after a removal equals the clean audio at its shift: none of those is a click
    assert len(rows) == 2 * len(holding) < 2 * (y.shape[1] // C)


def test_not_applicable_where_the_amplitude_range_is_empty():
    x = loud_signal(4.0, RATE, 2)
    x[1, 100] = -32768
    p = pipeline(defects=[{"kind": "hum"}, {"kind": "hiss"}, {"kind": "distortion"}])
    labels = {r.label for r in run(p, x)}
    assert LABELS.index("hum") not in labels and LABELS.index("hiss") not in labels
    assert p.counters["hum_not_applicable_audio"] == 1 and p.counters["hiss_not_applicable_audio"] == 1


def content_hash(sample) -> str:
    return row_hash(sample_row(sample), sample.audio)


def test_each_defect_copy_is_independent_of_the_others_and_deterministic():
    x = loud_signal(8.0, RATE, 2, seed=9)
    full = {r.id: content_hash(r) for r in run(pipeline(), x)}
    again = {r.id: content_hash(r) for r in run(pipeline(), x)}
    assert full == again
    hiss_only = {r.id: content_hash(r) for r in run(pipeline(defects=[{"kind": "hiss"}]), x)}
    assert hiss_only and all(full[k] == v for k, v in hiss_only.items())
    assert {r.id: content_hash(r) for r in run(pipeline(), x, seed=1)} != full


def test_bad_options_are_rejected():
    with pytest.raises(ValueError):
        VideoChunksConfig.model_validate({"defects": [{"kind": "hum"}, {"kind": "hum"}]})
    with pytest.raises(ValueError):
        VideoChunksConfig.model_validate({"defects": [{"kind": "crackle"}]})


# -- end to end through the engine -----------------------------------------------------------------
def fingerprint(out):
    return read_manifest(out)["fingerprint"]


@pytest.mark.slow
def test_build_synth_same_fingerprint_for_one_or_two_workers(tmp_path):
    a = build("video-artifacts", "synth", tmp_path / "w1", limit=1, workers=1, progress=False)
    b = build("video-artifacts", "synth", tmp_path / "w2", limit=1, workers=2, progress=False)
    assert a.manifest["fingerprint"] == b.manifest["fingerprint"]
    m = a.manifest
    assert m["task"] == "multiclass" and m["label_names"] == LABELS
    assert all(m["splits"][s]["labels"]["no_defect"] == 2 * 20 for s in ("train", "validation", "test"))


def test_build_from_videos_keeps_each_video_in_one_split(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    for i in range(6):
        make_video(root / f"v{i}.mp4", 2.2, 44100, 2 if i % 2 else 1, codec="aac", seed=i)
    make_video(root / "noaudio.mp4", 1.0, channels=0)
    (root / "meta.csv").write_text("video_id,genre,language\n" + "".join(f"v{i},{'ab'[i % 2]},en\n" for i in range(6)))
    res = build("video-artifacts", f"video:{root}", tmp_path / "ds", metadata=root / "meta.csv", progress=False)
    m = res.manifest
    assert {s["id"]: s["reason"] for s in m["skipped"]} == {"noaudio.mp4": "no audio stream"}
    where: dict[str, set] = {}
    for split in ("train", "validation", "test"):
        for row in iter_rows(tmp_path / "ds", split):
            where.setdefault(row["video_id"], set()).add(split)
            assert row["audio"].dtype == np.int16 and row["rate"] == 48000 and len(row["audio"]) == 48000
            assert row["genre"] in ("a", "b") and len(row["target"]) == 100
    assert len(where) == 6 and all(len(s) == 1 for s in where.values())
    assert {next(iter(s)) for s in where.values()} == {"train", "validation", "test"}
