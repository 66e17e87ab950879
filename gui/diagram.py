"""The network diagram: one coloured block per layer, in execution order, grouped by parent module.

Block height follows log10 of the layer's output bytes, colour follows the layer kind. Each run of
consecutive layers sharing a parent module is framed as a group; a group can be collapsed into one
neutral summary block (its ▾/▸ toggle, or a double-click on its frame). Every number shown is read
from the `Analysis`; a summary only adds up its layers' `params` and takes the largest `output_bytes`.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QApplication,
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
SUMMARY_COLOUR = "#D3D8E0"  # collapsed groups: neutral, distinct from every kind colour

COLLAPSE_ABOVE = 150  # networks with more layers than this open with every group collapsed

# Scene geometry, in scene pixels.
BLOCK_W = 90.0
BLOCK_GAP = 8.0  # between blocks of one group
GROUP_GAP = 22.0  # between groups
GROUP_PAD = 7.0  # frame padding around its blocks
BLOCK_H_MIN = 14.0
BLOCK_H_MAX = 110.0
ROW_WIDTH = 1500.0  # wrap into a new row past this width (wider for very long networks)
ROW_WIDTH_MAX = 1800.0  # ...but never wider, so fitting the width keeps labels readable
TARGET_ASPECT = 1.6  # long networks wrap into rows of about this width:height overall
GROUP_LABEL_H = 18.0
LABEL_LINE_H = 14.0
LABEL_LINES = 4
ROW_GAP = 26.0
LEGEND_H = 34.0
CAPTION_LINE_H = 18.0
STACK_OFFSET = 3.0  # summary blocks are drawn as a small stack of cards

_PEN_NORMAL = QPen(QColor("#3A3F47"), 1.0)
_PEN_HOVER = QPen(QColor("#1F2329"), 2.0)
_PEN_SELECTED = QPen(QColor("#111111"), 3.5)
_TEXT_COLOUR = QColor("#22262C")
_MUTED_TEXT = QColor("#5A616B")
_TOGGLE_TEXT = QColor("#2B5C9E")
_FRAME_PEN = QPen(QColor("#C9CED6"), 1.0)
_FRAME_BRUSH = QBrush(QColor("#F2F4F7"))
_COLLAPSED_FRAME_PEN = QPen(QColor("#AEB6C2"), 1.0, Qt.PenStyle.DashLine)
_SELECTED_BG = QColor(255, 221, 87, 110)

EXPANDED_MARK = "▾"
COLLAPSED_MARK = "▸"
HINTS = ("wheel: zoom · drag: pan · F: fit (or double-click the background) · "
         f"{EXPANDED_MARK}/{COLLAPSED_MARK} or double-click a frame: collapse/expand a group")


@dataclass(frozen=True, eq=False)
class LayerGroup:
    """A run of consecutive layers sharing a parent module.

    `name` is the parent's dotted path, with '#2', '#3'… on later runs of the same parent (the
    engine's convention for repeated calls), so it is unique within one analysis. Top-level layers
    form groups named '' that are never framed and never collapse.
    """

    name: str
    layers: tuple

    @property
    def params(self) -> int:
        """Sum of the layers' own `params` fields."""
        return sum(layer.params for layer in self.layers)

    @property
    def max_output_bytes(self) -> int:
        """The largest of the layers' `output_bytes`."""
        return max(layer.output_bytes for layer in self.layers)


def _short_name(name: str) -> str:
    """Last dotted component: 'layer1.0.conv1' -> 'conv1'."""
    return name.rsplit(".", 1)[-1]


def _shape_text(shape: tuple[int, ...]) -> str:
    """Output shape without the batch dimension: (2, 64, 112, 112) -> '64×112×112'."""
    dims = shape[1:] if len(shape) > 1 else shape
    return "×".join(str(d) for d in dims) if dims else "scalar"


MAX_GROUPS = 60  # more frames than this stop being an overview


