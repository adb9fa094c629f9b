"""Hook-Net: a Wave-U-Net adaptation that localises clicks and MP3 glitches (music paper, section 3; SPEC 3).

Raw audio in (16384 samples at 44.1 kHz), 128 framewise logits out (one per 128 input samples).

- Contracting path: ``depth`` blocks, each two (zero-padded conv, batch norm, activation) followed by a
  max-pool that halves time (16384 -> 2 after 13 blocks); a residual ("vertical") skip bridges every
  block of two convolutions (a 1x1 conv where the channel count changes).
- Expanding path: ``depth`` blocks, each a transposed conv (stride 2 every second block, else 1, so the
  bottom length 2 grows by 2^6 to 128), concatenation of the matching contracting block's output
  max-pooled to the current length ("horizontal" skip), then a conv (+ batch norm, activation).
- A 1x1 conv maps the last block to one logit per frame; its bias starts at logit(positive rate).

The paper's model has 27,307,633 trainable parameters and "15 filters per contraction and 5 per
expansion". SPEC 3 reads 15 and 5 as kernel sizes (as in Wave-U-Net) with channels growing by ``fc``
per block (block i has ``fc * (i + 1)`` channels), the expanding blocks mirroring the contracting
channels. With fc = 27 that plain reading gives 26,714,719 (configuration ``plain``, 2.17 % short).
Wave-U-Net puts one more conv between the two paths; adding it here at the bottom block's width with
the expansion kernel (5) gives 27,331,777, 0.09 % above the paper: that is the ``reference``
configuration. The paper does not show where its remaining parameters sit, so this is the nearest
natural reading, not a confirmed one. Unstated choices, named in ``HookNetConfig``: LeakyReLU(0.2) as in
Wave-U-Net; batch norm and activation after the expanding conv; no activation after the transposed conv.

Not in the paper: ``spectral > 0`` adds a log-power-spectrum branch (:class:`SpectralBranch`) beside the
waveform path, for MP3 glitches: their target is a log-spectral distance on the same frame grid, and the
damage the narrow CPU models miss lies in a few bins under loud music (benchmarks/bench_glitch_errors.py).
Its output starts at zero, so weights of the same configuration without it load and give the same scores.

Not in the paper either: ``symmetric`` makes the model polarity-invariant. Its logits are the mean of the
network's logits for ``x`` and ``-x``. A click's sign is random (SPEC 1.1: ``x[n] + s*a``, ``s`` = +-1) and music
has no preferred polarity, so a click detector's score should not depend on the sign; an unconstrained
network's does (the shipped clicks weights miss different clicks on ``-x``), and the mean of the two views makes
fewer errors than either. The cost is two forward passes. The configuration holds a ``polarity`` buffer
(+1, -1), so its state dict, and the weights hash the results record, differ from the same weights without it.

Not in the paper either: ``jump_z > 0`` adds a second input, the *locally normalised jumps* (:class:`JumpZ`):
each sample-to-sample jump divided by the RMS of the jumps within ``jump_z`` samples either side, the jump's
own neighbourhood left out. The clicks the CPU models miss are the ones whose jump stands fewer than 5 local
sigmas above the drum noise they sit in (benchmarks/bench_click_errors.py, "local z"); a ReLU network can
only approximate that division, so the ratio is computed here. Its conv starts at zero weight: the weights of
the same configuration without it load and give the same scores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from defectbench.core import DefectbenchError
from defectbench.detectors import register
from defectbench.neural import LOSSES, TorchDetector, TrainingRecipe

from .hooknet_widen import widen_factor, widen_state_dict

PAPER_PARAMETERS = 27_307_633  # music paper, section 6


@dataclass
class HookNetConfig:
    depth: int = 13  # contracting blocks = expanding blocks
    fc: int = 27  # channels grow by fc per block: block i has fc * (i + 1)
    kernel_down: int = 15  # contracting conv kernel ("15 filters per contraction")
    kernel_up: int = 5  # expanding conv / transposed conv kernel ("5 per expansion")
    bottleneck: bool = True  # an extra conv (kernel_up) at the bottom, as in Wave-U-Net (see docstring)
    input_length: int = 16384
    output_length: int = 128
    leaky_slope: float = 0.2  # Wave-U-Net's LeakyReLU; the paper does not name its activation
    positive_rate: float = 0.00078  # initial output bias = logit(rate): 0.078 % of FMA click targets
    spectral: int = 0  # channels of the log-spectrum branch (SpectralBranch); 0: the paper's model
    spectral_fft: int = 256  # its window (the glitch target's n_fft), one frame per output frame
    symmetric: bool = False  # logits = mean of the logits for x and -x (polarity-invariant; see the docstring)
    jump_z: int = 0  # half-width (samples) of the locally normalised jump input (JumpZ); 0: the paper's model

    def __post_init__(self) -> None:
        bottom = self.input_length >> self.depth
        if bottom << self.depth != self.input_length or bottom < 1:
            raise ValueError(f"input_length {self.input_length} is not divisible by 2^{self.depth}")
        ups = math.log2(self.output_length / bottom)
        if ups != int(ups) or not 0 <= ups <= (self.depth // 2):
            raise ValueError(f"output_length {self.output_length} is not bottom length {bottom} times 2^k, k <= depth/2")
        hop = self.input_length // self.output_length
        if self.spectral and (self.spectral_fft < hop or (self.spectral_fft - hop) % 2):
            raise ValueError(f"spectral_fft {self.spectral_fft} must be >= the frame hop {hop}, the difference even")

    def up_strides(self) -> list[int]:
        """Stride of each expanding block: 2 at every second block (j = 1, 3, ...) until the output length."""
        n_up = int(math.log2(self.output_length / (self.input_length >> self.depth)))
        return [2 if j % 2 == 1 and j // 2 < n_up else 1 for j in range(self.depth)]

    def channels(self, i: int) -> int:
        return self.fc * (i + 1)


class DownBlock(nn.Module):
    """Two (conv, BN, activation) with a residual skip across both, then max-pool by 2."""

    def __init__(self, c_in: int, c_out: int, cfg: HookNetConfig) -> None:
        super().__init__()
        k = cfg.kernel_down
        self.conv1 = nn.Conv1d(c_in, c_out, k, padding=k // 2)
        self.bn1 = nn.BatchNorm1d(c_out)
        self.conv2 = nn.Conv1d(c_out, c_out, k, padding=k // 2)
        self.bn2 = nn.BatchNorm1d(c_out)
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.slope = cfg.leaky_slope

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.conv1(x) if extra is None else self.conv1(x) + extra  # extra: JumpZ's conv, first block only
        h = F.leaky_relu(self.bn1(h), self.slope)
        h = F.leaky_relu(self.bn2(self.conv2(h)), self.slope)
        h = h + self.skip(x)
        return F.max_pool1d(h, 2), h  # (pooled for the next block, full-length for the horizontal skip)


class UpBlock(nn.Module):
    """Transposed conv (stride 1 or 2), concatenation of the max-pooled skip, conv + BN + activation."""

    def __init__(self, c_in: int, c_skip: int, c_out: int, stride: int, cfg: HookNetConfig) -> None:
        super().__init__()
        k = cfg.kernel_up
        self.up = nn.ConvTranspose1d(c_in, c_out, k, stride=stride, padding=k // 2, output_padding=stride - 1)
        self.conv = nn.Conv1d(c_out + c_skip, c_out, k, padding=k // 2)
        self.bn = nn.BatchNorm1d(c_out)
        self.slope = cfg.leaky_slope

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)
        skip = F.max_pool1d(skip, skip.shape[-1] // x.shape[-1])  # horizontal skip at the current length
        return F.leaky_relu(self.bn(self.conv(torch.cat([x, skip], dim=1))), self.slope)


class JumpZ(nn.Module):
    """Locally normalised jumps -> a conv whose output joins the first block's first conv.

    ``z[n] = d[n] / sqrt(mean(d[m]^2 for GAP < |m - n| <= W) + EPS^2)``, ``d[n] = x[n] - x[n-1]`` (``d[0] = 0``,
    W = ``jump_z``): how many local RMS units a jump stands above the jumps around it, the +-GAP samples around
    it left out so that a click does not raise its own scale (a click is 1 to 3 samples, SPEC 1.1). ``asinh``
    keeps the sign (the model stays polarity-invariant) and compresses the clear clicks, which the waveform
    path sees anyway. Window sums come from a float64 cumulative sum (float32 would cancel catastrophically
    where quiet audio follows loud). Its conv starts at zero weight and bias.
    """

    GAP = 4
    EPS = 1e-4  # jump-scale floor (-80 dB of full scale), for digital silence

    def __init__(self, c_out: int, cfg: HookNetConfig) -> None:
        super().__init__()
        self.half = cfg.jump_z
        k = cfg.kernel_down
        self.conv = nn.Conv1d(1, c_out, k, padding=k // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    @staticmethod
    def window_sums(v: torch.Tensor, half: int) -> torch.Tensor:
        """[B, n] -> [B, n]: the sum of ``v`` over ``|m - n| <= half`` (zero beyond the ends), in float64."""
        # by hand: torch has no windowed sum that leaves a window's centre out; two cumulative-sum
        # differences give it, edges included, in O(n)
        n = v.shape[-1]
        c = torch.cumsum(v.double(), -1)
        c = torch.cat([c.new_zeros(len(c), half + 1), c, c[:, -1:].expand(-1, half)], -1)  # c[i + half + 1] = v[: i + 1].sum()
        return c[:, 2 * half + 1 : 2 * half + 1 + n] - c[:, :n]

    def z(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n] waveform -> [B, n] asinh of the locally normalised jumps."""
        d = torch.diff(x, dim=-1, prepend=x[:, :1])
        e = d.square()
        ones = torch.ones_like(e[:1])
        num = self.window_sums(e, self.half) - self.window_sums(e, self.GAP)
        den = self.window_sums(ones, self.half) - self.window_sums(ones, self.GAP)
        scale = torch.sqrt(num / den + self.EPS**2)
        return torch.asinh(d.double() / scale).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.z(x).unsqueeze(1))


