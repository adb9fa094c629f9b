"""PANN Cnn6 with a 5-way defect head (video paper, section 3; SPEC 3; Kong et al., PANNs, 2020).

1 s of 48 kHz audio in, log-probabilities over (no_defect, hum, hiss, distortion, click) out.

- 48 kHz -> 32 kHz inside the model by a fixed polyphase FIR (:class:`Resample`), the same filter and
  alignment as ``scipy.signal.resample_poly(x, 2, 3)``; torchaudio is not installed, and doing it in the
  model keeps the dataset and the detector at the dataset's rate.
- Log-mel front end (window 1024, hop 320, 64 mel bins, 50-14000 Hz) with the STFT as frozen conv
  weights. Written here rather than imported from torchlibrosa (not installed, and the toolkit must run
  offline); the module and parameter names are torchlibrosa's, so the official checkpoint's
  ``spectrogram_extractor.stft.conv_real.weight`` [513,1,1024], ``...conv_imag.weight`` and
  ``logmel_extractor.melW`` [513,64] load into it unchanged.
- bn0 over the mel axis, four (5x5 conv without bias, BN, ReLU, 2x2 average pool, dropout 0.2) blocks
  with 64/128/256/512 channels, mean over frequency, max + mean over time, dropout 0.5, fc1 512 + ReLU.
- The AudioSet head ``fc_audioset`` (527) is replaced by ``fc_defect`` (5): every other name and shape
  is the official checkpoint's, so :func:`load_pann` loads the body of ``Cnn6_mAP=0.343.pth`` with
  ``strict=True``. PANNs' SpecAugment and mixup are training-time options the video paper does not use.

Trainable parameters: 4,569,669 with the 5-way head (4,837,455 with the 527-way AudioSet head, PANNs'
"4.8 M").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from defectbench.core import DefectbenchError
from defectbench.detectors import register
from defectbench.neural import TorchDetector, TrainingRecipe, as_checkpoint, read_weights_file

LABELS = ("no_defect", "hum", "hiss", "distortion", "click")


@dataclass
class Cnn6Config:
    input_rate: int = 48000  # the video recipe's rate; resampled to sample_rate in the model
    sample_rate: int = 32000  # PANN front end
    window_size: int = 1024
    hop_size: int = 320
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 14000.0
    classes: int = 5
    channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    dropout: float = 0.2  # after each conv block (PANNs)
    wave_features: bool = False  # add the waveform branch (:class:`WaveBranch`) beside the log-mel body


# ----------------------------------------------------------------------------- front end


def slaney_mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)`` (htk=False, norm="slaney"), shape [n_mels, bins].

    Hand-written because librosa is not installed: Slaney's mel scale (linear below 1 kHz at 3 mel per
    200 Hz, logarithmic above with 27 mels per factor 6.4), triangles between neighbouring mel points,
    each scaled by 2 / (its bandwidth in Hz) so that every filter has unit area.
    """
    f_sp, min_log_hz, min_log_mel, logstep = 200.0 / 3, 1000.0, 15.0, math.log(6.4) / 27.0

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, dtype=np.float64)
        lin = f / f_sp
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, lin)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fft_freqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


