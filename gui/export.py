"""File ▸ Export…: what leaves the window. Pictures of the window or of one view (PNG at 1x, 2x or
4K; SVG, vector wherever the view is vector), the layer table as CSV, the analysis as JSON (the
`analyze --json` schema) and the capacity-plan report as PDF.

Pictures are painted, not grabbed: each view renders itself through a QPainter scaled to the size
asked for (text and lines are redrawn at that size, not enlarged pixels), and the diagram renders
its whole scene, not only the part scrolled into view. The report's missing pieces (the largest
batch, the other mode) are computed as a controller job, so the window never freezes.
"""
from __future__ import annotations

import json
import os

from PySide6.QtCore import QObject, QPoint, QRect, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtSvg import QSvgGenerator
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QGraphicsView,
                               QWidget)

PICTURES = {  # target -> its name in the dialog
    "window": "The whole window",
    "timeline": "Memory timeline",
    "diagram": "Network diagram (all of it)",
    "lifetimes": "Activation lifetimes",
    "sweeps": "What-if sweep plot",
}
DOCUMENTS = {
    "report": ("Capacity-plan report (PDF)", "PDF (*.pdf)", ".pdf"),
    "csv": ("Layer table (CSV)", "CSV (*.csv)", ".csv"),
    "json": ("Analysis (JSON)", "JSON (*.json)", ".json"),
}
SCALES = ("1x", "2x", "4K")
UHD = QSize(3840, 2160)  # "4K": the picture scaled to fill a 3840x2160 screen, aspect kept


class ExportError(Exception):
    """An export that could not be written (the message names the file)."""


# ---- Pictures
def picture_targets(window) -> dict[str, QWidget]:
    """The views that can be exported now, by target name (the plots exist once built)."""
    sweeps = getattr(window, "sweeps", None)
    found = {"window": window, "timeline": window.timeline, "diagram": window.diagram,
             "lifetimes": window.lifetimes, "sweeps": sweeps.plot if sweeps is not None else None}
    return {name: widget for name, widget in found.items() if widget is not None}


def source_size(widget: QWidget) -> QSize:
    """The picture's size at 1x: the diagram's whole scene, any other widget as it is on screen."""
    if _is_diagram(widget):
        rect = widget.scene().sceneRect()
        return QSize(max(1, round(rect.width())), max(1, round(rect.height())))
    if isinstance(widget, QGraphicsView):
        return widget.viewport().size()
    return widget.size()


def scale_factor(size: QSize, scale: str) -> float:
    """1x, 2x, or '4K': the factor that fills 3840x2160 with the picture, aspect kept."""
    if scale == "4K":
        return min(UHD.width() / max(size.width(), 1), UHD.height() / max(size.height(), 1))
    try:
        return float(scale.rstrip("x"))
    except ValueError:
        raise ExportError(f"unknown picture size {scale!r}: choose {', '.join(SCALES)}") from None


def save_png(widget: QWidget, path: str, scale: str = "1x") -> QSize:
    """Paint `widget` at `scale` into a PNG; returns the picture's size in pixels."""
    size = source_size(widget)
    factor = scale_factor(size, scale)
    image = QImage(max(1, round(size.width() * factor)), max(1, round(size.height() * factor)),
                   QImage.Format_ARGB32_Premultiplied)
    image.fill(QColor("#ffffff"))
    painter = QPainter(image)
    painter.setRenderHints(QPainter.Antialiasing | QPainter.TextAntialiasing | QPainter.SmoothPixmapTransform)
    painter.scale(factor, factor)
    try:
        _paint(widget, painter, size)
    finally:
        painter.end()
    if not image.save(path, "PNG"):
        raise ExportError(f"{path}: could not write the picture")
    return image.size()


def save_svg(widget: QWidget, path: str, title: str = "MemLens") -> None:
    """Paint `widget` into an SVG: lines, areas and text stay vectors."""
    size = source_size(widget)
    generator = QSvgGenerator()
    generator.setFileName(path)
    generator.setSize(size)
    generator.setViewBox(QRect(QPoint(0, 0), size))
    generator.setTitle(title)
    generator.setDescription("Exported from MemLens")
    painter = QPainter()
    if not painter.begin(generator):
        raise ExportError(f"{path}: could not write the picture")
    try:
        _paint(widget, painter, size)
    finally:
        ended = painter.end()
    if not ended or not os.path.exists(path):
        raise ExportError(f"{path}: could not write the picture")


