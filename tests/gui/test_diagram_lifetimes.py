"""The network diagram and the lifetimes Gantt, driven by real resnet18 analyses (no mocks)."""
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication

from engine import AnalysisRequest, analyze
from engine.units import format_bytes, format_count
from gui.diagram import KIND_COLOURS, LayerBlockItem, NetworkDiagramWidget
from gui.lifetimes import LifetimesWidget


@pytest.fixture(scope="module")
def train():
    return analyze(AnalysisRequest(model="resnet18", batch=2))


@pytest.fixture(scope="module")
def inference():
    return analyze(AnalysisRequest(model="resnet18", batch=2, mode="inference"))


@pytest.fixture
def diagram(qtbot, train):
    view = NetworkDiagramWidget()
    qtbot.addWidget(view)
    view.resize(1200, 700)
    view.show()
    qtbot.waitExposed(view)
    view.set_analysis(train)
    return view


@pytest.fixture
def lifetimes(qtbot, train):
    plot = LifetimesWidget()
    qtbot.addWidget(plot)
    plot.resize(1100, 650)
    plot.show()
    qtbot.waitExposed(plot)
    plot.set_analysis(train)
    return plot


def _save(widget, tmp_path, name):
    path = tmp_path / f"{name}.png"
    assert widget.grab().save(str(path))
    assert path.stat().st_size > 10_000
    shutil.copy(path, f"/tmp/memlens_{name}.png")


def _first(analysis, kind):
    return next(layer for layer in analysis.layers if layer.kind == kind)


# --- diagram -------------------------------------------------------------------------------------
def test_one_block_per_layer(diagram, train):
    blocks = [item for item in diagram.scene().items() if isinstance(item, LayerBlockItem)]
    assert len(blocks) == len(train.layers)
    assert [b.layer_name for b in diagram.blocks()] == [layer.name for layer in train.layers]


def test_blocks_use_kind_colours(diagram, train):
    for kind in ("conv", "linear"):
        block = diagram.block(_first(train, kind).name)
        assert block.brush().color() == QColor(KIND_COLOURS[kind])


def test_bigger_output_is_taller(diagram, train):
    conv1 = train.layer_named("conv1")
    fc = train.layer_named("fc")
    assert conv1.output_bytes > fc.output_bytes
    assert diagram.block("conv1").rect().height() > diagram.block("fc").rect().height()
    assert diagram.block("fc").rect().height() >= 14  # clamped minimum


