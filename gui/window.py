"""The main window: model source and step settings on the left; summary, network diagram,
memory timeline, activation lifetimes and the layer table on the right, all fed by one Analysis.

The window draws and forwards; what runs when is the controller's (gui/controller.py), and which
layer is chosen is the selection model's (gui/selection.py), which every view subscribes to.
What the panel names is always what the views show: after a cancel or an error the panel returns
to the request on screen.
"""
from __future__ import annotations

import os
import sys

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QApplication, QDialog, QFileDialog, QLabel, QMainWindow, QMessageBox, QProgressBar,
                               QPushButton, QScrollArea, QSizePolicy, QSplitter, QTabWidget, QTextBrowser,
                               QVBoxLayout, QWidget)

from engine.choices import SPEC_SUFFIXES
from engine.version import __version__

from . import analysis_cache, export, style
from .compare import ModeComparisonWidget
from .config_panel import ConfigPanel
from .gc_main_thread import MainThreadCollector
from .controller import Controller
from .device_panel import DevicePanel
from .diagram import NetworkDiagramWidget
from .menus import build_menus, shortcut_lines
from .plan import SUFFIX as PLAN_SUFFIX, request_to_json
from .plan_session import PlanSession
from .selection import SelectionModel
from .summary import SummaryWidget
from .table import LayerTableWidget

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LEFT_WIDTH = 300  # the settings panel's default width (times the font scale in presentation mode)
DIAGRAM_SHARE = 0.28  # of the views' height, or one readable row of blocks if that is more
TABS_SHARE = 0.4  # of what the diagram leaves: the timeline gets the rest, more than the table


def view_sizes(total: int, diagram_least: int) -> list[int]:
    """Heights of the diagram, the timeline and the lower tabs in a column `total` pixels high."""
    diagram = max(diagram_least, round(DIAGRAM_SHARE * total))
    tabs = round(TABS_SHARE * (total - diagram))
    return [diagram, total - diagram - tabs, tabs]
COMPARE_TAB = 2


# The what-if sweep plot needs this much height to be read (axis, points, capacity line).
SWEEP_MIN_HEIGHT = 260
SCENARIOS_SHARE = 0.45  # of the views' height, for the Scenarios tab while it is open


