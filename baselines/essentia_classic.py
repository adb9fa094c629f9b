"""A classical 5-way baseline for the video task from Essentia's audio-problem detectors (SPEC 3).

One feature per defect, measured on each 1 s chunk (int16 or float PCM, any rate):

- hum: the largest quantile ratio of ``HumDetector`` (its ``r`` matrix; high for a stationary tone).
  Essentia's defaults need 10 s windows, so 1 s chunks use 0.1 s frames, a 0.5 s window and a
  0.3 s minimum duration. Its ``maximumFrequency`` is 1000 Hz: at 1100 Hz and above the algorithm
  did not return (Essentia 2.1b6, measured), so hums between 1000 and 1220 Hz are seen only through
  their effect on the other features.
- hiss: the energy above 4 kHz (Essentia ``EnergyBand``) of the quietest 2048-sample frame: a noise
  floor estimate (spectral flatness failed: int16 quantisation noise of quiet clean audio is flat
  too). Essentia's ``SNR`` estimates noise in frames below -40 dB, which continuous music chunks do
  not have: it returned +inf on every chunk we tried, so it cannot grade hiss here.
- distortion: seconds of flat tops found by ``SaturationDetector`` after peak normalisation (a chunk
  clipped at ``v`` has long runs at its own maximum).
- click: the largest prediction-error peak from ``DiscontinuityDetector`` (impulses and removed
  segments both break the LPC prediction) plus the number of ``ClickDetector`` detections.

Decision: each feature ``f_k`` gets a threshold ``t_k`` fitted on the **validation split only**
(``fit``): the value that best separates class ``k`` from ``no_defect`` rows (balanced accuracy of
that pair). Class scores are ``log(f_k / t_k)`` for the four defects and 0 for ``no_defect``, plus a
priority offset for the features that pass (distortion, then hiss, hum, click: clipping also
triggers the click features); the arg-max is the prediction, so a chunk is clean unless some
feature passes its threshold. Weakest part, measured on synthetic chunks: a click low-passed at a
low cut-off (0.05) is a smooth bump that neither LPC detector flags.
"""

from __future__ import annotations

from typing import ClassVar, Iterable

import numpy as np

from defectbench.core import DefectbenchError
from defectbench.detectors import Detector, register

DEFECTS = ("hum", "hiss", "distortion", "click")
EPS = 1e-9
PRIORITY = np.array([200.0, 100.0, 300.0, 0.0])
"""Offsets of passing defects (hum, hiss, distortion, click): clipping also breaks the LPC prediction
(a click-like feature) and lifts harmonics, so a passing saturation feature decides first, then hiss,
then hum, then click."""


