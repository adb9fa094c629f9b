"""``segments``: fixed-length segments of a piece, one defect per segment, then optional post-processing.

The music paper's click datasets (section 4 and 4.1; SPEC 1.1 and 1.2): each piece (mono, 44.1 kHz,
float32) gives up to ``segments_per_piece`` consecutive, non-overlapping segments of
``segment_length`` samples from its start (a shorter piece gives as many as fit; the count is
recorded). Each segment draws its defect parameters from its own generator
``rng_for(seed, item id, segment index)``; the framewise target marks every frame of
``segment_length / target_frames`` samples that holds a changed sample. A ``post`` defect (the SoX
chain) then processes every segment, clicked or not, and leaves the target as it was.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import numpy as np
from pydantic import Field, field_validator, model_validator

from .. import defects
from ..core import Item, Sample, canonical_json, frames_from_mask, rng_for
from . import Pipeline, PipelineConfig, register


def segment_features(target_frames: int, label_names) -> dict[str, Any]:
    """The columns every segment pipeline (``segments``, ``mp3-glitch``) starts with."""
    from datasets import ClassLabel, List, Value

    return {
        "target": List(Value("uint8"), length=target_frames),
        "label": ClassLabel(names=list(label_names)),
        "split": Value("string"),
        "item_id": Value("string"),
        "track_id": Value("string"),
        "artist_id": Value("string"),
        "genres": List(Value("string")),
        "segment_index": Value("int32"),
        "segments_in_piece": Value("int32"),
        "start_sample": Value("int64"),
    }


def segment_meta(item: Item, index: int, count: int, start: int) -> dict[str, Any]:
    """Values of the :func:`segment_features` metadata columns for segment ``index`` of ``item``."""
    return {"item_id": item.id, "track_id": str(item.meta.get("track_id", item.id)),
            "artist_id": str(item.meta.get("artist_id", "")),
            "genres": [str(g) for g in item.meta.get("genres", [])],
            "segment_index": index, "segments_in_piece": count, "start_sample": start}


class SegmentsConfig(PipelineConfig):
    segment_length: int = Field(default=16384, gt=0)
    segments_per_piece: int = Field(default=50, gt=0)
    target_frames: int = Field(default=128, gt=0)
    label_names: tuple[str, str] = ("clean", "click")
    defect: dict[str, Any] = Field(default_factory=lambda: {"kind": "click"})
    post: dict[str, Any] | None = None

    @field_validator("defect", "post")
    @classmethod
    def _known_defect(cls, value: dict[str, Any] | None, info) -> dict[str, Any] | None:
        if value is not None:
            defect = defects.make(value)  # raises a ValueError naming the bad key or the known kinds
            audio = getattr(defect, "audio", None)
            if audio != "float-mono" or (info.field_name == "defect" and not hasattr(defect, "columns")):
                usable = defects.kinds_taking("float-mono", with_columns=info.field_name == "defect")
                raise ValueError(f"the segments pipeline carries float mono segments in [-1, 1]; defect kind "
                                 f"{defect.kind!r} takes {audio or 'undeclared'} audio (usable here: {', '.join(usable)})")
        return value

    @model_validator(mode="after")
    def _frames(self) -> "SegmentsConfig":
        if self.segment_length % self.target_frames:
            raise ValueError("segment_length must be a multiple of target_frames")
        defect = defects.make(self.defect)
        if hasattr(defect, "check"):
            defect.check(self.segment_length, 0)
        return self


@register
class SegmentsPipeline(Pipeline):
    name = "segments"
    task = "framewise"
    Config = SegmentsConfig

    def __init__(self, config: SegmentsConfig, rate: int, channels: int) -> None:
        super().__init__(config, rate, channels)
        self.defect = defects.make(config.defect)
        self.post = defects.make(config.post) if config.post else None
        self.min_samples = config.segment_length
        self.max_samples = config.segment_length * config.segments_per_piece

    def features(self) -> dict[str, Any]:
        from datasets import List, Value

        cols = {**segment_features(self.config.target_frames, self.config.label_names), **self.defect.columns()}
        if self.post is not None:
            cols["post_chain"] = List(Value("string"))
            cols["post_params"] = Value("string")
        cols["params"] = Value("string")
        return cols

    def process(self, item: Item, audio: np.ndarray, rate: int, seed: int) -> Iterator[Sample]:
        c = self.config
        mono = audio[0]
        count = min(c.segments_per_piece, len(mono) // c.segment_length)
        post_piece_params = None
        if self.post is not None and self.post.config.scope == "piece":
            post_piece_params = self.post.sample(rng_for(seed, item.id, stream="post"), mono, rate)
        for k in range(count):
            start = k * c.segment_length
            clean = mono[start : start + c.segment_length]
            params = self.defect.sample(rng_for(seed, item.id, k, stream="defect"), clean, rate)
            degraded, mask = self.defect.apply(clean, rate, params)
            all_params: dict[str, Any] = {"defect": params}
            meta = self.defect.column_values(params)
            if self.post is not None:
                post_params = post_piece_params or self.post.sample(
                    rng_for(seed, item.id, k, stream="post"), degraded, rate)
                degraded, _ = self.post.apply(degraded, rate, post_params)
                all_params["post"] = post_params
                meta["post_chain"] = [step["effect"] for step in post_params["chain"]]
                meta["post_params"] = canonical_json(post_params)
            target = frames_from_mask(mask, c.target_frames)
            self.count("positive_frames", int(target.sum()))
            self.count("frames", len(target))
            yield Sample(
                id=f"{item.id}/{k:03d}",
                audio=degraded.astype(np.float32),
                rate=rate,
                target=target,
                label=int(target.any()),
                meta={**segment_meta(item, k, count, start), **meta},
                params=all_params,
            )

    def card_section(self) -> str:
        c = self.config
        text = (f"Each piece gives up to {c.segments_per_piece} consecutive, non-overlapping segments of "
                f"{c.segment_length} samples from its start. Defect: `{json.dumps(self.defect.config.model_dump())}`. "
                f"Target: {c.target_frames} frames of {c.segment_length // c.target_frames} samples, 1 where a "
                "frame holds a changed sample.")
        if self.post is not None:
            text += (f" Every segment then goes through a random SoX chain "
                     f"`{json.dumps(self.post.config.model_dump())}`; the target stays the inserted click's frames.")
        return text
