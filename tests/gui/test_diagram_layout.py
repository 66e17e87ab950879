"""The diagram's layout as plain rectangles: checked without a scene (and without Qt at all), on
real resnet18, VGG-16 and densenet201 analyses."""
import subprocess
import sys

import pytest

from conftest import ROOT
from engine import AnalysisRequest, analyze
from gui.diagram_layout import (approx_metrics, display_names, group_layers, layout_diagram, prepare_diagram,
                                short_path)

MODELS = {"resnet18": 2, "vgg16": 1, "densenet201": 1}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    analysis = analyze(AnalysisRequest(model=request.param, batch=MODELS[request.param], mode="inference"))
    return prepare_diagram(analysis)


def _layouts(model):
    """The layout expanded and collapsed, in a narrow (1280×720) and a wide panel, small and large text."""
    for collapsed in (set(), set(model.group_names())):
        for row_width in (700.0, 1500.0):
            for px in (11.0, 16.0):
                yield layout_diagram(model, collapsed, approx_metrics(px), row_width), collapsed, approx_metrics(px)


def test_the_layout_module_needs_no_qt():
    code = ("import sys; import gui.diagram_layout, gui.style; "
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


def test_every_layer_or_its_group_has_exactly_one_block(model):
    for layout, collapsed, _ in _layouts(model):
        names = [box.name for box in layout.blocks]
        assert len(names) == len(set(names))
        for group in model.groups:
            if group.name in collapsed:
                assert group.name in names and not any(layer.name in names for layer in group.layers)
            else:
                assert all(layer.name in names for layer in group.layers)


def test_no_two_blocks_or_labels_overlap(model):
    for layout, _, _ in _layouts(model):
        boxes = [(box.name, box.rect) for box in layout.blocks] + [(box.name + "/label", box.label_rect)
                                                                    for box in layout.blocks]
        boxes += [(f.group + "/frame-label", f.label_rect) for f in layout.frames]
        boxes.sort(key=lambda item: (item[1].y, item[1].x))
        for i, (name, rect) in enumerate(boxes):
            for other, rect2 in boxes[i + 1:]:
                if rect2.y >= rect.bottom:
                    break
                assert not rect.intersects(rect2), (name, other)
        frames = [f.rect for f in layout.frames]
        assert not any(a.intersects(b) for i, a in enumerate(frames) for b in frames[i + 1:])


def test_frames_contain_their_blocks_and_labels(model):
    for layout, _, _ in _layouts(model):
        for box in layout.blocks:
            group = box.group.name if box.group is not None else model.group_of[box.name].name
            if not group:
                continue
            frames = [f for f in layout.frames if f.group == group and f.rect.contains(box.rect)]
            assert len(frames) == 1, box.name
            assert frames[0].rect.contains(box.label_rect)


def test_labels_are_never_clipped(model):
    for layout, _, metrics in _layouts(model):
        for box in layout.blocks:
            assert len(box.lines) * metrics.line_h <= box.label_rect.h + 1e-6
            for i, line in enumerate(box.lines):
                assert metrics.measure(line, i == 0) <= box.label_rect.w, (box.name, line)
        for frame in layout.frames:
            assert frame.group in frame.label  # the full name, never '…ures.denseblock1'
            assert metrics.measure(frame.label, False) <= frame.label_rect.w + 1e-6
            assert frame.label_rect.right <= frame.rect.right + 1e-6


def test_rows_wrap_at_the_width_asked_for(model):
    for layout, _, _ in _layouts(model):
        widest_single = max(max(f.rect.w for f in layout.frames), max(b.rect.w for b in layout.blocks))
        for box in layout.blocks:
            assert box.rect.right <= max(layout.width, widest_single) + 1e-6
        assert layout.height > 0


def test_big_networks_start_collapsed_small_ones_expanded(model):
    if model.layer_count > 150:
        assert model.starts_collapsed == frozenset(model.group_names())
    else:
        assert model.starts_collapsed == frozenset()


def test_repeated_names_show_their_parent_path():
    dense = analyze(AnalysisRequest(model="densenet201", batch=1, mode="inference"))
    model = prepare_diagram(dense)
    assert model.labels["features.denseblock1.denselayer3.conv1"] == "denselayer3.conv1"
    assert model.labels["features.conv0"] == "conv0"
    vgg = prepare_diagram(analyze(AnalysisRequest(model="vgg16", batch=1, mode="inference")))
    assert vgg.labels["features.0"] == "features.0"  # never a bare index
    assert vgg.labels["avgpool"] == "avgpool"
    for group in model.groups:
        labels = [model.labels[layer.name] for layer in group.layers]
        assert len(labels) == len(set(labels)), group.name  # unique within the frame they share


def test_display_names_and_short_paths_are_tails_of_the_name():
    resnet = analyze(AnalysisRequest(model="resnet18", batch=1, mode="inference"))
    for group in group_layers(resnet.layers):
        for name, label in display_names(group).items():
            assert name.endswith(label)
    assert short_path("features.denseblock1") == "denseblock1"
    assert short_path("layer1.0") == "layer1.0"