class MainWindow(QMainWindow):
    """Owns the controller and the selection; views only receive analyses and a Display."""

    sig_analysis_shown = Signal(object)
    """An analysis was put on screen (tests and --screenshot wait for it)."""
    sig_error_shown = Signal(str)
    """An error message was put on screen."""
    sig_first_frame = Signal()
    """The first frame is on screen (the start-up benchmark times it)."""
    sig_numbers_shown = Signal(object)
    """The summary cards show this analysis's numbers (the start-up benchmark times it)."""

    def __init__(self, initial_request, parent=None):
        super().__init__(parent)
        self.setWindowTitle("MemLens — where does the memory go?")
        screen = QApplication.primaryScreen().availableGeometry()
        self.resize(min(1600, screen.width()), min(1000, screen.height()))  # a first launch fits the screen
        self.setAcceptDrops(True)
        self.analysis = None
        self.engine = None
        self.display = self._make_display(False, False)
        self._base_font = QApplication.font()
        self._initial = initial_request
        self._started = False
        self._running_label = ""  # the request being analysed, as the status bar names it
        self._desk_layout = None  # the layout before presentation mode (geometry, splitters, maximized)
        self._shown_once = False

        self.config = ConfigPanel(initial_request)
        self.config.sig_request_changed.connect(self._on_request)
        self.config.sig_invalid.connect(self.show_error)
        left = QScrollArea()  # the panel scrolls rather than push the window past a 720-px screen
        left.setWidget(self.config)
        left.setWidgetResizable(True)
        left.setFrameShape(QScrollArea.NoFrame)
        left.setMinimumWidth(250)

        self.status = QLabel("Loading the engine (torch)…")
        self.status.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)  # long text never widens the window
        self.status.setToolTip("What MemLens is doing; hover for what the analysis does not model")
        self.progress = QProgressBar(maximum=1000, textVisible=False)
        self.progress.setFixedWidth(160)
        self.progress.setToolTip("Progress of the running analysis")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop the running analysis (Esc); the analysis on screen stays")
        bar = self.statusBar()
        bar.addWidget(self.status, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        self.error = QLabel()
        self.error.setStyleSheet(style.ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.error.hide()

        self.selection = SelectionModel(self)
        self.summary = SummaryWidget()
        self.diagram = NetworkDiagramWidget()
        self.diagram.setToolTip("The network, layer by layer: click a block to select it everywhere")
        # The pyqtgraph views are built right after the window is shown: importing pyqtgraph
        # costs ~0.6 s, which would otherwise delay the first paint.
        self.timeline = None
        self.lifetimes = None
        self._timeline_slot = QLabel("preparing plots…", alignment=Qt.AlignCenter)
        self._lifetimes_slot = QLabel("preparing plots…", alignment=Qt.AlignCenter)
        self.table = LayerTableWidget()
        self.compare = ModeComparisonWidget()
        self.lower_tabs = QTabWidget()
        self.lower_tabs.addTab(self._lifetimes_slot, "Activation lifetimes")
        self.lower_tabs.addTab(self.table, "Layer table")
        self.lower_tabs.addTab(self.compare, "Training vs inference")
        self.lower_tabs.setTabToolTip(0, "When each saved activation is born and freed")
        self.lower_tabs.setTabToolTip(1, "Every layer: shapes, parameters, output and saved bytes (sortable)")
        self.lower_tabs.setTabToolTip(COMPARE_TAB, "The same model and batch in the other mode "
                                      "(analysed while this tab is open)")
        self.splitter = QSplitter(Qt.Vertical)
        for widget in (self.diagram, self._timeline_slot, self.lower_tabs):
            widget.setMinimumHeight(60)
            self.splitter.addWidget(widget)
        self.splitter.setChildrenCollapsible(False)
        for i, stretch in enumerate((0, 2, 1)):  # the diagram keeps its row; the plots take what changes
            self.splitter.setStretchFactor(i, stretch)
        self.splitter.splitterMoved.connect(self._on_views_resized_by_hand)

        right = QWidget()
        col = QVBoxLayout(right)
        col.setContentsMargins(0, 0, 0, 0)
        col.addWidget(self.error)
        col.addWidget(self.summary)
        col.addWidget(self.splitter, 1)
        self.main_splitter = QSplitter(Qt.Horizontal)
        # The GPU panel (issue 6) is a tab beside the settings; its sweep plot joins the lower tabs.
        self.devices = DevicePanel()
        self.sweeps = self.planning = None
        self.scenarios = None  # the Scenarios tab (issue 10), built with the plots
        self.main_splitter.addWidget(self._with_device_tab(left))
        self.main_splitter.addWidget(right)
        self.main_splitter.setStretchFactor(1, 1)
        self.main_splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.main_splitter)
        self.reset_layout()

        self.controller = Controller(self, remember=analysis_cache.save)
        self._collector = MainThreadCollector(self)  # no Qt object is ever freed in the worker thread
        c = self.controller
        c.sig_engine_ready.connect(self._on_engine_ready)
        c.sig_analysis_started.connect(self._on_started)
        c.sig_progress.connect(self._on_progress)
        c.sig_analysis_ready.connect(self.set_analysis)
        c.sig_analysis_failed.connect(self._on_failed)
        c.sig_analysis_cancelled.connect(self._on_cancelled)
        c.sig_companion_ready.connect(self.compare.set_analysis)
        c.sig_companion_failed.connect(self._on_companion_failed)
        self.cancel_button.clicked.connect(self.cancel)
        self.lower_tabs.currentChanged.connect(self._on_tab)
        self.config.sig_optimizer_chosen.connect(c.set_companion_optimizer)
        c.set_companion_optimizer(self.config.optimizer_choice())
        self.diagram.bind_selection(self.selection)
        self.diagram.sig_checkpoint_toggled.connect(self.config.levers.toggle_block)
        self.diagram.sig_freeze_toggled.connect(self.config.levers.toggle_freeze)
        self.table.bind_selection(self.selection)
        self.actions = build_menus(self)
        self.report_export = export.ReportExport(c, self)  # File ▸ Export ▸ report (gui/export.py)
        self.report_export.sig_done.connect(lambda path: self.status.setText(f"exported {path}"))
        self.report_export.sig_failed.connect(self.show_error)
        self.plans = PlanSession(self)  # plan files (issue 10)
        self._restore_settings()

    # ---- Public API
    def start(self) -> None:
        """Once the first frame is on screen: build the plots, show the cached last analysis if it
        matches (else queue the analysis), then load the engine. Each of these holds the
        interpreter for a while (pyqtgraph ~0.6 s, torch seconds), so none may run before the
        window has painted: a window that sits black looks like a hang."""
        if self._started:
            return
        self._started = True
        self._when_painted(self._start_now)

    def _when_painted(self, then, tries: int = 100) -> None:
        handle = self.windowHandle()
        if self.isVisible() and handle is not None and handle.isExposed():
            self.repaint()  # synchronous: the frame is drawn and flushed before `then` runs
            self.sig_first_frame.emit()
            QTimer.singleShot(30, then)
        elif tries > 0:
            QTimer.singleShot(20, lambda: self._when_painted(then, tries - 1))
        else:
            self.sig_first_frame.emit()
            then()  # never exposed (minimised): do not wait for it

    def _start_now(self) -> None:
        cached = analysis_cache.load(self._initial)
        if cached is None:
            self.build_plots()
            self.controller.preparers = self._preparers()
            self.controller.analyse(self._initial)
        else:
            # The numbers first (cards, diagram, table: ~0.05 s), painted; the plots after them,
            # since importing pyqtgraph alone takes ~0.7 s.
            self.summary.set_analysis(cached)
            self.sig_numbers_shown.emit(cached)
            self.status.setText(f"{cached.model_name}: reopened from the last session; loading torch…")
            self._settle_layout()
            self.repaint()
            self.set_analysis(cached)
            self.controller.show(cached)
            self.status.setText(self.status.text() + " · reopened from the last session; loading torch…")
        QTimer.singleShot(30, self.controller.start_engine)

    def build_plots(self) -> None:
        """Create the pyqtgraph views in place of their placeholders (once)."""
        if self.timeline is not None:
            return
        from . import timeline as timeline_module
        from .lifetimes import LifetimesWidget
        from .plot_alignment import PlotAreaAligner

        self.timeline = timeline_module.MemoryTimelineWidget()
        self.lifetimes = LifetimesWidget()
        timeline_module.share_x_range(self.timeline, self.lifetimes)
        self.plot_alignment = PlotAreaAligner(self.timeline, self.lifetimes)  # and one x at one pixel
        sizes = self.splitter.sizes()
        self.splitter.replaceWidget(1, self.timeline)
        self.timeline.setMinimumHeight(60)
        self._timeline_slot.deleteLater()
        current = self.lower_tabs.currentIndex()
        self.lower_tabs.removeTab(0)
        self.lower_tabs.insertTab(0, self.lifetimes, "Activation lifetimes")
        self.lower_tabs.setTabToolTip(0, "When each saved activation is born and freed")
        self.lower_tabs.setCurrentIndex(current)
        self._lifetimes_slot.deleteLater()
        self.splitter.setSizes(sizes)
        self.timeline.bind_selection(self.selection)
        self.lifetimes.bind_selection(self.selection)
        self._build_planning()
        self._build_scenarios()
        self._apply_display()

    def views(self) -> dict[str, QWidget]:
        """The views every main analysis goes to, by name."""
        return {"summary": self.summary, "diagram": self.diagram, "timeline": self.timeline,
                "lifetimes": self.lifetimes, "table": self.table, "compare": self.compare,
                "scenarios": self.scenarios,
                "ranks": getattr(self, "rank_view", None)}  # issue 12

    def set_analysis(self, analysis, prepared: dict | None = None) -> None:
        """Put `analysis` on every view (with the data the worker prepared for each, if any)."""
        self.analysis = analysis
        self.build_plots()
        self.error.hide()
        self.progress.setValue(1000)
        self.cancel_button.setEnabled(False)
        self.selection.set_layers([layer.name for layer in analysis.layers])
        for name, view in self.views().items():
            data = (prepared or {}).get(name)
            view.set_analysis(analysis) if data is None else view.set_analysis(analysis, data)
        self.sig_numbers_shown.emit(analysis)
        self.planning.set_analysis(analysis)
        self.config.levers.set_analysis(analysis)  # the model's blocks for the checkpoint toggles
        if not self.config.is_pending():  # an edit made meanwhile stays, and runs next
            self.config.set_request(analysis.request)
        self.config.remember(analysis.request.model)
        self._settings().setValue("last_request", request_to_json(analysis.request))
        warn = f" — {len(analysis.warnings)} warning(s): " + "; ".join(analysis.warnings) if analysis.warnings else ""
        self.status.setText(f"{analysis.model_name}: {len(analysis.layers)} layers, {len(analysis.events):,} events, "
                            f"analysed in {analysis.analysis_seconds:.2f} s{warn}")
        self.status.setToolTip("\n".join([*(f"warning — {w}" for w in analysis.warnings),
                                          *(f"not modelled — {n.label}: {n.note}" for n in analysis.not_modelled)]))
        self._settle_layout()
        self._keep_default_layout()
        self.plot_alignment.schedule()  # the lifetimes' row labels changed
        self.sig_analysis_shown.emit(analysis)

    def show_error(self, message: str) -> None:
        """Show what went wrong; the previous analysis stays on screen."""
        self.error.setText(f"<b>Could not analyse:</b> {message}")
        self.error.show()
        self.cancel_button.setEnabled(False)
        self.progress.setValue(0)
        self.status.setText("error — the previous analysis is still shown" if self.analysis else "error")
        self.sig_error_shown.emit(message)

    def select_layer(self, name: str) -> None:
        self.selection.select(name)

    def open_model(self, model: str) -> None:
        self.config.set_model(model)

    def open_path(self, path: str) -> None:
        """Open a spec, or a saved plan; anything else gets a message."""
        if path.lower().endswith(PLAN_SUFFIX):
            self.plans.open(path)
        elif path.lower().endswith(SPEC_SUFFIXES) or os.path.isdir(path):  # a folder: a Hugging Face model's
            self.open_model(path)
        else:
            self.show_error(f"{os.path.basename(path)}: open a layer spec ({', '.join(SPEC_SUFFIXES)}), "
                            f"a Hugging Face config.json or its folder, or a plan ({PLAN_SUFFIX})")

    def open_dropped(self, paths: list[str]) -> None:
        """Open the first spec or plan among dropped files; anything else gets a message."""
        usable = [p for p in paths if p.lower().endswith((*SPEC_SUFFIXES, PLAN_SUFFIX)) or os.path.isdir(p)]
        self.open_path(usable[0] if usable else (paths[0] if paths else ""))

    def cancel(self) -> None:
        self.controller.cancel()

    # -- menu actions
    def open_file_dialog(self) -> None:
        patterns = " ".join(f"*{s}" for s in SPEC_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open", "", f"Specs, Python files and plans ({patterns} *.py "
                                              f"*{PLAN_SUFFIX});;All files (*)")
        if path.endswith(".py"):
            self.config.open_python_file(path)
        elif path:
            self.open_path(path)

    def save_plan_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save plan", f"plan{PLAN_SUFFIX}", f"MemLens plans (*{PLAN_SUFFIX})")
        if path:
            self.save_plan(path if path.endswith(PLAN_SUFFIX) else path + PLAN_SUFFIX)

    def save_plan(self, path: str) -> bool:
        """Write what is on screen (request, device, pinned scenarios, view) as a plan file."""
        return self.plans.save(path)

    def export_dialog(self) -> None:
        """File ▸ Export… (gui/export.py): pictures, the PDF report, the layer CSV, the JSON."""
        export.run_export_dialog(self)

    def export_picture(self, path: str, scale: str = "1x") -> None:
        """Save the window as it looks: PNG pixels at `scale`, or SVG vectors."""
        export.export(self, "window", path, scale)

    def fit_views(self) -> None:
        self.diagram.fit_to_window()
        if self.timeline is not None:
            self.timeline.autoRange()  # the lifetimes share its x-range
            self.lifetimes.autoRange()

    def reset_layout(self) -> None:
        """The default panel sizes for the window's present size. Until the user moves a splitter
        they are worked out again after each analysis: the cards' height changes with their text."""
        self.main_splitter.setSizes([LEFT_WIDTH, max(1, self.main_splitter.width() - LEFT_WIDTH)])
        self._default_views = True
        self._keep_default_layout()

    def set_presentation(self, on: bool) -> None:
        """Large text and the high-contrast theme throughout (for a projector)."""
        self.display = self._current_display()
        scale = self.display.font_scale
        font = QFont(self._base_font)
        font.setPointSizeF(self._base_font.pointSizeF() * scale)
        QApplication.setFont(font)
        self._apply_display()
        if on:
            # The desk's layout is kept aside and comes back when presentation mode ends; it,
            # not the projector's, is what is saved (presentation mode itself is not saved).
            if self._desk_layout is None:
                self._desk_layout = self._layout_state()
            left, right = self.main_splitter.sizes()
            width = round(LEFT_WIDTH * scale)  # the panel's labels and buttons grow with the text
            self.main_splitter.setSizes([width, left + right - width])
            if self.isVisible() and not self.isFullScreen():
                self.showMaximized()
        elif self._desk_layout is not None:
            geometry, main, views, maximized = self._desk_layout
            self._desk_layout = None
            if self.isMaximized() and not maximized:
                self.showNormal()
            self.restoreGeometry(geometry)
            self.main_splitter.restoreState(main)
            self.splitter.restoreState(views)

    def set_decimal_units(self, on: bool) -> None:
        self.display = self._current_display()
        self._apply_display()

    def set_high_contrast(self, on: bool) -> None:
        self.display = self._current_display()
        self._apply_display()

    def set_full_screen(self, on: bool) -> None:
        self.showFullScreen() if on else self.showNormal()

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join(shortcut_lines(self.actions)))

    def show_spec_schema(self) -> None:
        dialog = QDialog(self)
        dialog.setWindowTitle("Layer spec schema")
        dialog.resize(760, 600)
        text = QTextBrowser(dialog)
        path = os.path.join(ROOT, "resources", "specs", "README.md")
        try:
            with open(path) as f:
                text.setMarkdown(f.read())
        except OSError:  # an installed copy without the source tree's resources/
            text.setPlainText(f"The spec schema is documented in resources/specs/README.md of the MemLens "
                              f"source ({path} is not here).")
        QVBoxLayout(dialog).addWidget(text)
        self.schema_dialog = dialog
        dialog.show()

    def about_text(self) -> str:
        torch_version = self.engine.torch_version if self.engine is not None else analysis_cache._torch_version()
        return (f"<b>MemLens {__version__}</b><br>torch {torch_version} · Python {sys.version.split()[0]}<br><br>"
                "How much device memory will this network need, where does it go, and when? "
                "Traced on meta tensors: nothing real is allocated.")

    def show_about(self) -> None:
        QMessageBox.about(self, "About MemLens", self.about_text())

    # ---- Qt overrides
    def showEvent(self, event):  # noqa: N802
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self._restore_splitters()

    def resizeEvent(self, event):  # noqa: N802
        super().resizeEvent(event)
        if self._shown_once and self._default_views:  # sized for the new height, once it is laid out
            QTimer.singleShot(0, self._keep_default_layout)

    def closeEvent(self, event):  # noqa: N802
        self._save_settings()
        self.controller.shutdown(0)  # no wait: the process ends now (gui/app.py); tests join it themselves
        self._collector.stop()
        super().closeEvent(event)

    def dragEnterEvent(self, event):  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        self.open_dropped([url.toLocalFile() for url in event.mimeData().urls()])

    # ---- Private API
    @staticmethod
    def _settle_layout(rounds: int = 5) -> None:
        """Let new texts resize the cards before the next paint: wrapped labels need ~3 rounds of
        layout requests (width, then height for that width, then the parents); a frame painted
        earlier shows clipped text."""
        for _ in range(rounds):
            QApplication.sendPostedEvents(None, QEvent.LayoutRequest)

    @staticmethod
    def _restore(state, restore) -> bool:
        return isinstance(state, QByteArray) and not state.isEmpty() and bool(restore(state))

    def _restore_splitters(self) -> None:
        """Once the window has its final size: restored into a smaller window they would squeeze;
        with none saved, the default sizes are worked out for this size."""
        s = self._settings()
        self.reset_layout()
        self._restore(s.value("splitter/main"), self.main_splitter.restoreState)
        if self._restore(s.value("splitter/views"), self.splitter.restoreState):
            self._default_views = False

    def _current_display(self):
        a = self.actions
        return self._make_display(a["presentation"].isChecked(), a["decimal_units"].isChecked(),
                                  a["high_contrast"].isChecked())

    @staticmethod
    def _make_display(presentation: bool, decimal: bool, high_contrast: bool = False):
        plain = style.make_display("high-contrast" if high_contrast else "light", decimal_units=decimal)
        return style.presentation(plain) if presentation else plain

    def _apply_display(self) -> None:
        for view in self.views().values():
            if view is not None:  # the plots are built after the first frame
                view.apply_display(self.display)
        if self.timeline is not None:
            self.plot_alignment.schedule()  # the axes' text changed size

    def _preparers(self) -> dict:
        """Each view module's Qt-free `prepare(analysis)`, run by the worker after the analysis
        (looked up from the built views: importing the plot modules costs ~0.6 s; the summary and
        the comparison need none)."""
        found = {}
        for name, view in self.views().items():
            prepare = getattr(sys.modules.get(type(view).__module__), "prepare", None) if view is not None else None
            if prepare is not None:
                found[name] = prepare
        return found

    def _settings(self) -> QSettings:
        return QSettings("MemLens", "MemLens")

    def _layout_state(self) -> tuple:
        return self.saveGeometry(), self.main_splitter.saveState(), self.splitter.saveState(), self.isMaximized()

    def _save_settings(self) -> None:
        s = self._settings()
        geometry, main, views, _ = self._desk_layout or self._layout_state()  # a projector's layout is not the desk's
        s.setValue("geometry", geometry)
        s.setValue("splitter/main", main)
        if self._default_views:  # default sizes are worked out for the next window's size
            s.remove("splitter/views")
        else:
            s.setValue("splitter/views", views)
        s.setValue("view/decimal_units", self.actions["decimal_units"].isChecked())
        s.setValue("view/high_contrast", self.actions["high_contrast"].isChecked())
        if self.analysis is not None:
            s.setValue("last_request", request_to_json(self.analysis.request))
        s.sync()

    def _restore_settings(self) -> None:
        s = self._settings()
        self._restore(s.value("geometry"), self.restoreGeometry)
        self.actions["decimal_units"].setChecked(s.value("view/decimal_units", False, type=bool))
        self.actions["high_contrast"].setChecked(s.value("view/high_contrast", False, type=bool))

    def _on_engine_ready(self, engine) -> None:
        self.engine = engine
        self.config.set_catalog(engine.catalog)
        self.planning.detect()
        if self.controller.running is None and self.analysis is not None:
            self.status.setText(self.status.text().replace("; loading torch…", ""))

    def _on_request(self, request) -> None:
        if self.analysis is not None and request == self.analysis.request and self.controller.running is None:
            return  # nothing changed (e.g. the comparison's optimizer picked in inference mode)
        self.controller.preparers = self._preparers()
        self.controller.analyse(request)

    # ---- The GPU panel and sweeps (issue 6)
    def _with_device_tab(self, settings):
        scroll = QScrollArea()
        scroll.setWidget(self.devices)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.NoFrame)
        self.left_tabs = QTabWidget()
        self.left_tabs.addTab(settings, "Model && step")
        self.left_tabs.addTab(scroll, "GPU: does it fit?")
        self.left_tabs.setTabToolTip(0, "What to analyse: the model and the training or inference step")
        self.left_tabs.setTabToolTip(1, "Choose a GPU: the fit gauge, the largest batch, measuring on this GPU")
        return self.left_tabs

    def _build_planning(self) -> None:
        from .device_planning import DevicePlanning
        from .sweeps import SweepPlotWidget

        self.sweeps = SweepPlotWidget()
        self.lower_tabs.addTab(self.sweeps, "What-if sweeps")
        self.lower_tabs.setTabToolTip(self.lower_tabs.count() - 1,
                                      "Footprint vs batch, resolution or sequence length on the chosen GPU")
        self.planning = DevicePlanning(self.devices, self.sweeps, self.controller, self.timeline, self)
        self._build_rank_view()  # issue 12
        self.planning.sig_capacity_changed.connect(self.timeline.set_capacity)
        self.planning.sig_use_settings.connect(self._on_planning_settings)
        from .levers_panel import CheckpointFitter  # the levers' 'fewest to fit', on this panel's device

        self._fitter = CheckpointFitter(self.config.levers, self.controller, self.devices.current_device,
                                        self.devices.overrides, lambda: self.analysis and self.analysis.request)

    # ---- Scenario A/B (issue 10)
    def _build_scenarios(self) -> None:
        from .scenarios import ScenarioWidget

        self.scenarios = ScenarioWidget()
        self.scenarios.bind(self.controller, self.devices)
        self.scenarios.sig_message.connect(self.status.setText)
        self.lower_tabs.addTab(self.scenarios, "Scenarios")
        self.lower_tabs.setTabToolTip(self.lower_tabs.count() - 1,
                                      "Pinned analyses beside the current one (Analysis ▸ Pin as scenario, Ctrl+B)")

    def pin_scenario(self) -> None:
        """Pin the analysis on screen under a name the user gives; the Scenarios tab shows them."""
        self.build_plots()
        self.lower_tabs.setCurrentWidget(self.scenarios)
        self.scenarios.pin_dialog()

    # ---- One GPU of N (issue 12)
    def _build_rank_view(self) -> None:
        from .rank_view import RankView

        self.rank_view = RankView()
        self.lower_tabs.addTab(self.rank_view, "GPUs (per rank)")
        self.rank_view.sig_sweep_requested.connect(self._on_world_size_sweep)
        self.controller.sig_partial.connect(self._on_world_size_point)
        self.controller.sig_result.connect(lambda kind, _: self._on_world_size_status(kind, "done"))
        self.controller.sig_error.connect(self._on_world_size_status)

    def _on_world_size_point(self, kind: str, point) -> None:
        if kind == "world_sizes":
            self.rank_view.add_point(point)

    def _on_world_size_status(self, kind: str, message: str) -> None:
        if kind == "world_sizes":
            self.rank_view.set_sweep_status(message)

    def _on_world_size_sweep(self) -> None:
        from engine.distributed.sweep import world_size_sweep

        request = self.analysis.request
        self.controller.submit("world_sizes", lambda progress, cancelled, partial: world_size_sweep(
            request, progress=progress, cancelled=cancelled, on_point=partial))

    def _on_planning_settings(self, changes: dict) -> None:
        # The panel's Apply (a batch size), or CUDA's rules for a chosen GPU: analyse with them.
        self.config.set_request(self.config.request().replace(**changes))
        self.config.schedule()

    def _keep_default_layout(self) -> None:
        if self._default_views:
            self.splitter.setSizes(view_sizes(max(self.splitter.height(), 3 * 60), self.diagram.one_row_height()))
            self._room_for_tab(self.lower_tabs.currentWidget())  # an open sweep or comparison keeps its room

    def _on_views_resized_by_hand(self, *_) -> None:
        self._default_views = False

    def _on_tab(self, index: int) -> None:
        self.controller.set_companion_wanted(index == COMPARE_TAB)
        self._room_for_tab(self.lower_tabs.widget(index))

    def _room_for_tab(self, widget) -> None:
        if self.sweeps is not None and widget is self.sweeps:
            self._make_room_below(SWEEP_MIN_HEIGHT)
        elif self.scenarios is not None and widget is self.scenarios:  # a plot beside a 20-row table
            self._make_room_below(max(SWEEP_MIN_HEIGHT, round(SCENARIOS_SHARE * self.splitter.height())))
        elif widget is getattr(self, "rank_view", None):  # issue 12: rank timelines beside the GPUs table
            self._make_room_below(max(SWEEP_MIN_HEIGHT, round(SCENARIOS_SHARE * self.splitter.height())))

    def _make_room_below(self, height: int) -> None:
        """Grow the lower tabs towards `height` px, from the timeline, then the diagram (each kept
        100 px tall): at 1280x720 the sweep plot otherwise opens a few pixels tall."""
        sizes = self.splitter.sizes()
        for donor in (1, 0):  # the timeline first, then the diagram, each down to 100 px
            take = min(height - sizes[2], sizes[donor] - 100)
            if take > 0:
                sizes[donor] -= take
                sizes[2] += take
        self.splitter.setSizes(sizes)

    def _on_started(self, request) -> None:
        self.error.hide()
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self._running_label = f"{os.path.basename(request.model)} (batch {request.batch}, {request.mode})"
        self.status.setText(f"analysing {self._running_label}…")

    def _on_progress(self, kind: str, fraction: float, message: str) -> None:
        if kind != "analysis":
            return  # the comparison runs quietly in the background
        self.progress.setValue(int(1000 * fraction))
        # The model stays named: a status that only says "forward" hides which request runs.
        self.status.setText(f"analysing {self._running_label}… {message}")

    def _agree_with_screen(self) -> None:
        """The panel returns to the request on screen, so the next edit starts from what is seen."""
        if self.analysis is not None and not self.config.is_pending():
            self.config.set_request(self.analysis.request)

    def _on_failed(self, request, message: str) -> None:
        self._agree_with_screen()
        self.show_error(message)

    def _on_cancelled(self, request) -> None:
        self._agree_with_screen()
        self.cancel_button.setEnabled(False)
        self.progress.setValue(0)
        self.status.setText("cancelled — the previous analysis is still shown" if self.analysis else "cancelled")

    def _on_companion_failed(self, request, message: str) -> None:
        self.compare.setToolTip(f"{request.mode} could not be analysed: {message}")
