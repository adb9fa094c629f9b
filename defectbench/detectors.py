"""The detector interface shared by classical baselines (``baselines/``) and neural models (``models/``).

A detector is one file in ``baselines/`` or ``models/`` defining a :class:`Detector` subclass decorated
with :func:`register`; ``defectbench models`` lists it and ``defectbench run --model NAME`` finds it,
with no edit to the core.

Tasks:

- ``framewise``: a row's ``target`` is a vector of 0/1 frames (128 per 16384-sample segment for the
  music recipes); ``predict`` returns a float array ``[batch, frames]`` of scores, higher meaning
  "defect". Detectors with an internal decision threshold (SigClick's dB threshold) list the values
  to sweep in ``threshold_grid``; the runner picks one on the validation split only.
- ``multiclass``: a row's ``label`` is a class index (video recipe: no_defect, hum, hiss, distortion,
  click); ``predict`` returns ``[batch, classes]`` scores (probabilities or logits).

A batch is a list of rows as read by :func:`defectbench.dataset.iter_rows`: dicts with ``id``,
``audio`` (1-D numpy array, float32 or int16), ``rate``, ``target`` (uint8 array), ``label`` (int)
and the metadata columns.
"""

from __future__ import annotations

import importlib
import pkgutil
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np

TASKS = ("framewise", "multiclass")


class Detector(ABC):
    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]]
    description: ClassVar[str] = ""
    threshold_grid: ClassVar[Sequence[float]] = ()
    """Values of an internal threshold to sweep on validation (empty: the runner thresholds scores)."""
    threshold_unit: ClassVar[str] = ""
    """Unit of ``threshold_grid`` values, for reports (SigClick: "dB")."""
    batch_size: ClassVar[int] = 64
    """Rows per ``predict`` call that the runner reads and passes at once."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.threshold: float | None = None
        self.device: str = "cpu"
        """Where ``predict`` runs ("cpu", "cuda:0"); reported with the throughput."""
        self.workers: int = 1
        """Processes ``predict`` may use (set by the runner from ``--workers``); classical detectors
        with a process pool honour it, neural ones may ignore it."""

    @classmethod
    def from_checkpoint(cls, path: str, **options: Any) -> "Detector":
        """A detector restored from a checkpoint file (``defectbench run --checkpoint PATH``).

        Detectors with weights override it; the default says there is nothing to load.
        """
        from .core import DefectbenchError

        raise DefectbenchError(f"detector {cls.name!r} has no checkpoints to load")

    def fit(self, train: Iterable[dict], validation: Iterable[dict]) -> None:
        """Fit whatever the detector learns (classical baselines: decision thresholds). Default: nothing."""

    @abstractmethod
    def predict(self, batch: list[dict]) -> np.ndarray:
        """Scores of a batch: ``[batch, frames]`` (framewise) or ``[batch, classes]`` (multiclass)."""

    def predict_grid(self, batch: list[dict]) -> np.ndarray:
        """Scores at every ``threshold_grid`` value, ``[len(grid), batch, ...]``, for the validation sweep.

        Default: ``predict`` once per value with ``self.threshold`` set; a detector that can share work
        between thresholds (one decode, several detector runs) overrides it. Restores ``threshold``.
        """
        kept = self.threshold
        try:
            out = []
            for value in self.threshold_grid:
                self.threshold = value
                out.append(self.predict(batch))
            return np.stack(out)
        finally:
            self.threshold = kept

    def close(self) -> None:
        """Release what ``predict`` holds (process pools). The runner calls it when done."""

    def parameter_count(self) -> int:
        return 0

    def weights_hash(self) -> str | None:
        return None


REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    for task in cls.tasks:
        if task not in TASKS:
            raise ValueError(f"{cls.__name__}: unknown task {task!r}")
    REGISTRY[cls.name] = cls
    return cls


def load_all() -> dict[str, type[Detector]]:
    """Import every module in ``baselines/`` and ``models/`` so their detectors register."""
    for package in ("defectbench.baselines", "defectbench.models"):
        pkg = importlib.import_module(package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"{package}.{mod.name}")
    return dict(REGISTRY)


def option_defaults(cls: type[Detector]) -> dict[str, Any]:
    """The options a detector's constructors name (``__init__`` keyword parameters over the class's MRO)
    with (default, annotation text) each (``inspect.Parameter.empty`` where none)."""
    import inspect

    names: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
                names.setdefault(p.name, (p.default, str(p.annotation)))
    return names


def check_options(cls: type[Detector], options: dict[str, Any]) -> None:
    """``-o KEY=VALUE`` options a detector would otherwise swallow (``**options``) or fail on with a
    traceback: an unknown key, or a non-number where the default is a number, is one clear error."""
    from .core import DefectbenchError

    known = option_defaults(cls)
    for key, value in options.items():
        if key not in known:
            raise DefectbenchError(f"{cls.name}: no option {key!r}; its options: {', '.join(sorted(known)) or 'none'}")
        default, annotation = known[key]
        numeric = (isinstance(default, (int, float)) and not isinstance(default, bool)) or annotation.split(" ")[0] in ("int", "float")
        if numeric and value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise DefectbenchError(f"{cls.name}: option {key}={value!r} is not a number")


def get(name: str) -> type[Detector]:
    detectors = load_all()
    if name not in detectors:
        from .core import DefectbenchError

        raise DefectbenchError(f"no detector named {name!r}; known: {', '.join(sorted(detectors))}")
    return detectors[name]
