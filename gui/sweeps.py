"""What-if plots: the footprint (what the fit check compares with the capacity) against the batch
size, the square input resolution or the sequence length, with the capacity line and the fit
boundary; or, as bars, across configurations (dtype/AMP, optimizer, training vs inference). Points appear as the worker computes them; the sweep can be cancelled.

The widget computes nothing: it asks for a sweep through `sig_sweep_requested` and receives
`engine.planner.PlanPoint`s through `add_point`.
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from engine.units import format_bytes

from .device_panel import STATE_COLOURS

GIB = 2**30
DEFAULT_VALUES = {"batch": "1,2,4,...,512", "resolution": "224,448,...,3584,3840", "seq": "128,256,...,8192"}
AXIS_LABELS = {"batch": "batch size", "resolution": "input resolution (R x R)", "seq": "sequence length"}


class SweepPlotWidget(QWidget):
    """Peak vs a parameter, with the device's capacity and where the curve crosses it."""

    sig_sweep_requested = Signal(str, list)
    """Run a sweep of this parameter ('batch', 'resolution', 'seq') over these values."""
    sig_variants_requested = Signal()
    """Compare configurations (dtype/AMP, optimizer, training vs inference) at the current shapes."""
    sig_cancel_requested = Signal()
    """Stop the running sweep."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.points = []
        self.parameter = "batch"
        self.capacity_bytes: int | None = None
        self.capacity_line = None
        self.boundary = None

        self.choice = QComboBox()
        for key in ("batch", "resolution", "seq"):
            self.choice.addItem(AXIS_LABELS[key], key)
        self.choice.addItem("configurations (dtype, AMP, optimizer, mode)", "variants")
        self.choice.setToolTip("What to vary: batch, square resolution, sequence length, or the configuration")
        self.choice.currentIndexChanged.connect(self._on_choice)
        self.values = QLineEdit(DEFAULT_VALUES["batch"])
        self.values.setToolTip("Values to trace, e.g. 1,2,4,...,512 ('...' continues the doubling or the step)")
        self.run_button = QPushButton("Sweep")
        self.run_button.setToolTip("Trace the step at each value on the chosen device (points appear as computed)")
        self.run_button.clicked.connect(self._on_run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.setToolTip("Stop the sweep; the points computed so far stay")
        self.cancel_button.clicked.connect(self.sig_cancel_requested)
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.plot = pg.PlotWidget(background="w")
        self.plot.setMinimumHeight(40)  # the lower tabs are short until the user drags them taller
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.setLabel("left", "footprint (GiB)")
        self.plot.setLabel("bottom", AXIS_LABELS["batch"])
        self.curve = self.plot.plot([], [], pen=pg.mkPen("#4c78a8", width=2))
        self.scatter = pg.ScatterPlotItem(size=11)
        self.plot.addItem(self.scatter)
        self.variants = []
        self.bars = None

        row = QHBoxLayout()
        row.addWidget(self.choice)
        row.addWidget(self.values, 1)
        row.addWidget(self.run_button)
        row.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.status)

    # ---- Public API
    def start(self, parameter: str, capacity_bytes: int | None, label: str = "") -> None:
        """Clear the plot for a new sweep of `parameter` against `capacity_bytes`."""
        self.parameter = parameter
        self.points = []
        self.variants = []
        self.plot.setLabel("bottom", AXIS_LABELS[parameter])
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("sweeping…")
        self.set_capacity(capacity_bytes, label)
        self._redraw()

    def start_variants(self, capacity_bytes: int | None, label: str = "") -> None:
        """Clear the plot for a comparison of configurations (bars, one per `VariantPoint`)."""
        self.parameter = "variants"
        self.points = []
        self.variants = []
        self.plot.setLabel("bottom", "configuration")
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.status.setText("comparing…")
        self.set_capacity(capacity_bytes, label)
        self._redraw()

    def add_variant(self, point) -> None:
        """One compared configuration (a `VariantPoint`): a bar in its verdict's colour."""
        self.variants.append(point)
        self.status.setText(f"{point.label}: {format_bytes(point.peak_bytes)} ({point.state})")
        self._redraw()

    def add_point(self, point) -> None:
        """One computed point (a `PlanPoint`): drawn at once."""
        self.points.append(point)
        word = AXIS_LABELS[self.parameter]
        if point.parameter == "micro_batch":  # accumulating: the micro-batch is swept (engine/planner.py)
            word = "micro-batch"
            self.plot.setLabel("bottom", f"micro-batch (× {point.accumulation_steps} accumulation steps = batch)")
        self.status.setText(f"{word} {point.value}: {format_bytes(point.peak_bytes)} ({point.state})")
        self._redraw()

    def finish(self, message: str = "") -> None:
        """The sweep ended (done, cancelled or failed: `message` says which)."""
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(message or f"{len(self.points)} points")

    def set_capacity(self, capacity_bytes: int | None, label: str = "") -> None:
        self.capacity_bytes = capacity_bytes
        if self.capacity_line is not None:
            self.plot.removeItem(self.capacity_line)
            self.capacity_line = None
        if capacity_bytes:
            self.capacity_line = pg.InfiniteLine(
                pos=capacity_bytes / GIB, angle=0, movable=False, pen=pg.mkPen("#c00", width=2, style=pg.QtCore.Qt.DashLine),
                label=f"{label} {format_bytes(capacity_bytes)}".strip(), labelOpts={"color": "#c00", "position": 0.8})
            self.plot.addItem(self.capacity_line)
        self._draw_boundary()

    # ---- Private API
    def _redraw(self) -> None:
        if self.bars is not None:
            self.plot.removeItem(self.bars)
            self.bars = None
        axis = self.plot.getAxis("bottom")
        if self.variants:
            self.bars = pg.BarGraphItem(x=list(range(len(self.variants))), height=[v.peak_bytes / GIB for v in self.variants],
                                        width=0.6, brushes=[pg.mkBrush(STATE_COLOURS[v.state]) for v in self.variants])
            self.plot.addItem(self.bars)
            axis.setTicks([[(i, v.label.replace(", ", "\n")) for i, v in enumerate(self.variants)]])
        else:
            axis.setTicks(None)
        ordered = sorted(self.points, key=lambda p: p.value)
        xs = [p.value for p in ordered]
        ys = [p.peak_bytes / GIB for p in ordered]
        self.curve.setData(xs, ys)
        self.scatter.setData(xs, ys, brush=[pg.mkBrush(STATE_COLOURS[p.state]) for p in ordered],
                             pen=pg.mkPen("w"))
        self._draw_boundary()

    def _draw_boundary(self) -> None:
        """A vertical line where the curve crosses the capacity (between the last point that fits
        and the first that does not, by linear interpolation)."""
        if self.boundary is not None:
            self.plot.removeItem(self.boundary)
            self.boundary = None
        if not self.capacity_bytes:
            return
        ordered = sorted(self.points, key=lambda p: p.value)
        for a, b in zip(ordered, ordered[1:]):
            if a.peak_bytes <= self.capacity_bytes < b.peak_bytes:
                x = a.value + (b.value - a.value) * (self.capacity_bytes - a.peak_bytes) / (b.peak_bytes - a.peak_bytes)
                self.boundary = pg.InfiniteLine(
                    pos=x, angle=90, movable=False, pen=pg.mkPen(STATE_COLOURS["does not fit"], width=2),
                    label="fit boundary", labelOpts={"color": STATE_COLOURS["does not fit"], "position": 0.9})
                self.plot.addItem(self.boundary)
                return

    def _on_choice(self, index: int) -> None:
        key = self.choice.itemData(index)
        self.values.setEnabled(key != "variants")
        self.values.setText(DEFAULT_VALUES.get(key, ""))

    def _on_run(self) -> None:
        from engine.errors import MemLensError
        from engine.planner import parse_values

        parameter = self.choice.currentData()
        if parameter == "variants":
            self.sig_variants_requested.emit()
            return
        try:
            name, values = parse_values(f"{parameter}={self.values.text()}")
        except MemLensError as e:
            self.status.setText(str(e))
            return
        self.sig_sweep_requested.emit(name, values)
