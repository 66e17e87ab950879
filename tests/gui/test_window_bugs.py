"""One test per defect a new user hit in the main window (issue 9), each driven through the window
as the user drives it: real analyses, the real worker thread, offscreen."""
import os

import pytest

from conftest import SPECS
from engine import AnalysisRequest

pytest.importorskip("PySide6")

from gui.window import MainWindow  # noqa: E402
from isolation import private_settings  # noqa: E402,F401 - a fixture

SMALL = os.path.join(SPECS, "small_cnn.yaml")
LONG = AnalysisRequest(model="densenet201", batch=8)  # several seconds: long enough to supersede


@pytest.fixture
def window(qtbot, private_settings):
    w = MainWindow(AnalysisRequest(model=SMALL, batch=2))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
        w.start()
    yield w
    w.close()
    assert w.controller.shutdown(60.0)  # no analysis thread outlives its window


def _wait_idle(window, qtbot):
    qtbot.waitUntil(lambda: not window.cancel_button.isEnabled() and window.progress.value() in (0, 1000),
                    timeout=120_000)


def test_a_superseding_request_leaves_cancel_enabled_and_says_what_runs(window, qtbot):
    """Bug: the old job's 'cancelled' arrived after the new job started, disabling Cancel and
    overwriting the status of the analysis that was in fact running."""
    window.config.set_model(LONG.model)
    window.config.batch.setValue(LONG.batch)
    qtbot.waitUntil(lambda: "densenet201" in window.status.text(), timeout=30_000)
    window.config.set_model("densenet121")  # supersedes densenet201 mid-run
    qtbot.waitUntil(lambda: "densenet121" in window.status.text(), timeout=60_000)
    qtbot.wait(300)  # the superseded job's last signals are out by now; densenet121 still runs
    assert window.analysis.model_name != "densenet121"
    assert window.cancel_button.isEnabled()
    assert "densenet121" in window.status.text() and "cancelled" not in window.status.text()
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        pass
    assert window.analysis.model_name == "densenet121"


def test_a_python_file_calling_sys_exit_is_reported_and_the_next_model_still_runs(window, qtbot, tmp_path):
    """Bug: SystemExit is not an Exception; it killed the worker thread silently and every later
    request waited forever."""
    exits = tmp_path / "exits.py"
    exits.write_text("import sys\nsys.exit(3)\n")
    with qtbot.waitSignal(window.sig_error_shown, timeout=60_000) as blocker:
        window.open_model(f"{exits}:build")
    assert "exits.py" in blocker.args[0] or "SystemExit" in blocker.args[0]
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.open_model("resnet18")
    assert window.analysis.model_name == "resnet18"


def test_ten_quick_model_switches_end_on_the_last_with_panel_and_views_agreeing(window, qtbot):
    shown = []
    window.sig_analysis_shown.connect(lambda a: shown.append(a.request.model))
    models = ["resnet18", SMALL, "alexnet", "densenet121", "resnet18", "mobilenet_v2", SMALL, "vgg11",
              "squeezenet1_0", "resnet34"]
    for model in models:
        window.open_model(model)
        qtbot.wait(120)  # a user clicking down a list: some runs start, most are superseded
    qtbot.waitUntil(lambda: window.analysis.request.model == "resnet34", timeout=180_000)
    _wait_idle(window, qtbot)
    assert window.analysis.model_name == "resnet34"
    assert window.config.request() == window.analysis.request
    assert window.summary.model.text().find("resnet34") >= 0
    assert window.table.model.rowCount() == len(window.analysis.layers)
    # Only the last model's result reached the screen after it was asked for.
    assert shown[-1] == "resnet34" and "resnet34" not in shown[:-1]


def test_after_a_cancel_the_panel_names_the_model_on_screen(window, qtbot):
    """Bug: after a cancel the panel named the cancelled model, and the next edit re-ran it."""
    window.open_model(LONG.model)
    qtbot.waitUntil(lambda: window.cancel_button.isEnabled(), timeout=30_000)
    window.cancel_button.click()
    qtbot.waitUntil(lambda: "cancelled" in window.status.text(), timeout=60_000)
    assert window.config.request().model == window.analysis.request.model == SMALL
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.config.batch.setValue(3)  # the next edit re-analyses what is on screen
    assert window.analysis.request.model == SMALL and window.analysis.request.batch == 3


def test_after_an_error_the_panel_names_the_model_on_screen(window, qtbot, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [3, 8, 8]\nlayers:\n  - conv2d: {out: 4, kernal: 3}\n")
    with qtbot.waitSignal(window.sig_error_shown, timeout=60_000):
        window.open_model(str(bad))
    assert window.config.request() == window.analysis.request


def test_the_error_banner_hides_when_the_next_run_starts(window, qtbot, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [")
    with qtbot.waitSignal(window.sig_error_shown, timeout=60_000):
        window.open_model(str(bad))
    assert window.error.isVisible()
    window.open_model(LONG.model)
    qtbot.waitUntil(lambda: "densenet201" in window.status.text(), timeout=30_000)
    assert not window.error.isVisible()
    window.cancel_button.click()


def test_a_broken_file_is_not_remembered_as_recent(window, qtbot, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layers: [")
    with qtbot.waitSignal(window.sig_error_shown, timeout=60_000):
        window.open_model(str(bad))
    recent = [window.config.recent.itemData(i) for i in range(window.config.recent.count())]
    assert str(bad) not in recent
    assert recent and recent[0] == SMALL  # the file on screen analysed, so it is remembered


def test_the_model_tree_highlights_nothing_while_a_spec_is_shown(window, qtbot):
    qtbot.waitUntil(lambda: window.config.models.topLevelItemCount() >= 3, timeout=120_000)
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.open_model("resnet18")
    assert [i.text(0) for i in window.config.models.selectedItems()] == ["resnet18"]
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.open_model(SMALL)
    assert window.config.models.selectedItems() == []


def test_a_half_typed_input_shape_never_runs_and_is_marked_invalid(window, qtbot):
    errors, started = [], []
    window.sig_error_shown.connect(errors.append)
    window.config.sig_request_changed.connect(started.append)
    qtbot.keyClicks(window.config.input, "3x")
    qtbot.wait(600)  # past the debounce
    assert started == [] and errors == []
    assert window.config.input.property("invalid") is True
    qtbot.keyClicks(window.config.input, "16x16")
    assert window.config.input.property("invalid") is False
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        pass
    assert window.analysis.input_shape[1:] == (3, 16, 16)
