"""Gantt view of tensor lifetimes: one bar per saved activation, from its allocation to its free.

Rows follow layer execution order, x is the timeline point (event index). Bars are drawn with a
handful of `pg.BarGraphItem`s (one per shade), so thousands of tensors stay cheap. Darker and
thicker bars are bigger tensors. Everything shown is read from the `Analysis`.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetricsF

from engine.units import format_bytes

# Shades from small to large tensors; one BarGraphItem per shade.
_SHADES = {
    "activations": ("#C6DBEF", "#9ECAE1", "#6BAED6", "#3182BD", "#08519C"),
    "temporaries": ("#FDD0A2", "#FDAE6B", "#FD8D3C", "#E6550D", "#A63603"),
}
_HIGHLIGHT_BRUSH = "#D62728"
_HIGHLIGHT_PEN = "#5A0A0A"
_PHASE_BRUSHES = {"forward": (76, 120, 168, 22), "backward": (228, 87, 86, 22), "optimizer": (84, 162, 75, 22)}
_BAR_MIN_H, _BAR_MAX_H = 0.25, 0.85
_AXIS_NAME_CHARS = 26


def _axis_label(name: str) -> str:
    """Row label: the full layer name, or its last dotted components when it is long."""
    if len(name) <= _AXIS_NAME_CHARS:
        return name
    parts = name.split(".")
    tail = parts.pop()
    while parts and len(parts[-1]) + 1 + len(tail) <= _AXIS_NAME_CHARS - 2:
        tail = parts.pop() + "." + tail
    return "…." + tail if len(tail) < _AXIS_NAME_CHARS else "…" + tail[-(_AXIS_NAME_CHARS - 1):]


class _RowAxis(pg.AxisItem):
    """Left axis that labels integer rows with their layer names."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.row_names: list[str] = []

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 (pyqtgraph name)
        levels = super().tickValues(minVal, maxVal, size)
        out = []
        for spacing, values in levels:
            if spacing < 1:
                continue
            out.append((spacing, [v for v in values if float(v).is_integer()]))
        if not out:  # zoomed in past one row: label every row in view
            lo, hi = int(np.ceil(minVal)), int(np.floor(maxVal))
            out = [(1.0, list(range(lo, hi + 1)))]
        return out

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        names = self.row_names
        out = []
        for v in values:
            i = int(round(v))
            out.append(_axis_label(names[i]) if 0 <= i < len(names) and abs(v - i) < 1e-6 else "")
        return out


