"""The capacity-plan report: two A4 (or Letter) pages drawn with Qt's own QPdfWriter and QPainter,
for the meeting where a plan is presented. It computes nothing: every number comes from an
`engine.report.ReportData` (the analysis, the companion analysis, the fit check, the largest batch).

It must read in black and white: each memory category is a light tint *and* a hatch pattern
(`fill_category`), every figure is also written as text, and the verdict is a word, never a colour.
A missing section (no device chosen, the other mode not analysed) says so where it would be.

The painting functions take a painter and a rectangle in the painter's own units and size text
and lines in points from the device's resolution, so they draw the same on a PDF page, an image
or an SVG (the scenario comparison page reuses them): `fill_category`, `paint_legend`,
`paint_timeline`, `paint_breakdown`, `paint_mode_comparison`, `paint_diagram`, `paint_textbook`,
`paint_fit`, `text_block`.
"""
from __future__ import annotations

import datetime
import math

import numpy as np
from PySide6.QtCore import QMarginsF, QPointF, QRectF, QSizeF, Qt
from PySide6.QtGui import (QColor, QFont, QFontMetricsF, QImage, QPageLayout, QPageSize, QPainter, QPainterPath,
                           QPdfWriter, QPen, QPolygonF)

from engine.categories import CATEGORIES, listed_categories
from engine.lever_fields import checkpointed_layers
from engine.units import choose_unit, format_count, format_size
from engine.version import __version__

from .diagram_items import BADGE, paint_badge
from .diagram_layout import (BLOCK_H_COMPACT, BLOCK_H_MAX, COLLAPSED_MARK, EXPANDED_MARK, TextMetrics, layout_diagram,
                             prepare_diagram)
from .style import CATEGORY_COLOURS, CATEGORY_LABELS, TEXT_PX, THEMES, ramp_colour
from .summary import reason_for_difference

PAGE_SIZES = {"A4": QPageSize.A4, "Letter": QPageSize.Letter}
RESOLUTION = 288  # PDF device units per inch: 4 per point, so text metrics are exact at small sizes
MARGIN_PT = 34
INK = QColor("#000000")
GREY = QColor("#555555")
RULE = QColor("#999999")

# Each category's hatch: line angles in degrees (0 horizontal), or 'dots'. With the tint's
# lightness they tell the categories apart on a black-and-white print.
HATCHES = {
    "parameters": (45,),
    "buffers": "dots",
    "gradients": (-45,),
    "optimizer_state": (45, -45),
    "activations": (0,),
    "temporaries": (90,),
    "inputs": (0, 90),
    "communication": (-45, 90),
}
HATCH_SPACING_PT = 3.4


# ---- Painting helpers, reusable on any device
def points(painter: QPainter) -> float:
    """Device units per typographic point on the painter's device (4 on the report's pages)."""
    return painter.device().logicalDpiY() / 72.0


def font(painter: QPainter, size_pt: float, bold: bool = False) -> QFont:
    f = QFont()
    f.setPixelSize(max(1, round(size_pt * points(painter))))
    f.setBold(bold)
    f.setFeature(QFont.Tag("liga"), 0)  # 'fits' stays four letters when the PDF's text is searched or copied
    return f


def text_block(painter: QPainter, rect: QRectF, text: str, size_pt: float = 8.5, bold: bool = False,
               colour: QColor = INK, align=Qt.AlignLeft) -> float:
    """Draw `text` wrapped to `rect`'s width from its top; returns the height used."""
    painter.save()
    painter.setFont(font(painter, size_pt, bold))
    painter.setPen(colour)
    flags = int(align) | int(Qt.AlignTop) | int(Qt.TextWordWrap)
    used = painter.boundingRect(QRectF(rect.x(), rect.y(), rect.width(), 1e6), flags, text)
    painter.drawText(QRectF(rect.x(), rect.y(), rect.width(), used.height() + 1), flags, text)
    painter.restore()
    return used.height()


def tint(category: str) -> QColor:
    """The category's colour mixed 60% with white: light enough that a hatch shows over it."""
    c = QColor(CATEGORY_COLOURS[category])
    return QColor(*(round(v + (255 - v) * 0.6) for v in (c.red(), c.green(), c.blue())))


