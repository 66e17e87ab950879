"""Training vs inference for the same model and batch: the article's closing table, traced."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

from engine import units
from engine.categories import CATEGORIES

from .style import CATEGORY_LABELS

ROWS = ("Traced peak", *[CATEGORY_LABELS[c] + " at peak" for c in CATEGORIES], "Textbook estimate",
        "Activations kept for backward")


class ModeComparisonWidget(QTableWidget):
    """Two columns, training and inference, filled as each analysis arrives."""

    def __init__(self, parent=None):
        super().__init__(len(ROWS), 2, parent)
        self.setHorizontalHeaderLabels(["Training", "Inference"])
        self.setVerticalHeaderLabels(list(ROWS))
        self.horizontalHeader().setSectionResizeMode(QHeaderView.Stretch)
        self.setEditTriggers(QTableWidget.NoEditTriggers)
        self.setToolTip("The same model and batch traced in both modes")
        self.analyses = {"train": None, "inference": None}
        self._decimal = False

    def apply_display(self, display) -> None:
        """GB or GiB, as the window's Display says."""
        self._decimal = getattr(display, "decimal_units", False)
        for analysis in [a for a in self.analyses.values() if a is not None]:
            self.set_analysis(analysis)

    def set_analysis(self, analysis, prepared=None) -> None:
        """Show `analysis` in its mode's column; a different model or batch clears the other."""
        other = self.analyses["inference" if analysis.request.mode == "train" else "train"]
        if other is not None and (other.request.model, other.request.batch) != (analysis.request.model,
                                                                               analysis.request.batch):
            self.analyses = {"train": None, "inference": None}
            self.clearContents()
        self.analyses[analysis.request.mode] = analysis
        column = 0 if analysis.request.mode == "train" else 1
        saved = sum(life.nbytes for life in analysis.lifetimes if life.category == "activations")
        values = [analysis.peak.total_bytes, *[analysis.peak.breakdown[c] for c in CATEGORIES],
                  analysis.textbook.peak_bytes, saved]
        for row, value in enumerate(values):
            format_size = getattr(units, "format_size", None)
            item = QTableWidgetItem(format_size(value, self._decimal) if format_size else units.format_bytes(value))
            item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
            item.setToolTip(f"{value:,} bytes")
            self.setItem(row, column, item)
        label = f"{analysis.model_name}, batch {analysis.request.batch}"
        self.setHorizontalHeaderLabels([f"Training ({label})" if self.analyses["train"] else "Training",
                                        f"Inference ({label})" if self.analyses["inference"] else "Inference"])

    def text(self, row: int, column: int) -> str:
        item = self.item(row, column)
        return item.text() if item else ""
