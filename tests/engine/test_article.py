"""The article's numbers hold (DESIGN.md): VGG-16's parameters and its first feature map."""
import os

import pytest

from conftest import SPECS
from engine import AnalysisRequest, analyze


@pytest.fixture(scope="module")
def vgg16():
    return analyze(AnalysisRequest(model="vgg16", batch=32))


def test_vgg16_has_138_million_parameters_taking_553_mb_in_fp32(vgg16):
    assert vgg16.parameters == 138_357_544
    assert vgg16.parameter_bytes == 553_430_176
    assert sum(layer.params for layer in vgg16.layers) == 138_357_544


def test_first_two_convolutions(vgg16):
    conv1, conv2 = [layer for layer in vgg16.layers if layer.kind == "conv"][:2]
    assert conv1.params == 3 * 3 * 3 * 64 + 64 == 1_792
    assert conv2.params == 3 * 3 * 64 * 64 + 64 == 36_928


def test_first_feature_map_at_batch_32(vgg16):
    conv1 = vgg16.layers[0]
    assert conv1.output_shape == (32, 64, 224, 224)
    values = 32 * 64 * 224 * 224
    assert values == 102_760_448
    assert conv1.output_bytes == 411_041_792 == values * 4


def test_pooling_layers_have_no_parameters_and_the_first_fc_layer_dominates(vgg16):
    assert all(layer.params == 0 for layer in vgg16.layers if layer.kind == "pool")
    fc1 = next(layer for layer in vgg16.layers if layer.kind == "linear")
    assert fc1.params == 25_088 * 4096 + 4096
    assert fc1.params == max(layer.params for layer in vgg16.layers)


def test_textbook_estimate_follows_the_article_formula(vgg16):
    t = vgg16.textbook
    assert t.parameters_bytes == t.gradients_bytes == 553_430_176
    assert t.optimizer_bytes == 2 * 553_430_176  # Adam: two more copies
    assert t.feature_map_bytes == sum(layer.textbook_bytes for layer in vgg16.layers)
    assert t.peak_bytes == 4 * 553_430_176 + t.feature_map_bytes
    # The article sums conv, pool and FC outputs to about 1.88 GB for a batch of 32.
    assert 1.85e9 < t.feature_map_bytes < 2.0e9


def test_inference_textbook_is_parameters_plus_two_largest_consecutive_maps():
    a = analyze(AnalysisRequest(model="vgg16", batch=32, mode="inference", optimizer="none"))
    maps = [layer.textbook_bytes for layer in a.layers if layer.textbook_bytes]
    assert a.textbook.peak_bytes == a.parameter_bytes + max(x + y for x, y in zip(maps, maps[1:]))
    # The traced inference peak is parameters plus a few maps, far below training's: while conv2
    # runs, its input, oneDNN's copy of it, the blocked output and the output are live at once.
    first_map = 411_041_792
    assert a.parameter_bytes + 2 * first_map < a.peak.total_bytes < a.parameter_bytes + 4 * first_map + 20_000_000


def test_the_shipped_vgg16_spec_reproduces_torchvision(vgg16):
    spec = analyze(AnalysisRequest(model=os.path.join(SPECS, "vgg16.yaml"), batch=32))
    assert spec.parameters == 138_357_544
    # torchvision flattens with torch.flatten inside forward; the spec has a Flatten layer (a view).
    spec_layers = [(l.kind, l.params, l.output_shape) for l in spec.layers if l.type != "Flatten"]
    assert spec_layers == [(l.kind, l.params, l.output_shape) for l in vgg16.layers]
    assert spec.peak.total_bytes == vgg16.peak.total_bytes
