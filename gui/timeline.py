"""The memory timeline: stacked areas per category over event index, phases, peak, cursor.

Recipes from STYLE.md §6: cumulative curves as PlotDataItems with peak-mode auto downsampling
and clip-to-view; each band a FillBetweenItem built on the inner `.curve` items so fills stay
right when zooming.
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
        self.cursor_label = pg.TextItem(anchor=(0, 1), color="#222", fill=pg.mkBrush(255, 255, 255, 225),
                                        border=pg.mkPen("#bbb"))
        self.peak_label = pg.TextItem(anchor=(0.5, 1.2), color="#b00")
        self.span = pg.LinearRegionItem(movable=False, brush=pg.mkBrush(255, 215, 0, 70), pen=pg.mkPen(None))
        self.capacity_line = None
        self._capacity: tuple[int | None, str] = (None, "")  # the device panel sets it
        self.curves: dict[str, pg.PlotDataItem] = {}

    # ---- Public API
    def set_analysis(self, analysis) -> None:
        self.analysis = analysis
        self.clear()
        self.capacity_line = None  # cleared with every other item
        self.legend.clear()
        t = analysis.timeline
        n = len(t)
        x = np.arange(n, dtype=np.float64)
        for phase, start, end in t.phase_spans:
            region = pg.LinearRegionItem((start, end), movable=False, brush=pg.mkBrush(*PHASE_COLOURS[phase]),
                                         pen=pg.mkPen(None))
            region.setZValue(-20)
            self.addItem(region)
            label = pg.TextItem(phase, color="#555", anchor=(0.5, 0))
            self.addItem(label)
            label.setPos((start + end) / 2, float(t.total.max()) / MIB * 1.08)
        base = pg.PlotCurveItem(x, np.zeros(n), pen=pg.mkPen(None))
        self.addItem(base)
        lower_curve = base
        running = np.zeros(n, dtype=np.float64)
        self.curves = {}
        for cat in CATEGORIES:
            running = running + t.curves[cat] / MIB
            item = pg.PlotDataItem(x, running.copy(), pen=pg.mkPen(CATEGORY_COLOURS[cat], width=1))
            self.addItem(item)
            # After addItem: clip-to-view needs the item's ViewBox to exist.
            item.setDownsampling(auto=True, method="peak")
            item.setClipToView(True)
            fill = pg.FillBetweenItem(lower_curve, item.curve, brush=pg.mkBrush(CATEGORY_COLOURS[cat]))
            fill.setZValue(-10)
            self.addItem(fill)
            self.legend.addItem(item, CATEGORY_LABELS[cat])
            self.curves[cat] = item
            lower_curve = item.curve
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

    # ---- Private API
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
