"""MP3 frame reader, LAME encode, corruption and libsndfile decode (SPEC 1.3) on real lameenc output."""

from __future__ import annotations

import lameenc
import numpy as np
import pytest

from defectbench import mp3
from defectbench.core import DefectbenchError


def tone(rate: int, seconds: float, seed: int = 0) -> np.ndarray:
    """A small music-like test signal: two partials, an envelope and a little noise."""
    t = np.arange(int(rate * seconds)) / rate
    rng = np.random.default_rng(seed)
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t))
    x += 0.1 * np.sin(2 * np.pi * 2500 * t) + 0.02 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def expected_length(bitrate: int, rate: int, padding: bool) -> int:
    """Layer III frame length from ISO 11172-3 / 13818-3: 144 (MPEG-1) or 72 (MPEG-2/2.5) * br / fs."""
    coefficient = 144 if rate >= 32000 else 72
    return coefficient * bitrate * 1000 // rate + int(padding)


@pytest.mark.parametrize("bitrate,rate", [(128, 44100), (320, 48000), (96, 32000), (64, 22050), (32, 8000)])
def test_frame_reader_accounts_for_every_byte(bitrate, rate):
    data = mp3.encode(tone(rate, 1.5), rate, bitrate)
    frames = mp3.read_frames(data)
    assert frames[0].offset == 0
    for a, b in zip(frames, frames[1:]):
        assert b.offset == a.offset + a.length
    assert frames[-1].offset + frames[-1].length == len(data)
    for f in frames:
        assert (f.bitrate, f.rate, f.channels, f.crc) == (bitrate, rate, 1, False)
        assert f.length == expected_length(bitrate, rate, f.padding)
        assert f.side_info == (17 if rate >= 32000 else 9)
        assert f.payload == f.length - 4
        assert 0 <= f.main_data_begin < (512 if rate >= 32000 else 256)
    # libsndfile decodes every frame: frames * samples-per-frame samples (576 for MPEG-2/2.5).
    y, out_rate, _ = mp3.decode(data)
    assert out_rate == rate
    assert len(y) == len(frames) * (1152 if rate >= 32000 else 576)


def test_frame_reader_stereo_side_info_and_golden_header():
    enc = lameenc.Encoder()
    enc.set_bit_rate(192)
    enc.set_in_sample_rate(44100)
    enc.set_channels(2)
    x = tone(44100, 0.5)
    pcm = (np.stack([x, -x], axis=1) * 32767).astype("<i2")
    data = bytes(enc.encode(pcm.tobytes()) + enc.flush())
    frames = mp3.read_frames(data)
    assert sum(f.length for f in frames) == len(data)
    assert all(f.channels == 2 and f.side_info == 32 for f in frames)
    # FF FB 90 C4: sync, MPEG-1, layer III, no CRC; bitrate index 9 = 128 kbps, 44.1 kHz, no padding;
    # channel mode 11 = mono. Length = floor(144 * 128000 / 44100) = 417.
    assert mp3.parse_header(bytes.fromhex("fffb90c4"), 0) == ("1", 128, 44100, False, 1, False, 417)
    # FF FA: protection bit 0 = a CRC word follows the header.
    assert mp3.parse_header(bytes.fromhex("fffa92c4"), 0) == ("1", 128, 44100, True, 1, True, 418)


def test_frame_reader_tags_and_junk():
    data = mp3.encode(tone(44100, 0.5), 44100)
    n = len(mp3.read_frames(data))
    id3v2 = b"ID3\x04\x00\x00" + bytes([0, 0, 0, 20]) + bytes(20)
    id3v1 = b"TAG" + bytes(125)
    frames = mp3.read_frames(id3v2 + data + id3v1)
    assert len(frames) == n and frames[0].offset == 30
    with pytest.raises(DefectbenchError, match=f"byte {len(data)}"):
        mp3.read_frames(data + b"\x00" * 7)
    with pytest.raises(DefectbenchError, match="needs 41[78] bytes"):
        mp3.read_frames(data[:-10])


def test_codec_delay_is_1105_samples():
    x = tone(44100, 1.0)
    y, _, _ = mp3.decode(mp3.encode(x, 44100))
    errors = {lag: float(np.mean((y[lag : lag + len(x)] - x) ** 2)) for lag in range(1095, 1116)}
    assert min(errors, key=errors.get) == mp3.DELAY == 1105
    assert errors[1105] < 0.05 * float(np.mean(x**2))  # the aligned decode is the signal, not noise


def test_no_corruption_gives_the_clean_decode():
    x = tone(44100, 1.0)
    data = mp3.encode(x, 44100)
    res = mp3.glitch(data, len(x), [])
    y, _, _ = mp3.decode(data)
    np.testing.assert_array_equal(res.clean, np.clip(y[1105 : 1105 + len(x)], -1, 1))
    np.testing.assert_array_equal(res.degraded, res.clean)
    assert res.applied == [] and res.fallback == []


