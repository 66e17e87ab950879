"""The scenario comparison as PDF pages, drawn with Qt's own QPdfWriter/QPainter (no browser).

Page 1: the scenarios (settings, peak, fit), their timelines overlaid on the phase-stretched axis
and each peak's breakdown as a stacked bar. Page 2: every category at each peak with its
difference from the baseline, and the layers whose memory changed most.

Printed in black and white it still reads: each scenario's line has its own dash pattern and is
labelled at its peak, and each category has its own hatching and a legend, never colour alone.
`paint_comparison_page` draws one page into any painter rectangle, so the capacity-plan report
(gui/report_pdf.py) can add these pages to its own.
"""
from __future__ import annotations

import datetime

from PySide6.QtCore import QMarginsF, QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPageLayout, QPageSize, QPainter, QPdfWriter, QPen, QPolygonF

from engine.categories import CATEGORIES, PHASES
from engine.scenarios import PHASE_AXIS_LABEL, Comparison, overlay_curve
from engine.units import choose_unit, format_bytes
from engine.version import __version__

from .report_pdf import HATCHES as PDF_HATCHES
from .style import CATEGORY_COLOURS, CATEGORY_LABELS

PAGES = 2
# One colour and one dash pattern per column (pinned A-D, then the current analysis).
SERIES = (("#1f5fa8", Qt.DashLine), ("#b8420f", Qt.DotLine), ("#2e7d32", Qt.DashDotLine),
          ("#7b3fa0", Qt.DashDotDotLine), ("#000000", Qt.SolidLine))
# Each category's hatching (line angles; none: plain): the stacked bars stay readable on a
# black-and-white printout, with the legend beside them.
# The report's hatches (gui/report_pdf.py), dots drawn as the plain tint here.
HATCHES = {category: (() if hatch == "dots" else hatch) for category, hatch in PDF_HATCHES.items()}
HATCH_SPACING = 3.0  # points
INK = QColor("#111111")
MUTED = QColor("#555555")


def series(comparison: Comparison, i: int) -> tuple[str, Qt.PenStyle]:
    """The colour and dash of column `i` (the current analysis, last, is solid black)."""
    return SERIES[-1] if comparison.columns[i].name == "current" else SERIES[i]


def room(fit) -> str:
    """'12% headroom' or '40% over' (of the device's capacity)."""
    pct = fit.headroom_pct
    return f"{pct:.0f}% headroom" if pct >= 0 else f"{-pct:.0f}% over"


# ---- Public API
def write_comparison_pdf(comparison: Comparison, analyses: list, path: str) -> int:
    """Write the comparison (`analyses` in the comparison's column order) to `path` as A4
    landscape pages; returns the page count. OSError when the file cannot be written."""
    writer = QPdfWriter(path)
    writer.setPageSize(QPageSize(QPageSize.A4))
    writer.setPageOrientation(QPageLayout.Landscape)
    writer.setPageMargins(QMarginsF(12, 12, 12, 12), QPageLayout.Millimeter)
    writer.setResolution(300)
    writer.setTitle("MemLens scenario comparison")
    writer.setCreator(f"MemLens {__version__}")
    painter = QPainter()
    if not painter.begin(writer):
        raise OSError(f"cannot write {path}")
    pixels = writer.pageLayout().paintRectPixels(writer.resolution())
    points = writer.pageLayout().paintRect(QPageLayout.Point)
    painter.setWindow(0, 0, round(points.width()), round(points.height()))  # draw in points
    painter.setViewport(0, 0, pixels.width(), pixels.height())
    rect = QRectF(0, 0, points.width(), points.height())
    for page in range(PAGES):
        if page:
            writer.newPage()
        paint_comparison_page(painter, rect, comparison, analyses, page)
    painter.end()
    return PAGES


def paint_comparison_page(painter: QPainter, rect: QRectF, comparison: Comparison, analyses: list, page: int) -> None:
    """Draw page `page` (0 or 1) of the comparison into `rect` (logical units read as points)."""
    painter.save()
    painter.setRenderHint(QPainter.Antialiasing)
    y = _header(painter, rect, "Scenario comparison" if page == 0 else "Scenario comparison: categories and layers",
                comparison)
    body = QRectF(rect.left(), y, rect.width(), rect.bottom() - y)
    if page == 0:
        y = _scenario_table(painter, body, comparison)
        chart_h = (body.bottom() - y) * 0.6
        _timeline_chart(painter, QRectF(body.left(), y + 6, body.width(), chart_h - 6), comparison, analyses)
        _breakdown_bars(painter, QRectF(body.left(), y + chart_h + 8, body.width(), body.bottom() - y - chart_h - 8),
                        comparison)
    else:
        y = _category_table(painter, body, comparison)
        _layer_table(painter, QRectF(body.left(), y + 14, body.width(), body.bottom() - y - 14), comparison)
    painter.restore()