def _group_key(layer, depth: int | None = None) -> str:
    """The parent module a block is framed under ('' for top-level layers), cut to `depth`
    dotted components when given."""
    parent = layer.parent.split("#", 1)[0]
    return ".".join(parent.split(".")[:depth]) if depth and parent else parent


def _runs(layers, depth: int | None) -> list[tuple[str, list]]:
    runs: list[tuple[str, list]] = []
    for layer in layers:
        key = _group_key(layer, depth)
        if runs and runs[-1][0] == key:
            runs[-1][1].append(layer)
        else:
            runs.append((key, [layer]))
    return runs


def _absorb_small_branches(runs: list[tuple[str, list]]) -> list[tuple[str, list]]:
    """A → (children of A) → A, where the children are fewer layers than A's first run, becomes
    one run of A: a ResNet block stays whole although its downsample branch is a child module,
    while DenseNet's stem and final norm do not swallow the dense blocks between them."""
    runs = list(runs)
    out: list[tuple[str, list]] = []
    i = 0
    while i < len(runs):
        key, members = runs[i]
        j = i + 1
        while key and j < len(runs) and runs[j][0].startswith(key + "."):
            j += 1
        nested = sum(len(m) for _, m in runs[i + 1:j])
        if j > i + 1 and j < len(runs) and runs[j][0] == key and nested < len(members):
            runs[j] = (key, members + [layer for _, m in runs[i + 1:j] for layer in m] + runs[j][1])
            i = j
            continue
        out.append((key, members))
        i += 1
    return out


def _grouped_runs(layers) -> list[tuple[str, list]]:
    """Runs at the deepest module level that still gives an overview (at most MAX_GROUPS
    frames): VGG features/classifier, ResNet blocks, DenseNet dense blocks, ViT encoder layers."""
    deepest = max((layer.parent.count(".") + 1 for layer in layers if layer.parent), default=0)
    runs = _runs(layers, None)
    for depth in range(deepest, 0, -1):
        runs = _absorb_small_branches(_runs(layers, depth))
        if sum(1 for key, _ in runs if key) <= MAX_GROUPS:
            break
    return runs


def group_layers(layers) -> list[LayerGroup]:
    """Split `layers` (execution order) into runs of consecutive layers under one module, at the
    level `_grouped_runs` picks."""
    runs = _grouped_runs(layers)
    seen: Counter[str] = Counter()
    groups = []
    for key, members in runs:
        seen[key] += 1
        name = f"{key}#{seen[key]}" if key and seen[key] > 1 else key
        groups.append(LayerGroup(name, tuple(members)))
    return groups


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


class _DiagramBlock(QGraphicsRectItem):
    """A block (its `rect()`) with label lines painted underneath, a hover and a selection outline."""

    def __init__(self, rect: QRectF, colour: str, lines: list[tuple[str, bool]], tooltip: str,
                 label_font: QFont, name_font: QFont):
        super().__init__(rect)
        self._hovered = False
        self._selected = False
        self._name_font = name_font
        self._label_font = label_font
        self._label_rect = QRectF(rect.left() - BLOCK_GAP / 2 + 1, rect.bottom() + 3,
                                  BLOCK_W + BLOCK_GAP - 2, LABEL_LINE_H * LABEL_LINES)
        self._lines = self._elide(lines)
        self._bounds = rect.united(self._label_rect).adjusted(-3, -3 - STACK_OFFSET * 2, 3 + STACK_OFFSET * 2, 3)
        self.setBrush(QBrush(QColor(colour)))
        self.setPen(_PEN_NORMAL)
        self.setToolTip(tooltip)
        self.setAcceptHoverEvents(True)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def _elide(self, lines: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
        """(text, is_name) for each label line, elided to the label width."""
        width = self._label_rect.width() - 2
        name_fm, label_fm = QFontMetricsF(self._name_font), QFontMetricsF(self._label_font)
        return [((name_fm if is_name else label_fm).elidedText(text, Qt.TextElideMode.ElideMiddle, width), is_name)
                for text, is_name in lines]

    def label_lines(self) -> list[str]:
        """The label text under the block, line by line, as painted."""
        return [text for text, _ in self._lines]

    # --- state -----------------------------------------------------------------------------
    def is_highlighted(self) -> bool:
        """True while this block shows the selected layer."""
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

    def _paint_block(self, painter: QPainter) -> None:
        painter.drawRoundedRect(self.rect(), 3, 3)

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget=None) -> None:
        if self._selected:
            painter.fillRect(self.rect().united(self._label_rect).adjusted(-2, -2, 2, 2), _SELECTED_BG)
        painter.setPen(self.pen())
        painter.setBrush(self.brush())
        self._paint_block(painter)
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


