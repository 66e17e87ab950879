"""The network diagram's scene items: blocks, collapsed-group summaries, group frames and their
▾/▸ toggles, each drawn from a rectangle `gui.diagram_layout` computed.

Blocks are filled from the memory ramp (output bytes), never from a category colour; the layer
kind is a small glyph in the block's corner. Selected and previewed marks use the theme's
highlight hue, which no category uses. A checkpointed layer or group carries a round-arrow badge
in its other corner (painted, not a font glyph: not every font has ↻), and a checkpointed group's
frame is drawn heavier in the toggle colour, its label saying so.
"""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsPathItem, QGraphicsRectItem, QGraphicsSimpleTextItem, QStyleOptionGraphicsItem

from engine.lever_fields import RECOMPUTED_NOTE
from engine.units import format_count, format_size

from .diagram_layout import COLLAPSED_MARK, BlockBox, FrameBox, LayerGroup, Rect
from .style import Theme, ramp_colour

STACK_OFFSET = 3.0  # summary blocks are drawn as a small stack of cards
GLYPH = 10.0  # the kind glyph's size, scene pixels
BADGE = 14.0  # the checkpointed badge's size, scene pixels


@dataclass(frozen=True)
class ItemStyle:
    """What every item of one scene draws with (built by the view from its Display)."""

    theme: Theme
    name_font: QFont
    label_font: QFont
    line_h: float
    decimal_units: bool


def qrect(rect: Rect) -> QRectF:
    return QRectF(rect.x, rect.y, rect.w, rect.h)


def kind_glyph(kind: str, box: QRectF) -> QPainterPath:
    """A small shape per layer kind, inside `box`: conv ■, pool ▼, norm ◆, activation ●,
    linear ▬, attention ✦, embedding ⬢, other ○."""
    path = QPainterPath()
    x, y, w, h = box.x(), box.y(), box.width(), box.height()
    cx, cy = box.center().x(), box.center().y()

    def poly(points):
        path.addPolygon(QPolygonF([QPointF(x + px * w, y + py * h) for px, py in points]))
        path.closeSubpath()

    if kind == "conv":
        path.addRect(box.adjusted(1, 1, -1, -1))
    elif kind == "pool":
        poly([(0, 0.1), (1, 0.1), (0.5, 0.95)])
    elif kind == "norm":
        poly([(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)])
    elif kind == "activation":
        path.addEllipse(box.adjusted(1, 1, -1, -1))
    elif kind == "linear":
        path.addRect(QRectF(x, cy - h * 0.2, w, h * 0.4))
    elif kind == "attention":
        poly([(0.5, 0), (0.62, 0.38), (1, 0.5), (0.62, 0.62), (0.5, 1), (0.38, 0.62), (0, 0.5), (0.38, 0.38)])
    elif kind == "embedding":
        poly([(0.25, 0.05), (0.75, 0.05), (1, 0.5), (0.75, 0.95), (0.25, 0.95), (0, 0.5)])
    else:
        path.addEllipse(QPointF(cx, cy), w * 0.45, h * 0.45)
        path.addEllipse(QPointF(cx, cy), w * 0.2, h * 0.2)
    return path


def recompute_badge(box: QRectF) -> QPainterPath:
    """A round arrow inside `box`: three quarters of a circle and an arrowhead (recomputed)."""
    path = QPainterPath()
    m = box.width() * 0.26
    inner = box.adjusted(m, m, -m, -m)
    path.arcMoveTo(inner, 90)
    path.arcTo(inner, 90, 270)  # counter-clockwise from 12 o'clock round to 3 o'clock
    tip = QPointF(inner.right(), inner.center().y())
    a = inner.width() * 0.38
    path.moveTo(tip.x() - a, tip.y() - a * 0.7)
    path.lineTo(tip)
    path.lineTo(tip.x() + a * 0.7, tip.y() - a)
    return path