def _float(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.dtype == np.int16:
        return audio.astype(np.float32) / 32768.0
    return np.ascontiguousarray(audio, dtype=np.float32)


def features(audio: np.ndarray, rate: int) -> np.ndarray:
    """``[hum, hiss, distortion, click]`` for one chunk (see the module docstring)."""
    from . import essentia_standard
    es = essentia_standard()

    x = _float(audio)
    if len(x) < 4096:
        raise DefectbenchError(f"essentia-classic needs chunks of at least 4096 samples, got {len(x)}")
    hum = es.HumDetector(
        sampleRate=rate, frameSize=0.1, hopSize=0.05, timeWindow=0.5, minimumDuration=0.3,
        timeContinuity=0.5, maximumFrequency=1000,
    )(x)[0]
    hum = float(np.max(hum)) if np.size(hum) else 0.0

    spectrum, window = es.Spectrum(size=2048), es.Windowing(type="hann", size=2048)
    band = es.EnergyBand(sampleRate=rate, startCutoffFrequency=4000, stopCutoffFrequency=rate / 2 - 100)
    # the quietest frame's high band: music leaves it near silence somewhere, hiss never does
    hiss = float(min(band(spectrum(window(x[i : i + 2048]))) for i in range(0, len(x) - 2048 + 1, 1024)))

    peak = float(np.max(np.abs(x)))
    saturation = 0.0
    if peak > 0:
        # one frame for the whole chunk, zero-padded: Essentia raises ("rising and falling are expected
        # to have the same length") when a flat top crosses a frame edge
        y = np.pad(x / peak, 16).astype(np.float32)
        detector = es.SaturationDetector(frameSize=len(y), hopSize=len(y), sampleRate=rate)
        starts, ends = detector(y)
        saturation = float(np.sum(np.asarray(ends) - np.asarray(starts)))

    disc = es.DiscontinuityDetector(frameSize=1024, hopSize=512)
    clicks = es.ClickDetector(frameSize=1024, hopSize=512, sampleRate=rate)
    peak_error, n_clicks = 0.0, 0
    for i in range(0, len(x) - 1024 + 1, 512):
        _, amplitudes = disc(x[i : i + 1024])
        if len(amplitudes):
            peak_error = max(peak_error, float(np.max(amplitudes)))
        n_clicks += len(clicks(x[i : i + 1024])[0])
    return np.array([hum, hiss, saturation, peak_error + n_clicks], dtype=np.float64)


def fit_threshold(clean: np.ndarray, defect: np.ndarray) -> float:
    """The feature value (decision ``f >= t``) with the best balanced accuracy of defect vs clean."""
    candidates = np.unique(np.r_[clean, defect])
    if len(clean) == 0 or len(defect) == 0:
        raise DefectbenchError("essentia-classic: the validation split lacks clean or defective chunks to fit on")
    best, best_value = -1.0, float(candidates[-1])
    for t in candidates:
        value = 0.5 * (np.mean(defect >= t) + np.mean(clean < t))
        if value > best:
            best, best_value = value, float(t)
    return max(best_value, EPS)


@register
class EssentiaClassic(Detector):
    name = "essentia-classic"
    tasks = ("multiclass",)
    description = "Essentia HumDetector / high-band noise floor / SaturationDetector / Discontinuity+ClickDetector, thresholds fitted on validation"
    batch_size = 32
    fit_criterion: ClassVar[str] = "balanced accuracy of each defect vs no_defect (validation)"

    def __init__(self, thresholds: list[float] | None = None, **options) -> None:
        super().__init__(**options)
        self.thresholds = None if thresholds is None else np.asarray(thresholds, dtype=np.float64)

    def fit(self, train: Iterable[dict], validation: Iterable[dict]) -> None:
        """Thresholds from the validation rows only (the training split is not read)."""
        feats, labels = [], []
        for row in validation:
            feats.append(features(row["audio"], int(row["rate"])))
            labels.append(int(row["label"]))
        if not feats:
            raise DefectbenchError("essentia-classic: the dataset has no validation rows to fit on")
        self.fit_features(np.stack(feats), np.asarray(labels))

    def fit_features(self, feats: np.ndarray, labels: np.ndarray) -> None:
        clean = feats[labels == 0]
        self.thresholds = np.array([fit_threshold(clean[:, k], feats[labels == k + 1, k]) for k in range(len(DEFECTS))])
        self.options["thresholds"] = self.thresholds.tolist()

    def decide(self, feats: np.ndarray) -> np.ndarray:
        """Class scores ``[n, 5]`` from features ``[n, 4]``."""
        if self.thresholds is None:
            raise DefectbenchError("essentia-classic: fit it on a validation split first (no thresholds)")
        ratios = np.log(np.maximum(feats, EPS) / self.thresholds)
        scores = ratios + np.where(ratios >= 0, PRIORITY, 0.0)
        return np.concatenate([np.zeros((len(feats), 1)), scores], axis=1).astype(np.float32)

    def predict(self, batch: list[dict]) -> np.ndarray:
        return self.decide(np.stack([features(r["audio"], int(r["rate"])) for r in batch]))