def fill_category(painter: QPainter, path: QPainterPath, category: str) -> None:
    """Fill `path` with the category's tint and its hatch (lines anchored to the device's origin,
    so neighbouring shapes of one category line up)."""
    pt = points(painter)
    colour = QColor(CATEGORY_COLOURS[category]).darker(170)
    painter.save()
    painter.setPen(Qt.NoPen)
    painter.setBrush(tint(category))
    painter.drawPath(path)
    painter.setClipPath(path, Qt.IntersectClip)
    box = path.boundingRect()
    step = HATCH_SPACING_PT * pt
    hatch = HATCHES[category]
    if hatch == "dots":
        painter.setBrush(colour)
        r = 0.55 * pt
        for x in np.arange(math.floor(box.left() / step) * step, box.right() + step, step):
            for y in np.arange(math.floor(box.top() / step) * step, box.bottom() + step, step):
                painter.drawEllipse(QPointF(x + (step / 2 if int(y / step) % 2 else 0), y), r, r)
    else:
        painter.setPen(QPen(colour, 0.5 * pt))
        reach = math.hypot(box.width(), box.height()) + step
        for angle in hatch:
            a = math.radians(angle)
            d, n = (math.cos(a), math.sin(a)), (-math.sin(a), math.cos(a))
            corners = [(box.left(), box.top()), (box.right(), box.top()), (box.left(), box.bottom()),
                       (box.right(), box.bottom())]
            offsets = [x * n[0] + y * n[1] for x, y in corners]
            for t in np.arange(math.floor(min(offsets) / step) * step, max(offsets) + step, step):
                cx, cy = n[0] * t, n[1] * t  # a point on the line; move along d to the box
                along = (box.center().x() - cx) * d[0] + (box.center().y() - cy) * d[1]
                px, py = cx + d[0] * along, cy + d[1] * along
                painter.drawLine(QPointF(px - d[0] * reach, py - d[1] * reach),
                                 QPointF(px + d[0] * reach, py + d[1] * reach))
    painter.restore()


def swatch(painter: QPainter, rect: QRectF, category: str) -> None:
    path = QPainterPath()
    path.addRect(rect)
    fill_category(painter, path, category)
    painter.save()
    painter.setPen(QPen(INK, 0.5 * points(painter)))
    painter.setBrush(Qt.NoBrush)
    painter.drawRect(rect)
    painter.restore()


def paint_legend(painter: QPainter, rect: QRectF, categories=CATEGORIES, size_pt: float = 7.5) -> float:
    """Hatched swatches and names, flowed in rows across `rect`; returns the height used."""
    pt = points(painter)
    f = font(painter, size_pt)
    fm = QFontMetricsF(f)
    box = size_pt * 1.3 * pt
    x, y = rect.left(), rect.top()
    painter.save()
    painter.setFont(f)
    painter.setPen(INK)
    for category in categories:
        label = CATEGORY_LABELS[category]
        w = box + 3 * pt + fm.horizontalAdvance(label) + 10 * pt
        if x > rect.left() and x + w > rect.right():
            x, y = rect.left(), y + box + 3 * pt
        swatch(painter, QRectF(x, y, box, box), category)
        painter.setFont(f)
        painter.setPen(INK)
        painter.drawText(QRectF(x + box + 3 * pt, y, w, box), int(Qt.AlignLeft | Qt.AlignVCenter), label)
        x += w
    painter.restore()
    return y + box - rect.top()


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(ticks, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)


