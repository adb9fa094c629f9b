"""Widen trained Hook-Net weights to a configuration with k times the channels, keeping the function.

Net2WiderNet (Chen, Goodfellow & Shlens, "Net2Net", ICLR 2016), written here because no library we use
does it for this U-Net: every block's channel c_i = fc * (i + 1) becomes k * c_i; new channel j copies
old channel ``j % c_i`` (its incoming weights, bias and batch-norm parameters and statistics), and every
layer that reads a widened channel splits that channel's outgoing weight over its k copies. The split
shares are random (they sum to 1 for every weight), so the widened network computes the same outputs
as the narrow one, in training and evaluation mode, while its copies get different gradients and
drift apart from the first step. Used by ``defectbench train --config small --init <cpu weights>``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from defectbench.core import DefectbenchError

SPLIT_SEED = 20161  # the split shares' generator: the same narrow weights always widen to the same wide ones


def widen_factor(narrow, wide) -> int | None:
    """k where ``wide`` is ``narrow`` with fc times k (every other field equal, the data fields aside), else None."""
    if wide.fc % narrow.fc or wide.fc == narrow.fc:
        return None
    if replace(narrow, fc=wide.fc, positive_rate=wide.positive_rate) != wide:
        return None
    return wide.fc // narrow.fc


def _copies(c: int, k: int) -> torch.Tensor:
    return torch.arange(k * c) % c  # new channel j -> old channel j % c


def _shares(shape: tuple[int, ...], k: int, dim: int, g: torch.Generator) -> torch.Tensor:
    """Random shares over the k copies along ``dim`` (grouped as copy-major, like :func:`_copies`), summing to 1."""
    n = shape[dim] // k
    s = torch.rand((*shape[:dim], k, n, *shape[dim + 1:]), generator=g, dtype=torch.float64) + 0.5  # in [0.5, 1.5)
    s = s / s.sum(dim=dim, keepdim=True)
    return s.reshape(shape)


def widen_state_dict(state: dict[str, torch.Tensor], narrow, wide, generator: torch.Generator | None = None
                     ) -> dict[str, torch.Tensor]:
    """The narrow model's state dict as a state dict of the wide configuration (same outputs)."""
    k = widen_factor(narrow, wide)
    if k is None:
        raise DefectbenchError(f"hooknet fc={wide.fc} is not a widening of fc={narrow.fc} with the other fields equal")
    g = generator or torch.Generator().manual_seed(SPLIT_SEED)
    ch = [narrow.channels(i) for i in range(narrow.depth)]
    out: dict[str, torch.Tensor] = {}

    def produce(t: torch.Tensor, c: int, dim: int = 0) -> torch.Tensor:
        return t.index_select(dim, _copies(c, k))

    def consume(t: torch.Tensor, groups: list[int], dim: int) -> torch.Tensor:
        """Input channels along ``dim`` made of concatenated widened groups of the given old sizes."""
        parts, start = [], 0
        for c in groups:
            part = t.narrow(dim, start, c).index_select(dim, _copies(c, k))
            parts.append((part.double() * _shares(tuple(part.shape), k, dim, g)).to(t.dtype))
            start += c
        return torch.cat(parts, dim)

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{prefix}.{name}"] = produce(state[f"{prefix}.{name}"], c)
        out[f"{prefix}.num_batches_tracked"] = state[f"{prefix}.num_batches_tracked"].clone()

    for i, c in enumerate(ch):
        p = f"down.{i}"
        c_in = [ch[i - 1]] if i else []  # the first block reads the 1-channel waveform: nothing to split
        w = state[f"{p}.conv1.weight"]
        out[f"{p}.conv1.weight"] = produce(consume(w, c_in, 1) if c_in else w, c)
        out[f"{p}.conv1.bias"] = produce(state[f"{p}.conv1.bias"], c)
        bn(f"{p}.bn1", c)
        out[f"{p}.conv2.weight"] = produce(consume(state[f"{p}.conv2.weight"], [c], 1), c)
        out[f"{p}.conv2.bias"] = produce(state[f"{p}.conv2.bias"], c)
        bn(f"{p}.bn2", c)
        if f"{p}.skip.weight" in state:
            w = state[f"{p}.skip.weight"]
            out[f"{p}.skip.weight"] = produce(consume(w, c_in, 1) if c_in else w, c)
            out[f"{p}.skip.bias"] = produce(state[f"{p}.skip.bias"], c)
    bottom = ch[-1]
    if narrow.bottleneck:
        out["bottleneck.0.weight"] = produce(consume(state["bottleneck.0.weight"], [bottom], 1), bottom)
        out["bottleneck.0.bias"] = produce(state["bottleneck.0.bias"], bottom)
        bn("bottleneck.1", bottom)
    c_in = bottom
    for j in range(narrow.depth):
        p, c = f"up.{j}", ch[narrow.depth - 1 - j]
        out[f"{p}.up.weight"] = produce(consume(state[f"{p}.up.weight"], [c_in], 0), c, dim=1)  # [in, out, k]
        out[f"{p}.up.bias"] = produce(state[f"{p}.up.bias"], c)
        out[f"{p}.conv.weight"] = produce(consume(state[f"{p}.conv.weight"], [c, c], 1), c)  # cat([up, skip])
        out[f"{p}.conv.bias"] = produce(state[f"{p}.conv.bias"], c)
        bn(f"{p}.bn", c)
        c_in = c
    out["out.weight"] = consume(state["out.weight"], [c_in], 1)
    out["out.bias"] = state["out.bias"].clone()
    missing = set(state) - set(out)
    if missing:  # a layer this function does not know: fail rather than widen half a model
        raise DefectbenchError(f"hooknet widening does not know the layers {sorted(missing)[:4]}")
    return out
