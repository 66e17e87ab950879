"""The network diagram view: one block per layer in execution order, framed by module groups that
collapse into one summary block (their ▾/▸ toggle, or a double-click on the frame).

The grouping and the rectangles come from `gui.diagram_layout` (Qt-free; `prepare` runs it in the
worker thread), the items from `gui.diagram_items`; this file places them and handles input.
Rows wrap at the viewport's width so text is drawn at 1:1 and stays readable; F fits everything.
Selection arrives through a `SelectionModel`: a select may open the layer's group, a preview
(hover, timeline scrub) only marks the block or its collapsed group, never rebuilding the scene.
"""
from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPen
from PySide6.QtWidgets import QApplication, QGraphicsScene, QGraphicsView, QMenu

from engine.categories import LAYER_KINDS
from engine.units import format_size

from .diagram_items import (BADGE, GLYPH, GroupFrameItem, GroupSummaryItem, GroupToggleItem, ItemStyle,
                            LayerBlockItem, _DiagramBlock, kind_glyph, recompute_badge)
from .diagram_layout import (BLOCK_H_COMPACT, BLOCK_H_MAX, COLLAPSE_ABOVE, COLLAPSED_MARK, EXPANDED_MARK,
                             ROW_GAP, DiagramLayout, DiagramModel, TextMetrics, layout_diagram, prepare_diagram,
                             row_height)
from .style import DEFAULT_DISPLAY, TEXT_PX, Display

HINTS = ("wheel: zoom", "drag: pan", "F: fit", f"{EXPANDED_MARK}/{COLLAPSED_MARK} or double-click a frame: collapse/expand")
MARGIN = 16.0  # scene room around the layout
RELAYOUT_STEP = 24.0  # re-flow rows only when the viewport width changed by more than this
COMPACT_BELOW = 300  # viewport heights under this get BLOCK_H_COMPACT blocks: a row stays in view


def prepare(analysis) -> DiagramModel:
    """Qt-free: the grouping, labels and scales of `analysis` (safe in the worker thread)."""
    return prepare_diagram(analysis)