def paint_timeline(painter: QPainter, rect: QRectF, analysis, capacity_bytes: int | None = None,
                   capacity_label: str = "", decimal_units: bool = False, overhead_bytes: int = 0) -> None:
    """Live bytes over the step, stacked by category (hatched), with the phases, the peak and the
    device's capacity line; a capacity far above the step is named instead of squashing the plot.
    `overhead_bytes` (the fit's lines besides the tensors: workspaces, reserve, context) draws a
    second line where the capacity leaves room for tensors: the curve must stay under that one."""
    pt = points(painter)
    legend_h = paint_legend(painter, rect, listed_categories(analysis.request.strategy != "single"))
    small = font(painter, 7)
    fm = QFontMetricsF(small)
    timeline = analysis.timeline
    peak = analysis.peak.total_bytes
    show_capacity = capacity_bytes is not None and capacity_bytes <= 2.5 * max(peak, 1)
    top_bytes = max(peak, capacity_bytes if show_capacity else 0, 1) * 1.12
    unit = choose_unit(top_bytes, decimal_units)
    axis_w = fm.horizontalAdvance(f"000.0 {unit[0]}") + 4 * pt
    plot = QRectF(rect.left() + axis_w, rect.top() + legend_h + 8 * pt, rect.width() - axis_w,
                  rect.height() - legend_h - 8 * pt - 2.4 * fm.height())
    n = max(len(timeline) - 1, 1)

    def px(point) -> float:
        return plot.left() + plot.width() * point / n

    def py(nbytes) -> float:
        return plot.bottom() - plot.height() * nbytes / top_bytes

    painter.save()
    painter.setFont(small)
    for i, (phase, start, end) in enumerate(timeline.phase_spans):  # phases: faint bands, named on top
        band = QRectF(px(start), plot.top(), px(end) - px(start), plot.height())
        painter.fillRect(band, QColor("#f2f2f2") if i % 2 else QColor("#ffffff"))
        painter.setPen(GREY)
        if band.width() > fm.horizontalAdvance(phase) + 4 * pt:
            painter.drawText(band.adjusted(2 * pt, 1 * pt, 0, 0), int(Qt.AlignLeft | Qt.AlignTop), phase)
    step = _nice_step(top_bytes / unit[1])
    painter.setPen(QPen(QColor("#cccccc"), 0.4 * pt))
    value = 0.0
    while value * unit[1] <= top_bytes:  # horizontal grid and the y labels
        y = py(value * unit[1])
        painter.setPen(QPen(QColor("#d0d0d0"), 0.4 * pt))
        painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
        painter.setPen(INK)
        painter.drawText(QRectF(rect.left(), y - fm.height() / 2, axis_w - 3 * pt, fm.height()),
                         int(Qt.AlignRight | Qt.AlignVCenter), f"{value:g} {unit[0]}")
        value += step
    picks = timeline.peak_points(max_points=max(50, int(plot.width() / pt)))
    xs = [px(p) for p in picks]
    lower = np.zeros(len(picks), dtype=np.float64)
    for category in CATEGORIES:
        values = timeline.curves[category][picks].astype(np.float64)
        if not values.any():
            continue
        upper = lower + values
        path = QPainterPath()
        path.addPolygon(QPolygonF([QPointF(x, py(v)) for x, v in zip(xs, upper)]
                                  + [QPointF(x, py(v)) for x, v in zip(reversed(xs), lower[::-1])]))
        path.closeSubpath()
        fill_category(painter, path, category)
        lower = upper
    painter.setPen(QPen(INK, 0.7 * pt))
    painter.drawPolyline(QPolygonF([QPointF(x, py(v)) for x, v in zip(xs, lower)]))
    painter.setBrush(Qt.NoBrush)
    painter.drawRect(plot)
    # The peak: a mark and its value.
    x, y = px(analysis.peak.point), py(peak)
    painter.setBrush(INK)
    painter.drawPolygon(QPolygonF([QPointF(x, y - 1 * pt), QPointF(x - 3 * pt, y - 6 * pt),
                                   QPointF(x + 3 * pt, y - 6 * pt)]))
    label = f"peak {format_size(peak, decimal_units)}"
    lw = fm.horizontalAdvance(label) + 4 * pt
    lx = min(max(x - lw / 2, plot.left()), plot.right() - lw)
    painter.fillRect(QRectF(lx, y - 6 * pt - fm.height(), lw, fm.height()), QColor("#ffffff"))
    painter.drawText(QRectF(lx, y - 6 * pt - fm.height(), lw, fm.height()), int(Qt.AlignCenter), label)
    if capacity_bytes is not None:
        name = capacity_label or "capacity"
        if show_capacity:
            y = py(capacity_bytes)
            painter.setPen(QPen(INK, 1.2 * pt, Qt.DashLine))
            painter.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y))
            text = f"{name}: {format_size(capacity_bytes, decimal_units)}"
            room = capacity_bytes - overhead_bytes
            if overhead_bytes > 0 and room > 0:
                ry = py(room)
                painter.setPen(QPen(INK, 0.8 * pt, Qt.DotLine))
                painter.drawLine(QPointF(plot.left(), ry), QPointF(plot.right(), ry))
                note = (f"room for tensors: {format_size(room, decimal_units)} (after "
                        f"{format_size(overhead_bytes, decimal_units)} of workspaces, reserve, context)")
                nw = fm.horizontalAdvance(note) + 6 * pt
                below = ry + 1 * pt if ry - y < 2.2 * fm.height() else ry - fm.height() - 1 * pt
                painter.fillRect(QRectF(plot.right() - nw - 2 * pt, below, nw, fm.height()), QColor("#ffffff"))
                painter.setPen(INK)
                painter.drawText(QRectF(plot.right() - nw - 2 * pt, below, nw, fm.height()), int(Qt.AlignCenter), note)
        else:
            text = (f"{name}: {format_size(capacity_bytes, decimal_units)}, above the scale "
                    f"(the peak uses {100 * peak / capacity_bytes:.0f}%)")
            y = plot.top() + fm.height() + 3 * pt
        painter.setPen(INK)
        tw = fm.horizontalAdvance(text) + 6 * pt
        box = QRectF(plot.right() - tw - 2 * pt, y - fm.height() - 1 * pt, tw, fm.height())
        painter.fillRect(box, QColor("#ffffff"))
        painter.drawText(box, int(Qt.AlignCenter), text)
    painter.setPen(GREY)
    painter.drawText(QRectF(plot.left(), plot.bottom() + 2 * pt, plot.width(), 2.2 * fm.height()),
                     int(Qt.AlignHCenter | Qt.AlignTop),
                     f"step progress: {len(analysis.events):,} allocation and free events, in order")
    painter.restore()