def test_corrupt_rejects_runs_outside_the_frame():
    data = mp3.encode(tone(44100, 0.3), 44100)
    frames = mp3.read_frames(data)
    with pytest.raises(DefectbenchError, match="leaves the frame"):
        mp3.corrupt(data, frames, [mp3.Corruption(1, frames[1].length - 2, b"abc")])
    with pytest.raises(DefectbenchError, match="names frame"):
        mp3.corrupt(data, frames, [mp3.Corruption(len(frames), 4, b"a")])


def _single_corruptions(frames, rng, count):
    for _ in range(count):
        i = int(rng.integers(3, len(frames) - 6))
        f = frames[i]
        length = int(np.clip(round(rng.normal(120, 60)), 1, f.payload))
        offset = f.header_size + int(rng.integers(0, f.payload - length + 1))
        yield mp3.Corruption(i, offset, rng.bytes(length))


def test_damage_stays_in_decoded_blocks_i_to_i_plus_3():
    """Damage from frame i (|diff| > 1e-5) lies in decoded blocks i..i+3; beyond, rounding noise only."""
    x = tone(44100, 2.0, seed=1)
    data = mp3.encode(x, 44100)
    frames = mp3.read_frames(data)
    clean, _, _ = mp3.decode(data)
    rng = np.random.default_rng(7)
    damaged = 0
    for c in _single_corruptions(frames, rng, 40):
        y, _, _ = mp3.decode(mp3.corrupt(data, frames, [c]))
        assert len(y) == len(clean)
        diff = np.abs(np.clip(y, -1, 1) - np.clip(clean, -1, 1))
        i = c.frame
        assert diff[: i * 1152].max() == 0.0  # nothing before block i changes (no backward reach)
        assert diff[(i + 4) * 1152 :].max() < 1e-6
        damaged += diff[i * 1152 : (i + 4) * 1152].max() > 1e-3
    assert damaged >= 30  # the runs do damage: most single corruptions are clearly audible


def test_fallback_reverts_a_corruption_that_changes_the_length():
    x = tone(44100, 1.0)
    data = mp3.encode(x, 44100)
    frames = mp3.read_frames(data)
    broken_header = mp3.Corruption(10, 0, b"\x00\x00\x00\x00")  # decoder loses sync: one frame fewer
    y, _, _ = mp3.decode(mp3.corrupt(data, frames, [broken_header]))
    assert len(y) != len(frames) * 1152  # precondition: this corruption does change the length
    good = mp3.Corruption(20, 30, bytes(range(100, 220)))
    res = mp3.glitch(data, len(x), [broken_header, good], frames)
    assert res.fallback == [broken_header] and res.applied == [good]
    alone = mp3.glitch(data, len(x), [good], frames)
    np.testing.assert_array_equal(res.degraded, alone.degraded)  # frame 10 decoded from its original bytes
    assert not np.array_equal(res.degraded, res.clean)


def test_decoder_stderr_is_captured_and_counted(capfd):
    x = tone(44100, 2.0, seed=2)
    data = mp3.encode(x, 44100)
    frames = mp3.read_frames(data)
    corruptions = list(_single_corruptions(frames, np.random.default_rng(3), 60))
    corruptions = list({c.frame: c for c in corruptions}.values())
    res = mp3.glitch(data, len(x), corruptions, frames)
    out = capfd.readouterr()
    assert res.stderr_lines > 0  # mpg123 complained about some damaged frames ...
    assert "mpg123" not in out.err and out.err == ""  # ... and nothing reached the terminal
    assert np.abs(res.degraded).max() <= 1.0


def test_stderr_captures_in_two_threads_each_get_their_own_lines_and_restore_fd2(capfd):
    """fd 2 is the process's: a capture that starts in one thread while another thread's capture is open
    must wait for it, or the second would save the first's temporary file as "the" stderr and put it back
    at its end (the process's stderr lost), and the lines of each would land in the other's file."""
    import os
    import threading

    from defectbench.audio_io import CaptureFd2

    before = os.fstat(2).st_ino
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    texts: dict[str, str] = {}

    def first() -> None:
        with CaptureFd2() as cap:
            first_in.set()
            second_in.wait(timeout=0.5)  # unserialised captures: the second opens inside this one ...
            os.write(2, b"first\n")
        first_out.set()  # ... and this one closes first
        texts["first"] = cap.text

    def second() -> None:
        first_in.wait()
        with CaptureFd2() as cap:
            second_in.set()
            first_out.wait(timeout=0.5)
            os.write(2, b"second\n")
        texts["second"] = cap.text

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert os.fstat(2).st_ino == before
    assert texts == {"first": "first\n", "second": "second\n"}
    with CaptureFd2() as outer:  # nested in one thread: the inner text is the inner's only
        os.write(2, b"outer\n")
        with CaptureFd2() as inner:
            os.write(2, b"inner\n")
    assert inner.text == "inner\n" and outer.text == "outer\n"
    assert capfd.readouterr().err == ""
