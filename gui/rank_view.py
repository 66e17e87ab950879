"""One GPU of N: small multiples of the per-rank timeline (rank 0, plus each rank whose shards
differ from it) and the table of peak per GPU against the number of GPUs.

Draws only what the engine computed: `Analysis.distributed` (engine/distributed/summary.py) and
the world-size sweep's points (engine/distributed/sweep.py), which the window runs through the
controller's job system when `sig_sweep_requested` fires.
"""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QAbstractScrollArea, QHBoxLayout, QHeaderView, QLabel, QPushButton, QSplitter,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from engine.units import choose_unit, format_size

from . import style

# Short headers, explained in their tooltips: at 1280x720 the table shares the tab with the plots.
COLUMNS = ("GPUs", "Peak per GPU", "Model states", "Comm. at peak")
COLUMN_TIPS = ("Number of GPUs (ranks)", "Peak memory of the fullest GPU", "Parameters + gradients + optimizer "
               "state that GPU holds", "Collective buffers (all-gathers, reduce-scatters, buckets) live at its peak")
MAX_PANELS = 4
TITLE_SIZE = "9pt"  # pyqtgraph's default title (~12pt) takes a fifth of a 200 px panel


def prepare(analysis) -> dict:
    """The small multiples' curves in bytes (Qt-free; one per traced rank)."""
    d = analysis.distributed
    if d is None:
        return {"panels": []}
    return {"panels": [(_title(t, d.world_size), np.asarray(t.curve_points, dtype=float),
                        np.asarray(t.curve_bytes, dtype=float)) for t in d.ranks[:MAX_PANELS]]}


class RankView(QWidget):
    """Per-rank timelines and the peak-per-GPU table."""

    sig_sweep_requested = Signal()
    """Trace the current request at 1, 2, 4 ... 64 GPUs."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.display = style.Display()
        self.analysis = None
        self.header = QLabel("Choose a strategy and a number of GPUs (left panel) to see one GPU of N.")
        self.header.setWordWrap(True)
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("w")
        self.plots.setMinimumHeight(40)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        for c, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(c).setToolTip(tip)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.table.setSizeAdjustPolicy(QAbstractScrollArea.AdjustToContents)  # as wide as its columns
        self.table.setToolTip("Peak memory of the fullest GPU for each number of GPUs (same strategy and step)")
        self.sweep_button = QPushButton("Peak per GPU vs GPUs")
        self.sweep_button.setToolTip("Trace this step on 1, 2, 4 ... 64 GPUs with the chosen strategy")
        self.sweep_button.setEnabled(False)
        self.sweep_button.clicked.connect(self._on_sweep)
        self.sweep_status = QLabel("")
        table_box = QWidget()
        col = QVBoxLayout(table_box)
        col.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(self.sweep_button)
        row.addWidget(self.sweep_status, 1)
        col.addLayout(row)
        col.addWidget(self.table, 1)
        split = QSplitter()
        split.addWidget(self.plots)
        split.addWidget(table_box)
        split.setStretchFactor(0, 1)  # the table keeps its columns' width; the plots take the rest
        split.setStretchFactor(1, 0)
        split.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addWidget(split, 1)

    # ---- Public API
    def set_analysis(self, analysis, prepared: dict | None = None) -> None:
        self.analysis = analysis
        d = analysis.distributed
        self.sweep_button.setEnabled(d is not None)
        self.table.setRowCount(0)
        self.sweep_status.setText("")
        if d is None:
            self.header.setText("One device. Choose a strategy and a number of GPUs (left panel) to see one GPU of N.")
        else:
            worst = d.worst_rank
            self.header.setText(
                f"{d.strategy} over {d.world_size} GPUs: peak per GPU {format_size(d.max_peak_bytes, self._decimal)} "
                f"(rank {worst}); communication buffers {format_size(d.communication_at_peak_bytes, self._decimal)} "
                f"at the peak. " + (_split_text(d.tensor_parallel) if d.tensor_parallel is not None else
                f"DeepSpeed's model-state formulas: ZeRO-2 {format_size(d.reference.zero2_bytes, self._decimal)}, "
                f"ZeRO-3 {format_size(d.reference.zero3_bytes, self._decimal)} (K=12) vs traced model states "
                f"{format_size(d.reference.memlens_model_state_bytes, self._decimal)}."))
        self.header.setToolTip("\n".join(d.notes) if d is not None else "")
        self._draw((prepared or prepare(analysis))["panels"])

    def add_point(self, point) -> None:
        """One world size of the sweep, as it is computed."""
        r = self.table.rowCount()
        self.table.insertRow(r)
        if point.not_possible:  # the layers do not divide over this many GPUs: the reason in its tooltip
            cells = (str(point.world_size), "cannot split", "—", "—")
        else:
            cells = (str(point.world_size), format_size(point.peak_bytes, self._decimal),
                     format_size(point.model_state_bytes, self._decimal),
                     format_size(point.communication_bytes, self._decimal))
        for c, text in enumerate(cells):
            item = QTableWidgetItem(text)
            if point.not_possible:
                item.setToolTip(point.not_possible.split(": ", 1)[-1])
            self.table.setItem(r, c, item)

    def set_sweep_status(self, text: str, running: bool = False) -> None:
        self.sweep_status.setText(text)
        self.sweep_button.setEnabled(not running and self.analysis is not None
                                     and self.analysis.distributed is not None)

    def apply_display(self, display) -> None:
        self.display = display
        if self.analysis is not None:
            self.set_analysis(self.analysis)

    # ---- Private API
    @property
    def _decimal(self) -> bool:
        return self.display.decimal_units

    def _on_sweep(self) -> None:
        self.table.setRowCount(0)
        self.set_sweep_status("tracing…", running=True)
        self.sig_sweep_requested.emit()

    def _draw(self, panels) -> None:
        self.plots.clear()
        colour = self.display.colours.categories["communication"]
        first = None
        # One unit for all panels (their y axes are linked), the unit the timeline would pick.
        top = max((float(b.max()) for _, _, b in panels if len(b)), default=1.0)
        unit, size = choose_unit(top, self._decimal)
        for i, (title, x, nbytes) in enumerate(panels):
            plot = self.plots.addPlot(row=0, col=i)
            plot.setTitle(title, size=TITLE_SIZE)
            plot.plot(x, nbytes / size, pen=pg.mkPen(colour, width=1.5), fillLevel=0, brush=pg.mkBrush(colour + "55"))
            plot.getAxis("left").enableAutoSIPrefix(False)  # the unit is chosen above, never rescaled to "(x0.001)"
            plot.setLabel("left", unit)
            plot.setLabel("bottom", "event")
            plot.showGrid(y=True, alpha=0.25)
            if first is None:
                first = plot
                plot.setYRange(0, top / size * 1.05)  # from zero: the panels compare heights
            else:
                plot.setYLink(first)


def _split_text(tp) -> str:
    """Tensor parallelism's plan in one sentence (the notes, in the tooltip, name every layer)."""
    text = tp.describe().replace("every rank", "every GPU")
    return f"Split: {text}" + (" (hover for names)." if tp.whole_linear or tp.fused_attention else ".")


def _title(trace, world_size: int) -> str:
    others = len(trace.ranks) - 1
    like = f" + {others} like it" if others else ""
    return f"rank {trace.rank}{like}: {format_size(trace.peak_bytes, False)}"
