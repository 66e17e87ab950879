"""The main window: model source and step settings on the left; summary, network diagram,
memory timeline, activation lifetimes and the layer table on the right, all fed by one Analysis.
Selecting a layer anywhere selects it everywhere."""
from __future__ import annotations

import os

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QMainWindow, QProgressBar, QPushButton, QSplitter, QTabWidget,
                               QVBoxLayout, QWidget)

from .compare import ModeComparisonWidget
from .config_panel import ConfigPanel
from .diagram import NetworkDiagramWidget
from .selection import SelectionModel
from .style import ERROR_STYLE
from .summary import SummaryWidget
from .table import LayerTableWidget
from .worker import AnalysisWorker, EngineLoader


class MainWindow(QMainWindow):
    """Owns the worker; views only ever receive `set_analysis(analysis)` and layer selections."""

    sig_analysis_shown = Signal(object)
    """An analysis was put on screen (tests and --screenshot wait for it)."""
    sig_error_shown = Signal(str)
    """An error message was put on screen."""

    def __init__(self, initial_request, parent=None):
        super().__init__(parent)
        self.setWindowTitle("MemLens — where does the memory go?")
        self.resize(1600, 1000)
        self.setAcceptDrops(True)
        self.analysis = None
        self.engine = None

        self.config = ConfigPanel(initial_request)
        self.config.sig_request_changed.connect(self._on_request)
        self.config.sig_invalid.connect(self.show_error)

        self.status = QLabel("Loading the engine (torch)…")
        self.progress = QProgressBar(maximum=1000, textVisible=False)
        self.progress.setFixedWidth(220)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.error = QLabel()
        self.error.setStyleSheet(ERROR_STYLE)
        self.error.setWordWrap(True)
        self.error.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.error.hide()

        self.summary = SummaryWidget()
        self.diagram = NetworkDiagramWidget()
        # The pyqtgraph views are built right after the window is shown: importing pyqtgraph
        # costs ~0.6 s, which would otherwise delay the first paint past the 1.5 s target.
        self.timeline = None
        self.lifetimes = None
        self._timeline_slot = QLabel("preparing plots…", alignment=Qt.AlignCenter)
        self._lifetimes_slot = QLabel("preparing plots…", alignment=Qt.AlignCenter)
        self.table = LayerTableWidget()
        self.compare = ModeComparisonWidget()
        self._companion = None  # the other mode's request, analysed after the main one
        self._running = None  # the request the worker is running

        lower = QTabWidget()
        lower.addTab(self._lifetimes_slot, "Activation lifetimes")
        lower.addTab(self.table, "Layer table")
        lower.addTab(self.compare, "Training vs inference")
        self.lower_tabs = lower
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.diagram)
        splitter.addWidget(self._timeline_slot)
        splitter.addWidget(lower)
        splitter.setSizes([250, 380, 260])
        self.splitter = splitter

        bar = QHBoxLayout()
        bar.addWidget(self.status, 1)
        bar.addWidget(self.progress)
        bar.addWidget(self.cancel_button)
        right = QVBoxLayout()
        right.addLayout(bar)
        right.addWidget(self.error)
        right.addWidget(self.summary)
        right.addWidget(splitter, 1)
        central = QWidget()
        row = QHBoxLayout(central)
        row.addWidget(self.config)
        row.addLayout(right, 1)
        self.setCentralWidget(central)

        self.worker = AnalysisWorker(self)
        self.worker.sig_started.connect(self._on_started)
        self.worker.sig_progress.connect(self._on_progress)
        self.worker.sig_finished.connect(self._on_finished)
        self.worker.sig_failed.connect(self._on_failed)
        self.worker.sig_cancelled.connect(self._on_cancelled)
        self.cancel_button.clicked.connect(self.worker.cancel)
        self.selection = SelectionModel(self)
        for view in (self.diagram, self.table):
            view.bind_selection(self.selection)
        self.loader = EngineLoader(self)
        self.loader.sig_ready.connect(self._on_engine_ready)
        self.loader.sig_failed.connect(self.show_error)
        self._initial = initial_request

    # ---- Public API
    def start(self) -> None:
        """Load the engine in the background, then analyse the initial request."""
        self.worker.submit(self._initial)
        self.loader.start()
        QTimer.singleShot(0, self.build_plots)

    def build_plots(self) -> None:
        """Create the pyqtgraph views in place of their placeholders (once)."""
        if self.timeline is not None:
            return
        from .lifetimes import LifetimesWidget
        from .timeline import MemoryTimelineWidget, share_x_range

        self.timeline = MemoryTimelineWidget()
        self.lifetimes = LifetimesWidget()
        share_x_range(self.timeline, self.lifetimes)
        self.splitter.replaceWidget(1, self.timeline)
        self._timeline_slot.deleteLater()
        current = self.lower_tabs.currentIndex()
        self.lower_tabs.removeTab(0)
        self.lower_tabs.insertTab(0, self.lifetimes, "Activation lifetimes")
        self.lower_tabs.setCurrentIndex(current)
        self._lifetimes_slot.deleteLater()
        for view in (self.timeline, self.lifetimes):
            view.bind_selection(self.selection)

    def set_analysis(self, analysis) -> None:
        self.analysis = analysis
        self.build_plots()
        self.error.hide()
        self.progress.setValue(1000)
        self.cancel_button.setEnabled(False)
        self.selection.set_layers([layer.name for layer in analysis.layers])
        for view in (self.summary, self.diagram, self.timeline, self.lifetimes, self.table, self.compare):
            view.set_analysis(analysis)
        warn = f" — {len(analysis.warnings)} warning(s): " + "; ".join(analysis.warnings) if analysis.warnings else ""
        self.status.setText(f"{analysis.model_name}: {len(analysis.layers)} layers, {len(analysis.events):,} events, "
                            f"analysed in {analysis.analysis_seconds:.2f} s{warn}")
        self.status.setToolTip("\n".join(f"not modelled — {n.label}: {n.note}" for n in analysis.not_modelled))
        self.sig_analysis_shown.emit(analysis)

    def show_error(self, message: str) -> None:
        """Show what went wrong; the previous analysis stays on screen."""
        self.error.setText(f"<b>Could not analyse:</b> {message}")
        self.error.show()
        self.cancel_button.setEnabled(False)
        self.status.setText("error — the previous analysis is still shown" if self.analysis else "error")
        self.sig_error_shown.emit(message)

    def select_layer(self, name: str) -> None:
        self.selection.select(name)

    def open_model(self, model: str) -> None:
        self.config.set_model(model)

    def open_dropped(self, paths: list[str]) -> None:
        """Open the first layer spec among dropped files; anything else gets a message."""
        spec = next((p for p in paths if p.lower().endswith((".yaml", ".yml", ".json"))), None)
        if spec is None:
            self.show_error("drop a layer spec (.yaml, .yml or .json)")
        else:
            self.open_model(spec)

    # ---- Qt overrides
    def closeEvent(self, event):  # noqa: N802
        self.worker.shutdown()
        super().closeEvent(event)

    def dragEnterEvent(self, event):  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802
        self.open_dropped([url.toLocalFile() for url in event.mimeData().urls()])

    # ---- Private API
    def _on_engine_ready(self, engine) -> None:
        self.engine = engine
        self.config.set_catalog(engine.sources.catalog())
        self.worker.set_engine(engine)

    def _on_request(self, request) -> None:
        self._companion = None
        self.worker.submit(request)

    def _on_finished(self, analysis) -> None:
        """Main analyses go to every view; then the other mode is analysed for the comparison."""
        if self._companion is not None and analysis.request == self._companion:
            self._companion = None
            self.compare.set_analysis(analysis)
            self.status.setText(self.status.text().split(" · comparing")[0])
            return
        self.set_analysis(analysis)
        r = analysis.request
        other = r.replace(mode="inference", optimizer="none", first_step=False) if r.mode == "train" else \
            r.replace(mode="train", optimizer="adam")
        self._companion = other
        self.worker.submit(other)

    def _on_failed(self, message: str) -> None:
        if self._running is not None and self._running == self._companion:
            self._companion = None  # the comparison could not run: say so there, not as an error
            self.compare.setToolTip(f"{self._running.mode} could not be analysed: {message}")
            return
        self.show_error(message)

    def _on_started(self, request) -> None:
        self._running = request
        if self._companion is not None and request == self._companion:
            self.status.setText(self.status.text() + f" · comparing with {request.mode}…")
            return
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.status.setText(f"analysing {os.path.basename(request.model)} (batch {request.batch}, {request.mode})…")

    def _on_progress(self, fraction: float, message: str) -> None:
        if self._companion is not None:
            return  # the comparison runs quietly in the background
        self.progress.setValue(int(1000 * fraction))
        if self.worker.is_running():
            self.status.setText(f"analysing… {message}")

    def _on_cancelled(self) -> None:
        if self._running is not None and self._running == self._companion:
            return
        self.cancel_button.setEnabled(False)
        self.progress.setValue(0)
        self.status.setText("cancelled — the previous analysis is still shown" if self.analysis else "cancelled")
