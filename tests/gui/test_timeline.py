"""The memory timeline, read as a user reads it: legend beside the data, one unit, a progress axis,
click-to-move cursor, x-only wheel zoom, and one x-range shared with the lifetimes."""
import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QWheelEvent
from PySide6.QtWidgets import QApplication

from engine import AnalysisRequest, analyze
from engine.categories import CATEGORIES
from engine.units import choose_unit, format_size
from gui.lifetimes import LifetimesWidget
from gui.style import CATEGORY_LABELS, make_display
from gui.timeline import HEADROOM, MemoryTimelineWidget, prepare, share_x_range
from gui.window import MainWindow


@pytest.fixture(scope="module")
def resnet():
    return analyze(AnalysisRequest(model="resnet18", batch=2))


@pytest.fixture(scope="module")
def vgg():
    return analyze(AnalysisRequest(model="vgg16", batch=16))


@pytest.fixture
def timeline(qtbot, resnet):
    widget = MemoryTimelineWidget()
    qtbot.addWidget(widget)
    widget.resize(1100, 420)
    widget.show()
    qtbot.waitExposed(widget)
    widget.set_analysis(resnet)
    return widget


def test_the_legend_never_covers_the_data(qtbot, timeline, vgg):
    for width in (1100, 640):  # wide, and narrow enough that the legend wraps
        timeline.resize(width, 400)
        timeline.set_analysis(vgg)
        QApplication.processEvents()
        assert not timeline.legend_rect().intersects(timeline.data_rect())
        assert timeline.legend_rect().bottom() <= timeline.data_rect().top()


def test_legend_swatches_are_the_stacked_areas_colours(timeline, resnet):
    text = timeline.legend_text()
    for cat in CATEGORIES:
        colour = timeline.fills[cat].brush().color().name()
        if resnet.timeline.curves[cat].any():
            assert f"color:{colour}'>■" in text.lower() or f"color:{colour}'>■" in text
            assert CATEGORY_LABELS[cat] in text
        else:
            assert CATEGORY_LABELS[cat] not in text  # a category that never holds bytes is left out


def _tick_strings(axis):
    lo, hi = axis.range
    out = []
    for spacing, values in axis.tickValues(min(lo, hi), max(lo, hi), axis.size().width() or axis.size().height()):
        out += axis.tickStrings(values, 1.0, spacing)
    return out


def test_one_unit_chosen_from_the_data_never_scientific(qtbot, timeline, vgg):
    timeline.set_analysis(vgg)
    QApplication.processEvents()
    top = int(vgg.timeline.total.max())
    assert top > 2**30  # VGG-16 at batch 16 trains in GiBs
    assert timeline.unit() == "GiB" == choose_unit(top)[0]
    assert timeline.getAxis("left").labelText == "live memory (GiB)"
    ticks = _tick_strings(timeline.getAxis("left"))
    assert ticks and not any("e+" in t or "e-" in t for t in ticks)
    assert max(float(t) for t in ticks if t) < 1024
    timeline.apply_display(make_display(decimal_units=True))
    assert timeline.unit() == "GB"
    assert timeline.getAxis("left").labelText == "live memory (GB)"
    assert timeline.peak_label.textItem.toPlainText().startswith(f"peak {format_size(vgg.peak.total_bytes, True)}")


def test_the_x_axis_reads_as_progress_with_phase_names(timeline, resnet):
    ticks = _tick_strings(timeline.getAxis("bottom"))
    assert "▶ forward" in ticks and "▶ backward" in ticks and "▶ optimizer" in ticks
    assert "layer2.0" in ticks  # a layer group, as it runs
    assert not any(t.replace(".", "").isdigit() for t in ticks if t)  # no raw event numbers
    timeline.set_cursor(300)
    assert "event 300" in timeline.cursor_text() and "event 300" in timeline.toolTip()  # the index stays