def paint_breakdown(painter: QPainter, rect: QRectF, breakdown: dict, decimal_units: bool = False,
                    title: str = "At the peak, by category", categories=CATEGORIES) -> float:
    """A 100% bar of the peak's categories and a row per listed category (bytes, share); returns the height."""
    pt = points(painter)
    total = max(sum(breakdown.values()), 1)
    y = rect.top() + text_block(painter, rect, title, 9, True) + 4 * pt
    bar = QRectF(rect.left(), y, rect.width(), 12 * pt)
    x = bar.left()
    for category in CATEGORIES:
        w = bar.width() * breakdown[category] / total
        if w > 0:
            path = QPainterPath()
            path.addRect(QRectF(x, bar.top(), w, bar.height()))
            fill_category(painter, path, category)
            x += w
    painter.save()
    painter.setPen(QPen(INK, 0.5 * pt))
    painter.drawRect(bar)
    y = bar.bottom() + 5 * pt
    f = font(painter, 7.5)
    fm = QFontMetricsF(f)
    row_h = fm.height() + 3 * pt
    for category in categories:
        swatch(painter, QRectF(rect.left(), y + 1.5 * pt, row_h - 3 * pt, row_h - 3 * pt), category)
        painter.setFont(f)
        painter.setPen(INK)
        value = breakdown[category]
        cells = ((CATEGORY_LABELS[category], Qt.AlignLeft, 0.0, 0.55),
                 (format_size(value, decimal_units), Qt.AlignRight, 0.55, 0.28),
                 (f"{100 * value / total:.1f}%", Qt.AlignRight, 0.83, 0.17))
        inner = rect.width() - row_h
        for text, align, start, width in cells:
            painter.drawText(QRectF(rect.left() + row_h + start * inner, y, width * inner, row_h),
                             int(align | Qt.AlignVCenter), text)
        y += row_h
    painter.setPen(QPen(RULE, 0.5 * pt))
    painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
    painter.setPen(INK)
    painter.setFont(font(painter, 7.5, True))
    painter.drawText(QRectF(rect.left() + row_h, y, rect.width() - row_h, row_h), int(Qt.AlignLeft | Qt.AlignVCenter),
                     "Total (traced peak)")
    painter.drawText(QRectF(rect.left() + row_h, y, 0.83 * (rect.width() - row_h), row_h),
                     int(Qt.AlignRight | Qt.AlignVCenter), format_size(total, decimal_units))
    painter.restore()
    return y + row_h - rect.top()


def paint_mode_comparison(painter: QPainter, rect: QRectF, train, inference, note: str = "",
                          decimal_units: bool = False) -> float:
    """Training beside inference for one model and batch: the peak, its categories, the textbook
    figure; a mode that was not analysed says why. Returns the height used."""
    pt = points(painter)
    y = rect.top() + text_block(painter, rect, "Training vs inference", 9, True) + 4 * pt
    f, bold = font(painter, 7.5), font(painter, 7.5, True)
    row_h = QFontMetricsF(f).height() + 3 * pt
    rows = [("Traced peak", lambda a: a.peak.total_bytes, True)]
    distributed = any(a is not None and a.request.strategy != "single" for a in (train, inference))
    rows += [(CATEGORY_LABELS[c], lambda a, c=c: a.peak.breakdown[c], False) for c in listed_categories(distributed)]
    rows += [("Textbook estimate", lambda a: a.textbook.peak_bytes, False)]
    columns = (("Training", train), ("Inference", inference))
    label_w = rect.width() * 0.44
    col_w = (rect.width() - label_w) / 2
    painter.save()
    painter.setFont(bold)
    painter.setPen(INK)
    for i, (name, a) in enumerate(columns):
        head = name if a is None else f"{name} ({a.request.optimizer})" if a.request.mode == "train" else name
        painter.drawText(QRectF(rect.left() + label_w + i * col_w, y, col_w, row_h),
                         int(Qt.AlignRight | Qt.AlignVCenter), head)
    y += row_h
    painter.setPen(QPen(RULE, 0.5 * pt))
    painter.drawLine(QPointF(rect.left(), y), QPointF(rect.right(), y))
    for label, value, strong in rows:
        painter.setFont(bold if strong else f)
        painter.setPen(INK)
        painter.drawText(QRectF(rect.left(), y, label_w, row_h), int(Qt.AlignLeft | Qt.AlignVCenter), label)
        for i, (_name, a) in enumerate(columns):
            text = format_size(value(a), decimal_units) if a is not None else "—"
            painter.drawText(QRectF(rect.left() + label_w + i * col_w, y, col_w, row_h),
                             int(Qt.AlignRight | Qt.AlignVCenter), text)
        y += row_h
    painter.restore()
    if train is None or inference is None:
        missing = "training" if train is None else "inference"
        y += 3 * pt + text_block(painter, QRectF(rect.left(), y + 3 * pt, rect.width(), 0),
                                 f"Not in this report: {note or f'the {missing} step was not analysed'}.", 7.5,
                                 colour=GREY)
    elif train.peak.total_bytes and inference.peak.total_bytes:
        ratio = train.peak.total_bytes / inference.peak.total_bytes
        y += 3 * pt + text_block(painter, QRectF(rect.left(), y + 3 * pt, rect.width(), 0),
                                 f"A training step needs {ratio:.1f}x the memory of inference at batch "
                                 f"{train.request.batch}: gradients, optimizer state and the activations "
                                 "kept for backward.", 7.5, colour=GREY)
    return y - rect.top()


