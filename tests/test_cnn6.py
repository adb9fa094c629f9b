"""PANN Cnn6 with the 5-way head (SPEC 3): shapes, official state-dict names, front end, PANN loading."""

import math

import numpy as np
import pytest
import scipy.signal
import torch

from defectbench.core import DefectbenchError
from defectbench.models.cnn6 import CONFIGURATIONS, Cnn6, Cnn6Config, Cnn6Detector, Resample, load_pann, slaney_mel_filterbank

# The official Cnn6_mAP=0.343.pth 'model' state dict (PANNs pytorch/models.py Cnn6 with torchlibrosa's
# Spectrogram / LogmelFilterBank; SPEC 3), written out by hand: name -> shape.
OFFICIAL = {
    "spectrogram_extractor.stft.conv_real.weight": (513, 1, 1024),
    "spectrogram_extractor.stft.conv_imag.weight": (513, 1, 1024),
    "logmel_extractor.melW": (513, 64),
    **{f"bn0.{k}": (64,) for k in ("weight", "bias", "running_mean", "running_var")},
    "bn0.num_batches_tracked": (),
    "fc1.weight": (512, 512),
    "fc1.bias": (512,),
    "fc_audioset.weight": (527, 512),
    "fc_audioset.bias": (527,),
}
for i, (cin, cout) in enumerate([(1, 64), (64, 128), (128, 256), (256, 512)], start=1):
    OFFICIAL[f"conv_block{i}.conv1.weight"] = (cout, cin, 5, 5)
    for k in ("weight", "bias", "running_mean", "running_var"):
        OFFICIAL[f"conv_block{i}.bn1.{k}"] = (cout,)
    OFFICIAL[f"conv_block{i}.bn1.num_batches_tracked"] = ()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Cnn6(CONFIGURATIONS["reference"]).eval()


def test_one_second_at_48k_gives_five_class_probabilities(model):
    with torch.no_grad():
        y = model(torch.randn(2, 48000) * 0.1)
    assert y.shape == (2, 5)
    assert torch.allclose(y.exp().sum(-1), torch.ones(2), atol=1e-5)


def test_state_dict_is_the_official_one_with_the_head_replaced(model):
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    body = {k: v for k, v in OFFICIAL.items() if not k.startswith("fc_audioset.")}
    assert {k: v for k, v in ours.items() if not k.startswith("fc_defect.")} == body
    assert ours["fc_defect.weight"] == (5, 512) and ours["fc_defect.bias"] == (5,)


def test_trainable_parameters(model):
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    convs = 25 * (1 * 64 + 64 * 128 + 128 * 256 + 256 * 512)
    bns = 2 * (64 + 64 + 128 + 256 + 512)
    assert n == convs + bns + 512 * 512 + 512 + 5 * 512 + 5
    # with the 527-way AudioSet head: PANNs' / SPEC 3's 4.84 M
    assert abs(n - (5 * 512 + 5) + (527 * 512 + 527) - 4.84e6) / 4.84e6 < 0.005
    frozen = {k for k, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"spectrogram_extractor.stft.conv_real.weight", "spectrogram_extractor.stft.conv_imag.weight",
                      "logmel_extractor.melW"}


def fake_official_checkpoint(path, seed=1):
    """A file shaped like Cnn6_mAP=0.343.pth: {'iteration', 'model'} with the official names and shapes."""
    g = torch.Generator().manual_seed(seed)
    state = {k: (torch.randn(s, generator=g) if s else torch.tensor(7)) for k, s in OFFICIAL.items()}
    torch.save({"iteration": 660000, "model": state}, path)
    return state


def test_load_pann_body_strictly_and_keep_the_new_head(tmp_path, model):
    state = fake_official_checkpoint(tmp_path / "Cnn6_mAP=0.343.pth")
    m = Cnn6(Cnn6Config())
    head = m.fc_defect.weight.detach().clone()
    load_pann(m, tmp_path / "Cnn6_mAP=0.343.pth")
    sd = m.state_dict()
    for k, v in state.items():
        if not k.startswith("fc_audioset."):
            assert torch.equal(sd[k], v), k
    assert torch.equal(sd["fc_defect.weight"], head)