class LayerBlockItem(_DiagramBlock):
    """One layer: coloured by kind, labelled with its name, shape, params and output bytes."""

    def __init__(self, layer, rect: QRectF, label_font: QFont, name_font: QFont):
        lines = [
            (_short_name(layer.name), True),
            (_shape_text(layer.output_shape), False),
            (f"{format_count(layer.params)} params" if layer.params else "no params", False),
            (format_bytes(layer.output_bytes), False),
        ]
        super().__init__(rect, KIND_COLOURS.get(layer.kind, KIND_COLOURS["other"]), lines, _tooltip(layer),
                         label_font, name_font)
        self.layer = layer
        self.layer_name = layer.name


class GroupSummaryItem(_DiagramBlock):
    """A collapsed group: one neutral block labelled with the group's name, size, params, largest output."""

    def __init__(self, group: LayerGroup, rect: QRectF, label_font: QFont, name_font: QFont):
        n = len(group.layers)
        name_fm = QFontMetricsF(name_font)
        fits = name_fm.horizontalAdvance(group.name) <= BLOCK_W + BLOCK_GAP - 4
        lines = [
            (group.name if fits else _short_name(group.name), True),  # the frame label above has the path
            (f"{n} layer{'s' if n != 1 else ''}", False),
            (f"{format_count(group.params)} params" if group.params else "no params", False),
            (f"max {format_bytes(group.max_output_bytes)}", False),
        ]
        tooltip = "\n".join((
            f"{group.name} (collapsed)",
            f"layers: {n}",
            f"params: {format_count(group.params)}",
            f"largest output: {format_bytes(group.max_output_bytes)}",
            f"click {COLLAPSED_MARK} or double-click to expand",
        ))
        super().__init__(rect, SUMMARY_COLOUR, lines, tooltip, label_font, name_font)
        self.group = group
        self.group_name = group.name

    def _paint_block(self, painter: QPainter) -> None:
        for i in (2, 1):  # two cards peeking out behind the front one
            painter.drawRoundedRect(self.rect().translated(STACK_OFFSET * i, -STACK_OFFSET * i), 3, 3)
        super()._paint_block(painter)


class GroupFrameItem(QGraphicsPathItem):
    """The rounded frame behind one row's worth of a group's blocks."""

    def __init__(self, group_name: str, rect: QRectF, collapsed: bool):
        path = QPainterPath()
        path.addRoundedRect(rect, 8, 8)
        super().__init__(path)
        self.group_name = group_name
        self.setPen(_COLLAPSED_FRAME_PEN if collapsed else _FRAME_PEN)
        self.setBrush(_FRAME_BRUSH)
        self.setZValue(-1)
        self.setToolTip(f"{group_name} — double-click to {'expand' if collapsed else 'collapse'}")


class GroupToggleItem(QGraphicsSimpleTextItem):
    """The group's label above its frame, '▾ name' or '▸ name'; clicking it collapses or expands."""

    def __init__(self, group_name: str, text: str, font: QFont):
        super().__init__(text)
        self.group_name = group_name
        self.setFont(font)
        self.setBrush(QBrush(_TOGGLE_TEXT))
        self.setCursor(Qt.CursorShape.PointingHandCursor)