def paint_badge(painter: QPainter, box: QRectF, theme: Theme) -> None:
    """The checkpointed badge: a round arrow in the background colour on a disc of the toggle colour."""
    painter.setPen(QPen(QColor(theme.background), 1.0))
    painter.setBrush(QBrush(QColor(theme.toggle_text)))
    painter.drawEllipse(box)
    painter.setPen(QPen(QColor(theme.background), max(1.4, box.width() / 9), Qt.PenStyle.SolidLine,
                        Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawPath(recompute_badge(box))


def checkpointed_tooltip(module: str) -> str:
    """The tooltip line of a checkpointed layer or group."""
    return f"{RECOMPUTED_NOTE} ({module})" if module else ""


def layer_tooltip(layer, decimal_units: bool = False) -> str:
    """Every number the table has for this layer."""
    def size(n):
        return format_size(n, decimal_units)
    return "\n".join((
        layer.name,
        f"type: {layer.type} ({layer.kind})",
        f"output shape: {'×'.join(str(d) for d in layer.output_shape) or 'scalar'}",
        f"params: {format_count(layer.params)}",
        f"param bytes: {size(layer.param_bytes)}",
        f"output bytes: {size(layer.output_bytes)}",
        f"saved for backward: {size(layer.saved_bytes)}",
        f"textbook bytes: {size(layer.textbook_bytes)}",
    ))


def summary_tooltip(group: LayerGroup, decimal_units: bool = False) -> str:
    n = len(group.layers)
    return "\n".join((
        f"{group.name} (collapsed)",
        f"layers: {n}",
        f"params: {format_count(group.params)}",
        f"largest output: {format_size(group.max_output_bytes, decimal_units)}",
        f"click {COLLAPSED_MARK} or double-click to expand",
    ))


class _DiagramBlock(QGraphicsRectItem):
    """A block (its `rect()`) with label lines painted underneath, hover/preview/selection marks."""

    def __init__(self, box: BlockBox, style: ItemStyle, tooltip: str):
        super().__init__(qrect(box.rect))
        self.box = box
        self._style = style
        self._hovered = self._selected = self._previewed = False
        self._label_rect = qrect(box.label_rect)
        self._bounds = self.rect().united(self._label_rect).adjusted(-4, -4 - STACK_OFFSET * 2,
                                                                     4 + STACK_OFFSET * 2, 4)
        self.setBrush(QBrush(QColor(ramp_colour(style.theme, box.fraction))))
        self._update_pen()
        self.setToolTip("\n".join(t for t in (tooltip, checkpointed_tooltip(box.checkpointed)) if t))
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def label_lines(self) -> list[str]:
        """The label text under the block, line by line, as painted (never elided)."""
        return list(self.box.lines)

    def label_rect(self) -> QRectF:
        return QRectF(self._label_rect)

    def is_checkpointed(self) -> bool:
        """True when this block's forward runs checkpointed (its badge is drawn)."""
        return bool(self.box.checkpointed)

    def badge_rect(self) -> QRectF | None:
        """Where the checkpointed badge is drawn (the block's top-right corner), None without one."""
        rect = self.rect()
        size = min(BADGE, rect.height() - 2, rect.width() / 3)
        if not self.box.checkpointed or size < 6:
            return None
        return QRectF(rect.right() - size - 2, rect.top() + 1, size, size)

    # ---- state
    def is_highlighted(self) -> bool:
        """True while this block shows the selected layer."""
        return self._selected

    def is_previewed(self) -> bool:
        """True while this block shows the previewed (hovered or scrubbed) layer."""
        return self._previewed

    def set_highlighted(self, on: bool) -> None:
        self._selected = on
        self.setZValue(2 if on else 1 if self._previewed else 0)
        self._update_pen()

    def set_previewed(self, on: bool) -> None:
        self._previewed = on
        self.setZValue(2 if self._selected else 1 if on else 0)
        self._update_pen()

    def _update_pen(self) -> None:
        theme = self._style.theme
        lw = theme.line_width
        if self._selected:
            pen = QPen(QColor(theme.selected), 3.0 * lw)
        elif self._previewed:
            pen = QPen(QColor(theme.previewed), 2.0 * lw, Qt.PenStyle.DashLine)
        elif self._hovered:
            pen = QPen(QColor(theme.text), 2.0 * lw)
        else:
            pen = QPen(QColor(theme.axis), lw)
        self.setPen(pen)
        self.update()

    # ---- QGraphicsItem
    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt name)
        return self._bounds

    def shape(self) -> QPainterPath:
        path = QPainterPath()
        path.addRect(self.rect().united(self._label_rect))
        return path

    def hoverEnterEvent(self, event) -> None:  # noqa: N802
        self._hovered = True
        self._update_pen()
        super().hoverEnterEvent(event)

    def hoverLeaveEvent(self, event) -> None:  # noqa: N802
        self._hovered = False
        self._update_pen()
        super().hoverLeaveEvent(event)

    def _paint_block(self, painter: QPainter) -> None:
        painter.drawRoundedRect(self.rect(), 3, 3)

    def _paint_glyph(self, painter: QPainter) -> None:
        pass

    def _paint_badge(self, painter: QPainter) -> None:
        box = self.badge_rect()
        if box is None:
            return
        paint_badge(painter, box, self._style.theme)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        theme = self._style.theme
        if self._selected or self._previewed:
            fill = theme.selected_fill if self._selected else theme.previewed_fill
            painter.fillRect(self.rect().united(self._label_rect).adjusted(-3, -3, 3, 3), QColor(*fill))
        painter.setPen(self.pen())
        painter.setBrush(self.brush())
        self._paint_block(painter)
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if lod < 0.35:  # too small to read: skip the text so zoomed-out views stay fast
            return
        self._paint_glyph(painter)
        self._paint_badge(painter)
        y = self._label_rect.top()
        line_h = self._style.line_h
        for i, text in enumerate(self.box.lines):
            painter.setFont(self._style.name_font if i == 0 else self._style.label_font)
            painter.setPen(QColor(theme.text if i == 0 else theme.muted_text))
            painter.drawText(QRectF(self._label_rect.left(), y, self._label_rect.width(), line_h),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, text)
            y += line_h


class LayerBlockItem(_DiagramBlock):
    """One layer: filled by its output bytes, its kind as a corner glyph, labelled underneath."""

    def __init__(self, box: BlockBox, style: ItemStyle):
        super().__init__(box, style, layer_tooltip(box.layer, style.decimal_units))
        self.layer = box.layer
        self.layer_name = box.name

    def _paint_glyph(self, painter: QPainter) -> None:
        rect = self.rect()
        size = min(GLYPH, rect.height() - 4)
        if size < 6:
            return
        box = QRectF(rect.left() + 3, rect.top() + 2, size, size)
        theme = self._style.theme
        painter.setPen(QPen(QColor(theme.text), 1.0))
        painter.setBrush(QBrush(QColor(theme.background)))
        painter.drawPath(kind_glyph(self.layer.kind, box))


class GroupSummaryItem(_DiagramBlock):
    """A collapsed group: one block drawn as a stack of cards, labelled with its size and params."""

    def __init__(self, box: BlockBox, style: ItemStyle):
        super().__init__(box, style, summary_tooltip(box.group, style.decimal_units))
        self.group = box.group
        self.group_name = box.name

    def _paint_block(self, painter: QPainter) -> None:
        for i in (2, 1):  # two cards peeking out behind the front one
            painter.drawRoundedRect(self.rect().translated(STACK_OFFSET * i, -STACK_OFFSET * i), 3, 3)
        super()._paint_block(painter)


class GroupFrameItem(QGraphicsPathItem):
    """The rounded frame behind one row's worth of a group's blocks."""

    def __init__(self, frame: FrameBox, theme: Theme):
        path = QPainterPath()
        path.addRoundedRect(qrect(frame.rect), 8, 8)
        super().__init__(path)
        self.group_name = frame.group
        self.checkpointed = frame.checkpointed
        style = Qt.PenStyle.DashLine if frame.collapsed else Qt.PenStyle.SolidLine
        if frame.checkpointed:  # heavier, in the toggle colour: the whole group is recomputed
            self.setPen(QPen(QColor(theme.toggle_text), 2.0 * theme.line_width, style))
        else:
            self.setPen(QPen(QColor(theme.frame), theme.line_width, style))
        self.setBrush(QBrush(QColor(theme.frame_fill)))
        self.setZValue(-1)
        tip = f"{frame.group} — double-click to {'expand' if frame.collapsed else 'collapse'}"
        self.setToolTip("\n".join(t for t in (tip, checkpointed_tooltip(frame.checkpointed)) if t))


class GroupToggleItem(QGraphicsSimpleTextItem):
    """The group's full name above its frame, '▾ name' or '▸ name'; clicking it collapses or expands."""

    def __init__(self, frame: FrameBox, style: ItemStyle):
        super().__init__(frame.label)
        self.group_name = frame.group
        self.setFont(style.label_font)
        self.setBrush(QBrush(QColor(style.theme.toggle_text)))
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setPos(frame.label_rect.x, frame.label_rect.y)
        tip = f"{frame.group} — click to {'expand' if frame.collapsed else 'collapse'}"
        self.setToolTip("\n".join(t for t in (tip, checkpointed_tooltip(frame.checkpointed)) if t))
