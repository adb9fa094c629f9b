"""The inference side of the neural detectors: :class:`TorchDetector`, checkpoint files, device choice.

Scoring (``runner``, ``results``, ``detect``) imports this module and never the training loop
(``defectbench.training``), which imports it in turn.

- :class:`TrainingRecipe`: one paper's training recipe (SPEC 4), declared by each detector class
  (``recipe = TrainingRecipe(...)``) and read by ``defectbench.training``; a plain dataclass, so that a
  model file can declare it without importing the training loop. Distinct from
  :class:`defectbench.recipe.Recipe`, a dataset recipe.
- Checkpoints: ``torch.save`` of a plain dict (``format``, ``model``, ``config``, ``state_dict``,
  ``curve``, ``best``, ``train``) holding only tensors and primitive types, so that
  ``torch.load(weights_only=True)`` reads it (:func:`load_checkpoint`); any unreadable, foreign or
  missing file is one :class:`~defectbench.core.DefectbenchError` line.
- Device: ``auto`` is CUDA when present, else CPU; bf16 autocast on CUDA, float32 on CPU.
- :class:`TorchDetector`: the :class:`~defectbench.detectors.Detector` base of the neural models: built
  from a checkpoint (or, explicitly, a named untrained configuration), predicts in batches on CUDA with
  AMP when present, and keeps its throughput and device for the result file.
"""

from __future__ import annotations

import hashlib
import time
from abc import abstractmethod
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch
import torch.nn as nn

from . import distributed as D
from .audio_io import as_float32
from .core import DefectbenchError
from .detectors import Detector

CHECKPOINT_FORMAT = "defectbench-checkpoint/1"

# ----------------------------------------------------------------------------- training recipe ---


@dataclass
class TrainingRecipe:
    """One paper's training recipe (SPEC 4); every field can be overridden from the command line."""

    lr: float
    batch_size: int
    betas: tuple[float, float] = (0.9, 0.999)
    epochs: int = 40
    max_steps: int | None = None  # optimiser steps (CNN6: the paper's 98,000 iterations)
    eval_every: int | None = None  # iterations between evaluations; None: after every epoch
    val_fraction: float = 1.0  # fixed subset of validation used for selection
    val_min_rows: int = 100  # the subset is at least this many rows (all when fewer)
    metric: str = "accuracy"  # selection metric, higher is better
    pos_weight: float = 10.0  # Hook-Net: weight of positive frames in the loss (the paper gives none)
    loss: str = "rms"  # Hook-Net: "rms" (the paper's RMS of sigmoid outputs) or "bce" (binary cross-entropy)
    lr_new: float | None = None  # fine-tuning: rate of the parameters the --init checkpoint lacks (None: lr)
    reduce_on_plateau: bool = False  # glitch recipe: factor 0.1, patience 10 evaluations
    patience: int | None = None  # early stop after this many evaluations without improvement
    balance_classes: bool = False  # multiclass: every class present in a batch weighs the same in the loss


def weighted_rms_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float,
                      total: Callable[[torch.Tensor], torch.Tensor] = torch.sum) -> torch.Tensor:
    """Root-mean-square error of sigmoid outputs, positive frames weighted by ``pos_weight`` (music paper, 6.1).

    ``total`` sums over the batch; under torchrun :meth:`TorchDetector.batch_sum` sums over the global
    batch (the RMS of the global batch is not the mean of the ranks' RMS).
    """
    w = 1.0 + (pos_weight - 1.0) * target
    return torch.sqrt(total(w * (torch.sigmoid(logits.float()) - target) ** 2) / total(w))


def weighted_bce_loss(logits: torch.Tensor, target: torch.Tensor, pos_weight: float,
                      total: Callable[[torch.Tensor], torch.Tensor] = torch.sum) -> torch.Tensor:
    """Binary cross-entropy of the logits, positive frames weighted by ``pos_weight``, averaged over the
    weights: the alternative to :func:`weighted_rms_loss` (``--loss bce``). The RMS of sigmoid outputs gives a
    frame the gradient ``(p - y) p (1 - p)``, which vanishes where the model is confidently wrong (a glitch it
    scores 0.00); cross-entropy gives ``p - y`` there."""
    w = 1.0 + (pos_weight - 1.0) * target
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    return total(w * bce) / total(w)


LOSSES = {"rms": weighted_rms_loss, "bce": weighted_bce_loss}  # Hook-Net's frame losses, by --loss


# -------------------------------------------------------------------------------- checkpoints ---


def save_checkpoint(path: str | Path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".partial")
    torch.save(payload, tmp)
    tmp.replace(path)


