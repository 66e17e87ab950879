"""Every torchvision classification, segmentation and video model analyses in both modes;
detection and optical-flow models are refused with a reason, not a traceback.

Train runs at batch 2: with batch 1, BatchNorm on a 1x1 map (inception's aux head, DeepLab's
image pooling) refuses to train in real PyTorch too, and the trace reports exactly that.
"""
import pytest

from engine import AnalysisRequest, analyze
from engine.errors import MemLensError, ModelNotFoundError, UnsupportedError
from engine.sources import catalog

MODELS = [(family, name) for family in ("classification", "segmentation", "video") for name in catalog()[family]]


def test_the_catalog_covers_torchvision():
    assert len(catalog()["classification"]) == 80
    assert "fcn_resnet50" in catalog()["segmentation"] and "r3d_18" in catalog()["video"]


@pytest.mark.slow
@pytest.mark.parametrize("family, name", MODELS, ids=[n for _, n in MODELS])
def test_model_analyses_in_training_and_inference(family, name):
    train = analyze(AnalysisRequest(model=name, batch=2, optimizer="sgd"))
    infer = analyze(AnalysisRequest(model=name, batch=1, mode="inference", optimizer="none"))
    for a in (train, infer):
        assert a.parameters > 0 and a.layers
        assert a.peak.total_bytes > a.parameter_bytes
    assert train.peak.breakdown["gradients"] > 0 or train.peak.breakdown["activations"] > 0
    # Training holds activations for backward; inference does not.
    assert train.peak.total_bytes > infer.peak.total_bytes
    assert not any(life.category == "activations" for life in infer.lifetimes)


def test_natural_default_inputs():
    assert analyze(AnalysisRequest(model="inception_v3", batch=2, mode="inference")).input_shape == (2, 3, 299, 299)
    seg = analyze(AnalysisRequest(model="lraspp_mobilenet_v3_large", batch=1, mode="inference"))
    assert seg.input_shape == (1, 3, 520, 520)
    video = analyze(AnalysisRequest(model="r3d_18", batch=1, mode="inference"))
    assert video.input_shape == (1, 3, 16, 112, 112)


def test_segmentation_trains_against_per_pixel_targets():
    a = analyze(AnalysisRequest(model="lraspp_mobilenet_v3_large", batch=2, input_shape=(3, 128, 128)))
    # targets: one int64 class per pixel, beside the float32 batch
    assert a.timeline.live_at(0)["inputs"] == 2 * 3 * 128 * 128 * 4 + 2 * 128 * 128 * 8


@pytest.mark.parametrize("name", ["fasterrcnn_resnet50_fpn", "ssd300_vgg16", "raft_small"])
def test_detection_and_flow_models_are_refused_with_the_reason(name):
    with pytest.raises(UnsupportedError, match="not supported"):
        analyze(AnalysisRequest(model=name))


def test_unknown_model_suggests_close_names():
    with pytest.raises(ModelNotFoundError, match="Did you mean resnet18"):
        analyze(AnalysisRequest(model="resnett18"))


def test_batch_one_batchnorm_training_error_names_the_module():
    with pytest.raises(MemLensError, match=r"AuxLogits.*Expected more than 1 value per channel"):
        analyze(AnalysisRequest(model="inception_v3", batch=1))
