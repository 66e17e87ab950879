"""The memory timeline: stacked areas per category over event index, phases, peak, cursor.

Each band is a FillBetweenItem between two PlotCurveItems of cumulative sums (STYLE.md §6).
pyqtgraph's own auto-downsampling does not reach the fills: with a million events they were
built from every point (two minutes to draw, seconds per repaint). So the curves only ever hold
the visible range thinned by the engine's peak-preserving `Timeline.peak_points` (about two
points per pixel), recomputed whenever the x range changes: peaks stay visible at any zoom.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal

from engine.categories import CATEGORIES  # plain constants: no torch work
from engine.units import format_bytes

from .style import CATEGORY_COLOURS, CATEGORY_LABELS, PHASE_COLOURS

MIB = float(2**20)


class MemoryTimelineWidget(pg.PlotWidget):
    """Stacked live bytes per category; a movable cursor reports what is live and which layer runs."""

    sig_cursor_moved = Signal(int, str)
    """Timeline point under the cursor and a text describing what is live there."""
    sig_layer_at_cursor = Signal(str)
    """The layer executing at the cursor (empty when none)."""

    def __init__(self, parent=None):
        super().__init__(parent, background="w")
        self.analysis = None
        self.setLabel("bottom", "event (allocation or free)")
        self.setLabel("left", "live memory", units="")
        self.showGrid(x=False, y=True, alpha=0.25)
        self.getAxis("left").setLabel("live memory (MiB)")
        self.legend = self.addLegend(offset=(10, 10), labelTextSize="9pt", labelTextColor="#222",
                                     brush=pg.mkBrush(255, 255, 255, 215), pen=pg.mkPen("#ccc"))
        self.cursor = pg.InfiniteLine(angle=90, movable=True, pen=pg.mkPen("#333", width=1, style=pg.QtCore.Qt.DashLine))
        self.cursor.sigPositionChanged.connect(self._on_cursor_moved)
        self.getViewBox().sigXRangeChanged.connect(lambda _vb, rng: self._refresh_curves(rng))
        self.cursor_label = pg.TextItem(anchor=(0, 1), color="#222", fill=pg.mkBrush(255, 255, 255, 225),
                                        border=pg.mkPen("#bbb"))
        self.peak_label = pg.TextItem(anchor=(0.5, 1.2), color="#b00")
        self.span = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(255, 215, 0, 70), pen=pg.mkPen(None))
        self.capacity_line = None
        self._stacked = np.zeros((0, 0))
        self._shown_range = None
        self._capacity: tuple[int | None, str] = (None, "")  # the device panel sets it
        self.curves: dict[str, pg.PlotCurveItem] = {}

    # ---- Public API
    def set_analysis(self, analysis) -> None:
        self.analysis = analysis
        self.clear()
        self.capacity_line = None  # cleared with every other item
        self.legend.clear()
        t = analysis.timeline
        n = len(t)
        for phase, start, end in t.phase_spans:
            region = pg.LinearRegionItem((start, end), movable=False, brush=pg.mkBrush(*PHASE_COLOURS[phase]),
                                         pen=pg.mkPen(None))
            region.setZValue(-20)
            self.addItem(region)
            label = pg.TextItem(phase, color="#555", anchor=(0.5, 0))
            self.addItem(label)
            label.setPos((start + end) / 2, float(t.total.max()) / MIB * 1.08)
        self._stacked = np.cumsum([t.curves[cat] for cat in CATEGORIES], axis=0) / MIB  # (categories, points)
        self._base = pg.PlotCurveItem(pen=pg.mkPen(None))
        self.addItem(self._base)
        lower_curve = self._base
        self.curves = {}
        for cat in CATEGORIES:
            item = pg.PlotCurveItem(pen=pg.mkPen(CATEGORY_COLOURS[cat], width=1))
            self.addItem(item)
            fill = pg.FillBetweenItem(lower_curve, item, brush=pg.mkBrush(CATEGORY_COLOURS[cat]))
            fill.setZValue(-10)
            self.addItem(fill)
            self.legend.addItem(item, CATEGORY_LABELS[cat])
            self.curves[cat] = item
            lower_curve = item
        self._shown_range = None
        self._refresh_curves((0, n))
        peak = analysis.peak
        self.addItem(pg.ScatterPlotItem([peak.point], [peak.total_bytes / MIB], size=10,
                                        brush=pg.mkBrush("#b00"), pen=pg.mkPen("w")))
        self.peak_label.setText(f"peak {format_bytes(peak.total_bytes)} ({peak.phase}, {peak.module})")
        self.peak_label.setPos(peak.point, peak.total_bytes / MIB)
        self.addItem(self.peak_label)
        self.span.setVisible(False)
        self.addItem(self.span)
        self.addItem(self.cursor)
        self.addItem(self.cursor_label, ignoreBounds=True)
        self._draw_capacity()
        self.setYRange(0, float(t.total.max()) / MIB * 1.15)
        self.setXRange(0, n - 1, padding=0.01)
        self.cursor.setBounds((0, n - 1))
        self.cursor.setValue(peak.point)
        self._on_cursor_moved()

    def set_capacity(self, capacity_bytes: int | None, label: str = "") -> None:
        """Draw the chosen device's capacity as a horizontal line (None removes it); it stays
        across analyses until changed."""
        self._capacity = (capacity_bytes, label)
        self._draw_capacity()

    def _draw_capacity(self) -> None:
        capacity_bytes, label = self._capacity
        if self.capacity_line is not None:
            self.removeItem(self.capacity_line)
            self.capacity_line = None
        if capacity_bytes:
            self.capacity_line = pg.InfiniteLine(
                pos=capacity_bytes / MIB, angle=0, movable=False, pen=pg.mkPen("#c00", width=2, style=pg.QtCore.Qt.DashLine),
                label=f"{label} {format_bytes(capacity_bytes)}".strip(), labelOpts={"color": "#c00", "position": 0.95})
            self.addItem(self.capacity_line)

    def highlight_span(self, start: int, end: int) -> None:
        """Shade a layer's forward span (timeline points)."""
        self.span.setRegion((start, max(end, start + 1)))
        self.span.setVisible(True)

    def set_cursor(self, point: int) -> None:
        self.cursor.setValue(point)

    def describe(self, point: int) -> str:
        """What is live at `point`, per category, and which layer runs there."""
        a = self.analysis
        live = a.timeline.live_at(point)
        lines = [f"event {point}: {format_bytes(int(a.timeline.total[point]))} live"]
        layer = self.layer_at(point)
        if layer:
            lines.append(f"running: {layer}")
        lines += [f"  {CATEGORY_LABELS[c]}: {format_bytes(live[c])}" for c in CATEGORIES if live[c]]
        return "\n".join(lines)

    def layer_at(self, point: int) -> str:
        a = self.analysis
        if point <= 0 or point > len(a.events):
            return ""
        return a.events.modules[a.events.module[point - 1]]

    def shown_points(self) -> int:
        """How many points the curves hold now (for tests and the benchmark)."""
        return len(self.curves[CATEGORIES[0]].xData) if self.curves else 0

    # ---- Private API
    def _refresh_curves(self, x_range) -> None:
        """Give the curves the visible range, thinned to ~2 points per pixel, peaks kept."""
        if self.analysis is None or not self.curves:
            return
        n = len(self.analysis.timeline)
        lo = max(0, int(np.floor(x_range[0])) - 1)
        hi = min(n, int(np.ceil(x_range[1])) + 2)
        width_px = max(200, int(self.getViewBox().width()) or 1000)
        key = (lo, hi, width_px)
        if key == self._shown_range or hi <= lo:
            return
        self._shown_range = key
        picks = self.analysis.timeline.peak_points(lo, hi, max_points=2 * width_px)
        x = picks.astype(np.float64)
        self._base.setData(x, np.zeros(len(picks)))
        for row, cat in enumerate(CATEGORIES):
            self.curves[cat].setData(x, self._stacked[row, picks])

    def _on_cursor_moved(self, *_):
        if self.analysis is None:
            return
        point = int(round(self.cursor.value()))
        point = max(0, min(point, len(self.analysis.timeline) - 1))
        text = self.describe(point)
        self.cursor_label.setText(text)
        (x0, x1), (y0, y1) = self.viewRange()
        left_half = point < (x0 + x1) / 2
        self.cursor_label.setAnchor((0, 1) if left_half else (1, 1))
        self.cursor_label.setPos(point + (x1 - x0) * (0.01 if left_half else -0.01), y0 + (y1 - y0) * 0.03)
        self.sig_cursor_moved.emit(point, text)
        self.sig_layer_at_cursor.emit(self.layer_at(point))
