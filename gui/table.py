"""The per-layer table: sortable, selectable, copyable as tab-separated text."""
from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QPushButton, QTableView, QVBoxLayout, QWidget

from engine import layer_csv

from .style import DEFAULT_DISPLAY, TEXT_PX, Display

def prepare(analysis) -> None:
    """Nothing heavy to prepare: the model formats a cell only when Qt asks for it. Here so the
    controller treats every view module alike."""
    return None


COLUMNS = tuple(c.title for c in layer_csv.COLUMNS)


class LayerTableModel(QAbstractTableModel):
    """Rows are `Analysis.layers`; columns and cell text come from engine/layer_csv.py (the CLI's
    table and the CSV export read the same definition); sorts on the raw numbers."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.analysis = None
        self.layers = ()
        self.peak_bytes = 1
        self.decimal_units = False

    def set_analysis(self, analysis) -> None:
        self.beginResetModel()
        self.analysis = analysis
        self.layers = analysis.layers
        self.peak_bytes = max(analysis.peak.total_bytes, 1)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):  # noqa: N802 (Qt override)
        return 0 if parent.isValid() else len(self.layers)

    def columnCount(self, parent=QModelIndex()):  # noqa: N802
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.DisplayRole):  # noqa: N802
        if role == Qt.DisplayRole and orientation == Qt.Horizontal:
            return COLUMNS[section]
        return None

    def raw(self, row: int, col: int):
        return layer_csv.cell_value(self.layers[row], col, self.peak_bytes)

    def text(self, row: int, col: int) -> str:
        return layer_csv.cell_text(self.layers[row], col, self.peak_bytes, self.decimal_units)

    def data(self, index, role=Qt.DisplayRole):
        if not index.isValid():
            return None
        if role == Qt.DisplayRole:
            return self.text(index.row(), index.column())
        if role == Qt.UserRole:
            value = self.raw(index.row(), index.column())
            return str(value) if isinstance(value, tuple) else value
        if role == Qt.TextAlignmentRole and layer_csv.COLUMNS[index.column()].numeric:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def as_tsv(self) -> str:
        """The table as tab-separated raw numbers (the CSV export's writer, with tabs)."""
        return layer_csv.layers_csv(self.analysis, delimiter="\t").rstrip("\n") if self.analysis else ""


class LayerTableWidget(QWidget):
    """The table plus a copy button; selecting a row selects that layer everywhere."""

    sig_layer_selected = Signal(str)
    """The user selected a layer by name."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.model = LayerTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.UserRole)
        self.view = QTableView(self)
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SingleSelection)
        self.view.verticalHeader().setVisible(False)
        self.view.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeToContents)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.selectionModel().currentRowChanged.connect(self._on_row_changed)
        copy = QPushButton("Copy table", self)
        copy.setToolTip("Copy the whole table as tab-separated numbers, in bytes (pastes into a spreadsheet)")
        copy.clicked.connect(self.copy_to_clipboard)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        layout.addWidget(copy)
        self._syncing = False
        self._selection = None
        self.apply_display(DEFAULT_DISPLAY)

    # ---- Public API
    def bind_selection(self, selection) -> None:
        """Show the selected layer's row; choosing a row selects that layer through `selection`.
        Previews leave the table alone (scrolling it on every hover would be noise)."""
        self._selection = selection
        selection.sig_selected.connect(self.select_layer)
        self.sig_layer_selected.connect(selection.select)

    def set_analysis(self, analysis, prepared=None) -> None:
        """Rows for `analysis` (`prepared` is unused: the model reads the layers directly)."""
        self.model.set_analysis(analysis)
        if self._selection is not None:
            self.select_layer(self._selection.selected)

    def apply_display(self, display: Display) -> None:
        """Font size and GB/GiB from `display`."""
        font = self.view.font()
        font.setPixelSize(display.px(TEXT_PX["normal"]))
        self.view.setFont(font)
        self.view.horizontalHeader().setFont(font)
        self.view.verticalHeader().setDefaultSectionSize(int(font.pixelSize() * 1.7))
        self.model.beginResetModel()
        self.model.decimal_units = display.decimal_units
        self.model.endResetModel()

    def font_pixel_sizes(self) -> list[float]:
        return [float(self.view.font().pixelSize())]

    def select_layer(self, name: str) -> None:
        """Select and show `name`'s row (no signal); '' or an unknown name clears the selection."""
        self._syncing = True
        try:
            for row, layer in enumerate(self.model.layers):
                if layer.name == name:
                    index = self.proxy.mapFromSource(self.model.index(row, 0))
                    self.view.selectRow(index.row())
                    self.view.scrollTo(index)
                    return
            self.view.clearSelection()
        finally:
            self._syncing = False

    def selected_layer(self) -> str | None:
        rows = self.view.selectionModel().selectedRows()
        if not rows:
            return None
        return self.model.layers[self.proxy.mapToSource(rows[0]).row()].name

    def copy_to_clipboard(self) -> None:
        QGuiApplication.clipboard().setText(self.model.as_tsv())

    def _on_row_changed(self, current, _previous):
        if self._syncing or not current.isValid():
            return
        self.sig_layer_selected.emit(self.model.layers[self.proxy.mapToSource(current).row()].name)