class SpectralBranch(nn.Module):
    """Log power spectrum per output frame -> ``spectral`` channels per frame, mixed with the waveform path.

    Frame f is a periodic Hann window of ``spectral_fft`` samples centred on the f-th hop of input samples
    (the framing of the glitch target, :func:`defectbench.defects.mp3_glitch.power_spectra`), power floored
    at -80 dB. Batch norm per bin, then three convs over frames (kernel 3, dilation 1, 2, 4: +-7 frames of
    context), then one conv over them and the waveform path's last block. Its 1x1 output conv starts at
    zero weight: the model's logits are the waveform path's until training moves it.
    """

    def __init__(self, c_wave: int, cfg: HookNetConfig) -> None:
        super().__init__()
        self.hop = cfg.input_length // cfg.output_length
        self.n_fft = cfg.spectral_fft
        bins, s = self.n_fft // 2 + 1, cfg.spectral
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True, dtype=torch.float64).float(),
                             persistent=False)
        self.norm = nn.BatchNorm1d(bins)
        self.convs = nn.ModuleList(nn.Conv1d(bins if i == 0 else s, s, 3, padding=d, dilation=d) for i, d in enumerate((1, 2, 4)))
        self.bns = nn.ModuleList(nn.BatchNorm1d(s) for _ in range(3))
        self.mix = nn.Conv1d(s + c_wave, s, 3, padding=1)
        self.mix_bn = nn.BatchNorm1d(s)
        self.out = nn.Conv1d(s, 1, 1, bias=False)
        nn.init.zeros_(self.out.weight)
        self.slope = cfg.leaky_slope

    def log_power(self, x: torch.Tensor) -> torch.Tensor:
        """[B, n] -> [B, bins, n // hop] in dB."""
        pad = (self.n_fft - self.hop) // 2
        frames = F.pad(x, (pad, pad)).unfold(-1, self.n_fft, self.hop)[:, : x.shape[-1] // self.hop]
        power = torch.fft.rfft(frames.float() * self.window, dim=-1).abs().square()
        return (10.0 * torch.log10(power + 1e-8)).transpose(1, 2)

    def forward(self, x: torch.Tensor, wave: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.log_power(x))
        for conv, bn in zip(self.convs, self.bns):
            h = F.leaky_relu(bn(conv(h)), self.slope)
        h = F.leaky_relu(self.mix_bn(self.mix(torch.cat([h, wave], dim=1))), self.slope)
        return self.out(h)


class HookNet(nn.Module):
    def __init__(self, cfg: HookNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = [cfg.channels(i) for i in range(cfg.depth)]
        self.down = nn.ModuleList(DownBlock(1 if i == 0 else ch[i - 1], ch[i], cfg) for i in range(cfg.depth))
        bottom = ch[-1]
        if cfg.bottleneck:
            self.bottleneck = nn.Sequential(
                nn.Conv1d(bottom, bottom, cfg.kernel_up, padding=cfg.kernel_up // 2),
                nn.BatchNorm1d(bottom),
                nn.LeakyReLU(cfg.leaky_slope),
            )
        else:
            self.bottleneck = nn.Identity()
        strides = cfg.up_strides()
        self.up = nn.ModuleList()
        c_in = bottom
        for j in range(cfg.depth):
            c = ch[cfg.depth - 1 - j]  # mirror the contracting path
            self.up.append(UpBlock(c_in, c, c, strides[j], cfg))
            c_in = c
        self.out = nn.Conv1d(c_in, 1, 1)
        self.spectral = SpectralBranch(c_in, cfg) if cfg.spectral else None
        self.jump = JumpZ(ch[0], cfg) if cfg.jump_z else None
        p = cfg.positive_rate
        nn.init.constant_(self.out.bias, math.log(p / (1 - p)))  # the paper's bias initialisation
        if cfg.symmetric:
            self.register_buffer("polarity", torch.tensor([1.0, -1.0]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: [B, input_length] waveform -> [B, output_length] logits."""
        if not self.cfg.symmetric:
            return self.logits(x)
        views = (self.polarity.to(x.dtype)[:, None, None] * x).flatten(0, 1)  # [x; -x]: one batch of 2B
        return self.logits(views).unflatten(0, (2, len(x))).mean(0)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The network on one polarity: [B, input_length] -> [B, output_length]."""
        h = x.unsqueeze(1)
        skips = []
        for i, block in enumerate(self.down):
            h, s = block(h, self.jump(x) if i == 0 and self.jump is not None else None)
            skips.append(s)
        h = self.bottleneck(h)
        for block, s in zip(self.up, reversed(skips)):
            h = block(h, s)
        logits = self.out(h)
        if self.spectral is not None:
            logits = logits + self.spectral(x, h)
        return logits.squeeze(1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


CONFIGURATIONS = {
    "reference": HookNetConfig(fc=27, bottleneck=True),
    "plain": HookNetConfig(fc=27, bottleneck=False),
    "small": HookNetConfig(fc=8),  # CPU runs
    "cpu": HookNetConfig(fc=4),  # the base of the shipped CPU-trained weights (0.6 M parameters, ~70 segments/s training on 2 cores)
    "cpu-spectral": HookNetConfig(fc=4, spectral=64),  # "cpu" plus the log-spectrum branch (glitches)
    "cpu-symmetric": HookNetConfig(fc=4, symmetric=True),  # "cpu", polarity-invariant (the shipped clicks weights)
    "small-symmetric": HookNetConfig(fc=8, symmetric=True),  # "small", polarity-invariant (clicks)
    "cpu-symmetric-z": HookNetConfig(fc=4, symmetric=True, jump_z=64),  # "cpu-symmetric" + locally normalised jumps (JumpZ)
    "tiny": HookNetConfig(fc=2, depth=9),  # tests
    "tiny-spectral": HookNetConfig(fc=2, depth=9, spectral=8),  # tests
    "tiny-symmetric": HookNetConfig(fc=2, depth=9, symmetric=True),  # tests
    "tiny-symmetric-z": HookNetConfig(fc=2, depth=9, symmetric=True, jump_z=64),  # tests
}


# branches that start at zero output, by state-dict prefix: the config fields that add one (the first
# switches it on), so weights without it load and score the same (HookNetDetector.adapt_init)
ADDED_BRANCHES = {"spectral.": ("spectral", "spectral_fft"), "jump.": ("jump_z",)}


# ----------------------------------------------------------------------------- detector


@register
class HookNetDetector(TorchDetector):
    """Hook-Net as a framewise detector: 16384 samples at 44.1 kHz -> 128 sigmoid scores."""

    name = "hooknet"
    tasks = ("framewise",)
    description = "Hook-Net (Wave-U-Net adaptation, music paper section 3): raw 16384 samples -> 128 frames"
    config_cls = HookNetConfig
    data_fields = ("positive_rate",)
    recipe = TrainingRecipe(lr=1e-3, batch_size=200, epochs=40, metric="accuracy")  # music paper, section 6.1

    @classmethod
    def model_configs(cls) -> dict[str, HookNetConfig]:
        return dict(CONFIGURATIONS)

    @classmethod
    def build(cls, config: HookNetConfig) -> HookNet:
        return HookNet(config)

    def check_row(self, row: dict, audio) -> None:
        if len(audio) != self.config.input_length:
            raise DefectbenchError(f"hooknet: row {row.get('id')}: {len(audio)} samples, the model takes {self.config.input_length}")

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(output)

    def loss(self, output: torch.Tensor, batch: dict, recipe: TrainingRecipe) -> torch.Tensor:
        return LOSSES[recipe.loss](output, batch["target"], recipe.pos_weight, total=self.batch_sum)

    def adapt_init(self, ckpt: dict, theirs: HookNetConfig | None) -> dict | None:
        """A state dict for this configuration from weights of another Hook-Net configuration, where the outputs
        stay those of the trained weights: a narrower one (fc divided by k), widened (:mod:`models.hooknet_widen`);
        the same without the log-spectrum branch or the jump input (each starts at zero output); with or without polarity
        invariance (``symmetric`` adds no parameter: only the ``polarity`` buffer), in any combination with
        the widening."""
        if theirs is None:
            return None
        state = {k: v for k, v in ckpt["state_dict"].items() if k != "polarity"}
        theirs = replace(theirs, symmetric=self.config.symmetric)
        polarity = {"polarity": self.model.polarity.clone()} if self.config.symmetric else {}
        if replace(theirs, positive_rate=self.config.positive_rate) == self.config:
            self.config = theirs
            return {**state, **polarity}
        for prefix, fields in ADDED_BRANCHES.items():  # the same model without one zero-started branch
            mine = {f: getattr(self.config, f) for f in fields}
            if not getattr(theirs, fields[0]) and mine[fields[0]] \
                    and replace(theirs, **mine, positive_rate=self.config.positive_rate) == self.config:
                self.config = replace(self.config, positive_rate=theirs.positive_rate)
                return self.with_added_branch({**ckpt, "state_dict": {**state, **polarity}}, prefix)
        if widen_factor(theirs, self.config) is None:
            return None
        self.config = replace(self.config, positive_rate=theirs.positive_rate)
        return {**widen_state_dict(state, theirs, self.config), **polarity}

    def prepare(self, dataset) -> None:
        """Output bias = logit(positive rate of the training targets) (music paper, section 6.1)."""
        from defectbench.training import positive_rate  # training only: scoring never imports the loop

        rate = min(max(positive_rate(dataset), 1e-6), 1 - 1e-6)
        self.config.positive_rate = rate
        with torch.no_grad():
            self.model.out.bias.fill_(math.log(rate / (1 - rate)))
