"""``defectbench detect``: find defects in anyone's audio files with a trained detector (issue 11).

- Decoding as the recipe's source would, **streaming**: music recipes (mono 44.1 kHz float32): blocks
  from soundfile's ``blocks()`` (PyAV frames for what libsndfile cannot open), each resampled with
  soxr's ``ResampleStream`` (the same HQ filter as the sources' ``soxr.resample``, kept across blocks),
  downmixed by the mean, clipped to [-1, 1]; the video recipe (48 kHz stereo int16): PyAV frames
  through FFmpeg's resampler (s16, stereo, 48 kHz), as ``sources/video.py`` decodes. Nothing holds more
  than a block and a window, so memory stays flat in file length (benchmarks/bench_detect.py).
- Framewise models (Hook-Net): sliding windows of the model input (16384 samples) with hop 8192, so
  every 128-sample frame is seen by two windows, once in a window's central half; the frame's score is
  the **max** over the windows that saw it (a click at one window's edge, where the model sees little
  context, is still caught by the window that holds it in its middle). The end of a file is covered
  by one last window ending at the last (partial) frame, padded by repeating the final sample (a flat
  tail, not a step that would look like a click); a file shorter than a window is padded the same way.
  Events: runs of consecutive frames with score >= threshold, merged into one ``(start, end, label,
  score = the run's max)`` in seconds.
- CNN6: 1 s chunks per channel at 48 kHz (a last partial chunk of at least 0.25 s is padded the same
  way); each chunk's arg-max class, where not ``no_defect`` and its probability >= threshold (default
  0), is an event of that second (label = class name, score = probability; both channels' findings of
  one label in one second are one event, the higher probability kept).
- Unreadable files are skipped with their reason (listed at the end, and in the ``.json`` output); where
  no file could be read, nothing is written and the command fails with the first reason (exit 2). An
  error of the model itself is an internal error and stops the run.
- The events file and the timelines replace only files defectbench wrote (:mod:`defectbench.owned_files`),
  checked before any scanning.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .core import DefectbenchError, SkipItem

DEFAULT_TASK = {"hooknet": "fma-clicks", "cnn6": "video-artifacts"}
FORMATS = (".csv", ".json", ".tsv")
BLOCK = 65536  # decoded samples per block (1.5 s at 44.1 kHz)


@dataclass
class Event:
    file: str
    start: float
    end: float
    label: str
    score: float


@dataclass
class FileResult:
    path: str
    seconds: float
    events: list[Event] = field(default_factory=list)
    frames: np.ndarray | None = None  # per-frame scores (only with --plot)
    envelope: np.ndarray | None = None  # per-frame [min, max] of the waveform (only with --plot)
    frame_seconds: float = 0.0


# ------------------------------------------------------------------------------------ decoding ---


def probe_seconds(path: Path) -> float:
    """Duration from the header (for the progress bar's total); 0 when unknown."""
    import soundfile as sf

    from .audio_io import CaptureFd2

    try:
        with CaptureFd2():  # libsndfile's mpg123 writes its complaints to fd 2
            return float(sf.info(str(path)).duration)
    except Exception:
        pass
    try:
        import av

        with av.open(str(path)) as c:
            return float(c.duration / 1e6) if c.duration else 0.0
    except Exception:
        return 0.0


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


def stream_music(path: Path, rate: int, channels: int, block: int = BLOCK) -> Iterator[np.ndarray]:
    """Float32 ``[channels, n]`` blocks at ``rate`` (soundfile blocks, else PyAV frames; soxr streaming)."""
    import soundfile as sf
    import soxr

    from .audio_io import convert_channels

    def resampled(blocks: Iterable[np.ndarray], rate_in: int, ch_in: int) -> Iterator[np.ndarray]:
        rs = soxr.ResampleStream(rate_in, rate, ch_in, dtype="float32", quality="HQ") if rate_in != rate else None
        for b in blocks:  # b: [n, ch_in]
            y = b if rs is None else rs.resample_chunk(b, last=False)
            if len(y):
                yield y
        if rs is not None:
            y = rs.resample_chunk(np.zeros((0, ch_in), np.float32), last=True)
            if len(y):
                yield y

    def shaped(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for y in blocks:
            y = np.asarray(y, dtype=np.float32).reshape(len(y), -1).T
            if not np.all(np.isfinite(y)):
                raise SkipItem("non-finite samples (NaN or infinity)")
            yield np.clip(convert_channels(y, channels), -1.0, 1.0)

    from .audio_io import CaptureFd2

    try:
        with CaptureFd2():  # mpg123's notes on a damaged or foreign file stay off the terminal
            f = sf.SoundFile(str(path))
    except Exception as sf_exc:
        yield from shaped(_pyav_music(path, resampled, sf_exc))
        return
    with f:
        if f.channels > 8:
            raise SkipItem(f"odd channel count ({f.channels} channels, at most 8)")
        blocks = _guard(f.blocks(blocksize=block, dtype="float32", always_2d=True), "soundfile", quiet=True)
        yield from shaped(resampled(blocks, f.samplerate, f.channels))


def _guard(blocks: Iterable[np.ndarray], decoder: str, quiet: bool = False) -> Iterator[np.ndarray]:
    """A decoder's blocks, its errors (a damaged file mid-way) turned into SkipItem; ``quiet``: each block
    decoded with fd 2 captured (libsndfile)."""
    from .audio_io import CaptureFd2

    it = iter(blocks)
    while True:
        try:
            if quiet:
                with CaptureFd2():
                    b = next(it)
            else:
                b = next(it)
        except StopIteration:
            return
        except Exception as exc:
            raise SkipItem(f"{decoder} could not decode the file: {_short(exc)}") from None
        yield b


def _pyav_music(path: Path, resampled, sf_exc: Exception) -> Iterator[np.ndarray]:
    import av

    try:
        container = av.open(str(path))
    except Exception as av_exc:
        raise SkipItem(f"unreadable audio (soundfile: {_short(sf_exc)}; PyAV: {_short(av_exc)})") from None
    with container:
        if not container.streams.audio:
            raise SkipItem("no audio stream")
        stream = container.streams.audio[0]
        rate_in = stream.rate or stream.codec_context.sample_rate
        ch_in = stream.channels or stream.codec_context.channels
        if ch_in > 8:
            raise SkipItem(f"odd channel count ({ch_in} channels, at most 8)")
        conv = av.AudioResampler(format="fltp", layout=stream.layout, rate=rate_in)

        def frames() -> Iterator[np.ndarray]:
            for frame in container.decode(stream):
                for out in conv.resample(frame):
                    yield out.to_ndarray()[:ch_in].T
            for out in conv.resample(None):
                yield out.to_ndarray()[:ch_in].T

        yield from resampled(_guard(frames(), "PyAV"), rate_in, ch_in)


def stream_video_audio(path: Path, rate: int = 48000) -> Iterator[np.ndarray]:
    """Int16 ``[2, n]`` blocks at 48 kHz through FFmpeg's resampler: the video source's own decoder."""
    from .sources.video import RATE, decode_blocks

    if rate != RATE:
        raise ValueError(f"the video source decodes at {RATE} Hz, not {rate}")
    return decode_blocks(path)


# ------------------------------------------------------------------------ framewise scanning ---


class EventMerger:
    """Runs of consecutive frames with score >= threshold -> events, fed frame scores in order."""

    def __init__(self, threshold: float, frame_seconds: float, label: str, file: str) -> None:
        self.threshold, self.frame_seconds, self.label, self.file = threshold, frame_seconds, label, file
        self.run_start: int | None = None
        self.run_max = 0.0
        self.events: list[Event] = []

    def feed(self, first_frame: int, scores: np.ndarray) -> None:
        """Scores of frames ``first_frame, first_frame + 1, ...`` (the frames right after the last feed)."""
        hot = (np.asarray(scores) >= self.threshold).astype(np.int8)
        was_hot = 1 if self.run_start is not None else 0
        change = np.diff(np.r_[was_hot, hot])
        edges = sorted([(int(i), 1) for i in np.flatnonzero(change == 1)] + [(int(i), -1) for i in np.flatnonzero(change == -1)])
        for i, kind in edges:  # starts and ends alternate
            if kind == 1:
                self.run_start, self.run_max = first_frame + i, -np.inf
            else:
                lo = max(self.run_start - first_frame, 0)
                if i > lo:
                    self.run_max = max(self.run_max, float(np.max(scores[lo:i])))
                self.events.append(Event(self.file, self.run_start * self.frame_seconds,
                                         (first_frame + i) * self.frame_seconds, self.label, self.run_max))
                self.run_start = None
        if self.run_start is not None and len(hot):  # a run still open: its max so far
            lo = max(self.run_start - first_frame, 0)
            self.run_max = max(self.run_max, float(np.max(scores[lo:])))

    def finish(self, end_frame: int) -> list[Event]:
        if self.run_start is not None:
            self.events.append(Event(self.file, self.run_start * self.frame_seconds, end_frame * self.frame_seconds,
                                     self.label, self.run_max))
            self.run_start = None
        return self.events


def merge_frames(scores: np.ndarray, threshold: float, frame_seconds: float, label: str, file: str = "",
                 chunk: int | None = None) -> list[Event]:
    """Events of a whole score array (fed in ``chunk``-frame pieces when given, as the scanner does)."""
    m = EventMerger(threshold, frame_seconds, label, file)
    step = chunk or max(1, len(scores))
    for i in range(0, len(scores), step):
        m.feed(i, scores[i : i + step])
    return m.finish(len(scores))


class WindowScanner:
    """Sliding windows over a stream of mono samples; frame scores combined by max; frames emitted in order.

    ``score(windows [k, W]) -> [k, F]`` is the model. ``on_frames(first_frame, scores)`` receives every
    frame exactly once, as soon as no later window can see it.
    """

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], window: int, frames: int, hop: int,
                 on_frames: Callable[[int, np.ndarray], None], batch: int = 16) -> None:
        if window % frames or hop % (window // frames) or not 0 < hop <= window:
            raise ValueError(f"window {window}, frames {frames}, hop {hop} do not align")
        self.score, self.W, self.F, self.hop, self.on_frames, self.batch = score, window, frames, hop, on_frames, batch
        self.fs = window // frames  # samples per frame
        self.buf = np.zeros(0, np.float32)
        self.buf_start = 0  # absolute sample index of buf[0]
        self.next_win = 0  # start of the next window to score
        self.pending: list[int] = []  # window starts queued for the next batch
        self.acc = np.full(0, -np.inf, np.float32)  # combined scores of frames from acc_start
        self.acc_start = 0
        self.n = 0  # samples fed

    def feed(self, samples: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, np.asarray(samples, np.float32)])
        self.n += len(samples)
        while self.next_win + self.W <= self.buf_start + len(self.buf):
            self.pending.append(self.next_win)
            self.next_win += self.hop
            if len(self.pending) == self.batch:
                self._flush()

    def _window(self, start: int) -> np.ndarray:
        a = self.buf[start - self.buf_start : start - self.buf_start + self.W]
        if len(a) < self.W:  # the end of the file: repeat the last sample (a flat tail)
            a = np.concatenate([a, np.full(self.W - len(a), a[-1] if len(a) else 0.0, np.float32)])
        return a

    def _flush(self, final: bool = False) -> None:
        if self.pending:
            x = np.stack([self._window(s) for s in self.pending])
            scores = np.asarray(self.score(x), dtype=np.float32)
            if scores.shape != (len(self.pending), self.F):
                raise RuntimeError(f"model returned scores {scores.shape}, expected {(len(self.pending), self.F)}")
            for s, row in zip(self.pending, scores):
                f0 = s // self.fs
                lo = max(0, self.acc_start - f0)  # frames already emitted (the last window may overlap them)
                need = f0 + self.F - self.acc_start
                if need > len(self.acc):
                    self.acc = np.concatenate([self.acc, np.full(need - len(self.acc), -np.inf, np.float32)])
                seg = self.acc[f0 + lo - self.acc_start : f0 + self.F - self.acc_start]
                np.maximum(seg, row[lo:], out=seg)
            self.pending = []
        # frames before the next window's start are final: no later window sees them
        done = (self.limit if final else self.next_win // self.fs) - self.acc_start
        if done > 0:
            self.on_frames(self.acc_start, self.acc[:done].copy())
            self.acc = self.acc[done:]
            self.acc_start += done
        keep_from = max(self.buf_start, self.next_win - self.hop)  # the last window may need these again
        self.buf = self.buf[keep_from - self.buf_start :]
        self.buf_start = keep_from

    def finish(self) -> int:
        """Score the end of the stream; returns the number of frames (the last one may be partial)."""
        total_frames = math.ceil(self.n / self.fs)
        end = total_frames * self.fs
        last_end = self.next_win - self.hop + self.W if self.next_win else 0  # end of the last window queued
        if self.n and last_end < end:  # one last window ending at the last (partial) frame
            self.pending.append(max(0, end - self.W, self.buf_start))
        self.limit = total_frames  # frames past the end (padding of a short file) are not emitted
        self._flush(final=True)
        return total_frames


# ---------------------------------------------------------------------------------- detector ---


class Scanner:
    """A loaded model with its decision threshold and the decoding of its recipe's source."""

    def __init__(self, model: str = "hooknet", task: str | None = None, checkpoint: str | Path | None = None,
                 threshold: float | None = None, device: str = "cpu", hop: int | None = None) -> None:
        from .detectors import get
        from .neural import TorchDetector
        from .weights import resolve

        cls = get(model)
        if not issubclass(cls, TorchDetector):
            raise DefectbenchError(f"detect runs the neural detectors (hooknet, cnn6), not {model!r}")
        task = task or DEFAULT_TASK.get(model)
        path = Path(checkpoint) if checkpoint else resolve(model, task)
        self.det = cls.from_checkpoint(path, device=device)
        ckpt = self.det.checkpoint
        self.weights = path
        shipped = ckpt.get("shipped") or {}
        recipe = ckpt.get("recipe") if isinstance(ckpt.get("recipe"), dict) else {}
        self.recipe = shipped.get("recipe") or recipe.get("name") or task
        src = shipped.get("source") or recipe.get("source") or {}
        self.framewise = "framewise" in cls.tasks
        self.rate = int(src.get("rate") or (44100 if self.framewise else 48000))
        self.channels = int(src.get("channels") or (1 if self.framewise else 2))
        names = shipped.get("label_names") or (recipe.get("options") or {}).get("label_names") or []
        if self.framewise:
            self.label = names[1] if len(names) > 1 else "defect"
            self.threshold = threshold if threshold is not None else shipped.get("threshold")
            if self.threshold is None:
                raise DefectbenchError(f"{path} holds no validation threshold (not written by defectbench ship): "
                                       "pass --threshold")
            cfg = self.det.config
            self.window, self.frames = cfg.input_length, cfg.output_length
            self.hop = hop or self.window // 2
        else:
            from .models.cnn6 import LABELS

            self.labels = list(names) or list(LABELS)
            self.threshold = 0.0 if threshold is None else threshold
            self.chunk = self.rate  # 1 s

    def describe(self) -> dict[str, Any]:
        from .weights import sha256_file

        return {"model": self.det.name, "recipe": self.recipe, "weights": str(self.weights),
                "weights_sha256": sha256_file(self.det.checkpoint["path"]), "threshold": self.threshold,
                "rate": self.rate, "channels": self.channels,
                **({"window": self.window, "hop": self.hop, "combine": "max"} if self.framewise else {"chunk_s": 1.0})}

    def scan(self, path: Path, keep_frames: bool = False, advance: Callable[[float], None] = lambda s: None) -> FileResult:
        if self.framewise:
            return self._scan_framewise(path, keep_frames, advance)
        return self._scan_chunks(path, advance)

    def _score_windows(self, x: np.ndarray) -> np.ndarray:
        return self.det.predict([{"id": str(i), "audio": a, "rate": self.rate} for i, a in enumerate(x)])

    def _scan_framewise(self, path: Path, keep_frames: bool, advance) -> FileResult:
        fs = self.window // self.frames
        merger = EventMerger(self.threshold, fs / self.rate, self.label, str(path))
        kept: list[np.ndarray] = []
        env: list[np.ndarray] = []

        def on_frames(first: int, scores: np.ndarray) -> None:
            merger.feed(first, scores)
            if keep_frames:
                kept.append(scores)

        scanner = WindowScanner(self._score_windows, self.window, self.frames, self.hop, on_frames)
        carry = np.zeros(0, np.float32)
        for block in stream_music(path, self.rate, self.channels):
            mono = block[0]
            scanner.feed(mono)
            if keep_frames:  # waveform envelope per frame, for the plot
                carry = np.concatenate([carry, mono])
                whole = len(carry) // fs * fs
                if whole:
                    f = carry[:whole].reshape(-1, fs)
                    env.append(np.stack([f.min(axis=1), f.max(axis=1)], axis=1))
                    carry = carry[whole:]
            advance(len(mono) / self.rate)
        if scanner.n == 0:
            raise SkipItem("audio stream holds no samples")
        total = scanner.finish()
        seconds = scanner.n / self.rate
        events = merger.finish(total)
        for e in events:
            e.end = min(e.end, seconds)
        result = FileResult(str(path), seconds, events, frame_seconds=fs / self.rate)
        if keep_frames:
            if len(carry):
                env.append(np.array([[carry.min(), carry.max()]], np.float32))
            result.frames = np.concatenate(kept)[:total] if kept else np.zeros(0, np.float32)
            result.envelope = np.concatenate(env) if env else np.zeros((0, 2), np.float32)
        return result

    def _scan_chunks(self, path: Path, advance) -> FileResult:
        found: dict[tuple[int, str], float] = {}
        buf = np.zeros((2, 0), np.int16)
        n = 0
        second = 0

        def score(chunk: np.ndarray, index: int) -> None:
            probs = self.det.predict([{"id": f"{index}-{c}", "audio": chunk[c], "rate": self.rate}
                                      for c in range(chunk.shape[0])])
            for p in probs:
                k = int(np.argmax(p))
                if k != 0 and float(p[k]) >= self.threshold:
                    key = (index, self.labels[k])
                    found[key] = max(found.get(key, 0.0), float(p[k]))

        for block in stream_video_audio(path, self.rate):
            buf = np.concatenate([buf, block], axis=1)
            n += block.shape[1]
            while buf.shape[1] >= self.chunk:
                score(buf[:, : self.chunk], second)
                buf = buf[:, self.chunk :]
                second += 1
            advance(block.shape[1] / self.rate)
        if n == 0:
            raise SkipItem("audio stream holds no samples")
        if buf.shape[1] >= self.chunk // 4:  # a last partial second, padded by repeating its last sample
            pad = np.repeat(buf[:, -1:], self.chunk - buf.shape[1], axis=1)
            score(np.concatenate([buf, pad], axis=1), second)
        seconds = n / self.rate
        events = [Event(str(path), float(i), float(min(i + 1, seconds)), label, score)
                  for (i, label), score in sorted(found.items())]
        return FileResult(str(path), seconds, events, frame_seconds=1.0)


# ------------------------------------------------------------------------------------- files ---


def expand(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given and every file under a folder (recursively, sorted; hidden files left out)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file()
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
        elif p.is_file():
            out.append(p)
        else:
            raise DefectbenchError(f"{p}: no such file or folder")
    seen: set[Path] = set()
    return [f for f in out if not (f.resolve() in seen or seen.add(f.resolve()))]  # each file once


def write_events(out: Path, events: list[Event], meta: dict[str, Any], skipped: list[tuple[str, str]]) -> None:
    """``.csv`` (file,start,end,label,score), ``.tsv`` (DCASE: filename onset offset event_label), ``.json``."""
    import csv

    from .owned_files import EVENT_HEADERS, replace_atomically, written_by

    def write(tmp: Path) -> None:
        if out.suffix == ".json":
            tmp.write_text(json.dumps({"written_by": written_by(), **meta, "events": [e.__dict__ for e in events],
                                       "skipped": [{"file": f, "reason": r} for f, r in skipped]}, indent=1))
            return
        with open(tmp, "w", newline="") as f:
            if out.suffix == ".csv":
                w = csv.writer(f)
                w.writerow(EVENT_HEADERS[0].split(","))
                w.writerows([e.file, f"{e.start:.4f}", f"{e.end:.4f}", e.label, f"{e.score:.4f}"] for e in events)
            else:
                w = csv.writer(f, delimiter="\t", lineterminator="\n")
                w.writerow(EVENT_HEADERS[1].split("\t"))
                w.writerows([e.file, f"{e.start:.4f}", f"{e.end:.4f}", e.label] for e in events)

    replace_atomically(out, write, " (--out)")


def check_out(out: Path) -> None:
    if out.suffix not in FORMATS:
        raise DefectbenchError(f"--out {out}: use a .csv, .tsv (DCASE) or .json file")


@dataclass
class Report:
    files: list[FileResult]
    skipped: list[tuple[str, str]]
    meta: dict[str, Any]

    @property
    def events(self) -> list[Event]:
        return [e for f in self.files for e in f.events]


def detect(paths: Iterable[str | Path], out: str | Path, *, model: str = "hooknet", task: str | None = None,
           checkpoint: str | Path | None = None, threshold: float | None = None, plot_dir: str | Path | None = None,
           device: str = "cpu", progress: bool = True, log: Callable[[str], None] = print) -> Report:
    """Scan ``paths`` (files, folders recursively), write the events to ``out``; returns the report."""
    import time

    from .progress import make_progress

    out = Path(out)
    check_out(out)
    if threshold is not None and not 0.0 <= threshold <= 1.0:  # NaN fails too
        raise DefectbenchError(f"--threshold {threshold}: a score threshold is between 0 and 1")
    files = expand(paths)
    if not files:
        raise DefectbenchError("no files to scan")
    from .owned_files import check_replaceable

    # before any scanning: the events file and every timeline may replace only what defectbench wrote
    check_replaceable(out, " (--out)")
    if plot_dir is not None:
        check_replaceable([plot_path(Path(plot_dir), f) for f in files], " (--plot)")
    scanner = Scanner(model, task, checkpoint, threshold, device)
    totals = [probe_seconds(f) for f in files]
    results: list[FileResult] = []
    skipped: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    with make_progress("s audio", progress) as bar:
        task_id = bar.add_task(f"detect 0/{len(files)} files", total=sum(totals) or None)
        for i, (f, expected) in enumerate(zip(files, totals)):
            done = [0.0]

            def advance(s: float) -> None:
                done[0] += s
                bar.advance(task_id, s)

            try:
                r = scanner.scan(f, keep_frames=plot_dir is not None, advance=advance)
            except SkipItem as exc:
                skipped.append((str(f), str(exc)))
                bar.advance(task_id, max(0.0, expected - done[0]))
                continue
            finally:
                bar.update(task_id, description=f"detect {i + 1}/{len(files)} files")
            results.append(r)
            if plot_dir is not None:
                from .plots import detection_timeline

                detection_timeline(r, plot_path(Path(plot_dir), f), scanner.threshold)
    seconds = time.perf_counter() - t0
    if not results:  # an events file would read as "no defects found" in audio nobody scanned
        f, reason = skipped[0]
        more = f" (and {len(skipped) - 1} more file(s) unreadable)" if len(skipped) > 1 else ""
        raise DefectbenchError(f"nothing scanned, {out} not written: {f}: {reason}{more}")
    audio = sum(r.seconds for r in results)
    meta = {**scanner.describe(), "files": len(files), "scanned": len(results), "audio_seconds": round(audio, 3),
            "wall_seconds": round(seconds, 3)}
    report = Report(results, skipped, meta)
    write_events(out, report.events, meta, skipped)
    log(f"{len(report.events)} event(s) in {len(results)} file(s), {audio:.1f} s of audio in {seconds:.1f} s "
        f"({audio / seconds if seconds else 0:.1f}x real time); wrote {out}")
    if skipped:
        log(f"skipped {len(skipped)} file(s):")
        for f, reason in skipped:
            log(f"  - {f}: {reason}")
    return report


def plot_path(plot_dir: Path, path: Path) -> Path:
    """The timeline PNG of one scanned file."""
    return plot_dir / (_safe_name(path) + ".png")


def _safe_name(path: Path) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(path).strip("/"))[-150:]