class LifetimesWidget(pg.PlotWidget):
    """Activation lifetimes as horizontal bars; click a bar to select its layer."""

    sig_layer_selected = Signal(str)
    """Emitted with the layer name when the user clicks one of its bars."""

    def __init__(self, parent=None):
        self._row_axis = _RowAxis("left")
        super().__init__(parent, background="w", axisItems={"left": self._row_axis})
        self._plot = self.getPlotItem()
        self._vb = self._plot.getViewBox()
        self._vb.invertY(True)  # first layer at the top
        self._plot.setLabel("bottom", "event")
        self._plot.setLabel("left", "layer (execution order)")
        self._plot.showGrid(x=True, y=False, alpha=0.15)
        self._plot.setMenuEnabled(False)
        self._plot.hideButtons()
        for name in ("left", "bottom"):
            axis = self._plot.getAxis(name)
            axis.setPen(pg.mkPen("#444A52"))
            axis.setTextPen(pg.mkPen("#22262C"))
        self._bar_items: list[pg.BarGraphItem] = []
        self._highlight = pg.BarGraphItem(x0=[], x1=[], y=[], height=[], brush=_HIGHLIGHT_BRUSH,
                                          pen=pg.mkPen(_HIGHLIGHT_PEN, width=1))
        self._highlight.setZValue(20)
        self._decorations: list = []
        self._row_names: list[str] = []
        self._row_is_layer = np.zeros(0, dtype=bool)
        self._x0 = self._x1 = self._rows = self._heights = np.zeros(0)
        self._modules: list[str] = []
        self._category = "activations"
        self._selected: str | None = None
        self.scene().sigMouseClicked.connect(self._on_scene_clicked)

    # --- public API --------------------------------------------------------------------------
    @property
    def category(self) -> str:
        """Which lifetimes are shown: 'activations', or 'temporaries' when there are none."""
        return self._category

    def bar_count(self) -> int:
        """How many lifetime bars are drawn."""
        return int(self._x0.shape[0])

    def highlighted_bar_count(self) -> int:
        """How many bars the current selection marks."""
        return int(len(self._highlight.opts["x0"]))

    def row_names(self) -> list[str]:
        """Module name of each row, top to bottom."""
        return list(self._row_names)

    def set_analysis(self, analysis) -> None:
        """Redraw every bar for `analysis`."""
        self._clear()
        lifetimes = [lt for lt in analysis.lifetimes if lt.category == "activations"]
        self._category = "activations"
        if not lifetimes:
            lifetimes = [lt for lt in analysis.lifetimes if lt.category == "temporaries"]
            self._category = "temporaries"
        self._add_phase_bands(analysis)
        if not lifetimes:
            self._plot.setTitle("No tensor lifetimes to show", color="#22262C")
            return

        rows_of = self._assign_rows(analysis, {lt.module for lt in lifetimes})
        x0 = np.fromiter((lt.alloc_point for lt in lifetimes), dtype=np.float64, count=len(lifetimes))
        x1 = np.fromiter((lt.free_point for lt in lifetimes), dtype=np.float64, count=len(lifetimes))
        nbytes = np.fromiter((lt.nbytes for lt in lifetimes), dtype=np.float64, count=len(lifetimes))
        rows = np.fromiter((rows_of[lt.module] for lt in lifetimes), dtype=np.float64, count=len(lifetimes))
        logs = np.log10(np.maximum(nbytes, 1.0))
        lo, hi = float(logs.min()), float(logs.max())
        frac = (logs - lo) / (hi - lo) if hi > lo else np.ones_like(logs)
        heights = _BAR_MIN_H + frac * (_BAR_MAX_H - _BAR_MIN_H)
        self._x0, self._x1, self._rows, self._heights = x0, x1, rows, heights
        self._modules = [lt.module for lt in lifetimes]

        shades = _SHADES[self._category]
        level = np.minimum((frac * len(shades)).astype(int), len(shades) - 1)
        for lv in range(len(shades) - 1, -1, -1):  # big, dark bars first; small ones on top
            pick = np.flatnonzero(level == lv)
            if pick.size == 0:
                continue
            item = pg.BarGraphItem(x0=x0[pick], x1=x1[pick], y=rows[pick], height=heights[pick],
                                   brush=shades[lv], pen=pg.mkPen(None))
            item.setZValue(10 - lv)
            self._plot.addItem(item)
            self._bar_items.append(item)

        self._plot.addItem(self._highlight)
        for item in self._decorations:
            if isinstance(item, pg.TextItem):
                item.setPos(item.pos().x(), len(self._row_names) - 0.45)
        self._plot.setTitle(self._title(analysis, lifetimes, x1 - x0), color="#22262C", size="11pt")
        n_rows = len(self._row_names)
        self._vb.setLimits(xMin=-1, xMax=len(analysis.timeline) + 1, yMin=-1, yMax=n_rows,
                           minYRange=2, minXRange=5)
        self._vb.setRange(xRange=(0, len(analysis.timeline)), yRange=(-0.6, n_rows - 0.4), padding=0)

    def select_layer(self, name: str) -> None:
        """Mark every bar of layer `name` (no signal); unknown names clear the mark."""
        self._selected = name
        if not self.bar_count() or not name:
            self._set_highlight(np.zeros(0, dtype=int))
            return
        pick = np.flatnonzero(np.fromiter((m == name for m in self._modules), dtype=bool,
                                          count=len(self._modules)))
        self._set_highlight(pick)
        if pick.size:
            row = float(self._rows[pick[0]])
            (_, _), (ylo, yhi) = self._vb.viewRange()
            if not ylo <= row <= yhi:  # scroll the row into view, keeping the zoom
                half = (yhi - ylo) / 2
                self._vb.setYRange(row - half, row + half, padding=0)

    def layer_at(self, x: float, y: float) -> str | None:
        """Layer whose bar covers data point (x, y), or None."""
        if not self.bar_count():
            return None
        row = int(round(y))
        if not 0 <= row < len(self._row_names) or not self._row_is_layer[row]:
            return None
        hit = (self._rows == row) & (self._x0 <= x) & (x <= self._x1) & (np.abs(self._rows - y) <= 0.5)
        return self._row_names[row] if bool(hit.any()) else None

    # --- building ----------------------------------------------------------------------------
    def _clear(self) -> None:
        for item in self._bar_items + self._decorations:
            self._plot.removeItem(item)
        if self._highlight.scene() is not None:
            self._plot.removeItem(self._highlight)
        self._bar_items, self._decorations = [], []
        self._set_highlight(np.zeros(0, dtype=int))
        self._x0 = self._x1 = self._rows = self._heights = np.zeros(0)
        self._modules = []
        self._row_names = []
        self._row_is_layer = np.zeros(0, dtype=bool)
        self._row_axis.row_names = []
        self._selected = None

    def _assign_rows(self, analysis, modules: set[str]) -> dict[str, int]:
        """Row per module: layers in execution order, parent modules after their last child,
        anything else (e.g. the loss) last."""
        index: dict[str, int] = {}
        for layer in analysis.layers:
            index.setdefault(layer.name, layer.index)
            index.setdefault(layer.name.split("#", 1)[0], layer.index)
        n = len(analysis.layers)
        keys = {}
        unknown = 0
        for module in sorted(modules, key=lambda m: (m not in index, m)):
            if module in index:
                keys[module] = (0, float(index[module]))
                continue
            children = [layer.index for layer in analysis.layers if layer.name.startswith(module + ".")]
            if module and children:
                keys[module] = (0, max(children) + 0.5)
            else:
                keys[module] = (1, float(n + unknown))
                unknown += 1
        ordered = sorted(modules, key=lambda m: keys[m])
        self._row_names = ordered
        self._row_is_layer = np.array([analysis.layer_named(m) is not None for m in ordered], dtype=bool)
        self._row_axis.row_names = ordered
        self._fit_row_axis([_axis_label(m) for m in ordered])
        return {m: i for i, m in enumerate(ordered)}

    def _fit_row_axis(self, labels: list[str]) -> None:
        """Size the left axis for its longest row label now, not after the next repaint."""
        font = self._row_axis.style.get("tickFont") or self._row_axis.font()
        width = max((QFontMetricsF(font).horizontalAdvance(t) for t in labels), default=0.0)
        self._row_axis.setStyle(autoExpandTextSpace=False, tickTextWidth=int(width) + 6)
        self._row_axis.picture = None
        self._row_axis.update()
        self._plot.layout.activate()

    def _add_phase_bands(self, analysis) -> None:
        """Faint vertical bands for forward / backward / optimizer, labelled at the top."""
        for phase, start, end in analysis.timeline.phase_spans:
            if end <= start:
                continue
            band = pg.LinearRegionItem((start, end), movable=False,
                                       brush=pg.mkBrush(_PHASE_BRUSHES.get(phase, (128, 128, 128, 20))),
                                       pen=pg.mkPen(None))
            band.setZValue(-10)
            self._plot.addItem(band)
            self._decorations.append(band)
            label = pg.TextItem(phase, color="#3A3F47", anchor=(0, 1), fill=pg.mkBrush(255, 255, 255, 190))
            label.setZValue(30)
            self._plot.addItem(label)
            label.setPos(start, 0)
            self._decorations.append(label)

    def _title(self, analysis, lifetimes, spans: np.ndarray) -> str:
        """'Activation lifetimes — N tensors, longest held from forward to backward'."""
        longest = lifetimes[int(np.argmax(spans))]
        start = longest.alloc_phase
        end = self._phase_at(analysis, longest.free_point)
        held = f"within {start}" if start == end else f"from {start} to {end}"
        detail = f"({longest.module or 'model'}, {format_bytes(longest.nbytes)})"
        if self._category == "activations":
            head = "Activation lifetimes"
        else:
            head = f"Temporary lifetimes (no activations saved in {analysis.request.mode})"
        return f"{head} — {len(lifetimes)} tensors, longest held {held} {detail}"

    @staticmethod
    def _phase_at(analysis, point: int) -> str:
        """Phase of the event just before timeline point `point` ('end of step' if it outlives it)."""
        if point >= len(analysis.timeline):
            return "end of step"
        for phase, start, end in analysis.timeline.phase_spans:
            if start < point <= end:
                return phase
        return "end of step"

    def _set_highlight(self, pick: np.ndarray) -> None:
        if pick.size == 0:
            self._highlight.setOpts(x0=np.zeros(0), x1=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
            return
        self._highlight.setOpts(x0=self._x0[pick], x1=self._x1[pick], y=self._rows[pick],
                                height=np.maximum(self._heights[pick], 0.5))

    # --- events ------------------------------------------------------------------------------
    def _on_scene_clicked(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or not self.bar_count():
            return
        pos = event.scenePos()
        if not self._vb.sceneBoundingRect().contains(pos):
            return
        point = self._vb.mapSceneToView(pos)
        name = self.layer_at(point.x(), point.y())
        if name is not None:
            self.select_layer(name)
            self.sig_layer_selected.emit(name)