def paint_diagram(painter: QPainter, rect: QRectF, analysis) -> float:
    """The network as the window draws it (groups framed, block height and shade by output bytes),
    from the same Qt-free layout; collapsed to its groups, then scaled down, when it would not fit.
    Returns the height used."""
    pt = points(painter)
    theme = THEMES["high-contrast"]
    model = prepare_diagram(analysis)
    # Laid out in the window's own units (12/11-pixel text, its block sizes), then scaled so that
    # text prints at about 6 pt: the same geometry as on screen, only smaller.
    name_font, label_font = QFont(), QFont()
    name_font.setPixelSize(TEXT_PX["normal"])
    name_font.setBold(True)
    label_font.setPixelSize(TEXT_PX["small"])
    name_fm, label_fm = QFontMetricsF(name_font), QFontMetricsF(label_font)
    metrics = TextMetrics(lambda text, bold: (name_fm if bold else label_fm).horizontalAdvance(text),
                          max(name_fm.height(), label_fm.height()) + 1)
    scale = 6.0 * pt / TEXT_PX["normal"]
    layout = None
    every_group = set(model.group_names())
    for collapsed, compact in ((model.starts_collapsed, False), (model.starts_collapsed, True),
                               (every_group, False), (every_group, True)):
        layout = layout_diagram(model, collapsed, metrics, rect.width() / scale, compact=compact,
                                block_h_max=BLOCK_H_COMPACT if compact else BLOCK_H_MAX)
        if layout.height * scale <= rect.height():
            break
    scale = min(scale, rect.height() / max(layout.height, 1), rect.width() / max(layout.width, 1))
    painter.save()
    painter.translate(rect.topLeft())
    painter.scale(scale, scale)
    for frame in layout.frames:
        r = frame.rect
        # A checkpointed group's frame is heavier and in the badge's colour, as in the window.
        painter.setPen(QPen(QColor(theme.toggle_text), 2.0) if frame.checkpointed else QPen(QColor("#777777"), 1.0))
        painter.setBrush(QColor("#fafafa"))
        painter.drawRect(QRectF(r.x, r.y, r.w, r.h))
        painter.setFont(label_font)
        painter.setPen(INK)
        lr = frame.label_rect
        label = frame.label.replace(EXPANDED_MARK, "").replace(COLLAPSED_MARK, "").strip()  # no toggles on paper
        painter.drawText(QRectF(lr.x, lr.y, lr.w + 40, lr.h), int(Qt.AlignLeft | Qt.AlignVCenter), label)
    for box in layout.blocks:
        r = box.rect
        painter.setPen(QPen(INK, 1.0))
        painter.setBrush(QColor(ramp_colour(theme, box.fraction * 0.999)))
        painter.drawRect(QRectF(r.x, r.y, r.w, r.h))
        size = min(BADGE, r.h - 2, r.w / 3)
        if box.checkpointed and size >= 6:  # the window's round-arrow badge, same corner, same size rule
            paint_badge(painter, QRectF(r.x + r.w - size - 2, r.y + 1, size, size), theme)
        lr = box.label_rect
        for i, line in enumerate(box.lines):
            painter.setFont(name_font if i == 0 else label_font)
            painter.setPen(INK if i == 0 else GREY)
            painter.drawText(QRectF(lr.x - 4, lr.y + i * metrics.line_h, lr.w + 8, metrics.line_h),
                             int(Qt.AlignHCenter | Qt.AlignTop), line)
    painter.restore()
    return layout.height * scale


def paint_textbook(painter: QPainter, rect: QRectF, analysis, decimal_units: bool = False) -> float:
    """The article's estimate beside the traced peak, each as a bar split by what it counts, and
    why they differ. Returns the height used."""
    pt = points(painter)
    a, t = analysis, analysis.textbook
    y = rect.top() + text_block(painter, rect, "Textbook estimate vs traced peak", 9, True) + 4 * pt
    # The formula's feature maps are what the trace calls saved activations when training, and
    # short-lived temporaries in inference: hatched as the category they land in.
    maps = "activations" if a.request.mode == "train" else "temporaries"
    textbook_parts = {"parameters": t.parameters_bytes, "gradients": t.gradients_bytes,
                      "optimizer_state": t.optimizer_bytes, maps: t.feature_map_bytes}
    rows = (("Textbook", t.peak_bytes, textbook_parts), ("Traced", a.peak.total_bytes, a.peak.breakdown))
    top = max(t.peak_bytes, a.peak.total_bytes, 1)
    f = font(painter, 7.5, True)
    label_w = 52 * pt
    value_w = 60 * pt
    bar_w = rect.width() - label_w - value_w
    painter.save()
    for name, total, parts in rows:
        bar_h = 11 * pt
        x = rect.left() + label_w
        for category in CATEGORIES:
            w = bar_w * parts.get(category, 0) / top
            if w > 0:
                path = QPainterPath()
                path.addRect(QRectF(x, y, w, bar_h))
                fill_category(painter, path, category)
                x += w
        painter.setPen(QPen(INK, 0.5 * pt))
        painter.setBrush(Qt.NoBrush)
        painter.drawRect(QRectF(rect.left() + label_w, y, bar_w * total / top, bar_h))
        painter.setFont(f)
        painter.drawText(QRectF(rect.left(), y, label_w, bar_h), int(Qt.AlignLeft | Qt.AlignVCenter), name)
        painter.drawText(QRectF(rect.right() - value_w, y, value_w, bar_h), int(Qt.AlignRight | Qt.AlignVCenter),
                         format_size(total, decimal_units))
        y += bar_h + 4 * pt
    painter.restore()
    diff = a.peak.total_bytes - t.peak_bytes
    sign = "+" if diff >= 0 else "-"
    text = (f"Textbook: {t.formula} = {format_size(t.peak_bytes, decimal_units)}. Traced: "
            f"{format_size(a.peak.total_bytes, decimal_units)}, a difference of "
            f"{sign}{format_size(abs(diff), decimal_units)} "
            f"({100 * diff / max(t.peak_bytes, 1):+.0f}%): {reason_for_difference(a.request.mode, diff)}. "
            "Plan with the traced figure; the textbook figure shows where it comes from.")
    y += 2 * pt + text_block(painter, QRectF(rect.left(), y + 2 * pt, rect.width(), 0), text, 7.5)
    return y - rect.top()


