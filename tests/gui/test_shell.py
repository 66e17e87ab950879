"""The application shell: menus reachable by keyboard, tooltips, a window that fits 1280×720,
settings that persist (in the test's own folder), plans, export, presentation mode, the cached
last analysis, and a process that ends at once when closed mid-analysis."""
import json
import os
import subprocess
import sys
import time

import pytest
from PySide6.QtCore import QPointF, QSettings
from PySide6.QtGui import QFontInfo
from PySide6.QtWidgets import (QAbstractButton, QAbstractSpinBox, QApplication, QCheckBox, QComboBox, QLineEdit, QMenu,
                               QMenuBar, QTabBar, QTreeWidget, QWidget)

from conftest import ROOT, SPECS
from engine import AnalysisRequest
from gui import analysis_cache
from gui.app import initial_request, parse_args
from gui.plan import PlanError, load_plan
from gui.window import MainWindow
from isolation import private_settings  # noqa: F401 - a fixture

SMALL = os.path.join(SPECS, "small_cnn.yaml")


@pytest.fixture
def bare_window(qtbot, private_settings):
    """A window before any analysis (nothing started)."""
    w = MainWindow(AnalysisRequest(model=SMALL, batch=2))
    qtbot.addWidget(w)
    yield w
    w.close()
    assert w.controller.shutdown(60.0)  # no analysis thread outlives its window


@pytest.fixture
def window(bare_window, qtbot):
    bare_window.show()
    with qtbot.waitSignal(bare_window.sig_analysis_shown, timeout=120_000):
        bare_window.start()
    return bare_window


def _menu_actions(menu: QMenu):
    for action in menu.actions():
        if action.menu() is not None:
            yield action
            yield from _menu_actions(action.menu())
        elif not action.isSeparator():
            yield action


def test_every_menu_action_is_reachable_by_keyboard(bare_window):
    actions = [a for top in bare_window.menuBar().actions() for a in [top, *_menu_actions(top.menu())]]
    assert len(actions) >= 14
    for action in actions:
        assert not action.shortcut().isEmpty() or "&" in action.text(), action.text()
    shortcuts = {a.shortcut().toString() for a in actions if not a.shortcut().isEmpty()}
    assert {"Ctrl+O", "Ctrl+S", "Ctrl+E", "Ctrl+Q", "F1", "F11", "Esc", "F"} <= shortcuts
    assert len(shortcuts) == len([a for a in actions if not a.shortcut().isEmpty()])  # no clashes


def test_every_control_has_a_tooltip(bare_window):
    qt_parts = {"QTableCornerButton", "QLineEditIconButton"}  # Qt's own parts of a table, a line edit
    controls = [w for w in bare_window.findChildren(QWidget)
                if isinstance(w, (QAbstractButton, QComboBox, QAbstractSpinBox, QLineEdit, QTreeWidget))
                and not isinstance(w.parent(), (QComboBox, QAbstractSpinBox, QTabBar, QMenuBar))  # their parts
                and w.metaObject().className() not in qt_parts]
    assert len(controls) >= 14
    missing = [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in controls if not w.toolTip()]
    assert missing == []
    for action in bare_window.actions.values():
        assert action.toolTip()


def test_the_window_fits_a_1280x720_screen_and_the_plots_get_the_height(window, qtbot):
    hint = window.minimumSizeHint()
    assert hint.width() <= 1280 - 16 and hint.height() <= 720 - 60  # room for a title bar and a panel
    window.reset_layout()
    window.resize(1280 - 16, 720 - 60)
    qtbot.wait(50)
    assert window.size().height() <= 720 - 60
    timeline_h, tabs_h = window.timeline.height(), window.lower_tabs.height()
    assert timeline_h > tabs_h
    # the diagram shows its legend and a whole row of blocks with both label lines (it got ~130 px)
    diagram = window.diagram

    def label_bottom():
        block = diagram.blocks()[0]
        return diagram.mapFromScene(block.mapToScene(block.label_rect().bottomLeft())).y()

    def whole_row_in_view():
        return len(diagram.blocks()[0].label_lines()) == 2 and 0 < label_bottom() <= diagram.viewport().height()

    qtbot.waitUntil(whole_row_in_view)  # short blocks, two label lines, all in view
    for box in window.config.findChildren(QCheckBox):  # "first step (no optimizer state…" was cut
        assert box.width() >= box.sizeHint().width(), box.text()
    # the lifetimes' axis title is whole or not shown ("layer (execution or…" was cut)
    axis = window.lifetimes.getAxis("left")
    assert not axis.label.isVisible() or axis.label.boundingRect().width() <= axis.height()
    window.resize(1600, 900)
    qtbot.waitUntil(lambda: axis.label.isVisible() and axis.label.boundingRect().width() <= axis.height())


def _global_x(plot, x: float) -> float:
    """The screen column where `plot` draws data x."""
    scene = plot.getViewBox().mapViewToScene(QPointF(x, 0))
    return plot.viewport().mapToGlobal(plot.viewportTransform().map(scene)).x()


