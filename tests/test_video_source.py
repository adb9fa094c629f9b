"""The ``video`` source (SPEC 1.4): PyAV demux to stereo 48 kHz int16, skips with reasons, stratified split."""

from __future__ import annotations

import numpy as np
import pytest

from defectbench.core import DefectbenchError, SkipItem
from defectbench.sources import list_source
from defectbench.sources.video import assign_splits
from video_media import make_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    originals = {
        "stereo.mp4": make_video(root / "stereo.mp4", 3.0, 44100, 2, codec="aac"),
        "mono.mkv": make_video(root / "mono.mkv", 2.5, 48000, 1, codec="pcm_s16le", seed=1),
        "sub/pcm44.mkv": None,
    }
    (root / "sub").mkdir()
    originals["sub/pcm44.mkv"] = make_video(root / "sub" / "pcm44.mkv", 2.0, 44100, 2, codec="pcm_s16le", seed=2)
    make_video(root / "silent.mp4", 2.0, channels=0)  # a video without audio
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)  # not a usable file
    (root / ".hidden.mp4").write_bytes(b"")
    return root, originals


def test_listing_keeps_videos_with_audio_and_skips_the_rest_with_a_reason(videos):
    root, _ = videos
    listing = list_source(f"video:{root}")
    assert sorted(it.id for it in listing.items) == ["mono.mkv", "stereo.mp4", "sub/pcm44.mkv"]
    reasons = dict(listing.skipped)
    assert reasons["silent.mp4"] == "no audio stream"
    assert "broken.mp4" in reasons and reasons["broken.mp4"]  # PyAV cannot open it / no audio
    assert reasons[".hidden.mp4"] == "hidden file"  # left out, and said so (issue 13)


def test_load_gives_exact_int16_stereo_at_48k(videos):
    root, originals = videos
    items = {it.id: it for it in list_source(f"video:{root}").items}
    # mono PCM at 48 kHz: the exact samples, duplicated into two channels (no -3 dB upmix)
    audio, rate = items["mono.mkv"].load()
    assert rate == 48000 and audio.dtype == np.float32 and audio.shape[0] == 2
    pcm = audio * 32768
    assert np.array_equal(pcm, np.round(pcm))  # int16 / 32768 exactly
    assert np.array_equal(pcm[0], originals["mono.mkv"][0]) and np.array_equal(pcm[0], pcm[1])
    # stereo PCM at 44.1 kHz: resampled to 48 kHz, the 110 Hz and 165 Hz tones stay where they were
    audio, rate = items["sub/pcm44.mkv"].load()
    assert audio.shape[0] == 2 and abs(audio.shape[1] - 2.0 * 48000) <= 64
    spectrum = np.abs(np.fft.rfft(audio[:, :96000], axis=1))
    assert np.argmax(spectrum[0, :1000]) == 220 and np.argmax(spectrum[1, :1000]) == 330  # 0.5 Hz bins
    # AAC stereo: decoded, resampled, about the right length and loudness
    audio, rate = items["stereo.mp4"].load()
    assert audio.shape[0] == 2 and abs(audio.shape[1] - 3.0 * 48000) < 4096
    assert 0.3 < np.abs(audio).max() < 0.9


def test_a_file_that_fails_to_decode_raises_skipitem(videos, tmp_path):
    root, _ = videos
    path = tmp_path / "v.mkv"
    make_video(path, 1.0, 48000, 2, codec="pcm_s16le")
    item = list_source(f"video:{tmp_path}").items[0]
    path.write_bytes(b"gone")
    with pytest.raises(SkipItem):
        item.load()


def test_metadata_csv_gives_strata_meta_and_fixed_splits(videos, tmp_path):
    root, _ = videos
    csv = tmp_path / "meta.csv"
    csv.write_text("video_id,genre,language,split,title\nstereo,drama,en,test,A\nmono.mkv,news,fr,,B\nmissing,x,y,,C\n")
    listing = list_source(f"video:{root}", metadata=csv)
    items = {it.id: it for it in listing.items}
    assert items["stereo.mp4"].split == "test"  # fixed by the CSV
    assert items["stereo.mp4"].meta == {"genre": "drama", "language": "en", "title": "A"}
    assert items["mono.mkv"].meta["language"] == "fr"
    assert items["sub/pcm44.mkv"].meta == {"genre": "", "language": ""}  # not in the CSV: used, no metadata
    assert any(name == "missing" for name, _ in listing.skipped)
    csv.write_text("name,genre\na,b\n")
    with pytest.raises(DefectbenchError, match="video_id"):
        list_source(f"video:{root}", metadata=csv)
    csv.write_text("video_id,split\nstereo,training\n")
    with pytest.raises(DefectbenchError, match="split"):
        list_source(f"video:{root}", metadata=csv)
    with pytest.raises(DefectbenchError):
        list_source(f"video:{tmp_path / 'nope'}")


def test_stratified_split_by_video_close_to_64_17_19():
    genres, languages = ["drama", "news", "sport", "kids", "docu", "music"], ["en", "fr", "es"]
    strata = {f"v{i:03d}": (genres[i % 6], languages[(i // 6) % 3]) for i in range(162)}
    splits = assign_splits(strata, seed=0)
    counts = {s: list(splits.values()).count(s) for s in ("train", "validation", "test")}
    assert abs(counts["train"] - 103) <= 2 and abs(counts["validation"] - 28) <= 2 and abs(counts["test"] - 31) <= 2
    for g in genres:  # every genre and every language reaches every split
        assert {splits[v] for v in strata if strata[v][0] == g} == {"train", "validation", "test"}
    for lang in languages:
        assert {splits[v] for v in strata if strata[v][1] == lang} == {"train", "validation", "test"}
    # deterministic from the seed and the ids (not their order); another seed deals differently
    reordered = dict(reversed(list(strata.items())))
    assert assign_splits(reordered, seed=0) == splits
    assert assign_splits(strata, seed=1) != splits
