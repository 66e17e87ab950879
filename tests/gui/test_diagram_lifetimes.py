"""The network diagram and the lifetimes Gantt, driven by real resnet18 / densenet201 analyses (no mocks)."""
import shutil

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QGraphicsSimpleTextItem

from engine import AnalysisRequest, analyze
from engine.units import format_bytes, format_count
from gui.diagram import NetworkDiagramWidget
from gui.diagram_items import GroupFrameItem, GroupSummaryItem, GroupToggleItem, LayerBlockItem
from gui.diagram_layout import GROUP_GAP, GROUP_PAD, group_layers
from gui.style import DEFAULT_DISPLAY, ramp_colour
from gui.lifetimes import LifetimesWidget


@pytest.fixture(scope="module")
def train():
    return analyze(AnalysisRequest(model="resnet18", batch=2))


@pytest.fixture(scope="module")
def inference():
    return analyze(AnalysisRequest(model="resnet18", batch=2, mode="inference"))


def _shown(qtbot, widget, width, height, analysis):
    """`widget` on screen at the given size, showing `analysis`."""
    qtbot.addWidget(widget)
    widget.resize(width, height)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_analysis(analysis)
    return widget


@pytest.fixture
def diagram(qtbot, train):
    return _shown(qtbot, NetworkDiagramWidget(), 1200, 700, train)


@pytest.fixture
def lifetimes(qtbot, train):
    return _shown(qtbot, LifetimesWidget(), 1100, 650, train)


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


def test_blocks_are_shaded_by_memory_not_by_a_category_colour(diagram, train):
    theme = DEFAULT_DISPLAY.colours
    conv1, fc = diagram.block("conv1"), diagram.block("fc")
    assert conv1.brush().color() == QColor(theme.memory_ramp[-1])  # the largest output: darkest
    assert fc.brush().color() == QColor(ramp_colour(theme, fc.box.fraction))
    assert QColor(theme.memory_ramp[-1]).lightness() < QColor(theme.memory_ramp[0]).lightness()
    fills = {block.brush().color().name() for block in diagram.blocks()}
    assert not fills & {c.lower() for c in theme.categories.values()}


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


# --- collapsible groups, fit ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def densenet():
    return analyze(AnalysisRequest(model="densenet201", batch=1, mode="inference"))


def _layer_items(view):
    return [item for item in view.scene().items() if isinstance(item, LayerBlockItem)]


def _summary_items(view):
    return [item for item in view.scene().items() if isinstance(item, GroupSummaryItem)]


def _toggle_pos(view, group):
    toggle = next(item for item in view.scene().items()
                  if isinstance(item, GroupToggleItem) and item.group_name == group)
    view.ensureVisible(toggle.sceneBoundingRect(), 20, 20)
    pos = view.mapFromScene(toggle.sceneBoundingRect().center())
    assert view.viewport().rect().contains(pos)
    return pos


def _group(analysis, name):
    return next(group for group in group_layers(analysis.layers) if group.name == name)


