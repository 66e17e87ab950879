"""The network diagram: one coloured block per layer, in execution order, grouped by parent module.

Block height follows log10 of the layer's output bytes, colour follows the layer kind. Every
number shown is read from the `Analysis`; nothing here computes memory.
"""
from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QGraphicsPathItem,
    QGraphicsRectItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QGraphicsView,
    QStyleOptionGraphicsItem,
)

from engine.categories import LAYER_KINDS
from engine.units import format_bytes, format_count

KIND_COLOURS = {
    "conv": "#4C78A8",
    "pool": "#72B7B2",
    "norm": "#B279A2",
    "activation": "#F58518",
    "linear": "#E45756",
    "attention": "#54A24B",
    "embedding": "#9D755D",
    "other": "#BAB0AC",
}
assert set(KIND_COLOURS) == set(LAYER_KINDS), "KIND_COLOURS must cover engine.categories.LAYER_KINDS"

# Scene geometry, in scene pixels.
BLOCK_W = 90.0
BLOCK_GAP = 8.0  # between blocks of one group
GROUP_GAP = 22.0  # between groups
GROUP_PAD = 7.0  # frame padding around its blocks
BLOCK_H_MIN = 14.0
BLOCK_H_MAX = 110.0
ROW_WIDTH = 1500.0  # wrap into a new row past this width (wider for very long networks)
TARGET_ASPECT = 1.6  # long networks wrap into rows of about this width:height overall
GROUP_LABEL_H = 18.0
LABEL_LINE_H = 14.0
LABEL_LINES = 4
ROW_GAP = 26.0
LEGEND_H = 34.0

_PEN_NORMAL = QPen(QColor("#3A3F47"), 1.0)
_PEN_HOVER = QPen(QColor("#1F2329"), 2.0)
_PEN_SELECTED = QPen(QColor("#111111"), 3.5)
_TEXT_COLOUR = QColor("#22262C")
_MUTED_TEXT = QColor("#5A616B")
_FRAME_PEN = QPen(QColor("#C9CED6"), 1.0)
_FRAME_BRUSH = QBrush(QColor("#F2F4F7"))
_SELECTED_BG = QColor(255, 221, 87, 110)


def _short_name(name: str) -> str:
    """Last dotted component: 'layer1.0.conv1' -> 'conv1'."""
    return name.rsplit(".", 1)[-1]


def _shape_text(shape: tuple[int, ...]) -> str:
    """Output shape without the batch dimension: (2, 64, 112, 112) -> '64×112×112'."""
    dims = shape[1:] if len(shape) > 1 else shape
    return "×".join(str(d) for d in dims) if dims else "scalar"


def _group_key(layer) -> str:
    """The parent module a block is framed under ('' for top-level layers)."""
    return layer.parent.split("#", 1)[0]


def _tooltip(layer) -> str:
    """Every number the table has for this layer, formatted with engine.units."""
    return "\n".join((
        layer.name,
        f"type: {layer.type} ({layer.kind})",
        f"output shape: {'×'.join(str(d) for d in layer.output_shape) or 'scalar'}",
        f"params: {format_count(layer.params)}",
        f"param bytes: {format_bytes(layer.param_bytes)}",
        f"output bytes: {format_bytes(layer.output_bytes)}",
        f"saved for backward: {format_bytes(layer.saved_bytes)}",
        f"textbook bytes: {format_bytes(layer.textbook_bytes)}",
    ))


