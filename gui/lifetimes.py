"""Gantt view of tensor lifetimes: one bar per saved activation, from its allocation to its free.

Rows follow layer execution order; x is the same step progress as the timeline's, over exactly
the same range (points 0 … the last one; tensors that outlive the step run to the end). Bars are
drawn with a handful of `pg.BarGraphItem`s (one per shade), so thousands of tensors stay cheap;
darker and thicker bars are bigger tensors. `prepare(analysis)` builds every array and row in the
worker thread (it used to freeze the GUI for 1,000+ rows); the view only assigns them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontMetricsF

from engine.units import format_size

from .style import DEFAULT_DISPLAY, TEXT_PX, Display
from .timeline import Landmarks, ProgressAxis, plot_fonts, progress_landmarks, style_axes

# Shades from small to large tensors (light to dark); one BarGraphItem per shade. Blues and
# oranges echo no category colour exactly and stay clear of the magenta highlight.
_SHADES = {
    "activations": ("#C6DBEF", "#9ECAE1", "#6BAED6", "#3182BD", "#08519C"),
    "temporaries": ("#FDD0A2", "#FDAE6B", "#FD8D3C", "#E6550D", "#A63603"),
}
RECOMPUTED_INK = "#E6550D"  # recomputed activations (checkpointing): hatch and outline
_BAR_MIN_H, _BAR_MAX_H = 0.25, 0.85
_AXIS_NAME_CHARS = 26
AXIS_LABEL = "layer"


def _axis_label(name: str) -> str:
    """Row label: the full layer name, or its last dotted components when it is long."""
    if len(name) <= _AXIS_NAME_CHARS:
        return name
    parts = name.split(".")
    tail = parts.pop()
    while parts and len(parts[-1]) + 1 + len(tail) <= _AXIS_NAME_CHARS - 2:
        tail = parts.pop() + "." + tail
    return "…." + tail if len(tail) < _AXIS_NAME_CHARS else "…" + tail[-(_AXIS_NAME_CHARS - 1):]


# ---- Qt-free preparation (worker thread)
@dataclass(frozen=True, eq=False)
class LifetimeRows:
    """Everything the Gantt draws, as arrays: one entry per bar, one name per row."""

    category: str  # 'activations', or 'temporaries' when none are saved (inference)
    row_names: tuple
    row_is_layer: np.ndarray  # bool per row: a layer (clickable) or a parent / the loss
    x0: np.ndarray
    x1: np.ndarray  # clipped to the last timeline point
    rows: np.ndarray
    heights: np.ndarray
    shades: np.ndarray  # shade index per bar, 0 (small) .. len(shades)-1
    nbytes: np.ndarray
    alloc_phase: tuple
    recomputed: np.ndarray  # bool per bar: made by a checkpointed block's forward run again in backward
    longest: int  # index of the longest-lived bar (-1: none)
    last_point: int
    phase_spans: tuple
    landmarks: Landmarks
    mode: str


def _row_order(analysis, modules: set[str]) -> list[str]:
    """Layers in execution order, parent modules after their last child, anything else (the
    loss) last. Linear in layers × depth (a search per module was quadratic)."""
    index: dict[str, float] = {}
    last_child: dict[str, int] = {}
    for layer in analysis.layers:
        index.setdefault(layer.name, layer.index)
        index.setdefault(layer.name.split("#", 1)[0], layer.index)
        parts = layer.name.split(".")
        for k in range(1, len(parts)):
            prefix = ".".join(parts[:k])
            last_child[prefix] = max(last_child.get(prefix, -1), layer.index)
    n = len(analysis.layers)
    keys = {}
    for extra, module in enumerate(sorted(modules, key=lambda m: (m in index or m in last_child, m))):
        if module in index:
            keys[module] = (0, float(index[module]))
        elif module and module in last_child:
            keys[module] = (0, last_child[module] + 0.5)
        else:
            keys[module] = (1, float(n + extra))
    return sorted(modules, key=lambda m: keys[m])


def prepare(analysis) -> LifetimeRows:
    """Qt-free: rows, bar arrays and shades for `analysis` (safe in the worker thread)."""
    lifetimes = [lt for lt in analysis.lifetimes if lt.category == "activations"]
    category = "activations"
    if not lifetimes:
        lifetimes = [lt for lt in analysis.lifetimes if lt.category == "temporaries"]
        category = "temporaries"
    last = max(len(analysis.timeline) - 1, 1)
    names = _row_order(analysis, {lt.module for lt in lifetimes})
    row_of = {m: i for i, m in enumerate(names)}
    count = len(lifetimes)
    x0 = np.fromiter((lt.alloc_point for lt in lifetimes), dtype=np.float64, count=count)
    x1 = np.minimum(np.fromiter((lt.free_point for lt in lifetimes), dtype=np.float64, count=count), last)
    nbytes = np.fromiter((lt.nbytes for lt in lifetimes), dtype=np.float64, count=count)
    rows = np.fromiter((row_of[lt.module] for lt in lifetimes), dtype=np.float64, count=count)
    logs = np.log10(np.maximum(nbytes, 1.0))
    lo, hi = (float(logs.min()), float(logs.max())) if count else (0.0, 0.0)
    frac = (logs - lo) / (hi - lo) if hi > lo else np.ones_like(logs)
    layer_names = {layer.name for layer in analysis.layers}
    return LifetimeRows(
        category=category, row_names=tuple(names),
        row_is_layer=np.array([m in layer_names for m in names], dtype=bool),
        x0=x0, x1=x1, rows=rows, heights=_BAR_MIN_H + frac * (_BAR_MAX_H - _BAR_MIN_H),
        shades=np.minimum((frac * len(_SHADES[category])).astype(int), len(_SHADES[category]) - 1),
        nbytes=nbytes, alloc_phase=tuple(lt.alloc_phase for lt in lifetimes),
        recomputed=np.fromiter((lt.recomputed for lt in lifetimes), dtype=bool, count=count),
        longest=int(np.argmax(x1 - x0)) if count else -1, last_point=last,
        phase_spans=tuple(analysis.timeline.phase_spans), landmarks=progress_landmarks(analysis),
        mode=analysis.request.mode)


# ---- The view
class _RowAxis(pg.AxisItem):
    """Left axis naming rows by their layer; when rows are denser than the text, it labels
    every 2nd, 5th, 10th… row so labels never overlap."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.row_names: tuple = ()

    def row_step(self, rows_in_view: float, size_px: float) -> int:
        """Label every n-th row: the smallest of 1, 2, 5, 10, 20, 50… that leaves a line of text per label."""
        font = self.style.get("tickFont") or self.font()
        line_px = QFontMetricsF(font).height() + 2
        px_per_row = size_px / max(rows_in_view, 1e-9)
        step = 1
        while step * px_per_row < line_px:
            step = step * 5 // 2 if str(step)[0] == "2" else step * 2
        return step

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 (pyqtgraph name)
        if not self.row_names:
            return []
        minVal, maxVal = sorted((minVal, maxVal))  # the y axis is inverted: first layer on top
        step = self.row_step(maxVal - minVal, size)
        first = max(0, int(np.ceil(minVal / step)) * step)
        last = min(len(self.row_names) - 1, int(np.floor(maxVal)))
        return [(float(step), list(range(first, last + 1, step)))]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        names = self.row_names
        return [_axis_label(names[int(round(v))]) if 0 <= int(round(v)) < len(names) else "" for v in values]


