"""The memory timeline: stacked areas per category over the step, phases, peak, cursor.

Each band is a FillBetweenItem between two PlotCurveItems of cumulative sums (STYLE.md §6).
pyqtgraph's own auto-downsampling does not reach the fills: with a million events they were
built from every point (two minutes to draw, seconds per repaint). So the curves only ever hold
the visible range thinned by the engine's peak-preserving `Timeline.peak_points` (about two
points per pixel), recomputed whenever the x range changes: peaks stay visible at any zoom.

The x axis reads as execution progress: phase names and the layer groups as they run (the
event index is in the cursor's label); the y axis uses one unit chosen from the data (MiB, GiB
or TiB; MB/GB/TB with `Display.decimal_units`). The legend sits above the plot, never on data.
`prepare(analysis)` does the heavy, Qt-free part (cumulative sums, landmarks) in the worker.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont, QFontMetricsF

from engine.categories import CATEGORIES  # plain constants: no torch work
from engine.units import choose_unit, format_size

from .diagram_layout import display_names, group_layers, short_path
from .style import CATEGORY_LABELS, DEFAULT_DISPLAY, TEXT_PX, Display

HEADROOM = 1.22  # y range above the visible maximum: room for the peak label
PROGRESS_LABEL = "step progress: phases and layer groups as they run"
RESERVED_LABEL = "reserved (simulated allocator)"


# ---- Qt-free preparation (worker thread)
def _landmark_units(analysis, by_layer: bool) -> tuple[dict[str, int], list[str]]:
    """Module name -> landmark unit, and each unit's label: one unit per framed diagram group
    and per top-level layer (or per layer when `by_layer`), plus the loss and the optimizer."""
    unit_of: dict[str, int] = {}
    labels: list[str] = []
    for group in group_layers(analysis.layers):
        members = [[layer] for layer in group.layers] if by_layer or not group.name else [list(group.layers)]
        names = display_names(group) if by_layer and group.name else {}
        for layers in members:
            full = layers[0].name
            label = (full if len(full) <= 18 else names[full]) if names else short_path(group.name or full)
            for layer in layers:
                unit_of[layer.name] = len(labels)
            labels.append(label)
    for special in ("loss", "optimizer"):
        unit_of[special] = len(labels)
        labels.append(special)
    return unit_of, labels


def _run_starts(analysis, by_layer: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Points where the running unit changes, the unit there, its run length, and the units'
    labels; events of parent modules continue the current unit."""
    events = analysis.events
    unit_of, labels = _landmark_units(analysis, by_layer)
    lut = np.array([unit_of.get(m, unit_of.get(m.split("#", 1)[0], -1)) for m in events.modules], dtype=np.int64)
    units = lut[events.module]
    known = units >= 0
    empty = np.zeros(0, dtype=np.int64)
    if not known.any():
        return empty, empty, empty, labels
    idx = np.where(known, np.arange(len(units)), 0)
    np.maximum.accumulate(idx, out=idx)  # forward-fill
    units = np.where(known[idx], units[idx], -1)
    starts = np.flatnonzero(np.diff(np.concatenate([[-2], units])) != 0)
    runs = np.diff(np.append(starts, len(units)))
    keep = units[starts] >= 0
    return starts[keep] + 1, units[starts[keep]], runs[keep], labels


def plot_fonts(display: Display) -> dict[str, QFont]:
    """The small and normal fonts of the plots, sized for `display` (shared by the lifetimes)."""
    fonts = {}
    for size in ("small", "normal"):
        fonts[size] = QFont()
        fonts[size].setPixelSize(display.px(TEXT_PX[size]))
    return fonts