def test_a_click_moves_the_cursor_there(qtbot, timeline, resnet):
    vb = timeline.getViewBox()
    target = 123.0
    scene_pos = vb.mapViewToScene(QPointF(target, vb.viewRange()[1][1] / 2))
    pos = timeline.mapFromScene(scene_pos)
    qtbot.mouseClick(timeline.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert abs(timeline.cursor_point() - target) <= 2


def test_the_wheel_zooms_time_only_and_y_fits_what_is_visible(timeline, resnet):
    vb = timeline.getViewBox()
    (x0, x1), (y0, y1) = vb.viewRange()
    centre = vb.mapViewToScene(QPointF(0.8 * x1, y1 / 2))
    pos = QPointF(timeline.mapFromScene(centre))
    for _ in range(6):
        event = QWheelEvent(pos, QPointF(timeline.viewport().mapToGlobal(pos.toPoint())), QPoint(0, 0),
                            QPoint(0, 240), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                            Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(timeline.viewport(), event)
    (nx0, nx1), (ny0, ny1) = vb.viewRange()
    assert nx1 - nx0 < (x1 - x0) / 2  # zoomed in on time
    lo, hi = int(np.floor(nx0)), int(np.ceil(nx1)) + 1
    visible_max = resnet.timeline.total[lo:hi].max() / 2**20
    assert ny0 == 0 and ny1 == pytest.approx(visible_max * HEADROOM, rel=0.02)


def test_timeline_and_lifetimes_share_exactly_one_x_range(qtbot, resnet):
    timeline, lifetimes = MemoryTimelineWidget(), LifetimesWidget()
    for widget, width in ((timeline, 1200), (lifetimes, 900)):  # different widths and axis widths
        qtbot.addWidget(widget)
        widget.resize(width, 400)
        widget.show()
    share_x_range(timeline, lifetimes)
    timeline.set_analysis(resnet)
    lifetimes.set_analysis(resnet)
    last = len(resnet.timeline) - 1
    assert timeline.viewRange()[0] == lifetimes.viewRange()[0] == [0, last]
    timeline.setXRange(100, 300, padding=0)
    assert lifetimes.viewRange()[0] == timeline.viewRange()[0] == [100, 300]
    lifetimes.setXRange(50, 70, padding=0)
    assert timeline.viewRange()[0] == [50, 70]


def test_the_window_shows_one_x_range_ending_at_the_data(qtbot):
    """Bug: in the window the timeline ran to about 10,800 while the data ended at 8,458."""
    analysis = analyze(AnalysisRequest(model="resnet50", batch=2))
    window = MainWindow(AnalysisRequest(model="resnet50", batch=2))
    qtbot.addWidget(window)
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    window.build_plots()
    window.set_analysis(analysis)
    QApplication.processEvents()
    last = len(analysis.timeline) - 1
    assert window.timeline.viewRange()[0] == pytest.approx([0, last])
    assert window.lifetimes.viewRange()[0] == pytest.approx([0, last])
    window.close()


def test_prepare_is_plain_data(resnet):
    data = prepare(resnet)
    assert data.stacked.shape == (len(CATEGORIES), len(resnet.timeline))
    assert (data.stacked[-1] == resnet.timeline.total).all()
    pairs = data.landmarks.pairs()
    labels = [label for _, label in pairs]
    assert labels.index("layer4.1") < labels.index("layer4.1.bn2")  # groups are tried before layers
    assert min(pairs)[1] == "conv1"
    assert {"loss", "optimizer", "fc"} <= set(labels)


def test_high_contrast_theme_recolours_the_areas(timeline):
    display = make_display("high-contrast")
    timeline.apply_display(display)
    for cat in CATEGORIES:
        assert timeline.fills[cat].brush().color() == QColor(display.colours.categories[cat])


def test_the_capacity_line_keeps_the_zoom_and_fits_in_y(timeline, resnet):
    timeline.setXRange(100, 400, padding=0)
    capacity = int(resnet.timeline.total.max() * 1.5)
    timeline.set_capacity(capacity, "test GPU")
    assert timeline.viewRange()[0] == [100, 400]
    assert timeline.capacity_line.value() == pytest.approx(capacity / 2**20)
    assert timeline.viewRange()[1][1] >= capacity / 2**20
    timeline.set_capacity(None)
    assert timeline.capacity_line is None


def test_a_capacity_far_above_the_step_is_named_in_the_legend_not_squashing_the_data(timeline, resnet):
    peak = int(resnet.timeline.total.max())
    timeline.set_capacity(peak * 10, "big GPU")
    assert timeline.viewRange()[1][1] < peak * 10 / 2**20  # the data keeps the height
    assert "big GPU" in timeline.capacity_off_scale() and "peak uses 10%" in timeline.capacity_off_scale()
    assert "above the scale" in timeline.plotItem.titleLabel.text
    timeline.set_capacity(int(peak * 1.5), "near GPU")  # within reach: drawn, not named
    assert timeline.capacity_off_scale() == "" and "above the scale" not in timeline.plotItem.titleLabel.text
