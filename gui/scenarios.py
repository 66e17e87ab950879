"""The Scenarios tab: up to four pinned analyses beside the current one.

The user pins what is on screen (Analysis ▸ Pin as scenario, Ctrl+B), changes a setting, and reads
side by side: the step's memory overlaid on one phase-stretched axis, every category at each peak
with its difference from the baseline, the ten layers that changed most and each fit verdict.
Numbers come from `engine.scenarios.compare`; this file only lays them out.

Scenarios reopened from a plan file arrive as requests: they are re-analysed through the
controller (kind "scenarios"), one job for all of them, always queued behind the main analysis.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QMenu,
                               QPushButton, QSizePolicy, QSplitter, QTableWidget, QTableWidgetItem, QToolButton,
                               QVBoxLayout, QWidget)

from engine.categories import PHASES
from engine.errors import MemLensError
from engine.scenarios import MAX_PINNED, PHASE_AXIS_LABEL, Scenario, compare, overlay_curve, write_comparison_csv
from engine.units import choose_unit, format_size

from .device_panel import STATE_COLOURS
from .report_compare import SERIES, room  # one dash pattern per column: apart in black and white too
from .style import CATEGORY_LABELS

CURRENT = "current"
CHIP_CHARS = 16  # four chips, the buttons and the baseline fit in one row at 1280 px
KIND = "scenarios"


class ScenarioError(MemLensError):
    """A pin, rename or unpin that cannot be done (the message says why)."""


@dataclass(frozen=True)
class Pinned:
    """A pinned scenario: its analysis, or while it is being (re)analysed only its request."""

    name: str
    request: object
    device: object = None  # DeviceInfo it was pinned on (None: the GPU panel's)
    overrides: tuple = ()
    analysis: object = None
    error: str = ""

    def scenario(self) -> Scenario:
        return Scenario(self.name, self.analysis, self.device, self.overrides)


class ScenarioWidget(QWidget):
    """Pinned scenarios, the current analysis, and their comparison."""

    sig_pinned_changed = Signal()
    """Scenarios were pinned, renamed, unpinned or (re)analysed."""
    sig_message = Signal(str)
    """Something the user should read (a refused pin, a finished export)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pinned: list[Pinned] = []
        self.current = None  # the Analysis on screen
        self.comparison = None
        self.controller = None
        self.devices = None
        self._job = 0
        self._decimal = False
        self._curves = []

        self.pin_button = QPushButton("Pin…")
        self.pin_button.setToolTip(f"Keep the analysis on screen as a named scenario (Ctrl+B); up to {MAX_PINNED}")
        self.pin_button.clicked.connect(lambda: self.pin_dialog())
        self.chips = QHBoxLayout()
        self.chips.setSpacing(4)
        self.baseline = QComboBox()
        self.baseline.setToolTip("Differences are taken against this scenario (the baseline)")
        self.baseline.currentIndexChanged.connect(self._on_baseline)
        self.csv_button = QPushButton("CSV…")
        self.csv_button.setToolTip("Save the comparison as a CSV table (exact bytes)")
        self.csv_button.clicked.connect(self._on_export_csv)
        self.pdf_button = QPushButton("PDF…")
        self.pdf_button.setToolTip("Save the comparison as a PDF page (readable in black and white)")
        self.pdf_button.clicked.connect(self._on_export_pdf)
        self.note = QLabel("")
        self.note.setSizePolicy(self.note.sizePolicy().horizontalPolicy(), self.note.sizePolicy().verticalPolicy())

        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumSize(200, 40)
        self.plot.showGrid(x=False, y=True, alpha=0.25)
        self.plot.setLabel("bottom", "step: each phase stretched to one unit")
        self.plot.getAxis("bottom").setToolTip(PHASE_AXIS_LABEL + ": the steps differ in event count")
        self.plot.getAxis("bottom").setTicks([[(k + 0.5, p) for k, p in enumerate(PHASES)], []])
        self.plot.setMouseEnabled(x=True, y=False)
        for k in (1, 2):
            self.plot.addItem(pg.InfiniteLine(k, angle=90, pen=pg.mkPen("#999", width=1)))

        self.table = QTableWidget(0, 0)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setWordWrap(False)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        self.table.setToolTip("Each scenario's figures; in brackets the difference from the baseline")

        # Never wider than the tab: at 1280 px four chips and the buttons share one row, and a
        # row too long for it is clipped at its last chip instead of widening the window.
        chips = QWidget()
        chips.setLayout(self.chips)
        self.chips.setContentsMargins(0, 0, 0, 0)
        chips.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.baseline.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.baseline.setMinimumContentsLength(8)
        top = QHBoxLayout()
        top.addWidget(self.pin_button)
        top.addWidget(chips, 1)
        top.addWidget(QLabel("vs"))
        top.addWidget(self.baseline)
        top.addWidget(self.csv_button)
        top.addWidget(self.pdf_button)
        split = QSplitter(Qt.Horizontal)
        split.addWidget(self.plot)
        split.addWidget(self.table)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([400, 600])  # the table needs the room: three columns of 'size (difference)'

        split.setChildrenCollapsible(False)
        self.splitter = split
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 2)
        layout.addLayout(top)
        layout.addWidget(self.note)
        layout.addWidget(split, 1)
        self._refresh()

    # ---- Public API
    def bind(self, controller, devices) -> None:
        """Re-analyse through `controller`; check the fit on the device `devices` (the GPU panel) has."""
        self.controller, self.devices = controller, devices
        controller.sig_partial.connect(self._on_partial)
        controller.sig_result.connect(self._on_job_end)
        controller.sig_cancel.connect(self._on_job_cancelled)
        controller.sig_error.connect(self._on_job_error)
        for signal in (controller.sig_analysis_ready, controller.sig_analysis_failed,
                       controller.sig_analysis_cancelled):
            signal.connect(self._run_pending)
        devices.sig_device_changed.connect(self._refresh)
        devices.sig_overrides_changed.connect(self._refresh)

    def set_analysis(self, analysis, prepared=None) -> None:
        """The analysis on screen: the comparison's last column."""
        self.current = analysis
        self._refresh()

    def apply_display(self, display) -> None:
        self._decimal = display.decimal_units
        self._refresh()

    def pin(self, name: str, analysis=None) -> Pinned:
        """Pin `analysis` (the one on screen by default) as `name`, on the device chosen now."""
        analysis = analysis or self.current
        name = self._check_name(name)
        if analysis is None:
            raise ScenarioError("nothing to pin yet: wait for the analysis to finish")
        if len(self.pinned) >= MAX_PINNED:
            raise ScenarioError(f"{MAX_PINNED} scenarios are pinned already, the most that can be compared: "
                                "unpin one first")
        device = self.devices.current_device() if self.devices is not None else None
        overrides = tuple(sorted(self.devices.overrides().items())) if self.devices is not None and device else ()
        entry = Pinned(name, analysis.request, device, overrides, analysis)
        self.pinned.append(entry)
        self._changed()
        return entry

    def rename(self, index: int, name: str) -> None:
        name = self._check_name(name, ignore=index)
        self.pinned[index] = replace(self.pinned[index], name=name)
        self._changed()

    def unpin(self, index: int) -> None:
        del self.pinned[index]
        self._changed()

    def restore(self, entries) -> None:
        """Replace the pinned scenarios by `entries` ((name, request, device, overrides)); they are
        analysed again, behind the main analysis."""
        self.pinned = [Pinned(name, request, device, tuple(overrides)) for name, request, device, overrides in entries]
        self._job = 0
        self._changed()
        self._run_pending()

    def retry(self, index: int) -> None:
        """Analyse a scenario again whose reopening failed or was cancelled."""
        self.pinned[index] = replace(self.pinned[index], error="")
        self._changed()
        self._run_pending()

    def suggested_name(self) -> str:
        used = {p.name for p in self.pinned}
        letter = next(c for c in "ABCDEFGH" if c not in {n.split(":")[0] for n in used})
        if self.current is None:
            return letter
        r = self.current.request
        dtype = "AMP" if r.amp else {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}[r.dtype]
        what = f"{r.optimizer}" if r.mode == "train" else "inference"
        return f"{letter}: {dtype} {what} b{r.batch}"

    def pin_dialog(self) -> None:
        """Ask for a name and pin the analysis on screen (a refusal is said in the tab)."""
        if len(self.pinned) >= MAX_PINNED:
            self._say(f"{MAX_PINNED} scenarios are pinned already, the most that can be compared: unpin one first")
            return
        name, ok = QInputDialog.getText(self, "Pin as scenario", "Name of this scenario:", text=self.suggested_name())
        if ok:
            try:
                self.pin(name)
            except ScenarioError as e:
                self._say(str(e))

    def scenarios(self) -> list[Scenario]:
        """The analysed pinned scenarios, then the current analysis."""
        found = [p.scenario() for p in self.pinned if p.analysis is not None]
        if self.current is not None:
            found.append(Scenario(CURRENT, self.current))
        return found

    def export_csv(self, path: str) -> None:
        if self.comparison is None:
            raise ScenarioError("nothing to compare: pin an analysis first")
        write_comparison_csv(self.comparison, path)

    def export_pdf(self, path: str) -> int:
        """The comparison as PDF pages; returns how many."""
        from .report_compare import write_comparison_pdf

        if self.comparison is None:
            raise ScenarioError("nothing to compare: pin an analysis first")
        return write_comparison_pdf(self.comparison, [s.analysis for s in self.scenarios()], path)

    def save_comparison(self, path: str) -> bool:
        """CSV or PDF by the file's suffix; the tab says where it went, or why it could not."""
        write = self.export_pdf if path.lower().endswith(".pdf") else self.export_csv
        try:
            write(path)
        except (OSError, MemLensError) as e:
            self._say(f"{path}: could not export the comparison ({getattr(e, 'strerror', None) or e})")
            return False
        self._say(f"comparison saved to {path}")
        return True

    # ---- Private API
    def _check_name(self, name: str, ignore: int | None = None) -> str:
        name = " ".join(str(name).split())
        if not name:
            raise ScenarioError("a scenario needs a name")
        if len(name) > 60:
            raise ScenarioError("a scenario name has at most 60 characters")
        if name == CURRENT or any(p.name == name for i, p in enumerate(self.pinned) if i != ignore):
            raise ScenarioError(f"the name {name!r} is taken: choose another")
        return name

    def _say(self, message: str) -> None:
        self.note.setText(message)
        self.note.setVisible(bool(message))
        if message:
            self.sig_message.emit(message)

    def _changed(self) -> None:
        self._say("")
        self._refresh()
        self.sig_pinned_changed.emit()

    def _device(self):
        if self.devices is None:
            return None, {}
        return self.devices.current_device(), self.devices.overrides()

    def _refresh(self, *_) -> None:
        self._fill_chips()
        scenarios = self.scenarios()
        baseline = max(0, self.baseline.currentIndex())
        names = [s.name for s in scenarios]
        self.baseline.blockSignals(True)
        self.baseline.clear()
        self.baseline.addItems(names)
        self.baseline.setCurrentIndex(min(baseline, len(names) - 1))
        self.baseline.blockSignals(False)
        device, overrides = self._device()
        self.comparison = compare(scenarios, self.baseline.currentIndex(), device, overrides) if scenarios else None
        self.csv_button.setEnabled(len(scenarios) > 1)
        self.pdf_button.setEnabled(len(scenarios) > 1)
        self._draw_curves(scenarios)
        self._fill_table()
        waiting = [p.name for p in self.pinned if p.analysis is None and not p.error]
        failed = [f"{p.name}: {p.error}" for p in self.pinned if p.error]
        if waiting or failed:
            self._say("; ".join(([f"analysing {', '.join(waiting)}…"] if waiting else []) + failed))
        elif not self.pinned and not self.note.text():
            self.note.setText("Pin the analysis on screen (Ctrl+B), change a setting, and compare them here.")
            self.note.setVisible(True)

    def _fill_chips(self) -> None:
        while self.chips.count():
            widget = self.chips.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for i, entry in enumerate(self.pinned):
            chip = QToolButton()
            shown = entry.name if len(entry.name) <= CHIP_CHARS else entry.name[:CHIP_CHARS - 1] + "…"
            chip.setText(shown + (" (analysing…)" if entry.analysis is None and not entry.error else ""))
            chip.setToolTip(f"{entry.name}\n{_request_words(entry.request)}"
                            + (f"\nchecked on {entry.device.name}" if entry.device else "")
                            + "\nclick to rename or unpin")
            chip.setPopupMode(QToolButton.InstantPopup)
            menu = QMenu(chip)
            menu.addAction("Rename…", lambda i=i: self._on_rename(i))
            menu.addAction("Unpin", lambda i=i: self.unpin(i))
            if entry.error:
                menu.addAction("Analyse again", lambda i=i: self.retry(i))
            chip.setMenu(menu)
            self.chips.addWidget(self._chip_look(chip, *SERIES[i]))
        if self.current is not None and self.pinned:
            current = QToolButton()
            current.setText(CURRENT)
            current.setToolTip(f"the analysis on screen\n{_request_words(self.current.request)}")
            self.chips.addWidget(self._chip_look(current, *SERIES[-1]))
        self.chips.addStretch(1)

    @staticmethod
    def _chip_look(chip: QToolButton, colour: str, dash) -> QToolButton:
        """The chip shows its line as drawn in the plot: the chips are the plot's legend."""
        pixmap = QPixmap(22, 10)
        pixmap.fill(Qt.transparent)
        painter = QPainter(pixmap)
        painter.setPen(QPen(QColor(colour), 2.5, dash))
        painter.drawLine(0, 5, 22, 5)
        painter.end()
        chip.setIcon(QIcon(pixmap))
        chip.setIconSize(pixmap.size())
        chip.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        chip.setStyleSheet(f"QToolButton {{ border: 1px solid {colour}; border-radius: 3px; padding: 1px 3px; }}")
        return chip

    def _draw_curves(self, scenarios) -> None:
        for item in self._curves:
            self.plot.removeItem(item)
        self._curves = []
        if len(scenarios) < 2:
            return
        top = max(s.analysis.peak.total_bytes for s in scenarios)
        unit = choose_unit(top, self._decimal)
        self.plot.setLabel("left", f"live memory ({unit[0]})")
        for i, s in enumerate(scenarios):
            colour, dash = SERIES[-1] if s.name == CURRENT else SERIES[i]
            x, y = overlay_curve(s.analysis)
            curve = self.plot.plot(x, y / unit[1], pen=pg.mkPen(colour, width=3 if s.name == CURRENT else 2, style=dash))
            self._curves.append(curve)
        self.plot.setXRange(0, 3, padding=0.01)
        self.plot.enableAutoRange(axis="y")

    def _fill_table(self) -> None:
        c = self.comparison
        self.table.clear()
        if c is None or len(c.columns) < 2:
            self.table.setRowCount(0)
            self.table.setColumnCount(0)
            return
        size = lambda v: format_size(v, self._decimal)  # noqa: E731
        rows = []  # (label, [cell text], tooltip, bold)

        def with_delta(values, deltas):
            return [size(v) if i == c.baseline or v is None or d == 0 else f"{size(v)} ({'+' if d > 0 else ''}{size(d)})"
                    for i, (v, d) in enumerate(zip(values, deltas))]

        rows.append(("Peak", with_delta([col.peak_bytes for col in c.columns], c.peak_delta), True))
        rows += [(CATEGORY_LABELS[r.category], with_delta(r.bytes, r.delta), False) for r in c.categories]
        fits = [col.fit for col in c.columns]
        fit_label = "Fit"  # the device is in each cell's tooltip: the long name would widen the row labels
        rows.append((fit_label, [f"{f.state} ({room(f)})" if f else "no device" for f in fits], True))
        rows.append(("Layers (most changed)", [""] * len(c.columns), True))
        for r in c.layers:
            rows.append((f"  {r.name}", ["—" if v is None else s for v, s in
                                          zip(r.bytes, with_delta([v or 0 for v in r.bytes], r.delta))], False))
        if not c.layers:
            rows.append(("  (no layer changed)", [""] * len(c.columns), False))
        self.table.setColumnCount(len(c.columns))
        self.table.setRowCount(len(rows))
        self.table.setHorizontalHeaderLabels([col.name for col in c.columns])
        self.table.setVerticalHeaderLabels([label for label, _, _ in rows])
        for j, col in enumerate(c.columns):
            self.table.horizontalHeaderItem(j).setToolTip(col.settings)
        bold = QFont(self.table.font())
        bold.setBold(True)
        for i, (label, cells, strong) in enumerate(rows):
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
                if strong:
                    item.setFont(bold)
                if label == fit_label and fits[j] is not None:
                    item.setForeground(pg.mkColor(STATE_COLOURS[fits[j].state]))
                    item.setToolTip(fits[j].describe())
                self.table.setItem(i, j, item)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)

    def _on_baseline(self, _index: int) -> None:
        self._refresh()

    def _on_rename(self, index: int) -> None:
        name, ok = QInputDialog.getText(self, "Rename scenario", "Name:", text=self.pinned[index].name)
        if ok:
            try:
                self.rename(index, name)
            except ScenarioError as e:
                self._say(str(e))

    def _on_export_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the comparison", "scenarios.csv", "CSV (*.csv)")
        if path:
            self.save_comparison(path)

    def _on_export_pdf(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the comparison", "scenarios.pdf", "PDF (*.pdf)")
        if path:
            self.save_comparison(path)

    # -- re-analysing scenarios reopened from a plan
    def _run_pending(self, *_) -> None:
        pending = [p for p in self.pinned if p.analysis is None and not p.error]
        if self.controller is None or not pending or self._job or self.controller.is_analysing():
            return
        requests = [(p.name, p.request) for p in pending]
        analyse = self.controller.analyze_in_job

        def job(progress, cancelled, partial):
            for i, (name, request) in enumerate(requests):
                progress(i / len(requests), f"scenario {name}")
                try:
                    partial((name, request, analyse(request, progress=lambda *_: None, cancelled=cancelled), ""))
                except MemLensError as e:
                    if cancelled():
                        raise
                    partial((name, request, None, str(e)))
            return len(requests)

        self._job = self.controller.submit(KIND, job, supersede=False)

    def _on_partial(self, kind: str, value) -> None:
        if kind != KIND:
            return
        name, request, analysis, error = value
        for i, p in enumerate(self.pinned):
            if p.name == name and p.request == request and p.analysis is None:
                self.pinned[i] = replace(p, analysis=analysis, error=error)
        self._refresh()
        self.sig_pinned_changed.emit()

    def _on_job_end(self, kind: str, *_) -> None:
        if kind == KIND:
            self._job = 0

    def _on_job_cancelled(self, kind: str) -> None:
        if kind != KIND:
            return
        self._job = 0
        if self.controller.is_analysing():
            return  # superseded by a new main analysis: run again once it ends
        self.pinned = [replace(p, error="cancelled") if p.analysis is None and not p.error else p for p in self.pinned]
        self._refresh()

    def _on_job_error(self, kind: str, message: str) -> None:
        if kind == KIND:
            self._job = 0
            self._say(f"scenarios could not be analysed: {message}")


def _request_words(request) -> str:
    from engine.scenarios import describe_request

    return describe_request(request) + ("" if os.path.basename(request.model) == request.model else
                                        f"\n{request.model}")