def test_click_emits_layer_name(qtbot, diagram, train):
    name = "layer2.0.conv1"
    block = diagram.block(name)
    diagram.select_layer(name)  # scrolls it into view
    diagram.select_layer("")
    assert diagram.selected_layer() is None
    pos = diagram.mapFromScene(block.sceneBoundingRect().center())
    assert diagram.viewport().rect().contains(pos)
    with qtbot.waitSignal(diagram.sig_layer_selected, timeout=2000) as blocker:
        qtbot.mouseClick(diagram.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert blocker.args == [name]
    assert block.is_highlighted()
    assert diagram.selected_layer() == name


def test_select_layer_highlights_without_signal(qtbot, diagram):
    with qtbot.assertNotEmitted(diagram.sig_layer_selected):
        diagram.select_layer("layer4.1.bn2")
    highlighted = [b.layer_name for b in diagram.blocks() if b.is_highlighted()]
    assert highlighted == ["layer4.1.bn2"]
    assert diagram.block("layer4.1.bn2").pen().widthF() > diagram.block("conv1").pen().widthF()
    diagram.select_layer("conv1")
    assert [b.layer_name for b in diagram.blocks() if b.is_highlighted()] == ["conv1"]


def test_tooltip_has_formatted_numbers(diagram, train):
    layer = train.layer_named("conv1")
    tip = diagram.block("conv1").toolTip()
    assert "conv1" in tip and "Conv2d" in tip
    for value in (layer.output_bytes, layer.param_bytes, layer.saved_bytes, layer.textbook_bytes):
        assert format_bytes(value) in tip
    assert format_count(layer.params) in tip
    assert "×".join(str(d) for d in layer.output_shape) in tip


def test_diagram_redraws_and_fits(diagram, train, inference):
    diagram.select_layer("conv1")
    diagram.set_analysis(inference)
    assert len(diagram.blocks()) == len(inference.layers)
    assert diagram.selected_layer() is None
    diagram.fit_to_window()
    assert diagram.transform().m11() < 1.0
    assert diagram.mapToScene(diagram.viewport().rect()).boundingRect().contains(
        diagram.block("fc").sceneBoundingRect())


def test_diagram_png(diagram, tmp_path):
    diagram.select_layer("layer1.0.bn1")
    _save(diagram, tmp_path, "diagram")


# --- lifetimes -----------------------------------------------------------------------------------
def test_training_has_one_bar_per_activation(lifetimes, train):
    activations = [lt for lt in train.lifetimes if lt.category == "activations"]
    assert activations
    assert lifetimes.category == "activations"
    assert lifetimes.bar_count() == len(activations)
    drawn = sum(len(item.opts["x0"]) for item in lifetimes._bar_items)
    assert drawn == len(activations)
    assert len(lifetimes._bar_items) <= 6  # a few BarGraphItems, not one per bar
    title = lifetimes.getPlotItem().titleLabel.text
    assert f"{len(activations)} tensors" in title and "Activation lifetimes" in title


def test_rows_follow_execution_order(lifetimes, train):
    names = [layer.name for layer in train.layers]
    rows = lifetimes.row_names()
    known = [r for r in rows if r in names]
    assert known == sorted(known, key=names.index)
    unknown = [r for r in rows if r not in names and not any(n.startswith(r + ".") for n in names)]
    assert rows[len(rows) - len(unknown):] == unknown  # e.g. the loss goes last


def test_inference_shows_temporaries(qtbot, inference):
    plot = LifetimesWidget()
    qtbot.addWidget(plot)
    plot.set_analysis(inference)
    temporaries = [lt for lt in inference.lifetimes if lt.category == "temporaries"]
    assert not any(lt.category == "activations" for lt in inference.lifetimes)
    assert plot.category == "temporaries"
    assert plot.bar_count() == len(temporaries)
    title = plot.getPlotItem().titleLabel.text
    assert "Temporary" in title and "no activations" in title


def test_select_layer_marks_exactly_its_bars(qtbot, lifetimes, train):
    for name in ("conv1", "layer1.0.bn1", "layer3.1.conv2"):
        expected = [lt for lt in train.lifetimes if lt.category == "activations" and lt.module == name]
        with qtbot.assertNotEmitted(lifetimes.sig_layer_selected):
            lifetimes.select_layer(name)
        assert lifetimes.highlighted_bar_count() == len(expected) > 0
        opts = lifetimes._highlight.opts
        assert sorted(np.asarray(opts["x0"]).tolist()) == sorted(float(lt.alloc_point) for lt in expected)
        row = lifetimes.row_names().index(name)
        assert set(np.asarray(opts["y"]).tolist()) == {float(row)}
    lifetimes.select_layer("no.such.layer")
    assert lifetimes.highlighted_bar_count() == 0


def test_click_bar_emits_layer(qtbot, lifetimes, train):
    name = "layer1.0.conv1"
    life = next(lt for lt in train.lifetimes if lt.category == "activations" and lt.module == name)
    row = lifetimes.row_names().index(name)
    x = (life.alloc_point + life.free_point) / 2
    assert lifetimes.layer_at(x, row) == name
    assert lifetimes.layer_at(life.free_point + 50, row) is None  # right of the bar
    vb = lifetimes.getPlotItem().getViewBox()
    pos = lifetimes.mapFromScene(vb.mapViewToScene(QPointF(x, row)))
    assert lifetimes.viewport().rect().contains(pos)
    with qtbot.waitSignal(lifetimes.sig_layer_selected, timeout=2000) as blocker:
        qtbot.mouseClick(lifetimes.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert blocker.args == [name]
    assert lifetimes.highlighted_bar_count() >= 1


def test_lifetimes_png(lifetimes, tmp_path):
    lifetimes.select_layer("layer1.0.conv1")
    _save(lifetimes, tmp_path, "lifetimes")


def test_wheel_zooms_and_drag_does_not_select(qtbot, diagram):
    before = diagram.transform().m11()
    centre = QPointF(diagram.viewport().rect().center())
    event = QWheelEvent(centre, QPointF(diagram.viewport().mapToGlobal(centre.toPoint())), QPoint(0, 0),
                        QPoint(0, 120), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(diagram.viewport(), event)
    assert diagram.transform().m11() > before

    block = diagram.block("conv1")
    start = diagram.mapFromScene(block.sceneBoundingRect().center())
    with qtbot.assertNotEmitted(diagram.sig_layer_selected):
        qtbot.mousePress(diagram.viewport(), Qt.MouseButton.LeftButton, pos=start)
        qtbot.mouseMove(diagram.viewport(), start + QPoint(60, 40))
        qtbot.mouseRelease(diagram.viewport(), Qt.MouseButton.LeftButton, pos=start + QPoint(60, 40))
    assert diagram.selected_layer() is None