def paint_fit(painter: QPainter, rect: QRectF, fit, decimal_units: bool = False) -> float:
    """The footprint on the device, line by line with each line's source, against the capacity."""
    pt = points(painter)
    y = rect.top() + text_block(painter, rect, f"Footprint on {fit.device.name}", 9, True) + 4 * pt
    f, bold = font(painter, 7.5), font(painter, 7.5, True)
    row_h = QFontMetricsF(f).height() + 2.5 * pt
    painter.save()
    painter.setPen(INK)
    for line, strong in [*((x, False) for x in fit.lines), (None, True)]:
        painter.setFont(bold if strong else f)
        label = line.label if line else "Total, compared with the capacity"
        nbytes = line.bytes if line else fit.total_bytes
        painter.drawText(QRectF(rect.left(), y, rect.width() * 0.55, row_h), int(Qt.AlignLeft | Qt.AlignVCenter), label)
        painter.drawText(QRectF(rect.left(), y, rect.width() * 0.72, row_h), int(Qt.AlignRight | Qt.AlignVCenter),
                         format_size(nbytes, decimal_units))
        painter.setPen(GREY)
        painter.drawText(QRectF(rect.left() + rect.width() * 0.75, y, rect.width() * 0.25, row_h),
                         int(Qt.AlignLeft | Qt.AlignVCenter), line.source if line else "")
        painter.setPen(INK)
        y += row_h
    painter.restore()
    y += text_block(painter, QRectF(rect.left(), y + 2 * pt, rect.width(), 0),
                    fit.describe() + "".join(f". Warning: {w}" for w in fit.warnings), 7.5, True) + 2 * pt
    return y - rect.top()


# ---- The report
def write_report_pdf(path: str, data, *, torch_version: str = "", page_size: str = "A4",
                     decimal_units: bool = False, now: datetime.datetime | None = None) -> int:
    """Write the two-page report of `data` (an `engine.report.ReportData`) to `path`; returns the
    page count. Raises OSError when the file cannot be written."""
    writer = QPdfWriter(path)
    writer.setResolution(RESOLUTION)
    writer.setPageLayout(QPageLayout(QPageSize(PAGE_SIZES[page_size]), QPageLayout.Portrait,
                                     QMarginsF(MARGIN_PT, MARGIN_PT, MARGIN_PT, MARGIN_PT), QPageLayout.Point))
    writer.setTitle(f"MemLens capacity plan: {data.analysis.model_name}")
    writer.setCreator(f"MemLens {__version__}")
    painter = QPainter()
    if not painter.begin(writer):
        raise OSError(f"cannot write {path}")
    page = QRectF(QPointF(0, 0), QSizeF(writer.pageLayout().paintRectPixels(RESOLUTION).size()))
    footer = _footer(data, torch_version, now)
    pages = (_page_one, _page_two)
    for i, paint in enumerate(pages):
        if i:
            writer.newPage()
        paint(painter, page, data, decimal_units)
        _paint_footer(painter, page, footer, i + 1, len(pages))
    painter.end()
    return len(pages)


