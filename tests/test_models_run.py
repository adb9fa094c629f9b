"""`defectbench run` on trained neural detectors (issue 6): the result of a tiny trained model validates."""

from defectbench.models.hooknet import HookNetDetector
from defectbench.training import TrainOptions, train


def test_trained_tiny_hooknet_result_validates(clicks_dataset, tmp_path):
    from defectbench.results import verify
    from defectbench.runner import run

    ckpt = tmp_path / "ck"
    train(TrainOptions(model="hooknet", dataset=str(clicks_dataset), out=str(ckpt), config="tiny", max_steps=2,
                       batch_size=16, device="cpu", progress=False), log=lambda s: None)
    out = tmp_path / "results" / "hooknet.json"
    run("hooknet", clicks_dataset, checkpoint=ckpt, out=out, workers=1, options={"device": "cpu"},
        n_resamples=50, show_progress=False, make_plots=False)
    result = verify(out, clicks_dataset)  # schema, predictions hash, every metric recomputed
    det = HookNetDetector.from_checkpoint(ckpt, device="cpu")
    assert result.model.name == "hooknet" and result.model.checkpoint == str(ckpt)
    assert result.model.parameters == det.parameter_count() == sum(p.numel() for p in det.model.parameters())
    assert result.model.weights_hash == det.weights_hash()
    assert result.threshold.chosen_on == "validation" and result.threshold.kind == "score"
    assert result.throughput.device == "cpu" and result.throughput.segments == result.dataset.count > 0


def test_trained_tiny_cnn6_result_validates(tmp_path_factory, tmp_path):
    from defectbench.engine import build
    from defectbench.results import verify
    from defectbench.runner import run
    from defectbench.models.cnn6 import Cnn6Detector

    dataset = tmp_path_factory.mktemp("ds") / "video-artifacts"
    build("video-artifacts", "synth:2", dataset, limit=1, progress=False)
    ckpt = tmp_path / "ck"
    train(TrainOptions(model="cnn6", dataset=str(dataset), out=str(ckpt), config="tiny", max_steps=2, batch_size=16,
                       eval_every=1, device="cpu", progress=False), log=lambda s: None)
    out = tmp_path / "results" / "cnn6.json"
    run("cnn6", dataset, checkpoint=ckpt, out=out, workers=1, options={"device": "cpu"}, n_resamples=50,
        show_progress=False, make_plots=False)
    result = verify(out, dataset)
    det = Cnn6Detector.from_checkpoint(ckpt, device="cpu")
    assert result.task == "multiclass" and result.model.weights_hash == det.weights_hash()
    assert result.model.parameters == det.parameter_count()
    assert result.throughput.device == "cpu" and result.throughput.segments == result.dataset.count > 0