def test_group_names_are_unique_runs(diagram, train):
    names = diagram.group_names()
    assert len(names) == len(set(names)) and "" not in names
    # One frame per ResNet block: the downsample branch (a child module, run between the block's
    # own layers) stays inside its block instead of splitting it in three.
    assert names == ["layer1.0", "layer1.1", "layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    block = [layer.name for layer in _group(train, "layer2.0").layers]
    assert block == ["layer2.0.conv1", "layer2.0.bn1", "layer2.0.relu", "layer2.0.conv2", "layer2.0.bn2",
                     "layer2.0.downsample.0", "layer2.0.downsample.1", "layer2.0.relu#2"]
    assert diagram.collapsed_groups() == set()


def test_grouping_level_gives_an_overview_of_big_networks():
    from engine import AnalysisRequest, analyze

    dense = analyze(AnalysisRequest(model="densenet201", batch=1, mode="inference"))
    names = [g.name for g in group_layers(dense.layers)]
    # DenseNet's stem and final norm belong to 'features', yet the dense blocks get their own frames.
    assert "features.denseblock3" in names and len(names) <= 12
    vgg = analyze(AnalysisRequest(model="vgg16", batch=1, mode="inference"))
    assert [g.name for g in group_layers(vgg.layers)] == ["features", "", "classifier"]


def test_collapse_group_replaces_its_blocks_with_one_summary(diagram, train):
    group = _group(train, "layer1.0")
    assert len(group.layers) == 6
    diagram.collapse_group("layer1.0")
    assert diagram.collapsed_groups() == {"layer1.0"}
    assert len(_layer_items(diagram)) == len(train.layers) - len(group.layers)
    assert all(diagram.block(layer.name) is None for layer in group.layers)
    summaries = _summary_items(diagram)
    assert len(summaries) == 1 and summaries[0] is diagram.summary_block("layer1.0")
    summary = summaries[0]
    params = sum(layer.params for layer in group.layers)
    biggest = max(layer.output_bytes for layer in group.layers)
    assert summary.label_lines() == ["layer1.0", "6 layers", f"{format_count(params)} params",
                                     f"max {format_bytes(biggest)}"]
    assert summary.brush().color() == QColor(ramp_colour(DEFAULT_DISPLAY.colours, summary.box.fraction))
    # no gap: the next group's frame starts one group gap after the summary's frame
    assert diagram.block("layer1.1.conv1").rect().left() == pytest.approx(
        summary.rect().right() + 2 * GROUP_PAD + GROUP_GAP)

    diagram.expand_group("layer1.0")
    assert diagram.collapsed_groups() == set()
    assert len(_layer_items(diagram)) == len(train.layers) and not _summary_items(diagram)
    assert [b.layer_name for b in diagram.blocks()] == [layer.name for layer in train.layers]


def test_collapse_all_and_expand_all(diagram, train):
    diagram.collapse_all()
    assert diagram.collapsed_groups() == set(diagram.group_names())
    top_level = [layer for layer in train.layers if not layer.parent]
    assert [b.layer_name for b in diagram.blocks()] == [layer.name for layer in top_level]
    assert len(_summary_items(diagram)) == len(diagram.group_names())
    diagram.expand_all()
    assert diagram.collapsed_groups() == set()
    assert len(diagram.blocks()) == len(train.layers)


def test_toggle_click_and_frame_double_click(qtbot, diagram, train):
    size = len(_group(train, "layer3.1").layers)
    qtbot.mouseClick(diagram.viewport(), Qt.MouseButton.LeftButton, pos=_toggle_pos(diagram, "layer3.1"))
    assert diagram.collapsed_groups() == {"layer3.1"}
    assert len(diagram.blocks()) == len(train.layers) - size
    qtbot.mouseClick(diagram.viewport(), Qt.MouseButton.LeftButton, pos=_toggle_pos(diagram, "layer3.1"))
    assert diagram.collapsed_groups() == set()

    frame = next(item for item in diagram.scene().items()
                 if isinstance(item, GroupFrameItem) and item.group_name == "layer1.1")
    bounds = frame.sceneBoundingRect()
    padding = QPointF(bounds.center().x(), bounds.bottom() - 4)  # frame background below the labels
    diagram.ensureVisible(bounds, 20, 20)
    with qtbot.assertNotEmitted(diagram.sig_layer_selected):
        qtbot.mouseDClick(diagram.viewport(), Qt.MouseButton.LeftButton, pos=diagram.mapFromScene(padding))
    assert diagram.collapsed_groups() == {"layer1.1"}
    summary = diagram.summary_block("layer1.1")
    qtbot.mouseDClick(diagram.viewport(), Qt.MouseButton.LeftButton,
                      pos=diagram.mapFromScene(summary.sceneBoundingRect().center()))
    assert diagram.collapsed_groups() == set()


@pytest.mark.parametrize("group", ["layer3.1", "layer4.1"])
def test_double_click_on_a_toggle_toggles_once(qtbot, diagram, group):
    """A real double-click arrives as press, release, press, double-click, release (Qt 6). After the
    first click re-lays out, these toggles' spots hold the summary block / the background, which a
    double-click would otherwise expand again / fit."""
    pos = QPointF(_toggle_pos(diagram, group))
    fitted = diagram.transform().m11()
    events = [(QEvent.Type.MouseButtonPress, 1000), (QEvent.Type.MouseButtonRelease, 1050),
              (QEvent.Type.MouseButtonPress, 1150), (QEvent.Type.MouseButtonDblClick, 1150),
              (QEvent.Type.MouseButtonRelease, 1200)]
    for kind, ms in events:
        held = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseButtonRelease else Qt.MouseButton.LeftButton
        event = QMouseEvent(kind, pos, QPointF(diagram.viewport().mapToGlobal(pos.toPoint())),
                            Qt.MouseButton.LeftButton, held, Qt.KeyboardModifier.NoModifier)
        event.setTimestamp(ms)
        QApplication.sendEvent(diagram.viewport(), event)
    assert diagram.collapsed_groups() == {group}
    assert diagram.transform().m11() == pytest.approx(fitted)


def test_selection_survives_collapse_and_select_expands(qtbot, diagram):
    diagram.select_layer("layer2.1.conv2")
    diagram.collapse_group("layer2.1")
    diagram.collapse_group("layer4.0")
    assert diagram.selected_layer() == "layer2.1.conv2"
    assert diagram.summary_block("layer2.1").is_highlighted()
    with qtbot.assertNotEmitted(diagram.sig_layer_selected):
        diagram.select_layer("layer4.0.bn1")
    assert diagram.collapsed_groups() == {"layer2.1"}  # only the selected layer's group opened
    assert diagram.block("layer4.0.bn1").is_highlighted()
    assert not diagram.summary_block("layer2.1").is_highlighted()
    assert diagram.mapToScene(diagram.viewport().rect()).boundingRect().intersects(
        diagram.block("layer4.0.bn1").sceneBoundingRect())


def test_big_network_starts_collapsed(qtbot, diagram, densenet, train):
    assert len(densenet.layers) > 150
    diagram.set_analysis(densenet)
    names = diagram.group_names()
    assert diagram.collapsed_groups() == set(names)
    visible = len(diagram.blocks()) + len(_summary_items(diagram))
    assert visible == len(names) + sum(1 for layer in densenet.layers if not layer.parent)
    assert visible < len(densenet.layers) / 4
    texts = " ".join(item.text() for item in diagram.scene().items() if isinstance(item, QGraphicsSimpleTextItem))
    assert "groups start collapsed" in texts and "606 layers" in texts
    assert "F: fit" in texts
    diagram.expand_all()
    assert len(diagram.blocks()) == len(densenet.layers)
    diagram.set_analysis(train)  # a small network opens expanded again
    assert diagram.collapsed_groups() == set()


def test_f_key_and_background_double_click_fit(qtbot, diagram):
    diagram.setFocus()
    fit_all_scale = None
    for _ in range(2):
        centre = QPointF(diagram.viewport().rect().center())
        event = QWheelEvent(centre, QPointF(diagram.viewport().mapToGlobal(centre.toPoint())), QPoint(0, 0),
                            QPoint(0, 360), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                            Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(diagram.viewport(), event)
        zoomed = diagram.transform().m11()
        if fit_all_scale is None:
            qtbot.keyClick(diagram, Qt.Key.Key_F)
            fit_all_scale = diagram.transform().m11()
        else:
            diagram.ensureVisible(QRectF(diagram.sceneRect().topRight(), diagram.sceneRect().topRight()))
            background = diagram.mapFromScene(diagram.sceneRect().topRight() + QPointF(-5, 5))
            qtbot.mouseDClick(diagram.viewport(), Qt.MouseButton.LeftButton, pos=background)
        assert diagram.transform().m11() < zoomed
        assert diagram.transform().m11() == pytest.approx(fit_all_scale)
        assert diagram.mapToScene(diagram.viewport().rect()).boundingRect().adjusted(-1, -1, 1, 1).contains(
            diagram.sceneRect())


def test_collapsed_pngs(qtbot, diagram, densenet, tmp_path):
    diagram.collapse_group("layer2.0")
    diagram.select_layer("layer3.0.conv1")
    _save(diagram, tmp_path, "collapsed_resnet18")
    diagram.set_analysis(densenet)
    _save(diagram, tmp_path, "collapsed_densenet201")


# --- labels with the real fonts, lifetimes tooltips and row labels ------------------------------------
def test_labels_fit_their_blocks_with_the_real_fonts(qtbot, diagram, densenet):
    from PySide6.QtGui import QFontMetricsF

    for analysis in (densenet, None):
        if analysis is not None:
            diagram.set_analysis(analysis)
        else:
            diagram.expand_all()
        style = diagram.blocks()[0]._style if diagram.blocks() else _summary_items(diagram)[0]._style
        name_fm, label_fm = QFontMetricsF(style.name_font), QFontMetricsF(style.label_font)
        for item in [*diagram.blocks(), *_summary_items(diagram)]:
            for i, line in enumerate(item.label_lines()):
                assert (name_fm if i == 0 else label_fm).horizontalAdvance(line) <= item.label_rect().width(), line
        frames = {item.group_name: item for item in diagram.scene().items() if isinstance(item, GroupFrameItem)}
        for toggle in (item for item in diagram.scene().items() if isinstance(item, GroupToggleItem)):
            assert toggle.group_name in toggle.text()  # 'features.denseblock1', not '…ures.denseblock1'
            assert toggle.sceneBoundingRect().right() <= frames[toggle.group_name].sceneBoundingRect().right() + 1


def test_lifetime_bars_have_tooltips(lifetimes, train):
    name = "layer1.0.conv1"
    life = next(lt for lt in train.lifetimes if lt.category == "activations" and lt.module == name)
    row = lifetimes.row_names().index(name)
    bar = lifetimes.bar_at((life.alloc_point + life.free_point) / 2, row)
    tip = lifetimes.bar_tooltip(bar)
    assert tip.startswith(f"{name}: {format_bytes(life.nbytes)}")
    assert f"allocated: event {life.alloc_point} (forward)" in tip and "freed: event" in tip
    vb = lifetimes.getPlotItem().getViewBox()
    lifetimes.scene().sigMouseMoved.emit(vb.mapViewToScene(QPointF((life.alloc_point + life.free_point) / 2, row)))
    assert lifetimes.toolTip() == tip
    lifetimes.scene().sigMouseMoved.emit(vb.mapViewToScene(QPointF(life.free_point + 40, row)))
    assert lifetimes.toolTip() == ""


def test_row_labels_thin_out_so_they_never_overlap(qtbot, densenet):
    plot = LifetimesWidget()
    qtbot.addWidget(plot)
    plot.resize(900, 400)
    plot.show()
    plot.set_analysis(densenet)
    QApplication.processEvents()
    axis = plot.getPlotItem().getAxis("left")
    rows = len(plot.row_names())
    assert rows > 300
    (lo, hi), = [sorted(axis.range)]
    (step, values), = axis.tickValues(lo, hi, axis.size().height())
    px_per_row = axis.size().height() / (hi - lo)
    from PySide6.QtGui import QFontMetricsF
    line = QFontMetricsF(axis.style["tickFont"]).height()
    assert step > 1 and step * px_per_row >= line  # one line of text per label at least
    assert values == list(range(values[0], values[-1] + 1, int(step)))
    assert all(text for text in axis.tickStrings(values, 1.0, step))


def test_lifetimes_prepare_is_plain_data_and_clipped_to_the_step(train):
    from gui.lifetimes import prepare

    rows = prepare(train)
    assert rows.x0.min() >= 0 and rows.x1.max() <= len(train.timeline) - 1  # within the timeline's x-range
    assert (rows.x1 >= rows.x0).all()
    assert len(rows.x0) == sum(1 for lt in train.lifetimes if lt.category == "activations")
    assert rows.row_names[: 2] == ("conv1", "bn1")


def test_a_short_panel_gets_short_blocks_and_rows_follow_the_width(qtbot, diagram, train):
    from gui.diagram_layout import BLOCK_H_COMPACT

    diagram.resize(900, 220)  # what a 1280×720 window leaves the diagram
    qtbot.waitUntil(lambda: max(b.rect().height() for b in diagram.blocks()) <= BLOCK_H_COMPACT, timeout=3000)
    assert diagram.layout().width <= diagram.viewport().width()
    assert diagram.transform().m11() == pytest.approx(1.0)  # text at 1:1, not shrunk to fit
    assert len(diagram.blocks()) == len(train.layers)
