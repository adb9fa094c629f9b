"""``video-chunks``: the video paper's audio-artifact dataset (section 4; SPEC 1.4).

For each base audio (int16 stereo at 48 kHz):

1. every 1 s chunk of every channel of the clean base audio is a ``no_defect`` sample (once);
2. for each configured defect, Algorithm 1 (:mod:`defectbench.intervals`) tiles the audio with
   alternating clean/defective intervals and the defect is applied to the defective ones, giving one
   degraded copy per defect (hum, hiss, distortion, additive click, reductive click);
3. each copy is cut per channel into 1 s chunks; a chunk is kept, labelled with the defect's class,
   only where it differs from the clean audio at the same cumulative shift (reductive clicks shorten
   the audio, so later chunks are compared with the clean audio shifted by the samples removed before
   them: only chunks that hold a discontinuity are defective).

The defect's parameters are drawn once per base audio (the paper) from the whole base audio, or per
interval when ``per_interval = true``; realisations (hiss noise, click positions) are always drawn per
interval. Randomness: ``rng_for(seed, video, PIECE, "<defect>:intervals")`` for the intervals,
``rng_for(seed, video, PIECE, "<defect>")`` for per-audio parameters and
``rng_for(seed, video, interval_index, "<defect>")`` per interval: a build is the same for any number
of workers, and each defect's copy is independent of which other defects the recipe lists.

Each sample: int16 1-D chunk, a 100-frame target (1 where the defect changed samples; for reductive
clicks, where the junction is), the label, and metadata (video, channel, chunk, shift, defect, the
interval(s) it overlaps and their parameters).
"""

from __future__ import annotations

import bisect
from typing import Annotated, Any, Iterator, Union

import numpy as np
from pydantic import Field, model_validator

from ..core import PIECE, Item, Sample, canonical_json, frames_from_mask, rng_for
from ..defects import make
from ..defects.click_additive import ClickAdditive
from ..defects.click_reductive import ClickReductive
from ..defects.distortion import Distortion
from ..defects.hiss import Hiss
from ..defects.hum import Hum
from ..intervals import IntervalConfig, simulate_intervals
from ..spool import SpooledAudio
from . import Pipeline, PipelineConfig, register

LABELS = ["no_defect", "hum", "hiss", "distortion", "click"]
DefectSection = Annotated[
    Union[Hum.Config, Hiss.Config, Distortion.Config, ClickAdditive.Config, ClickReductive.Config],
    Field(discriminator="kind"),
]


class VideoChunksConfig(PipelineConfig):
    defects: list[DefectSection] = Field(
        default_factory=lambda: [Hum.Config(), Hiss.Config(), Distortion.Config(), ClickAdditive.Config(), ClickReductive.Config()]
    )
    intervals: IntervalConfig = IntervalConfig()
    per_interval: bool = False
    """Draw the defect parameters per defective interval instead of once per base audio (the paper)."""
    chunk_seconds: float = Field(default=1.0, gt=0)
    frames_per_second: int = Field(default=100, gt=0)

    @model_validator(mode="after")
    def _unique(self) -> "VideoChunksConfig":
        kinds = [d.kind for d in self.defects]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"each defect kind at most once, got {kinds}")
        return self


def to_int16(audio: np.ndarray) -> np.ndarray:
    """float32 ``int16 / 32768`` (the video source) back to exact int16; other sources are rounded."""
    # float32 * 2**15 is exact, so no float64 copy is needed (a 47-min stereo base audio is 1 GB as float32)
    scaled = np.asarray(audio, dtype=np.float32) * np.float32(32768.0)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -32768, 32767, out=scaled)
    return scaled.astype(np.int16)