# ---- Private API
def _font(size: float, bold: bool = False) -> QFont:
    font = QFont("Helvetica")
    font.setPixelSize(max(1, round(size)))  # logical units are points
    font.setBold(bold)
    return font


def _text(painter, x, y, w, h, text, size=8.0, bold=False, align=Qt.AlignLeft | Qt.AlignVCenter, colour=INK):
    painter.setFont(_font(size, bold))
    painter.setPen(colour)
    painter.drawText(QRectF(x, y, w, h), int(align), text)


def _elide(painter, text: str, size: float, width: float) -> str:
    return QFontMetricsF(_font(size), painter.device()).elidedText(text, Qt.ElideMiddle, width) if width > 0 else ""


def _width(painter, text: str, size: float) -> float:
    return QFontMetricsF(_font(size), painter.device()).horizontalAdvance(text)


def _signed(value: int) -> str:
    return ("+" if value > 0 else "±" if value == 0 else "") + format_bytes(value)


def _header(painter, rect: QRectF, title: str, comparison: Comparison) -> float:
    from importlib import metadata

    try:
        torch = f" · torch {metadata.version('torch')}"
    except metadata.PackageNotFoundError:
        torch = ""
    stamp = f"{datetime.date.today().isoformat()} · MemLens {__version__}{torch}"
    _text(painter, rect.left(), rect.top(), rect.width() * 0.6, 22, title, 15, bold=True)
    _text(painter, rect.left(), rect.top(), rect.width(), 22, stamp, 7.5, align=Qt.AlignRight | Qt.AlignVCenter,
          colour=MUTED)
    base = comparison.columns[comparison.baseline].name
    _text(painter, rect.left(), rect.top() + 22, rect.width(), 12,
          f"Differences are taken against '{base}'. Bytes are binary (KiB, MiB, GiB).", 7.5, colour=MUTED)
    painter.setPen(QPen(INK, 0.8))
    painter.drawLine(QPointF(rect.left(), rect.top() + 37), QPointF(rect.right(), rect.top() + 37))
    return rect.top() + 44


def _line_sample(painter, comparison, i, x, y, width=26.0) -> None:
    colour, dash = series(comparison, i)
    painter.setPen(QPen(QColor(colour), 1.6, dash))
    painter.drawLine(QPointF(x, y), QPointF(x + width, y))


def _scenario_table(painter, rect: QRectF, comparison: Comparison) -> float:
    """One row per scenario: its line, name, settings, peak (and difference), fit verdict."""
    widths = [34, 110, 0, 120, 200]  # the settings column takes what is left
    widths[2] = rect.width() - sum(widths)
    heads = ["line", "scenario", "settings", "peak (difference)", "fit"]
    row_h = 14
    x = rect.left()
    for head, w in zip(heads, widths):
        _text(painter, x, rect.top(), w - 4, row_h, head, 7.5, bold=True, colour=MUTED)
        x += w
    y = rect.top() + row_h
    for i, col in enumerate(comparison.columns):
        x = rect.left()
        _line_sample(painter, comparison, i, x + 2, y + row_h / 2)
        x += widths[0]
        _text(painter, x, y, widths[1] - 4, row_h, _elide(painter, col.name, 8.5, widths[1] - 4), 8.5, bold=True)
        x += widths[1]
        _text(painter, x, y, widths[2] - 6, row_h, _elide(painter, col.settings, 8, widths[2] - 6), 8)
        x += widths[2]
        peak = format_bytes(col.peak_bytes)
        if i != comparison.baseline:
            peak += f" ({_signed(comparison.peak_delta[i])})"
        _text(painter, x, y, widths[3] - 4, row_h, peak, 8.5, bold=True)
        x += widths[3]
        fit = f"{col.fit.state.upper()} on {col.fit.device.name}, {room(col.fit)}" if col.fit else "no device chosen"
        _text(painter, x, y, widths[4], row_h, _elide(painter, fit, 8, widths[4]), 8)
        y += row_h
    return y + 4