def test_init_from_a_wrong_checkpoint_fails_clearly(tmp_path):
    state = fake_official_checkpoint(tmp_path / "x.pth")
    state["conv_block2.conv1.weight"] = torch.zeros(64, 64, 5, 5)  # wrong shape
    torch.save({"iteration": 0, "model": state}, tmp_path / "bad.pth")
    det = Cnn6Detector(device="cpu")
    with pytest.raises(DefectbenchError, match="not a PANN Cnn6"):
        det.load_init(tmp_path / "bad.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DefectbenchError, match="cannot be read"):
        det.load_init(tmp_path / "junk.pth")


def test_resampler_matches_scipy_resample_poly():
    x = np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32)
    y = Resample(48000, 32000)(torch.from_numpy(x)).numpy()
    ref = scipy.signal.resample_poly(x, 2, 3, axis=-1)
    assert y.shape == ref.shape == (2, 32000)
    assert np.abs(y - ref).max() < 1e-5


def test_spectrogram_is_the_windowed_power_spectrum(model):
    """Frame t = |rfft(periodic Hann * reflect-padded x[t*320 : t*320+1024])|^2 (torchlibrosa, center=True)."""
    x = np.random.default_rng(1).standard_normal(32000).astype(np.float32)
    with torch.no_grad():
        spec = model.spectrogram_extractor(torch.from_numpy(x)[None])[0, 0].numpy()
    assert spec.shape == (1 + 32000 // 320, 513)
    padded = np.pad(x.astype(np.float64), 512, mode="reflect")
    window = scipy.signal.get_window("hann", 1024, fftbins=True)
    for t in (0, 7, 100):
        ref = np.abs(np.fft.rfft(window * padded[t * 320 : t * 320 + 1024])) ** 2
        assert np.allclose(spec[t], ref, rtol=1e-3, atol=1e-3 * ref.max())


def test_slaney_mel_filterbank():
    w = slaney_mel_filterbank(32000, 1024, 64, 50, 14000)
    assert w.shape == (64, 513) and (w >= 0).all()
    # Slaney's scale, read independently: 3 mels per 200 Hz below 1 kHz, 27 mels per factor 6.4 above
    def mel(f):
        return 3 * f / 200 if f < 1000 else 15 + 27 * math.log(f / 1000) / math.log(6.4)

    def hz(m):
        return 200 * m / 3 if m < 15 else 1000 * 6.4 ** ((m - 15) / 27)

    edges = [hz(mel(50) + i * (mel(14000) - mel(50)) / 65) for i in range(66)]
    freqs = np.linspace(0, 16000, 513)
    for i in (0, 20, 40, 63):
        lo, centre, hi = edges[i], edges[i + 1], edges[i + 2]
        nonzero = freqs[w[i] > 0]
        assert nonzero.min() > lo and nonzero.max() < hi  # the triangle's support
        assert abs(freqs[np.argmax(w[i])] - centre) <= 31.25  # peak within a bin of the centre
        assert w[i].max() <= 2 / (hi - lo) + 1e-9  # unit-area (Slaney) normalisation: height 2 / base
    for i in (30, 45, 63):  # wide triangles: the sampled area is ~1 (Hz units)
        assert abs(w[i].sum() * 31.25 - 1) < 0.05


def test_detector_rejects_other_rates_and_scores_probabilities():
    det = Cnn6Detector(config="tiny", device="cpu")
    rows = [{"id": "a", "rate": 48000, "audio": (np.random.default_rng(0).standard_normal(48000) * 3000).astype(np.int16)}]
    p = det.predict(rows)
    assert p.shape == (1, 5) and abs(p.sum() - 1) < 1e-5
    with pytest.raises(DefectbenchError, match="48000"):
        det.predict([{"id": "b", "rate": 44100, "audio": np.zeros(44100, np.float32)}])


def test_init_from_an_official_checkpoint_file(tmp_path):
    state = fake_official_checkpoint(tmp_path / "Cnn6_mAP=0.343.pth", seed=2)
    det = Cnn6Detector(device="cpu")
    det.load_init(tmp_path / "Cnn6_mAP=0.343.pth")
    assert torch.equal(det.model.conv_block4.conv1.weight.detach(), state["conv_block4.conv1.weight"])
    assert torch.equal(det.model.logmel_extractor.melW.detach(), state["logmel_extractor.melW"])