class LayerBlockItem(QGraphicsRectItem):
    """One layer: a coloured block (its `rect()`) with its labels painted underneath."""

    def __init__(self, layer, rect: QRectF, label_font: QFont, name_font: QFont):
        super().__init__(rect)
        self.layer = layer
        self.layer_name = layer.name
        self._hovered = False
        self._selected = False
        self._name_font = name_font
        self._label_font = label_font
        self._lines = self._label_lines(layer, name_font, label_font)
        self._label_rect = QRectF(rect.left() - BLOCK_GAP / 2 + 1, rect.bottom() + 3,
                                  BLOCK_W + BLOCK_GAP - 2, LABEL_LINE_H * LABEL_LINES)
        self._bounds = rect.united(self._label_rect).adjusted(-3, -3, 3, 3)
        self.setBrush(QBrush(QColor(KIND_COLOURS.get(layer.kind, KIND_COLOURS["other"]))))
        self.setPen(_PEN_NORMAL)
        self.setToolTip(_tooltip(layer))
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def _label_lines(self, layer, name_font: QFont, label_font: QFont) -> list[tuple[str, bool]]:
        """(text, is_name) for each label line, elided to the label width."""
        width = BLOCK_W + BLOCK_GAP - 4
        name_fm, label_fm = QFontMetricsF(name_font), QFontMetricsF(label_font)
        raw = [
            (_short_name(layer.name), True),
            (_shape_text(layer.output_shape), False),
            (f"{format_count(layer.params)} params" if layer.params else "no params", False),
            (format_bytes(layer.output_bytes), False),
        ]
        out = []
        for text, is_name in raw:
            fm = name_fm if is_name else label_fm
            out.append((fm.elidedText(text, Qt.TextElideMode.ElideMiddle, width), is_name))
        return out

    # --- state -----------------------------------------------------------------------------
    def is_highlighted(self) -> bool:
        """True while this block is the selected layer."""
        return self._selected

    def set_highlighted(self, on: bool) -> None:
        """Show or clear the selection outline."""
        self._selected = on
        self.setZValue(2 if on else 0)
        self._update_pen()

    def _update_pen(self) -> None:
        self.setPen(_PEN_SELECTED if self._selected else _PEN_HOVER if self._hovered else _PEN_NORMAL)

    # --- QGraphicsItem ---------------------------------------------------------------------
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

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if self._selected:
            painter.fillRect(self.rect().united(self._label_rect).adjusted(-2, -2, 2, 2), _SELECTED_BG)
        painter.setPen(self.pen())
        painter.setBrush(self.brush())
        painter.drawRoundedRect(self.rect(), 3, 3)
        lod = QStyleOptionGraphicsItem.levelOfDetailFromTransform(painter.worldTransform())
        if lod < 0.35:  # too small to read: skip the text so zoomed-out views stay fast
            return
        y = self._label_rect.top()
        for text, is_name in self._lines:
            painter.setFont(self._name_font if is_name else self._label_font)
            painter.setPen(_TEXT_COLOUR if is_name else _MUTED_TEXT)
            painter.drawText(QRectF(self._label_rect.left(), y, self._label_rect.width(), LABEL_LINE_H),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, text)
            y += LABEL_LINE_H


