"""The device panel: which GPU to plan for (detected ones first, then the searchable catalog, then a
custom capacity), the fit gauge of the footprint against it, the largest batch with an Apply
button, and "Measure on this GPU" (enabled only when torch has a CUDA device).

The panel computes nothing: it shows a `Detection`, a `Fit` and a `Largest` the engine made, and
asks for work through signals (the controller runs the engine calls as jobs).
"""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QSizePolicy, QVBoxLayout, QWidget)

from engine.units import format_bytes

LINE_COLOURS = {
    "tensors": "#4c78a8",
    "cublas": "#72b7b2",
    "workspace": "#54a24b",
    "rounding": "#9ecae9",
    "reserve": "#eeca3b",
    "context": "#b279a2",
    "others": "#9d755d",
}
SIMULATED_TOTAL = ("compared: simulated reserved peak (tensors with their workspaces, block rounding, reserve) "
                   "+ context + others")
STATE_COLOURS = {"fits": "#2e7d32", "tight": "#e69500", "does not fit": "#c62828"}
EDITABLE_LINES = (("context", "CUDA context and handles"), ("reserve", "Allocator reserve"), ("workspace", "Workspaces"),
                  ("cublas", "cuBLAS workspace"), ("others", "Other processes"))


class FitGaugeWidget(QWidget):
    """A stacked bar of the footprint lines against the capacity, coloured by the verdict.

    Sized to be read across a room: a 44 px bar, the verdict in a large bold font.
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.fit = None
        self.setMinimumHeight(130)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)

    # ---- Public API
    def set_fit(self, fit) -> None:
        self.fit = fit
        self.setToolTip("" if fit is None else "\n".join(
            f"{line.label}: {format_bytes(line.bytes)} ({line.source}) — {line.note}" for line in fit.lines))
        self.update()

    def verdict_text(self) -> str:
        if self.fit is None:
            return "choose a device"
        f = self.fit
        if f.headroom_bytes >= 0:
            return f"{f.state.upper()}: {format_bytes(f.headroom_bytes)} ({f.headroom_pct:.1f}%) free"
        return f"DOES NOT FIT: {format_bytes(-f.headroom_bytes)} ({-f.headroom_pct:.1f}%) over"

    def segments(self) -> list[tuple[str, float, float]]:
        """(line key, start x, end x) of each drawn segment, in widget pixels."""
        if self.fit is None:
            return []
        left, width = self._bar_span()
        scale = width / self._full_scale()
        out, x = [], left
        for line in self.fit.lines:
            if line.bytes <= 0:
                continue
            w = line.bytes * scale
            out.append((line.key, x, x + w))
            x += w
        return out

    def capacity_x(self) -> float:
        left, width = self._bar_span()
        return left + width * self.fit.capacity_bytes / self._full_scale()

    def bar_rect(self) -> QRectF:
        left, width = self._bar_span()
        return QRectF(left, 74, width, 44)

    # ---- Qt
    def paintEvent(self, event):  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.6)
        font.setBold(True)
        painter.setFont(font)
        colour = QColor(STATE_COLOURS.get(self.fit.state if self.fit else "", "#777777"))
        painter.setPen(colour)
        painter.drawText(QRectF(8, 0, self.width() - 16, 64), Qt.AlignLeft | Qt.AlignVCenter | Qt.TextWordWrap,
                         self.verdict_text())
        bar = self.bar_rect()
        painter.setPen(Qt.NoPen)
        painter.setBrush(QColor("#eeeeee"))
        painter.drawRect(bar)
        for key, x0, x1 in self.segments():
            painter.setBrush(QColor(LINE_COLOURS.get(key, "#999999")))
            painter.drawRect(QRectF(x0, bar.top(), x1 - x0, bar.height()))
        if self.fit is not None:
            x = self.capacity_x()
            painter.setPen(QPen(colour, 4))
            painter.drawLine(int(x), int(bar.top()) - 6, int(x), int(bar.bottom()) + 6)
        painter.end()

    # ---- Private API
    def _bar_span(self) -> tuple[float, float]:
        return 8.0, max(10.0, self.width() - 16.0)

    def _full_scale(self) -> float:
        return max(self.fit.capacity_bytes, self.fit.total_bytes) * 1.04


class DevicePanel(QWidget):
    """Pick a device; see the fit gauge, the largest batch, and measure when a GPU is here."""

    sig_device_changed = Signal(object)
    """A device was chosen (a `DeviceInfo`): recompute the fit and the largest batch for it."""
    sig_capacity_changed = Signal(object, str)
    """The chosen device's capacity in bytes (a Python int: 80 GB overflows a Qt int) and its label."""
    sig_overrides_changed = Signal(dict)
    """The user edited footprint lines: {line key: bytes}."""
    sig_max_batch_requested = Signal()
    """Find the largest batch for the current device and configuration."""
    sig_apply_batch = Signal(int)
    """Use this batch size in the configuration."""
    sig_measure_requested = Signal()
    """Run one real step on the CUDA device and compare."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.detection = None
        self._device = None
        self._largest = None
        self._overrides: dict[str, int] = {}

        self.status = QLabel("looking for GPUs…")
        self.status.setWordWrap(True)
        self.search = QLineEdit(placeholderText="search the catalog (e.g. A100, 4090, MI300X)")
        self.search.setToolTip("Filter the catalog by name (detected devices stay listed)")
        self.search.textChanged.connect(self._on_search)
        self.devices = QListWidget()
        self.devices.setMinimumHeight(180)
        self.devices.currentItemChanged.connect(self._on_item_changed)
        self.custom = QLineEdit(placeholderText="custom capacity, e.g. 24 GiB or 80GB")
        self.custom.setToolTip("Plan for any capacity: GiB/MiB are powers of 1024, GB/MB powers of 1000")
        self.custom.returnPressed.connect(self._on_custom)
        self.custom_button = QPushButton("Use")
        self.custom_button.setToolTip("Use the custom capacity as the device")
        self.custom_button.clicked.connect(self._on_custom)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setStyleSheet("color:#8a1c13;")
        self.error.hide()

        self.gauge = FitGaugeWidget()
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        self.legend.setTextFormat(Qt.RichText)

        self.largest = QLabel("Largest batch: —")
        big = QFont(self.largest.font())
        big.setPointSizeF(big.pointSizeF() * 1.4)
        big.setBold(True)
        self.largest.setFont(big)
        self.largest_detail = QLabel("")
        self.largest_detail.setWordWrap(True)
        self.find_button = QPushButton("Search again")
        self.find_button.setToolTip("Search again for the largest batch that fits (a handful of traces)")
        self.find_button.clicked.connect(self.sig_max_batch_requested)
        self.apply_button = QPushButton("Apply")
        self.apply_button.setEnabled(False)
        self.apply_button.setToolTip("Analyse with the largest batch that fits")
        self.apply_button.clicked.connect(self._on_apply)
        self.measure_button = QPushButton("Measure on this GPU")
        self.measure_button.setEnabled(False)
        self.measure_button.setToolTip("looking for a CUDA device…")
        self.measure_button.clicked.connect(self.sig_measure_requested)
        self.measure_result = QLabel("")
        self.measure_result.setWordWrap(True)

        self.override_edits: dict[str, QLineEdit] = {}
        overrides = QFormLayout()
        for key, label in EDITABLE_LINES:
            edit = QLineEdit(placeholderText="default")
            edit.setToolTip(f"{label}: a size such as 300 MiB replaces the documented default; empty restores it")
            edit.editingFinished.connect(self._on_overrides)
            self.override_edits[key] = edit
            overrides.addRow(label, edit)
        edit_box = QGroupBox("Overheads (empty: the default)")
        edit_box.setLayout(overrides)

        pick = QGroupBox("Device")
        lay = QVBoxLayout(pick)
        lay.addWidget(self.status)
        lay.addWidget(self.search)
        lay.addWidget(self.devices, 1)
        row = QHBoxLayout()
        row.addWidget(self.custom, 1)
        row.addWidget(self.custom_button)
        lay.addLayout(row)
        lay.addWidget(self.error)

        fit_box = QGroupBox("Does it fit?")
        lay = QVBoxLayout(fit_box)
        lay.addWidget(self.gauge)
        lay.addWidget(self.legend)
        lay.addWidget(self.largest)
        row = QHBoxLayout()
        row.addWidget(self.find_button)
        row.addWidget(self.apply_button)
        lay.addLayout(row)
        lay.addWidget(self.largest_detail)
        lay.addWidget(self.measure_button)
        lay.addWidget(self.measure_result)

        layout = QVBoxLayout(self)
        layout.addWidget(pick, 2)
        layout.addWidget(fit_box)
        layout.addWidget(edit_box)

    # ---- Public API
    def set_detection(self, detection, catalog) -> None:
        """Fill the list: detected devices first, then every catalog entry."""
        self.detection = detection
        self.devices.blockSignals(True)
        self.devices.clear()
        self._header("Detected on this machine")
        for d in detection.accelerators:
            extra = ""
            if d.other_processes_bytes:
                extra = f", {format_bytes(d.other_processes_bytes)} used by other processes"
            self._entry(f"{d.label} — {format_bytes(d.capacity_bytes)}{extra}", d)
        if not detection.accelerators:
            self._header("   none (see above)", note=True)
        self._header("Catalog")
        for d in catalog:
            self._entry(f"{d.name} — {format_bytes(d.capacity_bytes)}{' (approx.)' if d.approximate else ''}", d)
        self.devices.blockSignals(False)
        host = f" Host RAM: {format_bytes(detection.host.capacity_bytes)}." if detection.host else ""
        if detection.accelerators:
            self.status.setText(f"Found: {detection.summary}.{host}")
        else:
            self.status.setText(f"{'; '.join(detection.notes)}.{host}")
        self.measure_button.setEnabled(detection.has_cuda)
        self.measure_button.setToolTip(
            "Run one real step of this configuration on the GPU and overlay the measured memory"
            if detection.has_cuda else f"Needs a CUDA device torch can use: {detection.summary}")
        self._on_search(self.search.text())

    def current_device(self):
        return self._device

    def select_device(self, name: str) -> bool:
        """Select the listed device whose name or label is `name` (what a click does)."""
        for i in range(self.devices.count()):
            item = self.devices.item(i)
            device = item.data(Qt.UserRole)
            if device is not None and name in (device.name, device.label):
                self.devices.setCurrentItem(item)
                return True
        return False

    def set_fit(self, fit) -> None:
        self.gauge.set_fit(fit)
        if fit is None:
            self.legend.setText("")
            return
        present = {x.key for x in fit.lines}
        for key, edit in self.override_edits.items():  # a CUDA trace has no workspace lines: they are traced
            edit.setEnabled(key in present)
            if key not in present:
                edit.setPlaceholderText("traced")
            elif edit.placeholderText() == "traced":
                edit.setPlaceholderText("default")
        rows = [f"<span style='color:{LINE_COLOURS.get(x.key, '#999')}'>■</span> {x.label}: "
                f"<b>{format_bytes(x.bytes)}</b> <i style='color:#666'>({x.source})</i>" for x in fit.lines]
        rows.append(f"total <b>{format_bytes(fit.total_bytes)}</b> of {format_bytes(fit.capacity_bytes)}")
        if any(x.key == "reserve" and x.source == "simulated" for x in fit.lines):  # issue 7
            rows.append(f"<i style='color:#666'>{SIMULATED_TOTAL}</i>")
        rows += [f"<span style='color:#8a5a00'>{w}</span>" for w in fit.warnings]
        self.legend.setText("<br>".join(rows))

    def set_largest(self, largest) -> None:
        """Show the largest batch the planner found (None clears it)."""
        self._largest = largest
        self.apply_button.setEnabled(largest is not None and largest.parameter in ("batch", "micro_batch"))
        if largest is None:
            self.largest.setText("Largest batch: —")
            self.largest_detail.setText("")
            return
        steps = (f" (micro-batch {largest.value} × {largest.accumulation_steps} steps)"
                 if largest.parameter == "micro_batch" else "")  # accumulating: the steps held (engine/planner.py)
        self.largest.setText(f"Largest batch: {largest.batch}{steps}")
        detail = f"needs {format_bytes(largest.peak_bytes)}"
        if largest.next_peak_bytes is not None:
            detail += f"; {largest.value_text(largest.value + 1)} needs {format_bytes(largest.next_peak_bytes)}"
        self.largest_detail.setText(f"{detail} ({largest.traces} traces, {largest.seconds:.1f} s)")

    def set_largest_busy(self, message: str = "searching…") -> None:
        self._largest = None
        self.apply_button.setEnabled(False)
        self.largest.setText("Largest batch: …")
        self.largest_detail.setText(message)

    def set_largest_error(self, message: str) -> None:
        self._largest = None
        self.apply_button.setEnabled(False)
        self.largest.setText("Largest batch: none")
        self.largest_detail.setText(message)

    def set_measurement(self, measurement) -> None:
        self.measure_result.setText("\n".join(measurement.explanation))

    def largest_result(self):
        """The `Largest` on show (None while searching, after an error or before any)."""
        return self._largest

    def overrides(self) -> dict[str, int]:
        return dict(self._overrides)

    # ---- Private API
    def _header(self, text: str, note: bool = False) -> None:
        item = QListWidgetItem(text)
        item.setFlags(Qt.NoItemFlags)
        font = item.font()
        font.setBold(not note)
        font.setItalic(note)
        item.setFont(font)
        self.devices.addItem(item)

    def _entry(self, text: str, device) -> None:
        item = QListWidgetItem(text)
        item.setData(Qt.UserRole, device)
        if device.source:
            item.setToolTip(f"capacity: {device.capacity_bytes:,} bytes — {device.source}")
        self.devices.addItem(item)

    def _choose(self, device) -> None:
        self._device = device
        self.error.hide()
        self.sig_capacity_changed.emit(device.capacity_bytes, device.name)
        self.sig_device_changed.emit(device)

    def _on_item_changed(self, item, _previous) -> None:
        device = item.data(Qt.UserRole) if item is not None else None
        if device is not None:
            self._choose(device)

    def _on_search(self, text: str) -> None:
        words = text.lower().split()
        for i in range(self.devices.count()):
            item = self.devices.item(i)
            device = item.data(Qt.UserRole)
            if device is None or device.kind != "catalog":
                continue
            haystack = " ".join((device.name, *device.aliases)).lower()
            item.setHidden(not all(w in haystack for w in words))

    def _on_custom(self) -> None:
        from engine.devices import custom_device
        from engine.errors import MemLensError
        from engine.units import parse_bytes

        try:
            capacity = parse_bytes(self.custom.text())
        except MemLensError as e:
            self._show_error(str(e))
            return
        self.devices.blockSignals(True)
        self.devices.setCurrentItem(None)
        self.devices.blockSignals(False)
        self._choose(custom_device(capacity))

    def _on_overrides(self) -> None:
        from engine.errors import MemLensError
        from engine.units import parse_bytes

        values = {}
        for key, edit in self.override_edits.items():
            text = edit.text().strip()
            if not text:
                continue
            try:
                values[key] = 0 if text == "0" else parse_bytes(text)
            except MemLensError as e:
                self._show_error(f"{dict(EDITABLE_LINES)[key]}: {e}")
                return
        self.error.hide()
        if values != self._overrides:
            self._overrides = values
            self.sig_overrides_changed.emit(dict(values))

    def _on_apply(self) -> None:
        if self._largest is not None:
            self.sig_apply_batch.emit(self._largest.batch)

    def _show_error(self, message: str) -> None:
        self.error.setText(message)
        self.error.show()