def style_axes(plot, theme, fonts: dict[str, QFont]) -> None:
    """The left and bottom axes in the theme's axis and text colours and the plot fonts."""
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen(theme.axis))
        axis.setTextPen(pg.mkPen(theme.text))
        axis.setTickFont(fonts["small"])
        axis.label.setFont(fonts["normal"])


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Where layer groups, then layers, start running, in the order the axis should try them."""

    points: np.ndarray  # timeline points, ranked: groups before layers, longer runs first
    label_ids: np.ndarray  # index into labels, per point
    labels: tuple

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def pairs(self) -> list[tuple[int, str]]:
        """(point, label) in ranked order."""
        return [(int(p), self.labels[i]) for p, i in zip(self.points, self.label_ids)]


NO_LANDMARKS = Landmarks(np.zeros(0), np.zeros(0, dtype=np.int64), ())


def progress_landmarks(analysis) -> Landmarks:
    """Group starts (forward, then backward in reverse, then the optimizer), then layer starts;
    longer runs first, since the backward flips between modules every few events. Plain numpy:
    a million-event step has over a hundred thousand of them."""
    if not len(analysis.events):
        return NO_LANDMARKS
    g_points, g_units, g_runs, g_labels = _run_starts(analysis, by_layer=False)
    l_points, l_units, l_runs, l_labels = _run_starts(analysis, by_layer=True)
    fresh = ~np.isin(l_points, g_points)
    points = np.concatenate([g_points, l_points[fresh]])
    label_ids = np.concatenate([g_units, l_units[fresh] + len(g_labels)])
    level = np.concatenate([np.zeros(len(g_points)), np.ones(int(fresh.sum()))])
    order = np.lexsort((-np.concatenate([g_runs, l_runs[fresh]]), level))
    return Landmarks(points[order].astype(np.float64), label_ids[order], tuple(g_labels) + tuple(l_labels))


@dataclass(frozen=True, eq=False)
class TimelineData:
    """The timeline's heavy data, computed once per analysis."""

    stacked: np.ndarray  # (categories, points) cumulative live bytes, CATEGORIES order
    present: tuple  # categories that ever hold bytes (the legend lists only these)
    landmarks: Landmarks
    phase_spans: tuple
    reserved: np.ndarray | None = None  # the simulated allocator's segments per point (CUDA traces)


def prepare(analysis) -> TimelineData:
    """Qt-free: cumulative sums per category and the progress landmarks of `analysis`."""
    t = analysis.timeline
    curves = np.array([t.curves[cat] for cat in CATEGORIES], dtype=np.int64)
    present = tuple(cat for cat, curve in zip(CATEGORIES, curves) if curve.any())
    cuda = getattr(analysis, "cuda", None)
    return TimelineData(stacked=np.cumsum(curves, axis=0), present=present,
                        landmarks=progress_landmarks(analysis), phase_spans=tuple(t.phase_spans),
                        reserved=cuda.simulation.reserved if cuda is not None else None)