@register
class VideoChunks(Pipeline):
    name = "video-chunks"
    task = "multiclass"
    Config = VideoChunksConfig

    def __init__(self, config: VideoChunksConfig, rate: int, channels: int) -> None:
        super().__init__(config, rate, channels)
        self.chunk = int(round(config.chunk_seconds * rate))
        self.frames = int(round(config.chunk_seconds * config.frames_per_second))
        if self.chunk % self.frames:
            raise ValueError(f"{self.chunk}-sample chunks do not split into {self.frames} frames")
        self.min_samples = self.chunk
        self.defects = [make(d) for d in config.defects]

    def features(self) -> dict[str, Any]:
        from datasets import ClassLabel, List, Value

        return {
            "target": List(Value("uint8")),
            "label": ClassLabel(names=LABELS),
            "split": Value("string"),
            "item_id": Value("string"),
            "segment_index": Value("int32"),
            "start_sample": Value("int64"),
            "video_id": Value("string"),
            "channel": Value("int8"),
            "shift": Value("int64"),
            "defect": Value("string"),
            "interval_index": Value("int32"),
            "interval_start": Value("int64"),
            "interval_end": Value("int64"),
            "changed_samples": Value("int32"),
            "genre": Value("string"),
            "language": Value("string"),
            "source_meta": Value("string"),
            "params": Value("string"),
        }

    # -- one base audio ------------------------------------------------------------------------
    streams = True
    """``process`` also takes a :class:`~defectbench.spool.SpooledAudio` (the engine spools a streamed
    source to disk): everything below reads slices of the base audio and keeps at most one interval
    of a degraded copy in memory, so memory does not grow with the length of a video."""

    def process(self, item: Item, audio, rate: int, seed: int) -> Iterator[Sample]:
        x = audio if isinstance(audio, SpooledAudio) else to_int16(audio)
        src = self._source_meta(item)
        zeros = np.zeros(self.frames, dtype=np.uint8)
        for ch in range(x.shape[0]):
            for c in range(x.shape[1] // self.chunk):
                s = c * self.chunk
                self.count("chunks_no_defect")
                yield self._sample(item, "none", "no_defect", ch, c, s, 0, x[ch, s : s + self.chunk].copy(),
                                   zeros, 0, [], src)
        for defect in self.defects:
            yield from self._defective(item, x, rate, seed, defect, src)

    def degrade(self, item_id: str, x: np.ndarray, rate: int, seed: int, defect) -> dict[str, Any] | None:
        """One defect's whole degraded copy of ``x`` (Algorithm 1) in memory, or None where it is not applicable.

        Returns ``audio`` [channels, n'], ``mask`` [channels, n'] (the defect's changed samples),
        ``junctions``/``shifts`` (output index of each reductive junction and the cumulative shift
        after it) and ``intervals`` (list of (Interval, params) for the defective intervals). The
        build itself uses :meth:`_copy`, a piece at a time.
        """
        copy = self._copy(item_id, x, rate, seed, defect)
        if copy is None:
            return None
        pieces = list(copy.pieces())
        return {
            "audio": np.concatenate([p for p, _ in pieces], axis=1),
            "mask": np.concatenate([m for _, m in pieces], axis=1),
            "junctions": np.asarray(copy.junctions, dtype=np.int64),
            "shifts": np.asarray(copy.shifts, dtype=np.int64),
            "intervals": copy.intervals,
        }

    def _copy(self, item_id: str, x, rate: int, seed: int, defect) -> "_Copy | None":
        """The intervals and per-audio parameters of one defect's copy; None where it is not applicable."""
        kind = defect.kind
        intervals = simulate_intervals(rng_for(seed, item_id, PIECE, f"{kind}:intervals"), x.shape[1], rate,
                                       self.config.intervals)
        base = None
        if not self.config.per_interval and defect.per_audio:
            base = defect.sample(rng_for(seed, item_id, PIECE, kind), x, rate)
            if base.get("applicable") is False:
                self.count(f"{kind}_not_applicable_audio")
                return None
        return _Copy(self, item_id, x, rate, seed, defect, intervals, base)

    def _defective(self, item: Item, x, rate: int, seed: int, defect, src: dict) -> Iterator[Sample]:
        copy = self._copy(item.id, x, rate, seed, defect)
        if copy is None:
            return
        chunk = self.chunk
        c = 0
        held: list[tuple[np.ndarray, np.ndarray]] = []  # output not yet cut, from output index `held_from`
        held_from = held_len = 0
        for piece, piece_mask in copy.pieces():
            held.append((piece, piece_mask))
            held_len += piece.shape[1]
            if held_len < (c + 1) * chunk - held_from:
                continue
            d = np.concatenate([p for p, _ in held], axis=1)
            mask = np.concatenate([m for _, m in held], axis=1)
            while (c + 1) * chunk <= held_from + d.shape[1]:
                # every junction and interval that can touch this chunk is known: the copy's
                # output (and so its clean input) already runs past the chunk's end
                o = c * chunk - held_from
                yield from self._chunk_samples(item, x, copy, defect, c, d[:, o : o + chunk], mask[:, o : o + chunk], src)
                c += 1
            o = c * chunk - held_from
            held, held_from = [(d[:, o:], mask[:, o:])], c * chunk
            held_len = d.shape[1] - o

    def _chunk_samples(self, item: Item, x, copy: "_Copy", defect, c: int, d: np.ndarray, mask: np.ndarray,
                       src: dict) -> Iterator[Sample]:
        s = c * self.chunk
        k0, k1 = copy.shift_at(s), copy.shift_at(s + self.chunk - 1)
        # the clean audio at the cumulative shift in effect at the chunk's start (SPEC 1.4)
        changed = d != x[:, s + k0 : s + k0 + self.chunk]
        lo, hi = s + k0, s + k1 + self.chunk  # the chunk's span in clean coordinates
        ivs = copy.overlapping(lo, hi)
        for ch in range(d.shape[0]):
            n_changed = int(changed[ch].sum())
            if not n_changed:
                if ivs:
                    self.count(f"{defect.kind}_chunks_unchanged")
                continue
            self.count(f"chunks_{defect.label}")
            target = frames_from_mask(mask[ch], self.frames)
            yield self._sample(item, defect.kind, defect.label, ch, c, s, k0, d[ch].copy(), target, n_changed, ivs, src)

    # -- rows ----------------------------------------------------------------------------------
    @staticmethod
    def _source_meta(item: Item) -> dict[str, Any]:
        meta = dict(item.meta)
        genre, language = meta.pop("genre", ""), meta.pop("language", "")
        as_text = lambda v: v if isinstance(v, str) else canonical_json(v)  # noqa: E731
        return {"genre": as_text(genre), "language": as_text(language), "source_meta": canonical_json(meta)}

    def _sample(self, item, kind, label, ch, c, s, shift, chunk, target, n_changed, ivs, src) -> Sample:
        first = ivs[0][0] if ivs else None
        return Sample(
            id=f"{item.id}:{kind}:ch{ch}:{c:06d}",
            audio=chunk,
            rate=self.rate,
            target=target,
            label=LABELS.index(label),
            meta={
                "split": item.split,
                "item_id": item.id,
                "segment_index": c,
                "start_sample": s,
                "video_id": item.id,
                "channel": ch,
                "shift": shift,
                "defect": kind,
                "interval_index": first.index if first else -1,
                "interval_start": first.start if first else -1,
                "interval_end": first.end if first else -1,
                "changed_samples": n_changed,
                **src,
            },
            params={"defect": kind, "intervals": [
                {"index": iv.index, "start": iv.start, "end": iv.end, "seconds": iv.seconds, "params": p} for iv, p in ivs
            ]} if ivs else {"defect": kind},
        )

    def card_section(self) -> str:
        return CARD.format(
            per=("per defective interval" if self.config.per_interval else "once per base audio (the paper)"),
            kinds=", ".join(d.kind for d in self.defects),
        )


class _Copy:
    """One defect's degraded copy of a base audio, produced an interval at a time (Algorithm 1).

    ``pieces()`` yields each interval's output and mask in order; as it goes it records the
    defective intervals with their parameters, and for reductive clicks the output index of each
    junction with the cumulative shift after it (``shift_at``)."""

    def __init__(self, pipeline: VideoChunks, item_id: str, x, rate: int, seed: int, defect, intervals, base) -> None:
        self.pipeline, self.item_id, self.x, self.rate, self.seed = pipeline, item_id, x, rate, seed
        self.defect, self.all_intervals, self.base = defect, intervals, base
        self.junctions: list[int] = []
        self.shifts: list[int] = []
        self.intervals: list[tuple[Any, dict[str, Any]]] = []
        self._starts: list[int] = []  # of the defective intervals so far, in order (they tile the audio,
        self._ends: list[int] = []  # so both increase)

    def shift_at(self, i: int) -> int:
        k = bisect.bisect_right(self.junctions, i) - 1
        return self.shifts[k] if k >= 0 else 0

    def overlapping(self, lo: int, hi: int) -> list[tuple[Any, dict[str, Any]]]:
        """The defective intervals (with their parameters) that overlap ``[lo, hi)`` in clean coordinates."""
        return self.intervals[bisect.bisect_right(self._ends, lo) : bisect.bisect_left(self._starts, hi)]

    def pieces(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        defect, kind, count = self.defect, self.defect.kind, self.pipeline.count
        out_pos = shift = 0
        for iv in self.all_intervals:
            seg = self.x[:, iv.start : iv.end]
            if iv.defective:
                params = defect.sample(rng_for(self.seed, self.item_id, iv.index, kind), seg, self.rate)
                if self.base is not None:
                    params.update({k: self.base[k] for k in defect.per_audio})
                params["offset"] = iv.start
                if params.get("applicable") is False:
                    count(f"{kind}_not_applicable_interval")
                if "not_placed" in params:
                    count(f"{kind}_clicks_not_placed", params["not_placed"])
                    count(f"{kind}_clicks_placed", len(params["removed"]))
                seg_out, seg_mask = defect.apply(seg, self.rate, params)
                removed_here = 0
                for p, length in sorted(params.get("removed", [])):
                    removed_here += length
                    self.junctions.append(out_pos + p + length - removed_here)
                    self.shifts.append(shift + removed_here)
                shift += removed_here
                self.intervals.append((iv, params))
                self._starts.append(iv.start)
                self._ends.append(iv.end)
            else:
                seg_out, seg_mask = seg, np.zeros(seg.shape, dtype=bool)
            out_pos += seg_out.shape[1]
            yield seg_out, seg_mask


CARD = """\
## How this dataset was built (video paper, section 4; defectbench SPEC 1.4)

Base audio: each video's first audio stream, demuxed with PyAV/FFmpeg, downmixed to stereo, resampled
to 48 kHz, 16-bit PCM. Splits are by video (about 64 / 17 / 19 %, stratified by genre and language
when a metadata CSV gives them), never by chunk. Defects simulated: {kinds}; parameters drawn {per}.

For each base audio and each defect, Algorithm 1 alternates clean and defective intervals (first
state random, each `0.5 + Gamma(1, 10)` s), giving one degraded copy per defect. Every channel of
every copy is cut into 1 s chunks (48000 samples; a trailing partial chunk is dropped).

| class | what was done | kept chunk |
|---|---|---|
| no_defect | the clean base audio | every chunk, once per base audio |
| hum | add `A sin(2 pi f t)`, f integer in (20, 1220) Hz, A integer in (60, 32768 - max abs x) | chunk differs from the clean chunk |
| hiss | add integer uniform noise in [-A, A], A as for hum | same |
| distortion | clip each channel to [-v, v], v = floor(r max abs x of the channel), r in {{0.1, ..., 0.7}} | same |
| click (additive) | add a 32768 impulse through a 3rd-order Butterworth low-pass, cut-off in (0.05, 0.45) of the rate | same |
| click (reductive) | remove a segment holding a zero crossing whose removal leaves a jump >= 3277 | chunk differs from the clean audio at the same cumulative shift |

`target` (100 frames per chunk, 10 ms each) marks where the defect changed samples; for reductive
clicks it marks the junction. `params` (JSON) holds every sampled value of every defective interval
the chunk overlaps; `segment_index` / `start_sample` place the chunk in its channel of the degraded
copy, `shift` is the number of samples removed before it (reductive clicks; the chunk's clean
counterpart starts at `start_sample + shift`), `interval_*` name the first defective interval it
overlaps (clean-audio coordinates), `changed_samples` how many of its samples differ from the clean
audio at that shift, `source_meta` the source's other metadata as JSON.

### Differences from the paper, and why
- **Clean chunks are kept once**, from the clean base audio, not once per degraded copy. The paper
  makes 6 versions of each base audio, adds "all No Defect chunks" and a defective chunk only if it
  differs from the corresponding No Defect chunk; the clean chunks of a degraded copy are identical to
  the base audio's, and its Table 1 has about 1.85 no-defect chunks per hum chunk (447168 / 241990),
  which is what one copy of clean chunks gives (defective intervals cover about half the audio, plus the
  chunks straddling a boundary). Keeping them per copy would give about 6 no-defect chunks per hum chunk.
- Algorithm 1's `intervalEnd = max(...)` is read as `min(...)` (with max the first interval would cover
  the whole audio).
- The paper's ranges `{{x in Z | 20 > x > 1220}}` are read as the open ranges 20 < x < 1220 (likewise for
  the amplitude); where the amplitude range is empty (max abs x >= 32707) the defect is not applicable
  to that base audio: no chunk, counted in the build report.
- The Butterworth cut-off is read as a fraction of the sampling rate (a range ending at 0.45 only makes
  sense below 0.5); the paper does not state the click rate, the removed length or the hum phase:
  0.4 clicks/s of defective interval (Poisson; about half the time is defective, so the expected click
  chunks per no-defect chunk are 2 x 0.5 x (1 - exp(-0.4)) = 0.33, Table 1's 0.31 to 0.34),
  removals of 48 to 960 samples (1 to 20 ms), the hum's phase continuous over the base audio.
- A reductive removal cuts the same samples out of both channels and must meet both conditions in
  each channel (a stereo stream loses both channels at once); clicks with no allowed position are
  counted (`click_reductive_clicks_not_placed`), never forced.
- Hiss noise is independent per channel; hum, additive clicks and removals are the same in both.
- The framewise `target` is new (the paper has chunk labels only).

### Class balance to compare with the paper's Table 1
| split | no defect | hum | hiss | distortion | click | total |
|---|---|---|---|---|---|---|
| train (paper) | 447168 | 241990 | 241870 | 174711 | 147742 | 1253481 |
| validation (paper) | 146282 | 78976 | 80160 | 56423 | 49300 | 411141 |
| test (paper) | 288702 | 146301 | 147672 | 104359 | 89210 | 776244 |

This build's counts per split and class are in the "Splits and labels" table below and in
`manifest.json`; what matters for the comparison is the ratio of each class to `no_defect` (the paper:
hum 0.54, hiss 0.54, distortion 0.39, click 0.33 in train). Distortion has fewer chunks than hum because clipping at `r max|x|` leaves quiet
chunks unchanged; those are counted as `distortion_chunks_unchanged`.
"""
