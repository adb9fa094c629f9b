"""Training data drawn fresh every epoch (the music paper's on-the-fly mode).

:class:`FreshDefects` streams training rows made from the *clean* audio of a recipe's source with the
recipe's own pipeline and defect functions, exactly as ``defectbench build`` would make them, except
that each epoch has its own seed: the pipeline runs with ``epoch_seed(seed, epoch)`` in place of the
recipe seed, so every sample's generator is ``rng_for(epoch_seed, item id, segment index)``, i.e. one
generator per (seed, epoch, item, segment). A CPU run thus sees new clicks, glitches or intervals in
every epoch without a training set on disk; validation and test stay built, fingerprinted datasets.

- The rows of an epoch are a pure function of (recipe, source, seed, epoch): the DataLoader worker
  count only changes which worker makes which item (items are dealt round-robin from an order
  shuffled per epoch), never what an item's rows are.
- ``overrides`` changes recipe options for training only (``defect.probability=0.5`` shows the model
  more clicks per segment than the recipe's 0.1); the model card records them.
- Items the engine would skip for a declared reason (:class:`~defectbench.core.SkipItem`: too short,
  silent, unreadable...) are skipped and counted; anything else is an error and stops the run.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .audio_io import as_float32
from .core import DefectbenchError, SkipItem, buffer_shuffle
from .recipe import load_recipe

EPOCH_STREAM = 0xF2E5


def epoch_seed(seed: int, epoch: int) -> int:
    """The recipe seed used for training epoch ``epoch`` (a 63-bit integer from (seed, epoch))."""
    state = np.random.SeedSequence([int(seed) & (2**64 - 1), int(epoch), EPOCH_STREAM]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["defect.probability=0.5"]`` -> ``{"defect.probability": 0.5}`` (values parsed as JSON when they can be)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DefectbenchError(f"--set {pair!r}: expected KEY=VALUE (e.g. defect.probability=0.5)")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def apply_overrides(options: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of a recipe's ``[options]`` with dotted keys replaced (``defect.probability``)."""
    options = copy.deepcopy(options)
    for dotted, value in overrides.items():
        node = options
        *parents, leaf = dotted.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise DefectbenchError(f"--set {dotted}: the recipe has no options table {p!r}")
            node = node[p]
        if leaf not in node and not isinstance(node, dict):
            raise DefectbenchError(f"--set {dotted}: no such option")
        node[leaf] = value
    return options


class FreshDefects(IterableDataset):
    """Rows ``(audio float32 [n], target float32 [frames], label int64)`` made fresh for each epoch.

    ``recipe``: a recipe name or path (the dataset's own, for validation to match); ``source``: a source
    spec (``synth:60``, ``folder:/music``...); ``split``: the source split whose clean audio is used.
    ``rank``/``world`` share the items between torchrun processes as ``ParquetRows`` shares row groups.
    """

    def __init__(self, recipe: str | Path, source: str | None = None, *, metadata: str | Path | None = None,
                 split: str = "train", seed: int = 0, overrides: dict[str, Any] | None = None,
                 buffer: int = 1024, rank: int = 0, world: int = 1, rows_per_item: float | None = None) -> None:
        from .sources import list_source

        self.recipe_ref = str(recipe)
        base = load_recipe(recipe)
        self.overrides = dict(overrides or {})
        options = apply_overrides(base.options, self.overrides)
        try:
            self.recipe = base.model_copy(update={"options": options})
            self.recipe.make_pipeline()  # validates the overridden options once, here
        except Exception as exc:  # pydantic's ValidationError: name the bad override
            first = str(exc).splitlines()
            raise DefectbenchError(f"--set {self.overrides}: invalid for recipe {base.name}: "
                                   f"{' '.join(first[:3])}") from None
        self.source = source or base.source.default
        listing = list_source(self.source, Path(metadata) if metadata else None, base.seed)
        self.items = [it for it in listing.items if it.split == split]
        if not self.items:
            raise DefectbenchError(f"source {self.source!r} has no {split} items to train on")
        self.split, self.seed, self.buffer = split, seed, buffer
        self.rank, self.world = rank, world
        self.epoch = 0
        self.units = self.items  # the training loop checks there is enough to share over the ranks
        per_item = self.recipe.options.get("segments_per_piece") or rows_per_item or 1
        self.num_rows = max(1, round(len(self.items) * float(per_item)))
        """An estimate for progress and the step budget: pieces x segments per piece, or, for pipelines whose
        row count depends on the audio (1 s chunks), items x ``rows_per_item`` (e.g. a built split's rows per item)."""

    def __len__(self) -> int:
        return self.num_rows

    def describe(self) -> dict[str, Any]:
        return {"mode": "fresh defects every epoch", "recipe": self.recipe.name, "recipe_sha256": self.recipe.sha256,
                "source": self.source, "split": self.split, "items": len(self.items), "overrides": self.overrides}

    def item_rows(self, item, epoch: int) -> Iterator[tuple[str, np.ndarray, np.ndarray, int]]:
        """``(id, audio, target, label)`` of one source item in epoch ``epoch``; SkipItem where the engine skips."""
        from .engine import prepare_item

        pipeline = self._pipeline()
        # decoded and converted exactly as the engine does for a build (only the audio the recipe uses;
        # a long video spooled to a temporary file)
        prepared = prepare_item(item, self.recipe, pipeline)
        try:
            for sample in pipeline.process(item, prepared.audio, self.recipe.source.rate, epoch_seed(self.seed, epoch)):
                yield sample.id, as_float32(sample.audio), np.asarray(sample.target, dtype=np.float32), int(sample.label)
        finally:
            prepared.close()

    def _pipeline(self):
        if getattr(self, "_pipe", None) is None:
            self._pipe = self.recipe.make_pipeline()
        return self._pipe

    def order(self, epoch: int) -> list[int]:
        """Item indices of an epoch, shuffled from (seed, epoch): the same in every process."""
        return [int(i) for i in np.random.default_rng([self.seed, epoch, 0x0D3]).permutation(len(self.items))]

    def __iter__(self):
        epoch = self.epoch
        order = self.order(epoch)
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        share = self.rank * workers + worker
        mine = order[share :: self.world * workers]
        rng = np.random.default_rng([self.seed, epoch, share, 0xB0F])
        self.skipped = []

        def rows():
            for index in mine:
                item = self.items[index]
                try:
                    made = list(self.item_rows(item, epoch))  # the whole item, or nothing (SkipItem)
                except SkipItem as exc:
                    self.skipped.append((item.id, str(exc)))
                    continue
                for _, audio, target, label in made:
                    yield audio, target, label

        yield from buffer_shuffle(rows(), rng, self.buffer)