class NetworkDiagramWidget(QGraphicsView):
    """Layer-by-layer diagram of one analysis; click a block to select its layer."""

    sig_layer_selected = Signal(str)
    """Emitted with the layer name when the user clicks a block."""
    sig_layer_hovered = Signal(str)
    """The layer under the mouse changed (empty string: none)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._blocks: dict[str, LayerBlockItem] = {}
        self._selected: str | None = None
        self._press_pos = None
        self._hovered: str = ""
        self._fit_mode: str | None = "width"  # re-applied on resize until the user zooms
        self._name_font = QFont(self.font())
        self._name_font.setPointSizeF(max(9.0, self._name_font.pointSizeF()))
        self._name_font.setBold(True)
        self._label_font = QFont(self.font())
        self._label_font.setPointSizeF(max(8.5, self._label_font.pointSizeF() - 0.5))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        self.setCacheMode(QGraphicsView.CacheModeFlag.CacheBackground)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setBackgroundBrush(QBrush(QColor("#FFFFFF")))
        self.setMinimumSize(200, 150)

    # --- public API --------------------------------------------------------------------------
    def set_analysis(self, analysis) -> None:
        """Redraw the diagram from scratch for `analysis`."""
        self._scene.clear()
        self._blocks = {}
        self._selected = None
        layers = list(analysis.layers) if analysis is not None else []
        if not layers:
            self._scene.addSimpleText("No layers to show").setFont(self._name_font)
            self._scene.setSceneRect(self._scene.itemsBoundingRect().adjusted(-20, -20, 20, 20))
            return
        self._add_legend(analysis)
        self._layout(layers)
        self._scene.setSceneRect(self._scene.itemsBoundingRect().adjusted(-20, -20, 20, 20))
        self._fit_mode = "width"
        self._apply_fit()

    def blocks(self) -> list[LayerBlockItem]:
        """All layer blocks, in execution order."""
        return list(self._blocks.values())

    def block(self, name: str) -> LayerBlockItem | None:
        """The block of the layer called `name`, if any."""
        return self._blocks.get(name)

    def selected_layer(self) -> str | None:
        """Name of the highlighted layer, or None."""
        return self._selected

    def select_layer(self, name: str) -> None:
        """Highlight `name` (no signal) and scroll it into view; unknown names clear the highlight."""
        self._highlight(name)
        block = self._blocks.get(name)
        if block is not None:
            self.ensureVisible(block.sceneBoundingRect(), 40, 40)

    def fit_to_window(self) -> None:
        """Zoom so the whole diagram fits the viewport."""
        self._fit_mode = "all"
        self._apply_fit()

    # --- layout ------------------------------------------------------------------------------
    def _block_height(self, nbytes: int, lo: float, hi: float) -> float:
        value = math.log10(max(nbytes, 1))
        if hi - lo < 1e-9:
            return BLOCK_H_MAX
        frac = min(max((value - lo) / (hi - lo), 0.0), 1.0)
        return BLOCK_H_MIN + frac * (BLOCK_H_MAX - BLOCK_H_MIN)

    def _add_legend(self, analysis) -> None:
        """A row of kind swatches and a one-line caption above the diagram."""
        present = {layer.kind for layer in analysis.layers}
        x = 0.0
        caption = self._scene.addSimpleText(
            f"{analysis.model_name} — {len(analysis.layers)} layers · block height ∝ log10(output bytes)")
        caption.setFont(self._name_font)
        caption.setBrush(QBrush(_TEXT_COLOUR))
        caption.setPos(0, -LEGEND_H - 20)
        for kind in LAYER_KINDS:
            if kind not in present:
                continue
            swatch = self._scene.addRect(QRectF(x, -LEGEND_H + 4, 14, 14), _PEN_NORMAL,
                                         QBrush(QColor(KIND_COLOURS[kind])))
            swatch.setToolTip(kind)
            label = self._scene.addSimpleText(kind)
            label.setFont(self._label_font)
            label.setBrush(QBrush(_TEXT_COLOUR))
            label.setPos(x + 19, -LEGEND_H + 11 - label.boundingRect().height() / 2)
            x += 19 + label.boundingRect().width() + 16

    def _layout(self, layers) -> None:
        """Flow consecutive same-parent runs left to right, wrapping rows at ROW_WIDTH."""
        logs = [math.log10(max(layer.output_bytes, 1)) for layer in layers]
        hi = max(logs)
        lo = min(min(logs), hi - 1.0)
        runs: list[tuple[str, list]] = []
        for layer in layers:
            key = _group_key(layer)
            if runs and runs[-1][0] == key:
                runs[-1][1].append(layer)
            else:
                runs.append((key, [layer]))

        row_h = GROUP_LABEL_H + GROUP_PAD + BLOCK_H_MAX + 3 + LABEL_LINE_H * LABEL_LINES + GROUP_PAD + ROW_GAP
        step = BLOCK_W + BLOCK_GAP
        length = len(layers) * step + len(runs) * (GROUP_GAP + 2 * GROUP_PAD)
        row_width = max(ROW_WIDTH, math.sqrt(length * row_h * TARGET_ASPECT))
        per_row = max(1, int((row_width + BLOCK_GAP) // step))
        row, x = 0, 0.0
        for key, members in runs:
            pad = GROUP_PAD if key else 0.0
            start = 0
            while start < len(members):
                room = int((row_width - x - 2 * pad + BLOCK_GAP) // step)
                if room < min(len(members) - start, per_row) and x > 0:
                    row, x = row + 1, 0.0  # the run would not fit: start it on a new row
                    continue
                chunk = members[start:start + max(room, 1)]
                top = row * row_h
                baseline = top + GROUP_LABEL_H + GROUP_PAD + BLOCK_H_MAX
                bx = x + pad
                for layer in chunk:
                    h = self._block_height(layer.output_bytes, lo, hi)
                    item = LayerBlockItem(layer, QRectF(bx, baseline - h, BLOCK_W, h),
                                          self._label_font, self._name_font)
                    self._scene.addItem(item)
                    self._blocks[layer.name] = item
                    bx += step
                width = len(chunk) * step - BLOCK_GAP + 2 * pad
                if key:
                    self._add_group_frame(key, QRectF(x, top + GROUP_LABEL_H, width, row_h - GROUP_LABEL_H - ROW_GAP),
                                          continued=start > 0)
                x += width + GROUP_GAP
                start += len(chunk)
                if x >= row_width:
                    row, x = row + 1, 0.0

    def _add_group_frame(self, name: str, rect: QRectF, continued: bool) -> None:
        """Light rounded frame behind a run of blocks, with the parent's name above it."""
        path = QPainterPath()
        path.addRoundedRect(rect, 8, 8)
        frame = QGraphicsPathItem(path)
        frame.setPen(_FRAME_PEN)
        frame.setBrush(_FRAME_BRUSH)
        frame.setZValue(-1)
        frame.setToolTip(name)
        self._scene.addItem(frame)
        text = name + (" (cont.)" if continued else "")
        fm = QFontMetricsF(self._label_font)
        label = QGraphicsSimpleTextItem(fm.elidedText(text, Qt.TextElideMode.ElideMiddle, rect.width() - 4))
        label.setFont(self._label_font)
        label.setBrush(QBrush(_MUTED_TEXT))
        label.setToolTip(name)
        label.setPos(rect.left() + 4, rect.top() - GROUP_LABEL_H + 1)
        self._scene.addItem(label)

    # --- selection ---------------------------------------------------------------------------
    def _highlight(self, name: str | None) -> None:
        old = self._blocks.get(self._selected) if self._selected else None
        if old is not None:
            old.set_highlighted(False)
        block = self._blocks.get(name) if name else None
        if block is not None:
            block.set_highlighted(True)
        self._selected = name if block is not None else None

    def _block_at(self, view_pos) -> LayerBlockItem | None:
        for item in self.items(view_pos):
            while item is not None and not isinstance(item, LayerBlockItem):
                item = item.parentItem()
            if isinstance(item, LayerBlockItem):
                return item
        return None

    def _on_block_clicked(self, block: LayerBlockItem) -> None:
        self._highlight(block.layer_name)
        self.sig_layer_selected.emit(block.layer_name)

    # --- zoom, pan, click ----------------------------------------------------------------------
    def _apply_fit(self) -> None:
        rect = self._scene.sceneRect()
        if rect.isEmpty() or self._fit_mode is None:
            return
        if self._fit_mode == "all":
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
            return
        # "width": fill the width, never magnify past 1:1, and start at the top-left.
        vw = max(self.viewport().width() - 4, 50)
        scale = min(1.0, vw / rect.width())
        self.resetTransform()
        self.scale(scale, scale)
        self.centerOn(rect.center().x(), rect.top() + self.viewport().height() / (2 * scale))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._apply_fit()

    def wheelEvent(self, event) -> None:  # noqa: N802
        delta = event.angleDelta().y() or event.angleDelta().x()
        if not delta:
            return
        factor = 1.0015 ** delta
        current = self.transform().m11()
        factor = min(max(factor, 0.02 / current), 8.0 / current)
        self._fit_mode = None
        self.scale(factor, factor)
        event.accept()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._press_pos = QPointF(event.position())
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        super().mouseReleaseEvent(event)
        if event.button() != Qt.MouseButton.LeftButton or self._press_pos is None:
            return
        moved = (QPointF(event.position()) - self._press_pos).manhattanLength()
        self._press_pos = None
        if moved <= 4:  # a click, not a pan
            block = self._block_at(event.position().toPoint())
            if block is not None:
                self._on_block_clicked(block)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        block = self._block_at(event.position().toPoint())
        hovered = block.layer_name if block is not None else ""
        if hovered != self._hovered:
            self._hovered = hovered
            self.sig_layer_hovered.emit(hovered)
        if self._press_pos is not None and event.buttons() & Qt.MouseButton.LeftButton:
            if (QPointF(event.position()) - self._press_pos).manhattanLength() > 4:
                self._fit_mode = None  # the user panned: stop re-fitting on resize
        super().mouseMoveEvent(event)