class STFT(nn.Module):
    """torchlibrosa's STFT: a DFT as two frozen Conv1d (real, imaginary), periodic Hann window."""

    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        bins = n_fft // 2 + 1
        n = np.arange(n_fft)
        window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # scipy.signal.get_window("hann", n_fft)
        w = np.exp(-2j * np.pi * np.outer(np.arange(bins), n) / n_fft) * window[None, :]
        self.conv_real = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_imag = nn.Conv1d(1, bins, n_fft, stride=hop, bias=False)
        self.conv_real.weight.data = torch.tensor(w.real[:, None, :], dtype=torch.float32)
        self.conv_imag.weight.data = torch.tensor(w.imag[:, None, :], dtype=torch.float32)
        self.n_fft = n_fft

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.pad(x[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")  # center=True
        return self.conv_real(x), self.conv_imag(x)  # [B, bins, frames] each


class Spectrogram(nn.Module):
    def __init__(self, n_fft: int, hop: int) -> None:
        super().__init__()
        self.stft = STFT(n_fft, hop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        real, imag = self.stft(x)
        return (real**2 + imag**2).transpose(1, 2)[:, None]  # power, [B, 1, frames, bins]


class LogmelFilterBank(nn.Module):
    def __init__(self, cfg: Cnn6Config) -> None:
        super().__init__()
        mel = slaney_mel_filterbank(cfg.sample_rate, cfg.window_size, cfg.mel_bins, cfg.fmin, cfg.fmax)
        self.melW = nn.Parameter(torch.tensor(mel.T), requires_grad=False)  # [bins, mels], frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # power_to_db with ref=1.0, amin=1e-10, top_db=None (PANNs' settings)
        return 10.0 * torch.log10(torch.clamp(x @ self.melW, min=1e-10))  # [B, 1, frames, mels]


class Resample(nn.Module):
    """Rational resampling up/down with ``scipy.signal.resample_poly``'s default Kaiser(5.0) FIR.

    The kernel is designed by scipy at construction and held as a non-persistent buffer (it is not in the
    state dict, so the official checkpoint's key set is unchanged).
    """

    def __init__(self, rate_in: int, rate_out: int) -> None:
        super().__init__()
        from scipy.signal import firwin

        g = math.gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        if self.up == self.down:  # same rate (e.g. the 48 kHz configuration): the identity, no kernel
            return
        half_len = 10 * max(self.up, self.down)
        h = firwin(2 * half_len + 1, 1.0 / max(self.up, self.down), window=("kaiser", 5.0)) * self.up
        pre_pad = self.down - half_len % self.down
        self.pre_remove = (half_len + pre_pad) // self.down
        h = np.concatenate([np.zeros(pre_pad), h])
        self.register_buffer("kernel", torch.tensor(h[::-1].copy(), dtype=torch.float32)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.up == self.down:
            return x
        n_out = -(-x.shape[-1] * self.up // self.down)
        k = self.kernel.shape[-1]
        z = x.new_zeros(x.shape[0], x.shape[-1] * self.up)
        z[:, :: self.up] = x
        z = F.pad(z[:, None], (k - 1, k - 1))  # full convolution, as upfirdn
        y = F.conv1d(z, self.kernel, stride=self.down)[:, 0]
        return y[:, self.pre_remove : self.pre_remove + n_out]


# ----------------------------------------------------------------------------- waveform branch


class WaveFeatures(nn.Module):
    """Per-frame waveform statistics that a log-mel spectrogram cannot show: [B, n] -> [B, 5, n // hop].

    A 1 to 3 ms click or a removed stretch of samples is one large sample-to-sample jump inside a 21 ms
    STFT window, and clipping to [-v, v] is a run of samples at exactly +-v; a power spectrum smears both
    into energy that music's own transients and loud passages also have. Per frame of ``hop`` samples:
    log10 of the largest first and second difference, of the RMS of the first difference and of the
    peak level, and the share of samples within 1.5 LSB of the chunk's peak (clipping plateaus),
    log-scaled. Hand-written: no library computes these as a differentiable torch front end.
    """

    count = 5

    def __init__(self, hop: int) -> None:
        super().__init__()
        self.hop = hop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, frames = x.shape[0], x.shape[-1] // self.hop
        x = x[:, : frames * self.hop]
        d1 = torch.diff(x, dim=-1, prepend=x[:, :1])
        d2 = torch.diff(d1, dim=-1, prepend=d1[:, :1])
        fx, f1, f2 = (v.reshape(b, frames, self.hop) for v in (x, d1, d2))
        peak = x.abs().amax(dim=-1)[:, None, None]
        plateau = (fx.abs() >= peak - 1.5 / 32768).float().sum(-1)
        feats = [
            torch.log10(f1.abs().amax(-1) + 1e-4),
            torch.log10(f2.abs().amax(-1) + 1e-4),
            torch.log10(f1.pow(2).mean(-1).sqrt() + 1e-4),
            torch.log10(fx.abs().amax(-1) + 1e-4),
            torch.log1p(plateau) / math.log1p(self.hop),
        ]
        return torch.stack(feats, dim=1)


class WaveBranch(nn.Module):
    """:class:`WaveFeatures` -> two 1-D conv layers -> max and mean over time -> per-class logits that are
    added to the log-mel body's. The output layer starts at zero, so a body loaded from a checkpoint
    without this branch gives its own outputs until training moves the branch."""

    def __init__(self, hop: int, classes: int, width: int = 32) -> None:
        super().__init__()
        self.features = WaveFeatures(hop)
        k = WaveFeatures.count
        self.bn = nn.BatchNorm1d(k)
        self.conv1 = nn.Conv1d(k, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = nn.Conv1d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(width)
        self.fc = nn.Linear(2 * width, classes)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn(self.features(x))
        h = F.relu(self.bn1(self.conv1(h)))
        h = F.relu(self.bn2(self.conv2(h)))
        return self.fc(torch.cat([h.amax(dim=-1), h.mean(dim=-1)], dim=1))


# ----------------------------------------------------------------------------- network


class ConvBlock5x5(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel_size=5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.bn1(self.conv1(x))), 2)


class Cnn6(nn.Module):
    def __init__(self, cfg: Cnn6Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.resample = Resample(cfg.input_rate, cfg.sample_rate)
        self.spectrogram_extractor = Spectrogram(cfg.window_size, cfg.hop_size)
        self.logmel_extractor = LogmelFilterBank(cfg)
        for p in self.spectrogram_extractor.parameters():
            p.requires_grad = False  # frozen, as PANNs' freeze_parameters=True
        self.bn0 = nn.BatchNorm2d(cfg.mel_bins)
        c = (1, *cfg.channels)
        for i in range(4):
            setattr(self, f"conv_block{i + 1}", ConvBlock5x5(c[i], c[i + 1]))
        self.fc1 = nn.Linear(c[-1], c[-1])
        self.fc_defect = nn.Linear(c[-1], cfg.classes)
        for m in self.modules():  # PANNs' init_weight: Xavier for convs/linears, zero biases
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        # at the input rate, one frame per log-mel hop (10 ms for every configuration here)
        self.wave = WaveBranch(cfg.hop_size * cfg.input_rate // cfg.sample_rate, cfg.classes) if cfg.wave_features else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: [B, samples] at ``input_rate`` -> [B, classes] log-probabilities."""
        wave = x
        with torch.autocast(x.device.type, enabled=False):  # keep the front end in float32 under AMP
            x = self.logmel_extractor(self.spectrogram_extractor(self.resample(x.float())))
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # BN over the mel axis
        for i in range(4):
            x = getattr(self, f"conv_block{i + 1}")(x)
            x = F.dropout(x, p=self.cfg.dropout, training=self.training)
        x = x.mean(dim=3)  # over frequency
        x = x.max(dim=2).values + x.mean(dim=2)  # over time
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu(self.fc1(x))
        x = F.dropout(x, p=0.5, training=self.training)
        logits = self.fc_defect(x)
        if self.wave is not None:
            with torch.autocast(wave.device.type, enabled=False):
                logits = logits.float() + self.wave(wave.float())
        return F.log_softmax(logits, dim=-1)


def class_balance_weights(labels: torch.Tensor, classes: int,
                          total: Callable[[torch.Tensor], torch.Tensor] = torch.sum) -> torch.Tensor:
    """Per-sample weights that give every class present in the batch the same total weight, summing to 1:
    ``1 / (n_c * C)`` for a sample of class c, with n_c its class's count in the batch and C the number of
    classes present (``total`` sums over the global batch under torchrun). A weighted sum of the NLL is
    then the mean over classes of each class's mean loss: the training counterpart of balanced accuracy."""
    onehot = F.one_hot(labels, classes).float()
    counts = torch.stack([total(onehot[:, c]) for c in range(classes)])  # ``total`` is a scalar sum
    present = (counts > 0).sum()
    return 1.0 / (counts[labels] * present)


def load_pann(model: Cnn6, source: str | Path | dict) -> None:
    """Load the body of an official PANN Cnn6 checkpoint (``{'iteration', 'model'}``) with ``strict=True``;
    ``source`` is the file or what ``torch.load(weights_only=True)`` already read from it.

    The AudioSet head is dropped and the model's own (freshly initialised) 5-way head put in its place,
    so that every other key must match the file in name and shape.
    """
    ckpt = source if isinstance(source, dict) else torch.load(source, map_location="cpu", weights_only=True)
    state = ckpt["model"] if isinstance(ckpt, dict) and "model" in ckpt else ckpt
    state = {k: v for k, v in state.items() if not k.startswith("fc_audioset.")}
    state.update({k: v for k, v in model.state_dict().items() if k.startswith("fc_defect.")})
    model.load_state_dict(state, strict=True)


CONFIGURATIONS = {
    "reference": Cnn6Config(),
    # CPU-trained shipped weights: a quarter of the paper's channels (1.2 M parameters). "cpu-48k" also keeps the
    # recipe's 48 kHz (no resampling, mel bins up to 24 kHz, hop 10 ms): a 3 ms click and the harmonics of mild
    # clipping sit largely above the paper front end's 14 kHz, which that configuration adds back.
    "cpu": Cnn6Config(channels=(32, 64, 128, 256)),
    "cpu-48k": Cnn6Config(channels=(32, 64, 128, 256), sample_rate=48000, hop_size=480, fmax=24000.0),
    # "cpu-48k" plus the waveform branch (:class:`WaveBranch`, 7 k parameters): per-10-ms sample jumps and
    # clipping plateaus, which the log-mel body cannot see; its body loads from a "cpu-48k" checkpoint (--init)
    "cpu-48k-wave": Cnn6Config(channels=(32, 64, 128, 256), sample_rate=48000, hop_size=480, fmax=24000.0,
                               wave_features=True),
    "tiny": Cnn6Config(channels=(8, 16, 32, 64)),  # tests and CPU smoke runs; not checkpoint-compatible
}


# ----------------------------------------------------------------------------- detector


@register
class Cnn6Detector(TorchDetector):
    """PANN Cnn6 as a 5-way detector: 1 s at 48 kHz -> class probabilities."""

    name = "cnn6"
    tasks = ("multiclass",)
    description = "PANN Cnn6, 5-way head (video paper section 3): 1 s log-mel -> no_defect/hum/hiss/distortion/click"
    config_cls = Cnn6Config
    # video paper, section 5: NLL, Adam 1e-4 (0.9, 0.999), batch 512, every 100 iterations balanced
    # accuracy on a fixed 1 % of validation, the best kept (98,000 iterations in the paper)
    recipe = TrainingRecipe(lr=1e-4, batch_size=512, epochs=1000, max_steps=98_000, eval_every=100, val_fraction=0.01,
                    metric="balanced_accuracy")

    @classmethod
    def model_configs(cls) -> dict[str, Cnn6Config]:
        return dict(CONFIGURATIONS)

    @classmethod
    def build(cls, config: Cnn6Config) -> Cnn6:
        return Cnn6(config)

    def check_row(self, row: dict, audio) -> None:
        rate = row.get("rate")
        if rate is not None and rate != self.config.input_rate:
            raise DefectbenchError(f"cnn6: row {row.get('id')}: audio at {rate} Hz, the model takes {self.config.input_rate} Hz")

    def scores(self, output: torch.Tensor) -> torch.Tensor:
        return output.exp()  # log-probabilities -> probabilities

    def loss(self, output: torch.Tensor, batch: dict, recipe: TrainingRecipe) -> torch.Tensor:
        nll = F.nll_loss(output.float(), batch["label"], reduction="none")
        if not recipe.balance_classes:
            return self.batch_mean(nll)  # the paper's; under torchrun: global
        return self.batch_sum(class_balance_weights(batch["label"], self.config.classes, self.batch_sum) * nll)

    def load_init(self, path) -> None:
        """A PANN ``Cnn6_mAP=0.343.pth`` (body loaded strictly) or a defectbench checkpoint (file or folder),
        read once."""
        obj, path = read_weights_file(path, what="--init")
        if isinstance(obj, dict) and "format" in obj:
            return self.init_from(as_checkpoint(obj, path))  # a body without the waveform branch: adapt_init
        try:
            load_pann(self.model, obj)
        except (RuntimeError, KeyError, TypeError, AttributeError) as e:
            raise DefectbenchError(f"--init {path}: not a PANN Cnn6 checkpoint: {str(e).splitlines()[0]}") from None

    def adapt_init(self, ckpt: dict, theirs: Cnn6Config | None) -> dict | None:
        """A checkpoint of the same configuration without the waveform branch: its weights load strictly
        into everything but the branch, which keeps its initialisation (zero output: the same outputs)."""
        if theirs is None or theirs.wave_features or replace(theirs, wave_features=True) != self.config:
            return None
        return self.with_added_branch(ckpt, "wave.")