def _timeline_chart(painter, rect: QRectF, comparison: Comparison, analyses: list) -> None:
    """Every scenario's live memory on the phase axis, each line dashed its own way and named at its peak."""
    top = max(c.peak_bytes for c in comparison.columns) or 1
    unit = choose_unit(top)
    left, bottom = rect.left() + 46, rect.bottom() - 26
    plot = QRectF(left, rect.top() + 14, rect.right() - left - 8, bottom - rect.top() - 14)
    _text(painter, rect.left(), rect.top(), rect.width(), 12, "Live memory through the step", 9, bold=True)
    painter.setPen(QPen(INK, 0.8))
    painter.drawRect(plot)
    y_max = top * 1.12 / unit[1]
    step = _nice_step(y_max)
    tick = 0.0
    while tick <= y_max:
        y = plot.bottom() - tick / y_max * plot.height()
        painter.setPen(QPen(QColor("#dddddd"), 0.4))
        painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        _text(painter, rect.left(), y - 6, 42, 12, f"{tick:g} {unit[0]}", 7, align=Qt.AlignRight | Qt.AlignVCenter)
        tick += step
    for k, phase in enumerate(PHASES):
        x0 = plot.left() + k / 3 * plot.width()
        if k:
            painter.setPen(QPen(MUTED, 0.6, Qt.DashLine))
            painter.drawLine(QPointF(x0, plot.top()), QPointF(x0, plot.bottom()))
        _text(painter, x0, plot.bottom() + 1, plot.width() / 3, 11, phase, 7.5, align=Qt.AlignCenter)
    _text(painter, plot.left(), plot.bottom() + 12, plot.width(), 11, PHASE_AXIS_LABEL, 7, colour=MUTED,
          align=Qt.AlignCenter)
    labels = []
    for i, analysis in enumerate(analyses):
        x, y = overlay_curve(analysis, max_points=600)
        px = plot.left() + x / 3 * plot.width()
        py = plot.bottom() - (y / unit[1]) / y_max * plot.height()
        colour, dash = series(comparison, i)
        painter.setPen(QPen(QColor(colour), 1.4, dash))
        painter.drawPolyline(QPolygonF([QPointF(a, b) for a, b in zip(px, py)]))
        peak = int(y.argmax())
        labels.append((px[peak], py[peak], f"{comparison.columns[i].name}: {format_bytes(int(y[peak]))}", colour))
    used = []
    for x, y, text, colour in sorted(labels, key=lambda item: item[1]):
        ty = y - 11
        while any(abs(ty - u) < 10 for u in used):
            ty += 10  # labels of close peaks stack instead of overprinting
        used.append(ty)
        painter.setPen(QPen(QColor(colour), 0.8))
        painter.drawLine(QPointF(x, y), QPointF(x, ty + 9))
        painter.setBrush(QColor(colour))
        painter.drawEllipse(QPointF(x, y), 1.8, 1.8)
        width = min(200.0, plot.right() - x - 2) if x < plot.center().x() else 200.0
        left_side = x > plot.center().x()
        _text(painter, x - width - 3 if left_side else x + 3, ty, width, 10, text, 7.5, bold=True,
              align=(Qt.AlignRight if left_side else Qt.AlignLeft) | Qt.AlignVCenter)
    painter.setBrush(Qt.NoBrush)


def _nice_step(span: float) -> float:
    raw = span / 5
    magnitude = 10 ** int(f"{raw:e}".split("e")[1])
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def _breakdown_bars(painter, rect: QRectF, comparison: Comparison) -> None:
    """Each scenario's peak as one bar split by category: hatched, labelled where wide enough."""
    _text(painter, rect.left(), rect.top(), rect.width(), 12, "What each peak is made of", 9, bold=True)
    legend_h = 14
    n = len(comparison.columns)
    name_w = 110
    bar_area = QRectF(rect.left() + name_w, rect.top() + 14, rect.width() - name_w - 60,
                      rect.height() - 14 - legend_h - 4)
    row_h = min(26.0, bar_area.height() / max(1, n))
    top = max(c.peak_bytes for c in comparison.columns) or 1
    for i, col in enumerate(comparison.columns):
        y = bar_area.top() + i * row_h
        _text(painter, rect.left(), y, name_w - 6, row_h, _elide(painter, col.name, 8, name_w - 6), 8, bold=True,
              align=Qt.AlignRight | Qt.AlignVCenter)
        x = bar_area.left()
        for category in CATEGORIES:
            w = col.breakdown.get(category, 0) / top * bar_area.width()
            if w <= 0:
                continue
            box = QRectF(x, y + 2, w, row_h - 4)
            _hatched(painter, box, category)
            label = format_bytes(col.breakdown[category])
            if w > 44:
                painter.fillRect(QRectF(box.center().x() - 21, box.center().y() - 4.5, 42, 9), QColor(255, 255, 255, 230))
                _text(painter, box.left(), box.top(), box.width(), box.height(), label, 6.5, align=Qt.AlignCenter)
            x += w
        _text(painter, x + 3, y, 60, row_h, format_bytes(col.peak_bytes), 7.5, bold=True)
    x, y = rect.left() + name_w, bar_area.top() + n * row_h + 4  # the legend right under the bars
    for category in (row.category for row in comparison.categories):  # communication only when distributed
        _hatched(painter, QRectF(x, y + 2, 14, 10), category)
        label = CATEGORY_LABELS[category]
        _text(painter, x + 17, y, 100, legend_h, label, 7.5)
        x += 26 + _width(painter, label, 7.5)