# ---- Documents
def save_csv(analysis, path: str) -> None:
    from engine.layer_csv import write_layers_csv

    try:
        write_layers_csv(analysis, path)
    except OSError as e:
        raise ExportError(f"{path}: could not write the table ({e.strerror})") from None


def save_json(analysis, path: str, fit=None) -> None:
    """The analysis (and the fit on the chosen device) in the `analyze --json` schema."""
    from engine.report import analysis_document

    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(analysis_document(analysis, fit), indent=1) + "\n")
    except OSError as e:
        raise ExportError(f"{path}: could not write the analysis ({e.strerror})") from None


def report_pieces(window) -> dict:
    """What the window already knows for the report: the chosen device and its overrides, the
    largest batch shown, and the other mode's analysis when it matches what is on screen."""
    from .controller import companion_request

    analysis = window.analysis
    other = companion_request(analysis.request, window.config.optimizer_choice())
    companion = window.compare.analyses.get(other.mode)
    if companion is not None and companion.request != other:
        companion = None
    device = window.devices.current_device()
    largest = window.devices.largest_result() if device is not None else None
    if largest is not None and largest.analysis.request.replace(batch=analysis.request.batch) != analysis.request:
        largest = None
    return {"analysis": analysis, "device": device, "overrides": window.devices.overrides(),
            "companion_request": other, "companion": companion, "largest": largest}


class ReportExport(QObject):
    """Writes the PDF report of the window's analysis: the missing pieces are computed as the
    controller's "report" job, then the pages are painted on the GUI thread."""

    sig_done = Signal(str)
    """The report was written to this path."""
    sig_failed = Signal(str)
    """A one-line message: the report could not be made or written."""

    def __init__(self, controller, parent=None):
        super().__init__(parent)
        self.controller = controller
        self._job = None
        self._path = ""
        self._options: dict = {}
        controller.sig_result.connect(self._on_result)
        controller.sig_error.connect(self._on_error)

    def start(self, pieces: dict, path: str, torch_version: str = "", decimal_units: bool = False) -> int:
        from engine.cli import reproduce_command

        self._path = path
        self._options = {"torch_version": torch_version, "decimal_units": decimal_units}
        command = reproduce_command(pieces["analysis"].request, pieces["device"],
                                    outputs=("--pdf", os.path.basename(path)))

        def job(progress, cancelled, _partial):
            from engine.report import gather_report

            return gather_report(pieces["analysis"], pieces["device"], pieces["overrides"],
                                 pieces["companion_request"], companion=pieces["companion"],
                                 largest=pieces["largest"], command=command, progress=progress, cancelled=cancelled)

        self._job = self.controller.submit("report", job, supersede=False)
        return self._job

    def _on_result(self, kind: str, data) -> None:
        if kind != "report" or not self._job:
            return
        self._job = None
        from .report_pdf import write_report_pdf

        try:
            write_report_pdf(self._path, data, **self._options)
        except OSError as e:
            self.sig_failed.emit(f"{self._path}: could not write the report ({e})")
            return
        self.sig_done.emit(self._path)

    def _on_error(self, kind: str, message: str) -> None:
        if kind == "report" and self._job:
            self._job = None
            self.sig_failed.emit(f"the report could not be made: {message}")


