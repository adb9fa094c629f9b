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


def test_init_reads_the_file_once_and_rejects_a_bare_tensor(tmp_path, monkeypatch):
    """--init reads a defectbench checkpoint once (it used to be read twice: once to tell it from a PANN
    file, once to load it); a file holding something other than a state dict is one clear line."""
    body = Cnn6Detector(config="cpu-48k", device="cpu")
    _save(body, tmp_path / "body.pt")
    calls, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(a[0]) or real_load(*a, **k))
    Cnn6Detector(config="cpu-48k-wave", device="cpu").load_init(tmp_path / "body.pt")
    assert calls == [tmp_path / "body.pt"]
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(DefectbenchError, match="not a PANN Cnn6"):
        Cnn6Detector(device="cpu").load_init(tmp_path / "tensor.pth")


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


# ------------------------------------------------------------------ the "cpu-48k-wave" configuration


def test_wave_features_mark_the_click_frame_and_clipping_plateaus():
    from defectbench.models.cnn6 import WaveFeatures

    f = WaveFeatures(480)
    rng = np.random.default_rng(0)
    music = torch.tensor(rng.normal(0, 0.05, 48000), dtype=torch.float32)[None]
    clicked = music.clone()
    clicked[0, 20 * 480 + 100] += 0.8  # one 1-sample click in frame 20
    jump = f(clicked)[0, 0] - f(music)[0, 0]  # log10 of the largest first difference per frame
    assert jump.shape == (100,)
    assert int(jump.argmax()) == 20 and jump[20] > 0.3  # 0.8 against noise jumps of about 0.25
    assert torch.all(jump[torch.arange(100) != 20].abs() < 1e-6)
    # clipping to [-v, v]: many samples at exactly the chunk's peak; unclipped noise has one
    v = 0.3 * float(music.abs().max())
    plateau_clipped = f(music.clamp(-v, v))[0, 4]
    plateau_clean = f(music)[0, 4]
    assert float((plateau_clean > 0).sum()) == 1
    assert torch.all(plateau_clipped > 0.5)


def _save(det, path):
    from dataclasses import asdict

    from defectbench.neural import CHECKPOINT_FORMAT, save_checkpoint

    save_checkpoint(path, {"format": CHECKPOINT_FORMAT, "model": "cnn6", "config": asdict(det.config),
                           "state_dict": det.model.state_dict()})


def test_wave_configuration_loads_a_cpu_48k_body_and_gives_its_outputs(tmp_path):
    torch.manual_seed(0)
    body = Cnn6Detector(config="cpu-48k", device="cpu")
    path = tmp_path / "body.pt"
    _save(body, path)
    wave = Cnn6Detector(config="cpu-48k-wave", device="cpu")
    assert wave.parameter_count() - body.parameter_count() == (
        2 * 5 + 5 * 32 * 3 + 2 * 32 + 32 * 32 * 3 + 2 * 32 + 64 * 5 + 5)  # the branch's BN, convs and output layer
    wave.load_init(path)
    assert wave.initialised
    x = torch.randn(2, 48000) * 0.1
    body.model.eval(), wave.model.eval()
    with torch.no_grad():
        assert torch.allclose(body.model(x), wave.model(x), atol=1e-6)  # the branch starts at zero output
    run = tmp_path / "run"  # a training folder, as `train --init checkpoints/X` passes it
    _save(body, run / "model.pt")
    from_folder = Cnn6Detector(config="cpu-48k-wave", device="cpu")
    from_folder.load_init(run)
    from_folder.model.eval()
    with torch.no_grad():
        assert torch.allclose(body.model(x), from_folder.model(x), atol=1e-6)
    with pytest.raises(DefectbenchError, match="does not exist"):
        Cnn6Detector(config="cpu-48k-wave", device="cpu").load_init(tmp_path / "empty-run")
    other = Cnn6Detector(config="cpu", device="cpu")
    _save(other, tmp_path / "cpu.pt")
    with pytest.raises(DefectbenchError, match="does not fit"):
        Cnn6Detector(config="cpu-48k-wave", device="cpu").load_init(tmp_path / "cpu.pt")


def test_class_balanced_loss_weighs_every_class_present_the_same():
    from defectbench.models.cnn6 import class_balance_weights

    labels = torch.tensor([0, 0, 0, 1, 4, 4])
    w = class_balance_weights(labels, 5)
    # three classes present, each weighing 1/3 in total: 1/9 for each of the three 0s, 1/3 for the 1, 1/6 per 4
    assert torch.allclose(w, torch.tensor([1 / 9, 1 / 9, 1 / 9, 1 / 3, 1 / 6, 1 / 6]))
    det = Cnn6Detector(config="tiny", device="cpu")
    from defectbench.neural import TrainingRecipe

    logp = torch.log_softmax(torch.randn(6, 5), -1)
    per_class = [float(-logp[labels == c, c].mean()) for c in (0, 1, 4)]
    balanced = det.loss(logp, {"label": labels}, TrainingRecipe(lr=1e-3, batch_size=6, balance_classes=True))
    assert abs(float(balanced) - sum(per_class) / 3) < 1e-6
    plain = det.loss(logp, {"label": labels}, TrainingRecipe(lr=1e-3, batch_size=6))
    assert abs(float(plain) - float(-logp[torch.arange(6), labels].mean())) < 1e-6
