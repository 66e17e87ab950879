"""The main window end to end (offscreen): real analyses through the real worker thread."""
import os
import subprocess
import sys

import pytest
from PySide6.QtCore import Qt

from conftest import ROOT, SPECS
from engine import AnalysisRequest, analyze

pytest.importorskip("PySide6")

from gui.window import MainWindow  # noqa: E402
from isolation import private_settings  # noqa: E402,F401 - a fixture


@pytest.fixture
def window(qtbot, private_settings):
    w = MainWindow(AnalysisRequest(model="resnet18", batch=2))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
        w.start()
    yield w
    # No analysis thread may outlive its window (a daemon thread inside torch at interpreter
    # exit crashes it); closing the window does this too.
    w.close()
    assert w.controller.shutdown(60.0)


def test_first_analysis_fills_every_view(window):
    a = window.analysis
    assert a.model_name == "resnet18"
    assert window.table.model.rowCount() == len(a.layers)
    assert window.summary.peak.text() == __import__("engine.units").units.format_bytes(a.peak.total_bytes)
    assert window.config.models.topLevelItemCount() >= 3  # model families listed once the engine loaded
    assert not window.error.isVisible()


def test_selecting_a_layer_in_the_table_selects_it_everywhere(window, qtbot):
    name = window.analysis.layers[5].name
    window.table.sig_layer_selected.emit(name)
    assert window.table.selected_layer() == name
    assert window.timeline.span.isVisible()
    start, end = window.analysis.layer_named(name).forward_span
    lo, hi = window.timeline.span.getRegion()
    assert (lo, hi) == (start, max(end, start + 1))


def test_a_broken_spec_shows_file_and_line_and_keeps_the_previous_analysis(window, qtbot, tmp_path):
    before = window.analysis
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [3, 8, 8]\nlayers:\n  - conv2d: {out: 4, kernal: 3}\n")
    with qtbot.waitSignal(window.sig_error_shown, timeout=60_000) as blocker:
        window.open_model(str(bad))
    assert f"{bad}:3:" in blocker.args[0] and "kernal" in blocker.args[0]
    assert window.error.isVisible() and "kernal" in window.error.text()
    assert window.analysis is before
    # ... and the app still works: the next good request is analysed.
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.open_model(os.path.join(SPECS, "small_cnn.yaml"))
    assert window.analysis.model_name == "small-resnet"
    assert not window.error.isVisible()


def test_changing_a_setting_reanalyses(window, qtbot):
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.config.mode.setCurrentText("inference")
    assert window.analysis.request.mode == "inference"
    assert window.analysis.request.optimizer == "none"


def test_cancel_stops_a_long_analysis_and_keeps_the_window_alive(window, qtbot):
    before = window.analysis
    with qtbot.waitSignal(window.controller.sig_analysis_started, timeout=10_000):
        window.open_model("densenet201")
    with qtbot.waitSignal(window.controller.sig_analysis_cancelled, timeout=60_000):
        qtbot.keyClick(window, Qt.Key_Escape)  # Esc cancels, as the Cancel button does
    assert window.analysis is before
    assert not window.controller.is_analysing() and not window.cancel_button.isEnabled()


def test_screenshot_command_renders_the_window(tmp_path):
    out = tmp_path / "shot.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    run = subprocess.run([sys.executable, "main.py", "--model", "resnet18", "--batch", "4", "--screenshot", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert out.stat().st_size > 50_000  # a real picture, not an empty window


def test_views_build_from_a_real_analysis_without_the_window(qtbot):
    from gui.summary import SummaryWidget
    from gui.table import LayerTableWidget
    from gui.timeline import MemoryTimelineWidget

    a = analyze(AnalysisRequest(model=os.path.join(SPECS, "small_cnn.yaml"), batch=8))
    timeline, table, summary = MemoryTimelineWidget(), LayerTableWidget(), SummaryWidget()
    for w in (timeline, table, summary):
        qtbot.addWidget(w)
        w.set_analysis(a)
    # The curves hold the visible range thinned to about two points per pixel, peak included.
    assert timeline.shown_points() <= 2 * max(200, int(timeline.getViewBox().width())) + 3
    assert max(timeline.curves["inputs"].yData) * 2**20 == pytest.approx(a.peak.total_bytes)
    # The cursor reports the live bytes at the peak and the layer running there.
    timeline.set_cursor(a.peak.point)
    assert "running:" in timeline.describe(a.peak.point)
    assert timeline.layer_at(a.peak.point) == a.peak.module
    # The table sorts by the raw numbers: biggest output first.
    table.view.sortByColumn(5, __import__("PySide6.QtCore").QtCore.Qt.DescendingOrder)
    first = table.proxy.index(0, 5).data(__import__("PySide6.QtCore").QtCore.Qt.UserRole)
    assert first == max(layer.output_bytes for layer in a.layers)
    assert table.model.as_tsv().count("\n") == len(a.layers)


