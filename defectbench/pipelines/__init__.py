"""Pipelines turn one decoded source item into dataset rows (:class:`~defectbench.core.Sample`).

A recipe names its pipeline (``pipeline = "segments"``) and gives it an ``[options]`` table that the
pipeline's ``Config`` (a pydantic model) validates. The engine does everything around it: listing,
decoding, resampling and channel conversion, sharding, workers, writing, the manifest.

A pipeline:

- ``Config``: pydantic model of its ``[options]`` (extra keys forbidden);
- ``features()``: the dataset columns it fills besides ``id`` and ``audio`` (``datasets`` features,
  must include ``target`` and ``label``), the order being the column order;
- ``min_samples``: shortest usable decoded item (shorter ones are skipped, reason "too short");
- ``max_samples``: the most of an item it uses, from the start (None: all); sources decode no more;
- ``process(item, audio, rate, seed)``: yields samples; ``audio`` is float32 ``[channels, n]`` at the
  recipe's rate and channel count; every random draw comes from :func:`defectbench.core.rng_for`;
- ``streams``: True when ``process`` also takes a :class:`~defectbench.spool.SpooledAudio` (int16 on
  disk, read in slices) instead of an array: the engine then spools an item whose source can stream it;
- ``card_section()``: markdown for the dataset card (what was simulated, how it differs from the paper);
- ``counters``: a dict of numbers the pipeline accumulates (summed over workers into the build report).
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..core import Item, Sample


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Pipeline(ABC):
    name: ClassVar[str]
    task: ClassVar[str] = "framewise"
    """``framewise`` (target frames scored) or ``multiclass`` (``label`` is a ClassLabel scored)."""
    Config: ClassVar[type[PipelineConfig]] = PipelineConfig
    min_samples: int = 1
    max_samples: int | None = None
    streams: ClassVar[bool] = False

    def __init__(self, config: PipelineConfig, rate: int, channels: int) -> None:
        self.config = config
        self.rate = rate
        self.channels = channels
        self.counters: dict[str, float] = {}

    def count(self, key: str, n: float = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    @abstractmethod
    def features(self) -> dict[str, Any]:
        """The dataset columns besides ``id`` and ``audio`` (``datasets`` features, in column order)."""

    @abstractmethod
    def process(self, item: Item, audio: np.ndarray, rate: int, seed: int) -> Iterator[Sample]:
        """The samples of one decoded item (see the module docstring)."""

    def card_section(self) -> str:
        return ""


REGISTRY: dict[str, type[Pipeline]] = {}


def register(cls: type[Pipeline]) -> type[Pipeline]:
    REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Pipeline]:
    # Import the module named like the pipeline first (a worker then imports only what its recipe
    # needs: the video pipeline pulls in scipy); scan every module only for an unconventional name.
    module = name.replace("-", "_")
    if name not in REGISTRY and any(m.name == module for m in pkgutil.iter_modules(__path__)):
        importlib.import_module(f"{__name__}.{module}")
    if name not in REGISTRY:
        for mod in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{mod.name}")
    if name not in REGISTRY:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]