class LifetimesWidget(pg.PlotWidget):
    """Activation lifetimes as horizontal bars; click a bar to select its layer."""

    sig_layer_selected = Signal(str)
    """The user clicked one of a layer's bars (its name)."""

    def __init__(self, parent=None):
        self._row_axis = _RowAxis("left")
        self._progress_axis = ProgressAxis("bottom")
        super().__init__(parent, axisItems={"left": self._row_axis, "bottom": self._progress_axis})
        self._plot = self.getPlotItem()
        self._vb = self._plot.getViewBox()
        self._vb.invertY(True)  # first layer at the top
        self._plot.setLabel("left", AXIS_LABEL)  # short: a 1280×720 window gives this plot ~50 px
        self._row_axis.setToolTip("Rows: layers in execution order, the first on top")
        self._plot.setMenuEnabled(False)
        self._plot.hideButtons()
        self._bar_items: list[pg.BarGraphItem] = []
        self._highlight = pg.BarGraphItem(x0=[], x1=[], y=[], height=[])
        self._highlight.setZValue(20)
        self._preview = pg.BarGraphItem(x0=[], x1=[], y=[], height=[])
        self._preview.setZValue(19)
        # Recomputed activations (checkpointing) keep their shade and gain a hatch and an outline.
        self._recomputed = pg.BarGraphItem(x0=[], x1=[], y=[], height=[])
        self._recomputed.setZValue(15)
        self._decorations: list = []
        self._data: LifetimeRows | None = None
        self._row_of: dict[str, int] = {}
        self._selected: str | None = None
        self._selection = None
        self._display = DEFAULT_DISPLAY
        self.scene().sigMouseClicked.connect(self._on_scene_clicked)
        self._vb.sigResized.connect(self._fit_axis_label)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.apply_display(DEFAULT_DISPLAY)

    # ---- Public API
    @property
    def category(self) -> str:
        """Which lifetimes are shown: 'activations', or 'temporaries' when there are none."""
        return self._data.category if self._data else "activations"

    def bind_selection(self, selection) -> None:
        """Mark the selected layer's bars strongly, the previewed layer's lightly; clicks select."""
        self._selection = selection
        selection.sig_selected.connect(self.select_layer)
        selection.sig_previewed.connect(self.preview_layer)
        self.sig_layer_selected.connect(selection.select)

    def bar_count(self) -> int:
        """How many lifetime bars are drawn."""
        return 0 if self._data is None else int(self._data.x0.shape[0])

    def highlighted_bar_count(self) -> int:
        """How many bars the current selection marks."""
        return int(len(self._highlight.opts["x0"]))

    def previewed_bar_count(self) -> int:
        return int(len(self._preview.opts["x0"]))

    def recomputed_bar_count(self) -> int:
        """How many bars are marked as recomputed (checkpointing)."""
        return int(len(self._recomputed.opts["x0"]))

    def row_names(self) -> list[str]:
        """Module name of each row, top to bottom."""
        return list(self._data.row_names) if self._data else []

    def set_analysis(self, analysis, prepared: LifetimeRows | None = None) -> None:
        """Show `analysis`'s lifetimes; `prepared` (from `prepare`) leaves only item updates here."""
        self._data = prepared if prepared is not None else prepare(analysis)
        self._row_of = {m: i for i, m in enumerate(self._data.row_names)}
        self._selected = None
        self._build()
        if self._selection is not None:
            self.select_layer(self._selection.selected)

    def apply_display(self, display: Display) -> None:
        """Theme colours and font sizes from `display`; redraws."""
        self._display = display
        theme = display.colours
        self.setBackground(theme.background)
        self._fonts = plot_fonts(display)
        style_axes(self._plot, theme, self._fonts)
        self._plot.showGrid(x=True, y=False, alpha=theme.grid_alpha * 0.6)
        self._highlight.setOpts(brush=theme.selected, pen=pg.mkPen(theme.text, width=1))
        self._preview.setOpts(brush=pg.mkBrush(*theme.previewed_fill[:3], 150), pen=pg.mkPen(theme.previewed))
        # An orange hatch over the bar's own shade, and an outline: no activation shade is orange.
        self._recomputed.setOpts(brush=pg.mkBrush(RECOMPUTED_INK, style=Qt.BrushStyle.BDiagPattern),
                                 pen=pg.mkPen(RECOMPUTED_INK, width=1.5))
        self._fit_axis_label()
        if self._data is not None:
            self._build()

    def font_pixel_sizes(self) -> list[float]:
        """Pixel sizes of every text this plot draws, smallest first."""
        return sorted({float(f.pixelSize()) for f in self._fonts.values()})

    def select_layer(self, name: str) -> None:
        """Mark every bar of layer `name` (no signal) and scroll its row into view; '' or an
        unknown name clears the mark."""
        self._selected = name or None
        pick = self._bars_of(name)
        self._set_bars(self._highlight, pick)
        if pick.size:
            row = float(self._data.rows[pick[0]])
            (_, _), (ylo, yhi) = self._vb.viewRange()
            if not ylo <= row <= yhi:  # scroll the row into view, keeping the zoom
                half = (yhi - ylo) / 2
                self._vb.setYRange(row - half, row + half, padding=0)

    def preview_layer(self, name: str) -> None:
        """Lightly mark layer `name`'s bars; never scrolls."""
        self._set_bars(self._preview, self._bars_of(name))

    def bar_at(self, x: float, y: float) -> int | None:
        """Index of the bar covering data point (x, y), or None."""
        if not self.bar_count():
            return None
        d = self._data
        row = int(round(y))
        if not 0 <= row < len(d.row_names):
            return None
        hit = np.flatnonzero((d.rows == row) & (d.x0 <= x) & (x <= d.x1) & (np.abs(d.rows - y) <= d.heights / 2 + 0.1))
        return int(hit[0]) if hit.size else None

    def layer_at(self, x: float, y: float) -> str | None:
        """Layer whose bar covers data point (x, y), or None (parents and the loss are no layer)."""
        bar = self.bar_at(x, y)
        if bar is None:
            return None
        row = int(self._data.rows[bar])
        return self._data.row_names[row] if self._data.row_is_layer[row] else None

    def bar_tooltip(self, bar: int) -> str:
        """Module, size, and from when to when the tensor lives."""
        d = self._data
        size = format_size(int(d.nbytes[bar]), self._display.decimal_units)
        end = "the end of the step" if d.x1[bar] >= d.last_point else f"event {int(d.x1[bar])} ({self._phase_at(d.x1[bar])})"
        lines = [f"{d.row_names[int(d.rows[bar])] or 'model'}: {size} ({d.category})",
                 f"allocated: event {int(d.x0[bar])} ({d.alloc_phase[bar]})",
                 f"freed: {end}"]
        if d.recomputed[bar]:
            lines.append("recomputed: a checkpointed block's forward ran again in the backward")
        return "\n".join(lines)

    # ---- Private API
    def _bars_of(self, name: str) -> np.ndarray:
        row = self._row_of.get(name) if name else None
        if row is None or self._data is None:
            return np.zeros(0, dtype=int)
        return np.flatnonzero(self._data.rows == row)

    def _set_bars(self, item: pg.BarGraphItem, pick: np.ndarray) -> None:
        d = self._data
        if pick.size == 0 or d is None:
            item.setOpts(x0=np.zeros(0), x1=np.zeros(0), y=np.zeros(0), height=np.zeros(0))
            return
        item.setOpts(x0=d.x0[pick], x1=d.x1[pick], y=d.rows[pick], height=np.maximum(d.heights[pick], 0.5))

    def _build(self) -> None:
        d, theme = self._data, self._display.colours
        for item in self._bar_items + self._decorations + [self._highlight, self._preview, self._recomputed]:
            if item.scene() is not None:
                self._plot.removeItem(item)
        self._bar_items, self._decorations = [], []
        self._row_axis.row_names = d.row_names
        self._fit_row_axis()
        self._progress_axis.set_progress(d.phase_spans, d.landmarks)
        for phase, start, end in d.phase_spans:
            if end > start:
                band = pg.LinearRegionItem((start, end), movable=False, brush=pg.mkBrush(*theme.phases[phase]),
                                           pen=pg.mkPen(None))
                band.setZValue(-10)
                self._plot.addItem(band)
                self._decorations.append(band)
        self._set_bars(self._highlight, np.zeros(0, dtype=int))
        self._set_bars(self._preview, np.zeros(0, dtype=int))
        self._set_bars(self._recomputed, np.zeros(0, dtype=int))
        px = f"{self._display.px(TEXT_PX['normal'])}px"
        if not self.bar_count():
            self._plot.setTitle("No tensor lifetimes to show", color=theme.text, size=px)
            self._vb.setRange(xRange=(0, d.last_point), padding=0)
            return
        shades = _SHADES[d.category]
        for lv in range(len(shades) - 1, -1, -1):  # big, dark bars first; small ones on top
            pick = np.flatnonzero(d.shades == lv)
            if not pick.size:
                continue
            item = pg.BarGraphItem(x0=d.x0[pick], x1=d.x1[pick], y=d.rows[pick], height=d.heights[pick],
                                   brush=shades[lv], pen=pg.mkPen(None))
            item.setZValue(10 - lv)
            self._plot.addItem(item)
            self._bar_items.append(item)
        self._set_bars(self._recomputed, np.flatnonzero(d.recomputed))
        self._plot.addItem(self._recomputed)
        self._plot.addItem(self._highlight)
        self._plot.addItem(self._preview)
        self._plot.setTitle(self._title(), color=theme.text, size=px)
        n_rows = len(d.row_names)
        self._vb.setLimits(xMin=0, xMax=d.last_point, yMin=-1, yMax=n_rows, minYRange=2, minXRange=min(5, d.last_point))
        self._vb.setRange(xRange=(0, d.last_point), yRange=(-0.6, n_rows - 0.4), padding=0)

    def _fit_row_axis(self) -> None:
        """Size the left axis for its longest row label now, not after the next repaint."""
        font = self._row_axis.style.get("tickFont") or self._row_axis.font()
        fm = QFontMetricsF(font)
        width = max((fm.horizontalAdvance(_axis_label(m)) for m in self._data.row_names), default=0.0)
        self._row_axis.setStyle(autoExpandTextSpace=False, tickTextWidth=int(width) + 6)
        self._row_axis.picture = None
        self._row_axis.update()
        self._plot.layout.activate()

    def _fit_axis_label(self, *_) -> None:
        """Hide the axis label in a plot too short for it (the row names say what rows are)."""
        axis = self._row_axis
        fits = axis.label.boundingRect().width() <= self._vb.height()
        if fits != axis.label.isVisible():
            axis.showLabel(fits)

    def _title(self) -> str:
        """'Activation lifetimes — N tensors, longest held from forward to backward (where, size)'."""
        d = self._data
        i = d.longest
        start, end = d.alloc_phase[i], self._phase_at(d.x1[i])
        held = f"within {start}" if start == end else f"from {start} to {end}"
        detail = f"({d.row_names[int(d.rows[i])] or 'model'}, {format_size(int(d.nbytes[i]), self._display.decimal_units)})"
        head = "Activation lifetimes" if d.category == "activations" else \
            f"Temporary lifetimes (no activations saved in {d.mode})"
        recomputed = int(d.recomputed.sum())
        tail = f" · {recomputed} recomputed in backward (orange)" if recomputed else ""
        return f"{head} — {len(d.x0)} tensors, longest held {held} {detail}{tail}"

    def _phase_at(self, point: float) -> str:
        """Phase of the event just before `point` ('end of step' if the tensor outlives it)."""
        if point >= self._data.last_point:
            return "end of step"
        for phase, start, end in self._data.phase_spans:
            if start < point <= end:
                return phase
        return "end of step"

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

    def _on_mouse_moved(self, pos) -> None:
        """The bar under the mouse becomes the plot's tooltip."""
        bar = None
        if self.bar_count() and self._vb.sceneBoundingRect().contains(pos):
            point = self._vb.mapSceneToView(pos)
            bar = self.bar_at(point.x(), point.y())
        self.setToolTip("" if bar is None else self.bar_tooltip(bar))