def _hatched(painter, box: QRectF, category: str) -> None:
    """A box in the category's light colour, ruled with its own hatching (drawn as vector lines
    3 pt apart: Qt's pattern brushes turn into a uniform grey once printed or rasterised)."""
    colour = QColor(CATEGORY_COLOURS[category])
    painter.fillRect(box, colour.lighter(170))
    painter.save()
    painter.setClipRect(box)
    painter.setPen(QPen(colour.darker(250), 0.6))
    span = box.width() + box.height()
    for angle in HATCHES[category]:
        offset = 0.0
        while offset <= span:
            if angle == 45:
                painter.drawLine(QPointF(box.left() + offset, box.bottom()), QPointF(box.left() + offset - box.height(), box.top()))
            elif angle == -45:
                painter.drawLine(QPointF(box.left() + offset - box.height(), box.bottom()), QPointF(box.left() + offset, box.top()))
            elif angle == 0 and offset <= box.height():
                painter.drawLine(QPointF(box.left(), box.top() + offset), QPointF(box.right(), box.top() + offset))
            elif angle == 90 and offset <= box.width():
                painter.drawLine(QPointF(box.left() + offset, box.top()), QPointF(box.left() + offset, box.bottom()))
            offset += HATCH_SPACING
    painter.restore()
    painter.setPen(QPen(INK, 0.5))
    painter.drawRect(box)


def _cells(painter, rect: QRectF, y: float, first_w: float, texts: list[str], size=8.0, bold=False, first_bold=False):
    col_w = (rect.width() - first_w) / max(1, len(texts) - 1)
    _text(painter, rect.left(), y, first_w - 4, 13, _elide(painter, texts[0], size, first_w - 4), size,
          bold=bold or first_bold)
    for j, text in enumerate(texts[1:]):
        _text(painter, rect.left() + first_w + j * col_w, y, col_w - 6, 13, text, size, bold=bold,
              align=Qt.AlignRight | Qt.AlignVCenter)


def _with_delta(comparison: Comparison, values, deltas) -> list[str]:
    return [("—" if v is None else format_bytes(v)) + ("" if i == comparison.baseline else f" ({_signed(d)})")
            for i, (v, d) in enumerate(zip(values, deltas))]


def _category_table(painter, rect: QRectF, comparison: Comparison) -> float:
    c = comparison
    _text(painter, rect.left(), rect.top(), rect.width(), 14, "At each peak, by category", 10, bold=True)
    y = rect.top() + 16
    _cells(painter, rect, y, 150, ["", *c.names], 8, bold=True)
    y += 14
    painter.setPen(QPen(INK, 0.5))
    painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
    for row in c.categories:
        _hatched(painter, QRectF(rect.left(), y + 2.5, 12, 8), row.category)
        _cells(painter, QRectF(rect.left() + 16, y, rect.width() - 16, 13), y, 134,
               [CATEGORY_LABELS[row.category], *_with_delta(c, row.bytes, row.delta)])
        y += 13
    painter.setPen(QPen(INK, 0.5))
    painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
    _cells(painter, rect, y + 1, 150, ["Peak", *_with_delta(c, [col.peak_bytes for col in c.columns], c.peak_delta)],
           bold=True)
    y += 15
    fits = [col.fit for col in c.columns]
    _cells(painter, rect, y, 150, ["Footprint on the device", *[format_bytes(f.total_bytes) if f else "—" for f in fits]])
    y += 13
    _cells(painter, rect, y, 150, ["Device", *[_elide(painter, f.device.name, 8, 120) if f else "none chosen"
                                               for f in fits]])
    y += 13
    _cells(painter, rect, y, 150, ["Verdict", *[f"{f.state.upper()} ({room(f)})" if f else "—"
                                                for f in fits]], bold=True)
    return y + 13


def _layer_table(painter, rect: QRectF, comparison: Comparison) -> None:
    c = comparison
    _text(painter, rect.left(), rect.top(), rect.width(), 14,
          f"The {len(c.layers)} layers whose memory changed most (parameters + output + saved for backward)",
          10, bold=True)
    y = rect.top() + 16
    _cells(painter, rect, y, 190, ["layer (type)", *c.names], 8, bold=True)
    y += 14
    painter.setPen(QPen(INK, 0.5))
    painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
    if not c.layers:
        _text(painter, rect.left(), y, rect.width(), 13, "No layer changed: the difference is outside the layers "
              "(optimizer state, gradients, inputs).", 8, colour=MUTED)
    for row in c.layers:
        _cells(painter, rect, y, 190, [f"{row.name} ({row.type})",
                                       *_with_delta(c, row.bytes, row.delta)])
        y += 13