def test_each_summary_card_reads_from_its_top(window):
    """The cards share the row's height (the tallest card sets it): a short card's heading stays
    above its content, and the spare height goes below, not between them."""
    from PySide6.QtWidgets import QFrame, QLabel

    cards = [f for f in window.summary.findChildren(QFrame) if f.objectName() == "card" and f.isVisible()]
    assert len(cards) >= 4
    tallest_content = 0
    for card in cards:
        heading = next(label for label in card.findChildren(QLabel) if label.objectName() == "heading")
        below = [w.geometry().top() for w in card.findChildren(QLabel) if w is not heading and w.isVisible()]
        # A label taller than its text draws the text in its middle: the heading must not stretch.
        assert heading.height() <= heading.sizeHint().height() + 2, (heading.text(), heading.height())
        gap = min(below) - heading.geometry().bottom()
        assert 0 <= gap <= 12, (heading.text(), gap)
        tallest_content = max(tallest_content, max(w.geometry().bottom() for w in card.findChildren(QLabel)))
    assert min(card.height() for card in cards) >= tallest_content  # one row height: some cards have spare


def test_the_window_appears_before_torch_is_imported():
    """Start-up stays fast because torch loads in the background after the window is shown."""
    code = (
        "import sys; from PySide6.QtWidgets import QApplication; app = QApplication([]); "
        "from engine.request import AnalysisRequest; from gui.window import MainWindow; "
        "w = MainWindow(AnalysisRequest()); w.show(); app.processEvents(); "
        "print('torch' in sys.modules, w.status.text())"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False Loading the engine (torch)…"


def test_training_and_inference_side_by_side(window, qtbot):
    """Opening the comparison tab analyses the other mode (and only then: it costs a full trace)."""
    qtbot.wait(300)
    assert window.compare.analyses["inference"] is None and not window.controller.worker.is_busy()
    window.lower_tabs.setCurrentIndex(2)
    qtbot.waitUntil(lambda: window.compare.analyses["inference"] is not None, timeout=120_000)
    train, infer = window.compare.analyses["train"], window.compare.analyses["inference"]
    assert train is window.analysis
    assert infer.request.model == train.request.model and infer.request.batch == train.request.batch
    assert infer.peak.total_bytes < train.peak.total_bytes
    from engine.units import format_bytes
    assert window.compare.text(0, 0) == format_bytes(train.peak.total_bytes)
    assert window.compare.text(0, 1) == format_bytes(infer.peak.total_bytes)
    assert window.analysis is train  # the comparison never replaces what is on screen


def test_hovering_a_block_previews_its_span_and_the_cursor_previews_the_running_layer(window):
    layer = window.analysis.layers[3]
    window.diagram.sig_layer_hovered.emit(layer.name)
    assert window.timeline.preview_span.getRegion() == (layer.forward_span[0],
                                                        max(layer.forward_span[1], layer.forward_span[0] + 1))
    # Put the cursor inside another layer's forward span: that layer is previewed, not selected.
    other = window.analysis.layers[10]
    window.timeline.set_cursor(other.forward_span[1])
    assert window.timeline.layer_at(other.forward_span[1]) == other.name
    assert window.selection.previewed == other.name
    assert window.diagram.block(other.name).is_previewed()
    assert window.diagram.selected_layer() is None and window.table.selected_layer() is None


def test_device_capacity_line_survives_a_new_analysis(window, qtbot):
    window.timeline.set_capacity(80 * 2**30, "H100")
    assert window.timeline.capacity_line is not None
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.config.batch.setValue(3)
    assert window.timeline.capacity_line is not None
    window.timeline.set_capacity(None)
    assert window.timeline.capacity_line is None


def test_dropping_a_spec_file_opens_it(window, qtbot):
    # (dropEvent hands the dropped paths to open_dropped; building a QDropEvent in Python makes
    # shiboken crash at interpreter exit, so the test starts one step in.)
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.open_dropped(["/tmp/notes.txt", os.path.join(SPECS, "small_cnn.yaml")])
    assert window.analysis.model_name == "small-resnet"
    # Anything else dropped is refused with a message, not a crash.
    with qtbot.waitSignal(window.sig_error_shown, timeout=5_000):
        window.open_dropped(["/tmp/picture.png"])


def test_files_that_analysed_are_remembered_as_recent(window):
    spec = os.path.join(SPECS, "vgg16.yaml")
    window.config.remember(spec)
    mlp = os.path.join(ROOT, "resources", "examples", "mlp.py") + ":build"
    window.config.remember(mlp)
    window.config.remember("resnet18")  # torchvision names are not files
    window.config.remember("/nowhere/gone.yaml")  # remembered, but a file moved away is not offered
    paths = [window.config.recent.itemData(i) for i in range(window.config.recent.count())]
    assert paths == [mlp, spec]
