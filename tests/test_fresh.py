"""Training on fresh defects (defectbench.fresh, issue 11): new defects every epoch, the same rows for the
same (seed, epoch) whatever the DataLoader worker count."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from defectbench.fresh import FreshDefects
from defectbench.training import loader


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def row_hashes(data: FreshDefects, epoch: int, workers: int) -> set[str]:
    """Content hashes (audio + target) of every row of an epoch, through the real DataLoader."""
    data.epoch = epoch
    out = set()
    for b in loader(data, batch_size=16, workers=workers, pin=False):
        for a, t in zip(b["audio"], b["target"]):
            out.add(hashlib.sha256(a.numpy().tobytes() + t.numpy().tobytes()).hexdigest())
    return out


def test_epochs_differ_and_worker_counts_agree():
    data = FreshDefects("fma-clicks", "synth:1", seed=3, overrides={"defect.probability": 0.5})
    assert len(data.items) == 3
    e0 = row_hashes(data, 0, 0)
    assert len(e0) == len(data)  # 3 pieces x 50 segments, all distinct
    assert row_hashes(data, 0, 2) == e0  # same (seed, epoch), 2 worker processes
    e1 = row_hashes(data, 1, 1)
    assert len(e1) == len(e0) and len(e0 & e1) < len(e0) // 2  # clicked segments differ between epochs
    other_seed = FreshDefects("fma-clicks", "synth:1", seed=4, overrides={"defect.probability": 0.5})
    assert row_hashes(other_seed, 0, 0) != e0


def test_the_clean_audio_is_the_source_and_only_defects_change():
    data = FreshDefects("fma-clicks", "synth:1", seed=0, overrides={"defect.probability": 0.5})
    item = data.items[0]
    a = list(data.item_rows(item, 0))
    b = list(data.item_rows(item, 1))
    clicked = lambda rows: {i for i, (_, _, t, _) in enumerate(rows) if t.any()}  # noqa: E731
    assert clicked(a) != clicked(b)
    both_clean = [i for i in range(len(a)) if i not in clicked(a) | clicked(b)]
    assert both_clean and all(np.array_equal(a[i][1], b[i][1]) for i in both_clean)  # the same clean segment