def test_the_timeline_and_the_lifetimes_draw_one_x_at_one_pixel_column(window, qtbot):
    """One x-range is not enough: their left axes differ (digits vs layer names) and the lifetimes
    sit in a tab's frame, so the same step was drawn ~60 px apart."""
    start, end = window.timeline.viewRange()[0]
    assert window.lifetimes.viewRange()[0] == [start, end] and end > start  # one x-range

    def offsets():
        return [abs(_global_x(window.timeline, x) - _global_x(window.lifetimes, x)) for x in (start, end)]

    for size in ((1280 - 16, 720 - 60), (1600, 900)):  # and again after a resize
        window.resize(*size)
        qtbot.waitUntil(lambda: max(offsets()) <= 0.5)
        assert _global_x(window.timeline, end) - _global_x(window.timeline, start) > 600


def test_splitter_sizes_and_the_last_request_persist(window, qtbot, private_settings):
    window.resize(1600, 900)  # room for both panels' minimum widths: the sizes below are not clamped
    qtbot.wait(20)
    window.main_splitter.setSizes([420, 1160])
    sizes = window.main_splitter.sizes()
    assert sizes[0] == 420
    window.close()
    args = parse_args([])
    assert initial_request(args) == window.analysis.request  # no flags: the last request
    assert initial_request(parse_args(["--batch", "7"])).batch == 7  # flags win
    # flags equal to the defaults are still asked for: vgg16 at 32, not the last session's model
    assert initial_request(parse_args(["--model", "vgg16", "--batch", "32"])) == AnalysisRequest(model="vgg16", batch=32)
    again = MainWindow(AnalysisRequest())
    qtbot.addWidget(again)
    again.resize(window.size())  # the offscreen screen is small: restoreGeometry would clamp the size
    again.show()
    qtbot.wait(20)
    assert again.main_splitter.sizes() == sizes
    assert QSettings("MemLens", "MemLens").fileName().startswith(str(private_settings))


def test_request_flags_given_with_the_default_values_count_as_given():
    args = parse_args(["--model", "vgg16", "--batch", "32", "--first-step", "--screenshot", "x.png"])
    assert args.explicit == {"model", "batch", "first_step"}
    assert parse_args([]).explicit == set()
    assert parse_args(["--screenshot", "x.png"]).explicit == set()  # not a request flag
    bare = parse_args([])
    assert (bare.model, bare.batch, bare.input, bare.optimizer, bare.first_step) == ("vgg16", 32, None, None, False)


def test_a_saved_plan_reopens_the_same_request(window, qtbot, tmp_path):
    window.config.optimizer.setCurrentText("sgd")
    path = str(tmp_path / "plan.memlens")
    window.save_plan(path)
    plan = load_plan(path)
    assert plan.request == window.analysis.request and plan.companion_optimizer == "sgd"
    other = AnalysisRequest(model="resnet18", batch=3, mode="inference", optimizer="none")
    with open(path, "w") as f:
        json.dump({"format": "memlens-plan/1", "request": {**json.loads(json.dumps(other.__dict__))},
                   "companion_optimizer": "momentum"}, f)
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.open_path(path)
    assert window.analysis.request == other and window.config.optimizer_choice() == "momentum"


@pytest.mark.parametrize("text, words", [("{", "truncated"), ("{]", "invalid JSON"), ('{"format": "x"}', "not a MemLens plan"),
                                          ('{"format": "memlens-plan/1", "request": {"batch": -1}}', "batch")])
def test_a_broken_plan_is_a_one_line_message_naming_the_file(tmp_path, text, words):
    path = tmp_path / "bad.memlens"
    path.write_text(text)
    with pytest.raises(PlanError) as e:
        load_plan(str(path))
    assert str(path) in str(e.value) and words in str(e.value) and "\n" not in str(e.value)


def test_export_writes_a_png_and_an_svg(window, tmp_path):
    for name in ("shot.png", "shot.svg"):
        window.export_picture(str(tmp_path / name))
        assert (tmp_path / name).stat().st_size > 10_000
    assert (tmp_path / "shot.svg").read_text().lstrip().startswith("<?xml")


def test_about_names_memlens_and_torch_versions(window, qtbot):
    from importlib import metadata

    from engine.version import __version__
    qtbot.waitUntil(lambda: window.engine is not None, timeout=120_000)
    text = window.about_text()
    assert f"MemLens {__version__}" in text and f"torch {metadata.version('torch')}" in text


def test_presentation_mode_makes_the_smallest_text_at_least_11px(window, qtbot):
    window.resize(1920, 1080)
    window.actions["presentation"].setChecked(True)
    qtbot.wait(50)
    try:
        sizes = {w: QFontInfo(w.font()).pixelSize() for w in window.findChildren(QWidget) if w.isVisible()}
        small = [f"{type(w).__name__}:{px}px" for w, px in sizes.items() if px < 11]
        assert small == []
        assert QApplication.font().pointSizeF() > window._base_font.pointSizeF() * 1.3
    finally:
        window.actions["presentation"].setChecked(False)
    assert QApplication.font().pointSizeF() == window._base_font.pointSizeF()


