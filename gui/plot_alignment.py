"""Plots that share one x-range, lined up on screen: the same x at the same pixel column in each.

The timeline and the activation lifetimes show exactly one x-range, but their left axes need
different room (a few digits vs layer names) and the lifetimes sit inside a tab's frame, so the
same step was drawn ~60 px apart. The aligner gives the narrower left axis the extra width and
the plot that reaches further right a wider right margin, measured in screen pixels, whenever
either plot is resized or asked to (new data, new fonts).
"""
from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QObject, QPointF, QTimer


class PlotAreaAligner(QObject):
    """Keeps the data areas (view boxes) of `plots` at the same screen columns."""

    def __init__(self, *plots: pg.PlotWidget):
        super().__init__(plots[0])
        self.plots = plots
        self._margin = plots[0].getPlotItem().layout.getContentsMargins()[2]  # pyqtgraph's own right margin
        self._timer = QTimer(self, singleShot=True, interval=0)
        self._timer.timeout.connect(self.align)
        for plot in plots:
            plot.getViewBox().sigResized.connect(self.schedule)

    # ---- Public API
    def schedule(self, *_) -> None:
        """Align once the layouts have settled (a resize may still be under way)."""
        self._timer.start()

    def data_columns(self, plot: pg.PlotWidget) -> tuple[float, float]:
        """Where `plot`'s data area starts and ends, in global pixel columns."""
        rect = plot.getViewBox().sceneBoundingRect()
        to_viewport = plot.viewportTransform()
        origin = plot.viewport().mapToGlobal(QPointF(0, 0)).x()
        return origin + to_viewport.map(rect.topLeft()).x(), origin + to_viewport.map(rect.topRight()).x()

    def align(self) -> None:
        """Line the plots up now. Only plots on screen count: a hidden tab's geometry is stale
        (its resize arrives when it is shown, and aligns again)."""
        shown = [p for p in self.plots if p.isVisible() and p.getViewBox().width() > 0]
        if len(shown) < 2:
            return
        places = []
        for plot in shown:
            axis, layout = plot.getAxis("left"), plot.getPlotItem().layout
            left, right = self.data_columns(plot)
            margins = list(layout.getContentsMargins())
            places.append((plot, left - axis.width(), _natural_width(axis), right + margins[2], margins))
        start = max(axis_left + natural for _, axis_left, natural, _, _ in places)
        end = min(edge for _, _, _, edge, _ in places) - self._margin
        for plot, axis_left, _, edge, margins in places:
            axis = plot.getAxis("left")
            if abs(axis.width() - (start - axis_left)) > 0.01:
                axis.setWidth(start - axis_left)
            if abs(margins[2] - (edge - end)) > 0.01:
                margins[2] = edge - end
                plot.getPlotItem().layout.setContentsMargins(*margins)


def _natural_width(axis: pg.AxisItem) -> float:
    """The width the axis would take for its own text and label (what setWidth(None) gives)."""
    fixed = axis.fixedWidth
    axis.setWidth(None)
    natural = axis.minimumWidth()
    axis.setWidth(fixed)
    return natural