class NetworkDiagramWidget(QGraphicsView):
    """Layer-by-layer diagram of one analysis; click a block to select its layer."""

    sig_layer_selected = Signal(str)
    """The user clicked a layer's block (its name)."""
    sig_layer_hovered = Signal(str)
    """The layer under the mouse changed (empty string: none)."""
    sig_checkpoint_toggled = Signal(str)
    """'Checkpoint this block' (or stop) chosen in a group's context menu: the group's module."""
    sig_freeze_toggled = Signal(str)
    """'Freeze this block' (or unfreeze) chosen in a group's context menu: the group's module."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._analysis = None
        self._model: DiagramModel | None = None
        self._layout: DiagramLayout | None = None
        self._collapsed: set[str] = set()
        self._blocks: dict[str, LayerBlockItem] = {}
        self._summaries: dict[str, GroupSummaryItem] = {}
        self._selected: str | None = None
        self._previewed: str | None = None
        self._selection = None
        self._press_pos = None
        self._toggle_click_ms: int | None = None  # when a click last hit a ▾/▸ toggle (event timestamp)
        self._hovered = ""
        self._fit_mode: str | None = "width"  # re-applied on resize until the user zooms
        self._row_width = 0.0
        self._block_h_max = BLOCK_H_MAX
        self._relayout = QTimer(self, singleShot=True, interval=120)
        self._relayout.timeout.connect(self._on_relayout)
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.BoundingRectViewportUpdate)
        self.setOptimizationFlag(QGraphicsView.OptimizationFlag.DontSavePainterState, True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 150)
        self.apply_display(DEFAULT_DISPLAY)

    # ---- Public API
    def bind_selection(self, selection) -> None:
        """Follow `selection`; clicks select through it, hovers preview through it."""
        self._selection = selection
        selection.sig_selected.connect(self.select_layer)
        selection.sig_previewed.connect(self.preview_layer)
        self.sig_layer_selected.connect(selection.select)
        self.sig_layer_hovered.connect(selection.preview)

    def set_analysis(self, analysis, prepared: DiagramModel | None = None) -> None:
        """Redraw from scratch for `analysis`: groups expanded, or all collapsed above
        COLLAPSE_ABOVE layers. The bound selection is marked without opening any group."""
        self._analysis = analysis
        self._model = prepared if prepared is not None else prepare(analysis)
        self._collapsed = set(self._model.starts_collapsed)
        self._selected = self._previewed = None
        self._fit_mode = "width"
        self._row_width, self._block_h_max = self._wanted_geometry()
        self._rebuild()
        if self._selection is not None:
            self._mark(self._selection.selected, "selected")
            self._mark(self._selection.previewed, "previewed")

    def apply_display(self, display: Display) -> None:
        """Re-style (theme colours, font sizes, GB or GiB) and re-lay out."""
        self._display = display
        base = QFont(self.font())
        self._name_font = QFont(base)
        self._name_font.setPixelSize(display.px(TEXT_PX["normal"]))
        self._name_font.setBold(True)
        self._label_font = QFont(base)
        self._label_font.setPixelSize(display.px(TEXT_PX["small"]))
        name_fm, label_fm = QFontMetricsF(self._name_font), QFontMetricsF(self._label_font)
        self._metrics = TextMetrics(
            lambda text, bold: (name_fm if bold else label_fm).horizontalAdvance(text),
            max(name_fm.height(), label_fm.height()) + 1)
        self._style = ItemStyle(display.colours, self._name_font, self._label_font, self._metrics.line_h,
                                display.decimal_units)
        self.setBackgroundBrush(QBrush(QColor(display.colours.background)))
        if self._model is not None:
            self._rebuild()

    def one_row_height(self) -> int:
        """The panel height that shows the legend (caption; glyphs and ramp) and one row of short
        blocks with both label lines: the least the window gives the diagram (1280×720)."""
        line_h = self._metrics.line_h
        legend = 2 * line_h + 2 + 10  # see _add_legend, and the gap above the layout
        row = row_height(line_h, BLOCK_H_COMPACT, compact=True) - ROW_GAP
        return math.ceil(MARGIN + legend + row + 4 + 2 * self.frameWidth())

    def font_pixel_sizes(self) -> list[float]:
        """Pixel sizes of the text as it appears on screen now (font size × zoom), smallest first."""
        scale = self.transform().m11()
        return sorted({self._name_font.pixelSize() * scale, self._label_font.pixelSize() * scale})

    def layout(self) -> DiagramLayout | None:  # noqa: A003 (a QGraphicsView has no layout())
        """The rectangles currently drawn."""
        return self._layout

    def blocks(self) -> list[LayerBlockItem]:
        """The visible layer blocks (layers of collapsed groups have none), in execution order."""
        return list(self._blocks.values())

    def block(self, name: str) -> LayerBlockItem | None:
        """The block of the layer called `name`, if it is visible."""
        return self._blocks.get(name)

    def summary_block(self, group: str) -> GroupSummaryItem | None:
        """The summary block standing in for `group`, if it is collapsed."""
        return self._summaries.get(group)

    def group_names(self) -> list[str]:
        """Names of the collapsible groups, in execution order (top-level layers form none)."""
        return self._model.group_names() if self._model else []

    def group_of(self, layer_name: str) -> str | None:
        """The group a layer belongs to ('' for top-level layers), None for unknown layers."""
        group = self._model.group_of.get(layer_name) if self._model else None
        return None if group is None else group.name

    def collapsed_groups(self) -> set[str]:
        """Names of the groups currently shown as one summary block."""
        return set(self._collapsed)

    def collapse_group(self, name: str) -> None:
        """Show group `name` as one summary block; unknown or already collapsed names do nothing."""
        self._set_collapsed({name} if name in self.group_names() else set(), collapse=True, focus=name)

    def expand_group(self, name: str) -> None:
        """Show every layer of group `name` again."""
        self._set_collapsed({name}, collapse=False, focus=name)

    def collapse_all(self) -> None:
        self._set_collapsed(set(self.group_names()), collapse=True)

    def expand_all(self) -> None:
        self._set_collapsed(set(self._collapsed), collapse=False)

    def toggle_group(self, name: str) -> None:
        if name in self._collapsed:
            self.expand_group(name)
        else:
            self.collapse_group(name)

    def selected_layer(self) -> str | None:
        """Name of the selected layer (it may sit inside a collapsed group), or None."""
        return self._selected

    def select_layer(self, name: str) -> None:
        """Mark `name` as selected and scroll it into view, opening its group if collapsed (a
        deliberate choice); '' or unknown names clear the mark. Emits nothing."""
        group = self.group_of(name) if name else None
        if group and group in self._collapsed:
            self._collapsed.discard(group)
            self._rebuild()
        self._mark(name, "selected")
        block = self._blocks.get(name)
        if block is not None:
            self.ensureVisible(block.sceneBoundingRect(), 40, 40)

    def preview_layer(self, name: str) -> None:
        """Lightly mark `name`'s block, or its collapsed group's summary: nothing opens, nothing
        scrolls, the scene is not rebuilt."""
        self._mark(name, "previewed")

    def fit_to_window(self) -> None:
        """Zoom so the whole diagram fits the viewport."""
        self._fit_mode = "all"
        self._apply_fit()

    # ---- Private API: collapsing and building
    def _set_collapsed(self, names: set[str], collapse: bool, focus: str | None = None) -> None:
        before = set(self._collapsed)
        if collapse:
            self._collapsed |= names
        else:
            self._collapsed -= names
        if self._collapsed == before:
            return
        self._rebuild()
        if focus:
            self._ensure_group_visible(focus)

    def _ensure_group_visible(self, name: str) -> None:
        rect = QRectF()
        for item in self._scene.items():
            if isinstance(item, GroupFrameItem) and item.group_name == name:
                rect = rect.united(item.sceneBoundingRect())
        if not rect.isEmpty():
            self.ensureVisible(rect, 40, 40)

    def _wanted_geometry(self) -> tuple[float, float]:
        """Rows as wide as the viewport at 1:1 (text readable without zooming), 480 px at least;
        shorter blocks in a short panel."""
        height = BLOCK_H_COMPACT if self.viewport().height() < COMPACT_BELOW else BLOCK_H_MAX
        return max(480.0, self.viewport().width() - 2 * MARGIN - 8), height

    def _needs_relayout(self) -> bool:
        width, height = self._wanted_geometry()
        return abs(width - self._row_width) > RELAYOUT_STEP or height != self._block_h_max

    def _rebuild(self) -> None:
        """Lay the scene out again from the model and the collapsed set; keep the marks."""
        self._scene.clear()
        self._blocks, self._summaries = {}, {}
        self._layout = None
        if self._model is None or not self._model.groups:
            self._scene.addSimpleText("No layers to show").setFont(self._name_font)
        else:
            self._layout = layout_diagram(self._model, self._collapsed, self._metrics, self._row_width,
                                          self._display.decimal_units, self._block_h_max,
                                          compact=self._block_h_max < BLOCK_H_MAX)
            legend_bottom = self._add_legend()
            self._add_items(self._layout, legend_bottom + 10)
        self._scene.setSceneRect(self._scene.itemsBoundingRect().adjusted(-MARGIN, -MARGIN, MARGIN, MARGIN))
        for name, how in ((self._selected, "selected"), (self._previewed, "previewed")):
            self._mark(name or "", how)
        self._apply_fit()
        if self._selected in self._blocks:  # a re-flow must not scroll the selection away
            self.ensureVisible(self._blocks[self._selected].sceneBoundingRect(), 40, 40)

    def _add_items(self, layout: DiagramLayout, top: float) -> None:
        for frame in layout.frames:
            for item in (GroupFrameItem(frame, self._display.colours), GroupToggleItem(frame, self._style)):
                item.moveBy(0, top)
                self._scene.addItem(item)
        for box in layout.blocks:
            if box.group is not None:
                item = GroupSummaryItem(box, self._style)
                self._summaries[box.name] = item
            else:
                item = LayerBlockItem(box, self._style)
                self._blocks[box.name] = item
            item.moveBy(0, top)
            self._scene.addItem(item)

    def _add_text(self, text: str, font: QFont, colour: str, x: float, y: float):
        item = self._scene.addSimpleText(text)
        item.setFont(font)
        item.setBrush(QBrush(QColor(colour)))
        item.setPos(x, y)
        return item

    def _add_legend(self) -> float:
        """Caption, hints, kind glyphs and the memory ramp above the layout, flowed to the row
        width; returns the legend's bottom."""
        model, theme = self._model, self._display.colours
        line_h = self._metrics.line_h
        caption = [f"{model.model_name} — {model.layer_count} layers in {len(model.group_names())} groups"]
        if model.starts_collapsed:
            caption.append(f"over {COLLAPSE_ABOVE} layers, groups start collapsed")
        # One flow, wrapped at the row width: the panel is short at 1280×720, so no line is wasted.
        # A short panel keeps the usage hints in the caption's tooltip instead of a line of its own.
        hints = () if self._block_h_max < BLOCK_H_MAX else HINTS
        x, y = 0.0, 0.0
        last = (hints or caption)[-1]
        for font, colour, pieces in ((self._name_font, theme.text, caption),
                                     (self._label_font, theme.muted_text, hints)):
            fm = QFontMetricsF(font)
            for piece in pieces:
                text = piece if piece is last else piece + " ·"
                w = fm.horizontalAdvance(text)
                if x > 0 and x + w > self._row_width:
                    x, y = 0.0, y + line_h
                self._add_text(text, font, colour, x, y).setToolTip("\n".join(HINTS))
                x += w + fm.horizontalAdvance(" ")
        x, y = 0.0, y + line_h + 2
        x, y = self._legend_glyphs(y)
        return self._legend_ramp(x + 12, y) + line_h

    def _legend_glyphs(self, y: float) -> tuple[float, float]:
        """One glyph and name per layer kind present; returns where the row ends (x, y)."""
        theme = self._display.colours
        fm = QFontMetricsF(self._label_font)
        present = {layer.kind for group in self._model.groups for layer in group.layers}
        x = 0.0
        for kind in (k for k in LAYER_KINDS if k in present):
            w = GLYPH + 4 + fm.horizontalAdvance(kind) + 12
            if x > 0 and x + w > self._row_width:
                x, y = 0.0, y + self._metrics.line_h
            glyph = self._scene.addPath(kind_glyph(kind, QRectF(x, y + 2, GLYPH, GLYPH)),
                                        QPen(QColor(theme.text), 1.0), QBrush(QColor(theme.background)))
            glyph.setToolTip(f"layer kind: {kind}")
            self._add_text(kind, self._label_font, theme.text, x + GLYPH + 4, y)
            x += w
        if self._model.checkpointed:  # the badge checkpointed blocks carry
            n = len(set(self._model.checkpointed.values()))
            text = f"checkpointed ({n} module{'s' if n != 1 else ''}): activations recomputed in backward"
            w = BADGE + 4 + fm.horizontalAdvance(text) + 12
            if x > 0 and x + w > self._row_width:
                x, y = 0.0, y + self._metrics.line_h
            box = QRectF(x, y, BADGE, BADGE)
            self._scene.addEllipse(box, QPen(QColor(theme.background), 1.0), QBrush(QColor(theme.toggle_text)))
            self._scene.addPath(recompute_badge(box), QPen(QColor(theme.background), BADGE / 9))
            self._add_text(text, self._label_font, theme.text, x + BADGE + 4, y)
            x += w
        return x, y

    def _legend_ramp(self, x: float, y: float) -> float:
        """'output bytes: ▮▮▮▮▮▮ smallest … largest' in the theme's memory ramp."""
        theme = self._display.colours
        fm = QFontMetricsF(self._label_font)
        lo, hi = (int(round(10 ** v)) for v in self._model.log_range)
        low, high = (format_size(v, self._display.decimal_units) for v in (lo, hi))
        ramp = theme.memory_ramp
        w = fm.horizontalAdvance(f"block height and shade = output bytes: {low}  {high}") + 14 * len(ramp) + 12
        if x > 0 and x + w > self._row_width:
            x, y = 0.0, y + self._metrics.line_h
        x += self._add_text("block height and shade = output bytes:", self._label_font, theme.text, x, y).boundingRect().width() + 6
        x += self._add_text(low, self._label_font, theme.muted_text, x, y).boundingRect().width() + 4
        for colour in ramp:
            self._scene.addRect(QRectF(x, y + 2, 14, 10), QPen(QColor(theme.axis), 0.5), QBrush(QColor(colour)))
            x += 14
        self._add_text(high, self._label_font, theme.muted_text, x + 4, y)
        return y

    # ---- Private API: marks
    def _mark(self, name: str | None, how: str) -> None:
        """Put the 'selected' or 'previewed' mark on `name`'s block, or on its group's summary
        while the group is collapsed; clear it elsewhere."""
        setter = "set_highlighted" if how == "selected" else "set_previewed"
        getter = "is_highlighted" if how == "selected" else "is_previewed"
        for item in (*self._blocks.values(), *self._summaries.values()):
            if getattr(item, getter)():
                getattr(item, setter)(False)
        group = self.group_of(name) if name else None
        value = name if group is not None else None
        if how == "selected":
            self._selected = value
        else:
            self._previewed = value
        if value is not None:
            target = self._blocks.get(value) or self._summaries.get(group)
            if target is not None:
                getattr(target, setter)(True)

    def _item_at(self, view_pos):
        """The topmost block, summary, toggle or frame under `view_pos` (None over the background)."""
        kinds = (_DiagramBlock, GroupToggleItem, GroupFrameItem)
        for item in self.items(view_pos):
            while item is not None and not isinstance(item, kinds):
                item = item.parentItem()
            if item is not None:
                return item
        return None

    # ---- Qt overrides: zoom, pan, click
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

    def _on_relayout(self) -> None:
        if self._model is not None and self._fit_mode == "width" and self._needs_relayout():
            self._row_width, self._block_h_max = self._wanted_geometry()
            self._rebuild()

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._apply_fit()
        if self._model is not None and self._needs_relayout():
            self._relayout.start()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_F and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            self.fit_to_window()
            event.accept()
            return
        super().keyPressEvent(event)

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
        if moved > 4:  # a pan, not a click
            return
        item = self._item_at(event.position().toPoint())
        if isinstance(item, LayerBlockItem):
            self._mark(item.layer_name, "selected")
            self.sig_layer_selected.emit(item.layer_name)
        elif isinstance(item, GroupToggleItem):
            self._toggle_click_ms = event.timestamp()
            self.toggle_group(item.group_name)

    def contextMenuEvent(self, event) -> None:  # noqa: N802
        item = self._item_at(event.pos())
        menu = self.group_menu(getattr(item, "group_name", None) or self._group_of(item))
        if menu is None:
            super().contextMenuEvent(event)
            return
        menu.exec(event.globalPos())

    def group_menu(self, group_name: str | None):
        """A group's context menu: checkpoint its module or stop, freeze it or unfreeze (None for
        top-level layers). Both levers change a training step only."""
        module = (group_name or "").split("#", 1)[0]
        if not module or self._analysis is None:
            return None
        levers = getattr(self._analysis, "levers", None)
        on = levers is not None and levers.checkpoint is not None and module in levers.checkpoint.blocks
        training = self._analysis.request.mode == "train"
        menu = QMenu(self)
        action = menu.addAction(f"{'Stop checkpointing' if on else 'Checkpoint this block'} ({module})")
        action.setEnabled(training)
        action.triggered.connect(lambda: self.sig_checkpoint_toggled.emit(module))
        frozen = module in self._analysis.request.freeze
        action = menu.addAction(f"{'Unfreeze' if frozen else 'Freeze this block'} ({module})")
        action.setEnabled(training)
        action.triggered.connect(lambda: self.sig_freeze_toggled.emit(module))
        return menu

    def _group_of(self, item) -> str | None:
        if isinstance(item, LayerBlockItem) and self._model is not None:
            group = self._model.group_of.get(item.layer_name)
            return group.name if group is not None else None
        return None

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802
        """Double-click a group's frame or summary block: collapse/expand it; the background: fit."""
        if event.button() != Qt.MouseButton.LeftButton:
            super().mouseDoubleClickEvent(event)
            return
        self._press_pos = None  # the release that follows is not a click
        last_toggle = self._toggle_click_ms
        if last_toggle is not None and event.timestamp() - last_toggle <= QApplication.doubleClickInterval():
            event.accept()  # the first click of this double-click already hit a toggle
            return
        item = self._item_at(event.position().toPoint())
        if item is None:
            self.fit_to_window()
        elif isinstance(item, (GroupFrameItem, GroupSummaryItem)):
            self.toggle_group(item.group_name)
        event.accept()

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        item = self._item_at(event.position().toPoint())
        hovered = item.layer_name if isinstance(item, LayerBlockItem) else ""
        if hovered != self._hovered:
            self._hovered = hovered
            self.sig_layer_hovered.emit(hovered)
        if self._press_pos is not None and event.buttons() & Qt.MouseButton.LeftButton:
            if (QPointF(event.position()) - self._press_pos).manhattanLength() > 4:
                self._fit_mode = None  # the user panned: stop re-fitting on resize
        super().mouseMoveEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        if self._hovered:
            self._hovered = ""
            self.sig_layer_hovered.emit("")
        super().leaveEvent(event)