class NetworkDiagramWidget(QGraphicsView):
    """Layer-by-layer diagram of one analysis; click a block to select its layer.

    Groups collapse into summary blocks (`collapse_group` / `expand_group`, or the ▾/▸ toggles);
    every change re-lays out the whole diagram, so collapsed groups leave no gap.
    """

    sig_layer_selected = Signal(str)
    """Emitted with the layer name when the user clicks a block."""
    sig_layer_hovered = Signal(str)
    """The layer under the mouse changed (empty string: none)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._analysis = None
        self._groups: list[LayerGroup] = []
        self._group_of: dict[str, LayerGroup] = {}  # layer name -> its group
        self._collapsed: set[str] = set()
        self._auto_collapsed = False
        self._height_range = (0.0, 1.0)  # log10 output bytes mapped to BLOCK_H_MIN..BLOCK_H_MAX
        self._blocks: dict[str, LayerBlockItem] = {}
        self._summaries: dict[str, GroupSummaryItem] = {}
        self._selected: str | None = None
        self._press_pos = None
        self._toggle_click_ms: int | None = None  # when a click last hit a ▾/▸ toggle (event timestamp)
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
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 150)

    # --- public API --------------------------------------------------------------------------
    def set_analysis(self, analysis) -> None:
        """Redraw the diagram from scratch for `analysis`: all groups expanded, except that
        networks with more than COLLAPSE_ABOVE layers start with every group collapsed."""
        self._analysis = analysis
        layers = list(analysis.layers) if analysis is not None else []
        self._groups = group_layers(layers)
        self._group_of = {layer.name: group for group in self._groups for layer in group.layers}
        self._auto_collapsed = len(layers) > COLLAPSE_ABOVE
        self._collapsed = set(self.group_names()) if self._auto_collapsed else set()
        if layers:
            logs = [math.log10(max(layer.output_bytes, 1)) for layer in layers]
            hi = max(logs)
            self._height_range = (min(min(logs), hi - 1.0), hi)
        self._selected = None
        self._fit_mode = "width"
        self._rebuild()

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
        return [group.name for group in self._groups if group.name]

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
        """Collapse every group: one summary block per group, top-level layers stay as they are."""
        self._set_collapsed(set(self.group_names()), collapse=True)

    def expand_all(self) -> None:
        """Show every layer."""
        self._set_collapsed(set(self._collapsed), collapse=False)

    def toggle_group(self, name: str) -> None:
        """Collapse group `name` if it is expanded, expand it if it is collapsed."""
        if name in self._collapsed:
            self.expand_group(name)
        else:
            self.collapse_group(name)

    def selected_layer(self) -> str | None:
        """Name of the selected layer (it may sit inside a collapsed group), or None."""
        return self._selected

    def select_layer(self, name: str) -> None:
        """Highlight `name` (no signal) and scroll it into view, expanding its group if collapsed;
        unknown names clear the highlight."""
        group = self._group_of.get(name)
        if group is not None and group.name in self._collapsed:
            self._collapsed.discard(group.name)
            self._rebuild()
        self._highlight(name)
        block = self._blocks.get(name)
        if block is not None:
            self.ensureVisible(block.sceneBoundingRect(), 40, 40)

    def fit_to_window(self) -> None:
        """Zoom so the whole diagram fits the viewport."""
        self._fit_mode = "all"
        self._apply_fit()

    # --- collapsing --------------------------------------------------------------------------
    def _set_collapsed(self, names: set[str], collapse: bool, focus: str | None = None) -> None:
        """Add `names` to (or remove them from) the collapsed set, re-lay out if anything changed,
        and keep the `focus` group in view."""
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

    def _rebuild(self) -> None:
        """Lay the scene out again from the groups and the collapsed set; keep the selection."""
        self._scene.clear()
        self._blocks = {}
        self._summaries = {}
        if not self._groups:
            self._scene.addSimpleText("No layers to show").setFont(self._name_font)
        else:
            self._add_legend(self._analysis)
            self._layout()
        self._scene.setSceneRect(self._scene.itemsBoundingRect().adjusted(-20, -20, 20, 20))
        self._highlight(self._selected)
        self._apply_fit()

    # --- layout ------------------------------------------------------------------------------
    def _block_height(self, nbytes: int) -> float:
        lo, hi = self._height_range
        value = math.log10(max(nbytes, 1))
        if hi - lo < 1e-9:
            return BLOCK_H_MAX
        frac = min(max((value - lo) / (hi - lo), 0.0), 1.0)
        return BLOCK_H_MIN + frac * (BLOCK_H_MAX - BLOCK_H_MIN)

    def _add_text(self, text: str, font: QFont, colour: QColor, x: float, y: float) -> QGraphicsSimpleTextItem:
        item = self._scene.addSimpleText(text)
        item.setFont(font)
        item.setBrush(QBrush(colour))
        item.setPos(x, y)
        return item

    def _add_legend(self, analysis) -> None:
        """A caption, a line of usage hints and a row of kind swatches above the diagram."""
        caption = (f"{analysis.model_name} — {len(analysis.layers)} layers in {len(self.group_names())} groups"
                   " · block height ∝ log10(output bytes)")
        if self._auto_collapsed:
            caption += f" · over {COLLAPSE_ABOVE} layers: groups start collapsed ({COLLAPSED_MARK} expands one)"
        self._add_text(caption, self._name_font, _TEXT_COLOUR, 0, -LEGEND_H - 2 * CAPTION_LINE_H - 2)
        self._add_text(HINTS, self._label_font, _MUTED_TEXT, 0, -LEGEND_H - CAPTION_LINE_H)
        present = {layer.kind for layer in analysis.layers}
        kinds = [kind for kind in LAYER_KINDS if kind in present]
        swatches = [(KIND_COLOURS[kind], kind) for kind in kinds]
        if self._collapsed:
            swatches.append((SUMMARY_COLOUR, "collapsed group"))
        x = 0.0
        for colour, text in swatches:
            swatch = self._scene.addRect(QRectF(x, -LEGEND_H + 4, 14, 14), _PEN_NORMAL, QBrush(QColor(colour)))
            swatch.setToolTip(text)
            label = self._add_text(text, self._label_font, _TEXT_COLOUR, x + 19, 0)
            label.setY(-LEGEND_H + 11 - label.boundingRect().height() / 2)
            x += 19 + label.boundingRect().width() + 16

    def _layout(self) -> None:
        """Flow the groups left to right, wrapping rows at the row width; a collapsed group takes
        one block's room."""
        units = [[group] if group.name in self._collapsed else list(group.layers) for group in self._groups]
        row_h = GROUP_LABEL_H + GROUP_PAD + BLOCK_H_MAX + 3 + LABEL_LINE_H * LABEL_LINES + GROUP_PAD + ROW_GAP
        step = BLOCK_W + BLOCK_GAP
        length = sum(len(members) for members in units) * step + len(units) * (GROUP_GAP + 2 * GROUP_PAD)
        row_width = min(max(ROW_WIDTH, math.sqrt(length * row_h * TARGET_ASPECT)), ROW_WIDTH_MAX)
        per_row = max(1, int((row_width + BLOCK_GAP) // step))
        row, x = 0, 0.0
        for group, members in zip(self._groups, units):
            pad = GROUP_PAD if group.name else 0.0
            start = 0
            while start < len(members):
                room = int((row_width - x - 2 * pad + BLOCK_GAP) // step)
                if room < min(len(members) - start, per_row) and x > 0:
                    row, x = row + 1, 0.0  # the run would not fit: start it on a new row
                    continue
                chunk = members[start:start + max(room, 1)]
                top = row * row_h
                baseline = top + GROUP_LABEL_H + GROUP_PAD + BLOCK_H_MAX
                for i, member in enumerate(chunk):
                    self._add_block(member, x + pad + i * step, baseline)
                width = len(chunk) * step - BLOCK_GAP + 2 * pad
                if group.name:
                    self._add_group_frame(group.name, QRectF(x, top + GROUP_LABEL_H, width,
                                                             row_h - GROUP_LABEL_H - ROW_GAP), continued=start > 0)
                x += width + GROUP_GAP
                start += len(chunk)
                if x >= row_width:
                    row, x = row + 1, 0.0

    def _add_block(self, member, left: float, baseline: float) -> None:
        """Place a layer's block, or a collapsed group's summary block, standing on `baseline`."""
        if isinstance(member, LayerGroup):
            h = self._block_height(member.max_output_bytes)
            item = GroupSummaryItem(member, QRectF(left, baseline - h, BLOCK_W, h), self._label_font, self._name_font)
            self._summaries[member.name] = item
        else:
            h = self._block_height(member.output_bytes)
            item = LayerBlockItem(member, QRectF(left, baseline - h, BLOCK_W, h), self._label_font, self._name_font)
            self._blocks[member.name] = item
        self._scene.addItem(item)

    def _add_group_frame(self, name: str, rect: QRectF, continued: bool) -> None:
        """Light rounded frame behind a run of blocks, with its ▾/▸ toggle and name above it."""
        collapsed = name in self._collapsed
        self._scene.addItem(GroupFrameItem(name, rect, collapsed))
        mark = f"{COLLAPSED_MARK if collapsed else EXPANDED_MARK} "
        suffix = " (cont.)" if continued else ""
        fm = QFontMetricsF(self._label_font)
        room = rect.width() + GROUP_GAP - 6 - fm.horizontalAdvance(mark + suffix)  # may reach into the gap
        # ElideLeft keeps the distinctive tail of nested names: '…denseblock1.denselayer12'.
        text = mark + fm.elidedText(name, Qt.TextElideMode.ElideLeft, room) + suffix
        toggle = GroupToggleItem(name, text, self._label_font)
        toggle.setToolTip(f"{name} — click to {'expand' if collapsed else 'collapse'}")
        toggle.setPos(rect.left() + 4, rect.top() - GROUP_LABEL_H + 1)
        self._scene.addItem(toggle)

    # --- selection ---------------------------------------------------------------------------
    def _highlight(self, name: str | None) -> None:
        """Outline `name`'s block, or its group's summary block while the group is collapsed."""
        for item in (*self._blocks.values(), *self._summaries.values()):
            if item.is_highlighted():
                item.set_highlighted(False)
        group = self._group_of.get(name) if name else None
        if group is None:
            self._selected = None
            return
        self._selected = name
        target = self._blocks.get(name) or self._summaries.get(group.name)
        if target is not None:
            target.set_highlighted(True)

    def _item_at(self, view_pos):
        """The topmost block, summary, toggle or frame under `view_pos` (None over the background)."""
        kinds = (_DiagramBlock, GroupToggleItem, GroupFrameItem)
        for item in self.items(view_pos):
            while item is not None and not isinstance(item, kinds):
                item = item.parentItem()
            if item is not None:
                return item
        return None

    def _block_at(self, view_pos) -> LayerBlockItem | None:
        item = self._item_at(view_pos)
        return item if isinstance(item, LayerBlockItem) else None

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
            self._on_block_clicked(item)
        elif isinstance(item, GroupToggleItem):
            self._toggle_click_ms = event.timestamp()
            self.toggle_group(item.group_name)

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
        block = self._block_at(event.position().toPoint())
        hovered = block.layer_name if block is not None else ""
        if hovered != self._hovered:
            self._hovered = hovered
            self.sig_layer_hovered.emit(hovered)
        if self._press_pos is not None and event.buttons() & Qt.MouseButton.LeftButton:
            if (QPointF(event.position()) - self._press_pos).manhattanLength() > 4:
                self._fit_mode = None  # the user panned: stop re-fitting on resize
        super().mouseMoveEvent(event)