def test_presentation_mode_leaves_the_desk_layout_as_it_was(window, qtbot):
    """Its widened settings panel came back in the next normal session."""
    window.resize(1600, 900)
    qtbot.wait(20)
    window.main_splitter.setSizes([420, 1160])
    desk = window.main_splitter.sizes()
    presentation = window.actions["presentation"]
    try:
        presentation.setChecked(True)
        qtbot.wait(50)
        assert window.main_splitter.sizes() != desk  # the panel is sized for the large text
        presentation.setChecked(False)
        qtbot.waitUntil(lambda: window.main_splitter.sizes()[0] == desk[0])  # the desk's panel width
        presentation.setChecked(True)
        qtbot.wait(50)
        window.close()  # closed while presenting
    finally:
        presentation.setChecked(False)
    again = MainWindow(AnalysisRequest())
    qtbot.addWidget(again)
    again.resize(1600, 900)
    again.show()
    qtbot.wait(20)
    assert again.main_splitter.sizes()[0] == desk[0] and not again.actions["presentation"].isChecked()


def test_the_last_analysis_is_on_screen_at_once_from_the_cache(window, qtbot, private_settings):
    first = window.analysis
    assert analysis_cache.load(first.request) is not None  # the worker stored it
    again = MainWindow(first.request)
    qtbot.addWidget(again)
    again.show()
    started = time.perf_counter()
    with qtbot.waitSignal(again.sig_analysis_shown, timeout=2_000):
        again.start()
    assert time.perf_counter() - started < 2.0 and again.engine is None  # read back before torch came in
    assert again.summary.peak.text() == window.summary.peak.text()
    assert again.analysis.peak == first.peak and not again.controller.is_analysing()
    again.close()
    assert again.controller.shutdown(60.0)


def test_closing_mid_analysis_ends_the_process_within_a_second(tmp_path):
    driver = (
        "import sys, time\n"
        "from PySide6.QtCore import QTimer\n"
        "import gui.app as app, gui.window as win\n"
        "start = win.MainWindow.start\n"
        "def start_then_close(self):\n"
        "    start(self)\n"
        "    def close():\n"
        "        print('closing', time.time(), flush=True)\n"
        "        self.close()\n"
        "    self.controller.sig_analysis_started.connect(lambda r: QTimer.singleShot(800, close))\n"
        "win.MainWindow.start = start_then_close\n"
        "sys.exit(app.main(['--model', 'densenet201', '--batch', '8']))\n"
    )
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEMLENS_CACHE_DIR=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", driver], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    proc.wait(timeout=60)
    ended = time.time()
    assert line.startswith("closing"), proc.stderr.read()
    assert ended - float(line.split()[1]) < 1.0
    assert proc.returncode == 0


def test_the_inference_card_explains_the_difference_without_autograd(qtbot):
    from engine import analyze
    from gui.summary import SummaryWidget

    summary = SummaryWidget()
    qtbot.addWidget(summary)
    summary.set_analysis(analyze(AnalysisRequest(model=SMALL, batch=4, mode="inference", optimizer="none")))
    assert "autograd" not in summary.textbook.text() and "parameters + the two largest" in summary.textbook.text()
    summary.set_analysis(analyze(AnalysisRequest(model=SMALL, batch=4)))
    assert "autograd also saves" in summary.textbook.text()


def test_presentation_mode_scales_every_summary_label(window, qtbot):
    from PySide6.QtWidgets import QLabel

    labels = [label for label in window.summary.findChildren(QLabel) if label.text()]
    before = {label: QFontInfo(label.font()).pixelSize() for label in labels}
    window.actions["presentation"].setChecked(True)
    try:
        grown = [label for label in labels if QFontInfo(label.font()).pixelSize() >= before[label] * 1.3]
        assert len(grown) == len(labels)
    finally:
        window.actions["presentation"].setChecked(False)
    assert {label: QFontInfo(label.font()).pixelSize() for label in labels} == before


def test_no_card_text_is_clipped_when_an_analysis_is_shown(window, qtbot):
    """Bug: the first frame of a reopened analysis showed the cards' wrapped text cut in half."""
    from PySide6.QtWidgets import QLabel

    def clipped():
        return [label.text()[:30] for label in window.summary.findChildren(QLabel)
                if label.text() and label.wordWrap() and label.height() < label.heightForWidth(label.width())]
    seen = []
    window.sig_analysis_shown.connect(lambda a: seen.append(clipped()))
    window.resize(1264, 660)
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=120_000):
        window.open_model("resnet50")
    assert seen == [[]]


def test_the_window_takes_the_distributed_flags_the_command_line_takes():
    args = parse_args(["--model", "resnet18", "--strategy", "fsdp", "--world-size", "4", "--reduce-dtype", "float32"])
    assert {"strategy", "world_size", "reduce_dtype"} <= args.explicit
    request = initial_request(args)
    assert (request.strategy, request.world_size, request.reduce_dtype) == ("fsdp", 4, "float32")
    assert initial_request(parse_args(["--model", "resnet18", "--strategy", "ddp"])).world_size == 8  # as the CLI
    assert initial_request(parse_args(["--model", "resnet18"])).strategy == "single"