def write_report_png(path: str, data, *, dpi: int = 150, torch_version: str = "", page_size: str = "A4",
                     decimal_units: bool = False, now: datetime.datetime | None = None) -> bool:
    """The report's first page (headline, timeline, breakdown) as a picture, e.g. for a slide."""
    size = QPageSize(PAGE_SIZES[page_size]).size(QPageSize.Inch)
    image = QImage(round(size.width() * dpi), round(size.height() * dpi), QImage.Format_RGB32)
    image.setDotsPerMeterX(round(dpi / 0.0254))
    image.setDotsPerMeterY(round(dpi / 0.0254))
    image.fill(QColor("#ffffff"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.Antialiasing)
    margin = MARGIN_PT * dpi / 72
    painter.translate(margin, margin)
    page = QRectF(0, 0, image.width() - 2 * margin, image.height() - 2 * margin)
    _page_one(painter, page, data, decimal_units)
    _paint_footer(painter, page, _footer(data, torch_version, now), 1, 2)
    painter.end()
    return image.save(path)


# ---- Private API
def _footer(data, torch_version: str, now) -> str:
    when = (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    return f"MemLens {__version__} · torch {torch_version or '?'} · {when}"


def _paint_footer(painter, page: QRectF, text: str, number: int, count: int) -> None:
    pt = points(painter)
    y = page.bottom() - 9 * pt
    painter.save()
    painter.setPen(QPen(RULE, 0.5 * pt))
    painter.drawLine(QPointF(page.left(), y - 2 * pt), QPointF(page.right(), y - 2 * pt))
    painter.setFont(font(painter, 7))
    painter.setPen(GREY)
    painter.drawText(QRectF(page.left(), y, page.width(), 9 * pt), int(Qt.AlignLeft | Qt.AlignVCenter), text)
    painter.drawText(QRectF(page.left(), y, page.width(), 9 * pt), int(Qt.AlignRight | Qt.AlignVCenter),
                     f"page {number} of {count}")
    painter.restore()


def _configuration(a) -> str:
    r = a.request
    step = (f"training step, {r.optimizer}{', first step (no optimizer state yet)' if r.first_step else ''}"
            if r.mode == "train" else "inference (forward pass, no gradients)")
    where = a.source if r.model == a.model_name else f"{a.source}: {r.model}"
    return (f"{a.model_name} ({where}) · {a.parameters:,} parameters ({format_count(a.parameters)}) · "
            f"input {'×'.join(map(str, a.input_shape))} (batch {r.batch}) · "
            f"{r.dtype}{' with AMP' if r.amp else ''} · "
            f"{step} · traced with {r.device.upper()} allocator rules")


def _headline_cells(data, decimal_units: bool) -> list[tuple[str, str, str]]:
    a, fit, largest = data.analysis, data.fit, data.largest
    size = lambda n: format_size(n, decimal_units)  # noqa: E731
    cells = [("Traced peak", size(a.peak.total_bytes),
              f"{a.peak.total_bytes:,} bytes of tensors, in the {a.peak.phase} at '{a.peak.module}'")]
    if fit is None:
        cells.append(("Fits?", "no device", "no device chosen: " + (data.largest_note.split(": ", 1)[-1]
                                                                    or "choose a GPU or a capacity")))
        cells.append(("Headroom", "—", "needs a device"))
    else:
        cells.append((f"On {fit.device.name}", fit.state.upper(),
                      f"footprint {size(fit.total_bytes)} of {size(fit.capacity_bytes)} "
                      f"(tensors + workspaces + reserve + context)"))
        over = fit.headroom_bytes < 0
        cells.append(("Headroom", f"{size(abs(fit.headroom_bytes))} {'over' if over else 'free'}",
                      f"{abs(fit.headroom_pct):.1f}% of the capacity {'missing' if over else 'left'}"
                      "; tight below 10%"))
    if largest is not None:
        size = lambda n: format_size(n, decimal_units, 2)  # noqa: E731 (the two sides of the limit differ little)
        more = (f"; {largest.value_text(largest.value + 1)} needs {size(largest.next_peak_bytes)}"
                if largest.next_peak_bytes is not None else "; still fits at the search limit")
        steps = f" (micro-batch {largest.value} × {largest.accumulation_steps})" if largest.parameter == "micro_batch" else ""
        cells.append(("Largest batch", f"{largest.batch}{steps}", f"needs {size(largest.peak_bytes)}{more}"))
    else:
        cells.append(("Largest batch", "—", "needs a device" if fit is None else data.largest_note or "not searched"))
    return cells


def _page_one(painter, page: QRectF, data, decimal_units: bool) -> None:
    pt = points(painter)
    a = data.analysis
    y = page.top()
    y += text_block(painter, QRectF(page.left(), y, page.width(), 0), f"Capacity plan: {a.model_name}", 17, True)
    y += 2 * pt + text_block(painter, QRectF(page.left(), y + 2 * pt, page.width(), 0), _configuration(a), 8.5,
                             colour=GREY)
    y += 10 * pt
    cells = _headline_cells(data, decimal_units)
    gap = 6 * pt
    w = (page.width() - gap * (len(cells) - 1)) / len(cells)
    heights = []
    for i, (title, value, detail) in enumerate(cells):
        r = QRectF(page.left() + i * (w + gap) + 6 * pt, y + 5 * pt, w - 12 * pt, 0)
        h = text_block(painter, r, title.upper(), 7, True, GREY)
        h += text_block(painter, QRectF(r.x(), r.y() + h + 1 * pt, r.width(), 0), value, 15, True) + 1 * pt
        h += text_block(painter, QRectF(r.x(), r.y() + h + 2 * pt, r.width(), 0), detail, 7, colour=GREY) + 2 * pt
        heights.append(h + 10 * pt)
    painter.save()
    painter.setPen(QPen(INK, 0.6 * pt))
    painter.setBrush(Qt.NoBrush)
    for i in range(len(cells)):
        painter.drawRect(QRectF(page.left() + i * (w + gap), y, w, max(heights)))
    painter.restore()
    y += max(heights) + 14 * pt
    step = "training step" if a.request.mode == "train" else "inference pass"
    y += text_block(painter, QRectF(page.left(), y, page.width(), 0),
                    f"Memory over one {step}, stacked by category", 9, True) + 4 * pt
    capacity = data.fit.capacity_bytes if data.fit is not None else None
    name = data.fit.device.name if data.fit is not None else ""
    height = 290 * pt
    overhead = data.fit.total_bytes - a.peak.total_bytes if data.fit is not None else 0
    paint_timeline(painter, QRectF(page.left(), y, page.width(), height), a, capacity, name, decimal_units, overhead)
    if data.fit is None:
        text_block(painter, QRectF(page.left(), y + height + 1 * pt, page.width(), 0),
                   "No capacity line: no device was chosen.", 7, colour=GREY)
    y += height + 18 * pt
    half = (page.width() - 20 * pt) / 2
    paint_breakdown(painter, QRectF(page.left(), y, half, 0), a.peak.breakdown, decimal_units,
                    categories=listed_categories(a.request.strategy != "single"))
    train, inference = (a, data.companion) if a.request.mode == "train" else (data.companion, a)
    paint_mode_comparison(painter, QRectF(page.left() + half + 20 * pt, y, half, 0), train, inference,
                          data.companion_note, decimal_units)


def _page_two(painter, page: QRectF, data, decimal_units: bool) -> None:
    pt = points(painter)
    a = data.analysis
    y = page.top()
    y += text_block(painter, QRectF(page.left(), y, page.width(), 0), f"The network: {a.model_name}, "
                    f"{len(a.layers)} layers", 9, True) + 2 * pt
    y += text_block(painter, QRectF(page.left(), y, page.width(), 0),
                    "One block per layer in execution order, framed by module; height and shade grow with the "
                    "layer's output bytes; each is labelled with its name and output bytes (and its shape and "
                    "parameters when there is room)." + (
                        " A round-arrow badge and a heavier frame mark checkpointed layers: their activations "
                        "are recomputed in the backward instead of kept." if checkpointed_layers(a) else ""),
                    7, colour=GREY) + 6 * pt
    diagram_h = 320 * pt
    y += paint_diagram(painter, QRectF(page.left(), y, page.width(), diagram_h), a) + 16 * pt
    y += paint_textbook(painter, QRectF(page.left(), y, page.width(), 0), a, decimal_units) + 14 * pt
    full = QRectF(page.left(), y, page.width(), 0)
    if data.fit is not None:
        y += paint_fit(painter, full, data.fit, decimal_units) + 12 * pt
    else:
        y += text_block(painter, full, "Footprint on a device", 9, True) + 3 * pt
        y += text_block(painter, QRectF(page.left(), y, page.width(), 0),
                        f"Not in this report: {data.largest_note}.", 7.5, colour=GREY) + 12 * pt
    y += text_block(painter, QRectF(page.left(), y, page.width(), 0), "Not included in the traced figure",
                    9, True) + 3 * pt
    lines = [f"• {n.label}{': ' + format_size(n.bytes, decimal_units) if n.bytes else ''}. {n.note}"
             for n in a.not_modelled] or ["• Nothing known is left out."]
    lines += [f"• Warning: {w}" for w in a.warnings]
    for line in lines:
        y += text_block(painter, QRectF(page.left(), y, page.width(), 0), line, 7) + 2 * pt
    y += 12 * pt
    y += text_block(painter, QRectF(page.left(), y, page.width(), 0), "Reproduce this report", 9, True) + 3 * pt
    _command_block(painter, QRectF(page.left(), y, page.width(), 0), data.command or "(no command recorded)")


def _command_block(painter, rect: QRectF, command: str) -> float:
    """The command in a fixed-width font, wrapped only between arguments: a line break inside
    '--device' would not survive copying it out of the PDF."""
    f = font(painter, 7.5)
    f.setFamily("monospace")
    f.setStyleHint(QFont.Monospace)
    fm = QFontMetricsF(f)
    lines, line = [], ""
    for word in command.split(" "):
        if line and fm.horizontalAdvance(line + " " + word) > rect.width():
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    painter.save()
    painter.setFont(f)
    painter.setPen(INK)
    for i, text in enumerate(lines):
        painter.drawText(QPointF(rect.left(), rect.top() + fm.ascent() + i * fm.height()), text)
    painter.restore()
    return len(lines) * fm.height()