# ---- The progress axis (shared with the lifetimes)
class ProgressAxis(pg.AxisItem):
    """Bottom axis over timeline points labelled with phases (▶ forward …) and, between them,
    the layer groups as they run, thinned so labels never overlap."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._phases: tuple = ()
        self._landmarks = NO_LANDMARKS
        self._labels: dict[float, str] = {}
        # tickValues keeps labels apart; let the first and last reach past the axis ends
        self.setStyle(hideOverlappingLabels=60)
        self.setLabel(PROGRESS_LABEL)

    def set_progress(self, phase_spans, landmarks: Landmarks) -> None:
        self._phases = tuple((start, phase) for phase, start, end in phase_spans if end > start)
        self._landmarks = landmarks
        self.picture = None
        self.update()

    def tickValues(self, minVal, maxVal, size):  # noqa: N802 (pyqtgraph name)
        if not self._phases and not len(self._landmarks):
            return super().tickValues(minVal, maxVal, size)
        fm = QFontMetricsF(self.style.get("tickFont") or self.font())
        per_px = (maxVal - minVal) / max(size, 1.0)
        self._labels = {}
        taken: list[tuple[float, float]] = []  # (left, right) in pixels of the phase labels placed

        def span(point, text):
            x = (point - minVal) / per_px
            half = fm.horizontalAdvance(text) / 2 + 6
            return x - half, x + half

        phases = []
        for point, text in self._phases:
            left, right = span(point, f"▶ {text}")
            if -1 <= (left + right) / 2 <= size + 1 and not any(left < r and l < right for l, r in taken):
                taken.append((left, right))
                phases.append(point)
                self._labels[float(point)] = f"▶ {text}"
        # Landmarks in view, in their ranked order; at most a few hundred tried per repaint,
        # whatever the step's size.
        points = self._landmarks.points
        tried = np.flatnonzero((points >= minVal) & (points <= maxVal))[:300]
        marks = []
        for i in tried:
            point, text = float(points[i]), self._landmarks.labels[self._landmarks.label_ids[i]]
            left, right = span(point, text)
            if any(left < r and l < right for l, r in taken):
                continue
            taken.append((left, right))
            marks.append(point)
            self._labels[float(point)] = text
        marks.sort()
        return [(1.0, phases), (1.0, marks)]

    def tickStrings(self, values, scale, spacing):  # noqa: N802
        phase_text = {float(p): f"▶ {t}" for p, t in self._phases}
        return [self._labels.get(float(v), phase_text.get(float(v), "")) for v in values]


def share_x_range(a: pg.PlotWidget, b: pg.PlotWidget) -> None:
    """Make `a` and `b` show exactly one x-range: a change in either is copied to the other
    (pyqtgraph's setXLink aligns by screen position instead, so plots with different axis
    widths showed different ranges)."""
    def follow(src, dst):
        def copy(_vb, rng):
            if list(dst.viewRange()[0]) != list(rng):
                dst.setXRange(*rng, padding=0)
        src.getViewBox().sigXRangeChanged.connect(copy)
    follow(a, b)
    follow(b, a)


class MemoryTimelineWidget(pg.PlotWidget):
    """Stacked live bytes per category; a movable cursor reports what is live and which layer runs."""

    sig_cursor_moved = Signal(int, str)
    """Timeline point under the cursor and a text describing what is live there."""
    sig_layer_at_cursor = Signal(str)
    """The layer executing at the cursor (empty when none)."""

    def __init__(self, parent=None):
        self._axis = ProgressAxis("bottom")
        super().__init__(parent, axisItems={"bottom": self._axis})
        self.analysis = None
        self._data: TimelineData | None = None
        self._display = DEFAULT_DISPLAY
        self._unit = ("MiB", 2**20)
        vb = self.getViewBox()
        vb.setMouseEnabled(x=True, y=False)  # the wheel zooms time; the y axis fits the data
        vb.disableAutoRange()
        vb.sigXRangeChanged.connect(lambda _vb, rng: self._refresh_curves(rng))
        self.scene().sigMouseClicked.connect(self._on_clicked)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.cursor = pg.InfiniteLine(angle=90, movable=True)
        self.cursor.sigPositionChanged.connect(self._on_cursor_moved)
        self.peak_label = pg.TextItem(anchor=(0.5, 1.15))
        self.peak_marker = pg.ScatterPlotItem(size=10)
        self.span = pg.LinearRegionItem(movable=False)
        self.preview_span = pg.LinearRegionItem(movable=False)
        self.capacity_line = None
        self._shown_range = None
        self._capacity: tuple[int | None, str] = (None, "")  # the device panel sets it
        self._selection = None
        self.curves: dict[str, pg.PlotCurveItem] = {}
        self.fills: dict[str, pg.FillBetweenItem] = {}
        self.reserved_curve = None
        self.apply_display(DEFAULT_DISPLAY)

    # ---- Public API
    def bind_selection(self, selection) -> None:
        """Scrubbing previews the running layer; the selected layer's span is shaded."""
        self._selection = selection
        selection.sig_selected.connect(self._on_selected)
        selection.sig_previewed.connect(self._on_previewed)
        self.sig_layer_at_cursor.connect(selection.preview)

    def set_analysis(self, analysis, prepared: TimelineData | None = None) -> None:
        self.analysis = analysis
        self._data = prepared if prepared is not None else prepare(analysis)
        self._build()

    def apply_display(self, display: Display) -> None:
        """Colours, font sizes and the unit family (GB or GiB) from `display`; redraws."""
        self._display = display
        theme = display.colours
        self.setBackground(theme.background)
        self._fonts = plot_fonts(display)
        normal = self._fonts["normal"]
        style_axes(self, theme, self._fonts)
        self.showGrid(x=False, y=True, alpha=theme.grid_alpha)
        self.cursor.setPen(pg.mkPen(theme.cursor, width=1.5 * theme.line_width, style=Qt.PenStyle.DashLine))
        self.peak_label.setColor(theme.peak)
        self.peak_label.setFont(normal)
        self.peak_marker.setBrush(pg.mkBrush(theme.peak))
        self.peak_marker.setPen(pg.mkPen(theme.background))
        self.span.setBrush(pg.mkBrush(*theme.selected_fill))
        self.preview_span.setBrush(pg.mkBrush(*theme.previewed_fill))
        for region in (self.span, self.preview_span):
            for line in region.lines:
                line.setPen(pg.mkPen(None))
        if self.analysis is not None:
            self._build()

    def font_pixel_sizes(self) -> list[float]:
        """Pixel sizes of every text this plot draws, smallest first."""
        return sorted({float(f.pixelSize()) for f in self._fonts.values()})

    def unit(self) -> str:
        """The y axis's unit, e.g. 'GiB'."""
        return self._unit[0]

    def legend_rect(self):
        """Scene rectangle of the legend (above the plot)."""
        return self.getPlotItem().titleLabel.sceneBoundingRect()

    def data_rect(self):
        """Scene rectangle of the plotted data (the view box)."""
        return self.getViewBox().sceneBoundingRect()

    def legend_text(self) -> str:
        return self.getPlotItem().titleLabel.text

    def set_capacity(self, capacity_bytes: int | None, label: str = "") -> None:
        """Draw the chosen device's capacity as a horizontal line (None removes it); it stays
        across analyses until changed."""
        self._capacity = (capacity_bytes, label)
        if self.analysis is not None:
            self._draw_capacity()
            self._set_legend()
            self._shown_range = None  # the y range may now include the line
            self._refresh_curves(self.viewRange()[0])

    def capacity_off_scale(self) -> str:
        """'' when the capacity line is within the plot's range (or none is set); else what the
        legend says of it: a 24 GiB card under a 3 GiB step would squash the data to an eighth."""
        capacity_bytes, label = self._capacity
        if not capacity_bytes or self.analysis is None or capacity_bytes <= 3 * int(self._data.stacked[-1].max()):
            return ""
        used = 100 * int(self._data.stacked[-1].max()) / capacity_bytes
        return f"{label} {self._size(capacity_bytes)}".strip() + f" above the scale (peak uses {used:.0f}%)"

    def highlight_span(self, start: int, end: int) -> None:
        """Shade a layer's forward span (timeline points)."""
        self.span.setRegion((start, max(end, start + 1)))
        self.span.setVisible(True)

    def set_cursor(self, point: int) -> None:
        self.cursor.setValue(point)

    def cursor_point(self) -> int:
        return int(round(self.cursor.value()))

    def cursor_text(self) -> str:
        """The one-line readout under the plot: live bytes, phase, event index, running layer."""
        return self._axis.labelText

    def describe(self, point: int) -> str:
        """What is live at `point`, per category, which layer runs there, and the event index."""
        a = self.analysis
        size = self._size
        live = a.timeline.live_at(point)
        lines = [f"{size(int(a.timeline.total[point]))} live · {self._phase_at(point)} · event {point}"]
        layer = self.layer_at(point)
        if layer:
            lines.append(f"running: {layer}")
        lines += [f"  {CATEGORY_LABELS[c]}: {size(live[c])}" for c in CATEGORIES if live[c]]
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
    def _size(self, nbytes: int) -> str:
        return format_size(nbytes, self._display.decimal_units)

    def _phase_at(self, point: int) -> str:
        for phase, start, end in self.analysis.timeline.phase_spans:
            if start <= point <= end:
                return phase
        return ""

    def _build(self) -> None:
        """Every item, from the prepared data and the display."""
        analysis, data, theme = self.analysis, self._data, self._display.colours
        self.clear()
        self.capacity_line = None
        t = analysis.timeline
        n = len(t)
        top = int(t.total.max()) if n else 0
        if data.reserved is not None:
            top = max(top, int(data.reserved.max()))
        self._unit = choose_unit(max(top, 1), self._display.decimal_units)
        self.getAxis("left").setLabel(f"live memory ({self._unit[0]})")
        self._axis.set_progress(data.phase_spans, data.landmarks)
        for phase, start, end in data.phase_spans:
            region = pg.LinearRegionItem((start, end), movable=False, brush=pg.mkBrush(*theme.phases[phase]),
                                         pen=pg.mkPen(None))
            region.setZValue(-20)
            self.addItem(region)
        self._base = pg.PlotCurveItem(pen=pg.mkPen(None))
        self.addItem(self._base)
        lower = self._base
        self.curves, self.fills = {}, {}
        for cat in CATEGORIES:
            colour = theme.categories[cat]
            item = pg.PlotCurveItem(pen=pg.mkPen(colour, width=theme.line_width))
            self.addItem(item)
            fill = pg.FillBetweenItem(lower, item, brush=pg.mkBrush(colour))
            fill.setZValue(-10)
            self.addItem(fill)
            self.curves[cat], self.fills[cat] = item, fill
            lower = item
        self.reserved_curve = None
        if data.reserved is not None:  # the caching allocator's segments above what tensors hold
            self.reserved_curve = pg.PlotCurveItem(pen=pg.mkPen(theme.text, width=1.5 * theme.line_width,
                                                                style=Qt.PenStyle.DashLine))
            self.addItem(self.reserved_curve)
        self._set_legend()
        peak = analysis.peak
        factor = self._unit[1]
        self.peak_marker.setData([peak.point], [peak.total_bytes / factor])
        self.addItem(self.peak_marker)
        where = ", ".join(x for x in (peak.phase, peak.module) if x)
        self.peak_label.setText(f"peak {self._size(peak.total_bytes)}" + (f" ({where})" if where else ""))
        self.peak_label.setPos(peak.point, peak.total_bytes / factor)
        # Beside the peak (the cursor starts on it), on the side with more room.
        self.peak_label.setAnchor((1.03 if peak.point / max(n - 1, 1) > 0.6 else -0.03, 1.15))
        self.addItem(self.peak_label, ignoreBounds=True)
        for region in (self.span, self.preview_span):
            region.setVisible(False)
            self.addItem(region)
        self.addItem(self.cursor)
        self._draw_capacity()
        last = max(n - 1, 1)
        vb = self.getViewBox()
        vb.setLimits(xMin=0, xMax=last, minXRange=min(5, last))
        self._shown_range = None
        self.setXRange(0, last, padding=0)
        self._refresh_curves((0, last))
        self.cursor.setBounds((0, last))
        self.cursor.setValue(peak.point)
        self._on_cursor_moved()

    def _draw_capacity(self) -> None:
        """The device's capacity as a dash-dotted line, labelled with its size."""
        capacity_bytes, label = self._capacity
        theme = self._display.colours
        if self.capacity_line is not None:
            self.removeItem(self.capacity_line)
            self.capacity_line = None
        if capacity_bytes:
            self.capacity_line = pg.InfiniteLine(
                pos=capacity_bytes / self._unit[1], angle=0, movable=False,
                pen=pg.mkPen(theme.peak, width=2, style=Qt.PenStyle.DashDotLine),
                label=f"{label} {self._size(capacity_bytes)}".strip(),
                labelOpts={"color": theme.peak, "position": 0.95})
            self.addItem(self.capacity_line)

    def _set_legend(self) -> None:
        """Filled swatches, in the stacked areas' colours, as the plot's title row: above the
        data, never over it; wrapped onto two lines when the plot is narrow."""
        theme = self._display.colours
        px = self._display.px(TEXT_PX["normal"])
        entries = [(theme.categories[c], CATEGORY_LABELS[c]) for c in reversed(CATEGORIES) if c in self._data.present]
        chunks = [f"<span style='color:{colour}'>■</span>&nbsp;{label}" for colour, label in entries]
        if self._data.reserved is not None:
            chunks.insert(0, f"<span style='color:{theme.text}'>┄</span>&nbsp;{RESERVED_LABEL}")
            entries = [(theme.text, RESERVED_LABEL), *entries]
        off_scale = self.capacity_off_scale()
        if off_scale:  # the line is above the plotted range: say where it is instead
            chunks.append(f"<span style='color:{theme.peak}'>▲&nbsp;{off_scale}</span>")
            entries = [*entries, (theme.peak, off_scale)]
        fm = QFontMetricsF(self._fonts["normal"])
        width = fm.horizontalAdvance("■ " * len(entries) + "   ".join(label for _, label in entries))
        room = max(self.width() - 120, 200)
        if width > room and len(chunks) > 3:
            half = (len(chunks) + 1) // 2
            html = "&nbsp;&nbsp; ".join(chunks[:half]) + "<br>" + "&nbsp;&nbsp; ".join(chunks[half:])
        else:
            html = "&nbsp;&nbsp; ".join(chunks)
        self.setTitle(html, color=theme.text, size=f"{px}px")

    def _refresh_curves(self, x_range) -> None:
        """Give the curves the visible range, thinned to ~2 points per pixel, peaks kept, and
        fit the y axis to what is visible."""
        if self.analysis is None or not self.curves:
            return
        n = len(self.analysis.timeline)
        lo = max(0, int(np.floor(x_range[0])) - 1)
        hi = min(n, int(np.ceil(x_range[1])) + 2)
        width_px = max(200, int(self.getViewBox().width()) or 1000)
        key = (lo, hi, width_px, self._unit)
        if key == self._shown_range or hi <= lo:
            return
        self._shown_range = key
        picks = self.analysis.timeline.peak_points(lo, hi, max_points=2 * width_px)
        x = picks.astype(np.float64)
        factor = float(self._unit[1])
        stacked = self._data.stacked[:, picks] / factor
        # Each curve bounds two fills, which would each rebuild their path on every curve's
        # change (14 rebuilds); set all the data quietly, then rebuild each fill once.
        for curve, y in ((self._base, np.zeros(len(picks))), *zip(self.curves.values(), stacked)):
            curve.blockSignals(True)
            curve.setData(x, y)
            curve.blockSignals(False)
        for fill in self.fills.values():
            fill.updatePath()
        visible_max = float(stacked[-1].max()) if len(picks) else 1.0
        if self.reserved_curve is not None:
            # Segments change at few events: draw them as steps (each value holds until the next pick).
            reserved = self._data.reserved[picks] / factor
            self.reserved_curve.setData(np.repeat(x, 2)[1:], np.repeat(reserved, 2)[:-1])
            visible_max = max(visible_max, float(reserved.max()) if len(picks) else 0.0)
        capacity = (self._capacity[0] or 0) / factor
        if capacity <= 3 * visible_max:
            visible_max = max(visible_max, capacity)
        self.setYRange(0, max(visible_max, 1e-9) * HEADROOM, padding=0)

    def _on_clicked(self, event) -> None:
        """A click on the plot moves the cursor there."""
        if event.button() != Qt.MouseButton.LeftButton or self.analysis is None:
            return
        vb = self.getViewBox()
        if vb.sceneBoundingRect().contains(event.scenePos()):
            self.cursor.setValue(vb.mapSceneToView(event.scenePos()).x())

    def _on_mouse_moved(self, pos) -> None:
        """The tooltip tells what is live at the point under the mouse, with its event index."""
        vb = self.getViewBox()
        if self.analysis is not None and vb.sceneBoundingRect().contains(pos):
            point = int(round(vb.mapSceneToView(pos).x()))
            self.setToolTip(self.describe(max(0, min(point, len(self.analysis.timeline) - 1))))

    def _on_cursor_moved(self, *_):
        if self.analysis is None:
            return
        point = max(0, min(self.cursor_point(), len(self.analysis.timeline) - 1))
        text = self.describe(point)
        # The readout goes under the plot, never over the data; the breakdown is the tooltip.
        layer = self.layer_at(point)
        readout = text.split("\n", 1)[0] + (f" · running {layer}" if layer else "")
        self._axis.setLabel(f"cursor: {readout}")  # the ticks already say what the axis is
        self.setToolTip(text)
        self.sig_cursor_moved.emit(point, text)
        self.sig_layer_at_cursor.emit(self.layer_at(point))

    def _layer_span(self, name: str):
        layer = self.analysis.layer_named(name) if self.analysis is not None and name else None
        return None if layer is None else layer.forward_span

    def _on_selected(self, name: str) -> None:
        span = self._layer_span(name)
        if span is None:
            self.span.setVisible(False)
        else:
            self.highlight_span(*span)

    def _on_previewed(self, name: str) -> None:
        span = self._layer_span(name)
        self.preview_span.setVisible(span is not None)
        if span is not None:
            self.preview_span.setRegion((span[0], max(span[1], span[0] + 1)))