def read_weights_file(path: str | Path, what: str = "checkpoint") -> tuple[Any, Path]:
    """``torch.load(weights_only=True)`` of a file (or ``DIR/model.pt``), whatever it holds, and its path;
    a missing, truncated or foreign file is one line for the user (``what`` names it in that line)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise DefectbenchError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), path
    except Exception as e:  # a truncated or foreign file: one line for the user
        raise DefectbenchError(f"{what} {path} cannot be read: {e.__class__.__name__}: {str(e).splitlines()[0]}") from None


def as_checkpoint(obj: Any, path: str | Path) -> dict:
    """What :func:`read_weights_file` read, checked to be a defectbench checkpoint (``path`` recorded in it)."""
    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        raise DefectbenchError(f"checkpoint {path} is not a defectbench checkpoint (for a PANN file use --init)")
    obj["path"] = str(path)
    return obj


def load_checkpoint(path: str | Path) -> dict:
    """Read a defectbench checkpoint file (or ``DIR/model.pt``) with ``weights_only=True``."""
    obj, path = read_weights_file(path)
    return as_checkpoint(obj, path)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DefectbenchError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(device)


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


# ----------------------------------------------------------------------------------- detector ---


class TorchDetector(Detector):
    """Base of the neural detectors: a torch model, its config dataclass, and the paper's recipe."""

    config_cls: ClassVar[type]
    recipe: ClassVar[TrainingRecipe]

    @classmethod
    @abstractmethod
    def model_configs(cls) -> dict[str, Any]:
        """Named model configurations: {name: config dataclass}."""

    @classmethod
    def configurations(cls) -> dict[str, dict[str, Any]]:
        """{name: constructor options} per named configuration (``defectbench models`` builds each and
        prints ``parameter_count()``); the options are ``{"config": name}``."""
        return {name: {"config": name} for name in cls.model_configs()}

    @classmethod
    def from_checkpoint(cls, path: str | Path, **options: Any) -> "TorchDetector":
        """The runner's hook (``defectbench run --checkpoint PATH``): a file or a training output folder."""
        return cls(checkpoint=path, **options)

    @classmethod
    @abstractmethod
    def build(cls, config: Any) -> nn.Module:
        """The torch model of a config."""

    def __init__(self, checkpoint: str | Path | None = None, config: str = "reference", device: str = "auto",
                 batch_size: int | None = None, **options: Any) -> None:
        super().__init__(checkpoint=None if checkpoint is None else str(checkpoint), config=config, device=device,
                         batch_size=batch_size, **options)
        self.torch_device = resolve_device(device)
        self.device = self.device_name(self.torch_device)  # a string, as the result file records it
        self.batch_size = batch_size or (256 if self.torch_device.type == "cuda" else 64)  # rows per forward
        self.checkpoint = None
        if checkpoint is not None:
            ckpt = load_checkpoint(checkpoint)
            if ckpt["model"] != self.name:
                raise DefectbenchError(f"checkpoint {checkpoint} holds a {ckpt['model']!r} model, not {self.name!r}")
            self.config = self.config_from_dict(ckpt["config"])
            self.model = self.build(self.config)
            self.model.load_state_dict(ckpt["state_dict"])
            self.checkpoint = ckpt
        else:
            configs = self.model_configs()
            if config not in configs:
                raise DefectbenchError(f"{self.name}: no configuration {config!r}; known: {', '.join(configs)}")
            self.config = replace(configs[config])  # a copy: prepare() may set fields
            self.model = self.build(self.config)
        self.model.to(self.torch_device).eval()
        self.seconds, self.samples = 0.0, 0
        self.dist = D.DistContext()  # train() sets the torchrun context: batch_sum() then spans the ranks

    def batch_sum(self, x: torch.Tensor) -> torch.Tensor:
        """``x.sum()`` over the training batch; under torchrun over the global batch (``distributed.global_sum``)."""
        return D.global_sum(x, self.dist)

    def batch_mean(self, x: torch.Tensor) -> torch.Tensor:
        return self.batch_sum(x) / self.batch_sum(torch.ones_like(x))

    @classmethod
    def config_from_dict(cls, d: dict) -> Any:
        names = {f.name: f for f in fields(cls.config_cls)}
        unknown = set(d) - set(names)
        if unknown:
            raise DefectbenchError(f"{cls.name} checkpoint config has unknown keys {sorted(unknown)}")
        return cls.config_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def inputs(self, batch: list[dict]) -> torch.Tensor:
        """Rows -> a float32 [B, n] waveform tensor (int16 audio scaled by 1/32768); checks rate and length."""
        out = []
        for row in batch:
            a = as_float32(row["audio"])
            if a.ndim != 1:
                raise DefectbenchError(f"{self.name}: row {row.get('id')}: audio must be mono 1-D, got shape {a.shape}")
            self.check_row(row, a)
            out.append(a)
        return torch.from_numpy(np.stack(out))

    def check_row(self, row: dict, audio: np.ndarray) -> None:
        """Raise DefectbenchError where the row does not fit the model (rate, length)."""

    @abstractmethod
    def scores(self, output: torch.Tensor) -> torch.Tensor:
        """Model output -> the scores ``predict`` returns."""

    @torch.inference_mode()
    def predict(self, batch: list[dict]) -> np.ndarray:
        x = self.inputs(batch)
        t0 = time.perf_counter()
        outs = []
        for i in range(0, len(x), self.batch_size):
            xb = x[i : i + self.batch_size].to(self.torch_device, non_blocking=True)
            with autocast(self.torch_device):
                outs.append(self.scores(self.model(xb)).float().cpu())
        if self.torch_device.type == "cuda":
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t0
        self.samples += len(x)
        return torch.cat(outs).numpy()

    @staticmethod
    def device_name(device: torch.device) -> str:
        if device.type == "cuda":
            index = device.index if device.index is not None else torch.cuda.current_device()
            return f"cuda:{index} ({torch.cuda.get_device_name(index)}, bf16 autocast)"
        return "cpu"

    def runtime(self) -> dict[str, Any]:
        """Device and measured throughput (model time only, input decoding excluded) for the result file."""
        return {
            "device": self.device,
            "amp": "bf16" if self.torch_device.type == "cuda" else None,
            "batch_size": self.batch_size,
            "samples": self.samples,
            "seconds": round(self.seconds, 4),
            "samples_per_second": round(self.samples / self.seconds, 2) if self.seconds > 0 else None,
        }

    @abstractmethod
    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor], recipe: TrainingRecipe) -> torch.Tensor:
        """The training loss of a batch (the paper's)."""

    def prepare(self, dataset: str | Path) -> None:
        """Anything the recipe sets from the training data before the first step (Hook-Net: output bias)."""

    data_fields: ClassVar[tuple[str, ...]] = ()
    """Config fields that :meth:`prepare` sets from the training data (not architecture)."""
    initialised: bool = False
    """True once :meth:`load_init` loaded trained weights: :meth:`prepare` must then keep them."""
    new_parameters: frozenset[str] = frozenset()
    """Names of the parameters the ``--init`` checkpoint did not have (an added branch): ``--lr-new``."""

    def load_init(self, path: str | Path) -> None:
        """Start from another defectbench checkpoint's weights (fine-tuning); CNN6 also takes a PANN file."""
        self.init_from(load_checkpoint(path))

    def init_from(self, ckpt: dict) -> None:
        """:meth:`load_init` of a checkpoint already read (:func:`load_checkpoint`)."""
        from dataclasses import replace

        path = ckpt["path"]
        theirs = self.config_from_dict(ckpt["config"]) if ckpt["model"] == self.name else None
        # fields that prepare() sets from the data (Hook-Net's positive rate) do not change the architecture
        learned = {k: getattr(theirs, k) for k in self.data_fields if theirs is not None}
        if theirs is not None and replace(self.config, **learned) == theirs:
            self.config, state = theirs, ckpt["state_dict"]
        elif (state := self.adapt_init(ckpt, theirs)) is None:
            raise DefectbenchError(f"--init {path}: a {ckpt['model']} {ckpt['config']} checkpoint does not fit this model")
        self.model.load_state_dict(state)
        self.initialised = True
        self.new_parameters = frozenset(n for n, _ in self.model.named_parameters() if n not in ckpt["state_dict"])

    def adapt_init(self, ckpt: dict, theirs: Any) -> dict[str, torch.Tensor] | None:
        """A state dict for this model made from a checkpoint of another configuration (``theirs``; None for
        another model), where the model knows how (Hook-Net widens, CNN6 adds its waveform branch); it may set
        the config's data fields. None: the checkpoint does not fit."""
        return None

    def with_added_branch(self, ckpt: dict, prefix: str) -> dict[str, torch.Tensor]:
        """For :meth:`adapt_init`: a checkpoint of this model without the branch under ``prefix`` (which this
        configuration adds); its weights load strictly into everything else, the branch keeps its
        initialisation (zero output, so the scores start the same)."""
        fresh = {k: v for k, v in self.model.state_dict().items() if k.startswith(prefix)}
        return {**fresh, **ckpt["state_dict"]}

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def weights_hash(self) -> str | None:
        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