# ---- The dialog
class ExportDialog(QDialog):
    """What to export, and for pictures the format and size; the file is chosen after OK."""

    def __init__(self, targets, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.what = QComboBox()
        for key in targets:
            self.what.addItem(f"Picture: {PICTURES[key]}", key)
        for key, (label, _filter, _suffix) in DOCUMENTS.items():
            self.what.addItem(label, key)
        self.what.setToolTip("A picture of the window or of one view, the report, the layer table or the analysis")
        self.format = QComboBox()
        self.format.addItems(["PNG", "SVG"])
        self.format.setToolTip("PNG: pixels at the chosen size; SVG: vectors (lines and text stay sharp at any size)")
        self.scale = QComboBox()
        self.scale.addItems(SCALES)
        self.scale.setToolTip("1x as on screen, 2x, or 4K (fills 3840×2160)")
        form = QFormLayout(self)
        form.addRow("Export", self.what)
        form.addRow("Format", self.format)
        form.addRow("Size", self.scale)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.what.currentIndexChanged.connect(self._on_changed)
        self.format.currentIndexChanged.connect(self._on_changed)
        self._on_changed()

    def choice(self) -> tuple[str, str, str]:
        """(target, format 'png'/'svg'/'pdf'/'csv'/'json', scale)."""
        key = self.what.currentData()
        fmt = self.format.currentText().lower() if key in PICTURES else DOCUMENTS[key][2][1:]
        return key, fmt, self.scale.currentText()

    def _on_changed(self, *_) -> None:
        picture = self.what.currentData() in PICTURES
        self.format.setEnabled(picture)
        self.scale.setEnabled(picture and self.format.currentText() == "PNG")


def run_export_dialog(window) -> None:
    """File ▸ Export…: choose what, then where; errors go to the window's error line."""
    if window.analysis is None:
        window.show_error("nothing to export yet: no analysis is on screen")
        return
    dialog = ExportDialog(picture_targets(window), window)
    if dialog.exec() != QDialog.Accepted:
        return
    key, fmt, scale = dialog.choice()
    suggested = f"memlens-{window.analysis.model_name}-{key}.{fmt}"
    filters = DOCUMENTS[key][1] if key in DOCUMENTS else f"{fmt.upper()} (*.{fmt})"
    path, _ = QFileDialog.getSaveFileName(window, "Export", suggested, filters)
    if path:
        export(window, key, path if path.lower().endswith("." + fmt) else f"{path}.{fmt}", scale)


def run_report_dialog(window) -> None:
    """File ▸ Export capacity-plan report: straight to the file dialog for the PDF."""
    if window.analysis is None:
        window.show_error("nothing to export yet: no analysis is on screen")
        return
    path, _ = QFileDialog.getSaveFileName(window, "Export the capacity-plan report",
                                          f"memlens-{window.analysis.model_name}-plan.pdf", DOCUMENTS["report"][1])
    if path:
        export(window, "report", path if path.lower().endswith(".pdf") else f"{path}.pdf")


def export(window, key: str, path: str, scale: str = "1x") -> None:
    """Export `key` (a picture target or 'report'/'csv'/'json') to `path`, format from its suffix;
    the status line says where it went, the error line why it did not."""
    try:
        if key in PICTURES:
            widget = picture_targets(window).get(key)
            if widget is None:
                raise ExportError(f"the {PICTURES[key].lower()} is not built yet")
            if path.lower().endswith(".svg"):
                save_svg(widget, path, f"MemLens: {PICTURES[key]}")
            else:
                save_png(widget, path, scale)
        elif key == "csv":
            save_csv(window.analysis, path)
        elif key == "json":
            save_json(window.analysis, path, getattr(window.planning, "fit", None))
        elif key == "report":
            window.report_export.start(report_pieces(window), path, _torch_version(window),
                                       window.display.decimal_units)
            window.status.setText(f"making the report {path}…")
            return
        else:
            raise ExportError(f"cannot export {key!r}")
    except ExportError as e:
        window.show_error(str(e))
        return
    window.status.setText(f"exported {path}")


# ---- Private API
def _is_diagram(widget) -> bool:
    import pyqtgraph as pg

    return isinstance(widget, QGraphicsView) and not isinstance(widget, pg.GraphicsView)


def _paint(widget: QWidget, painter: QPainter, size: QSize) -> None:
    target = QRectF(0, 0, size.width(), size.height())
    if _is_diagram(widget):
        widget.scene().render(painter, target, widget.scene().sceneRect(), Qt.KeepAspectRatio)
    elif isinstance(widget, QGraphicsView):  # a plot: its scene as the viewport shows it, as vectors
        widget.render(painter, target, widget.viewport().rect(), Qt.IgnoreAspectRatio)
    else:
        widget.render(painter, QPoint(0, 0))


def _torch_version(window) -> str:
    engine = getattr(window, "engine", None)
    return getattr(engine, "torch_version", "") if engine is not None else ""
