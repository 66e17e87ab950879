"""The network diagram's grouping and layout, as plain data: no Qt, so it runs in the worker thread,
is tested without a scene, and a PDF report can draw the same rectangles.

`prepare_diagram(analysis)` groups the layers (runs of consecutive layers under one module, at the
level that gives an overview) and works out each block's label and colour position;
`layout_diagram(...)` flows the blocks into rows and returns one rectangle per block, label and
group frame. Text widths come from a `measure(text, bold)` callable: the view passes real font
metrics, anything else may use `approx_metrics`.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from engine.lever_fields import checkpointed_layers
from engine.units import format_count, format_size

COLLAPSE_ABOVE = 150  # networks with more layers than this open with every group collapsed
MAX_GROUPS = 60  # more frames than this stop being an overview

# Scene geometry, in scene pixels.
BLOCK_W_MIN = 64.0
BLOCK_GAP = 8.0  # between blocks of one group
GROUP_GAP = 22.0  # between groups
GROUP_PAD = 7.0  # frame padding around its blocks
LABEL_PAD = 4.0  # room left and right of the widest label line inside a block's width
BLOCK_H_MIN = 14.0
BLOCK_H_MAX = 72.0
BLOCK_H_COMPACT = 36.0  # tallest block in a short panel (1280×720)
ROW_GAP = 18.0
LABEL_LINES = 4
EXPANDED_MARK = "▾"
COLLAPSED_MARK = "▸"
CHECKPOINTED_TAG = "checkpointed"  # after a checkpointed group's frame label


# ---- Plain geometry
@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    def contains(self, other: "Rect", tol: float = 1e-6) -> bool:
        return (other.x >= self.x - tol and other.y >= self.y - tol and other.right <= self.right + tol
                and other.bottom <= self.bottom + tol)

    def intersects(self, other: "Rect") -> bool:
        return self.x < other.right and other.x < self.right and self.y < other.bottom and other.y < self.bottom


@dataclass(frozen=True)
class TextMetrics:
    """How big text is: `measure(text, bold)` in pixels and one line's height."""

    measure: Callable[[str, bool], float]
    line_h: float


def approx_metrics(px: float = 12.0) -> TextMetrics:
    """A font-free stand-in for `px`-pixel sans text (generous: digits and capitals are wide)."""
    return TextMetrics(lambda text, bold: len(text) * px * (0.66 if bold else 0.6), px * 1.3)


# ---- Grouping (what the diagram shows)
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
    seen: Counter[str] = Counter()
    groups = []
    for key, members in _grouped_runs(layers):
        seen[key] += 1
        name = f"{key}#{seen[key]}" if key and seen[key] > 1 else key
        groups.append(LayerGroup(name, tuple(members)))
    return groups


def display_names(group: LayerGroup) -> dict[str, str]:
    """Each layer's label within its group: the shortest tail of its dotted name that no other
    layer of the group shares, and never a bare index ('features.0', not '0'), so repeated names
    show their parent path ('denselayer3.conv1', not six 'conv1's)."""
    names = [layer.name for layer in group.layers]
    parts = {name: name.split(".") for name in names}
    out = {}
    for name in names:
        p = parts[name]
        k = 1
        while k < len(p):
            tail = p[-k:]
            clash = any(other != name and parts[other][-k:] == tail for other in names)
            if not clash and not tail[0].split("#", 1)[0].isdigit():
                break
            k += 1
        out[name] = ".".join(p[-k:])
    return out


def short_path(name: str) -> str:
    """The tail of a dotted name that still says something: 'features.denseblock1' ->
    'denseblock1', but 'layer1.0' stays 'layer1.0' (never a bare index)."""
    parts = name.split(".")
    if len(parts) > 1 and parts[-1].split("#", 1)[0].isdigit():
        return ".".join(parts[-2:])
    return parts[-1]


def _shape_text(shape: tuple[int, ...]) -> str:
    """Output shape without the batch dimension: (2, 64, 112, 112) -> '64×112×112'."""
    dims = shape[1:] if len(shape) > 1 else shape
    return "×".join(str(d) for d in dims) if dims else "scalar"


@dataclass(frozen=True, eq=False)
class DiagramModel:
    """What `prepare_diagram` works out once per analysis (Qt-free, worker thread)."""

    model_name: str
    layer_count: int
    groups: tuple  # LayerGroup, execution order
    group_of: dict  # layer name -> LayerGroup
    labels: dict  # layer name -> its display name (see `display_names`)
    log_range: tuple  # (lo, hi) of log10(output bytes): heights and the colour ramp
    starts_collapsed: frozenset  # the groups collapsed on load
    # Activation checkpointing (engine/lever_fields.py decides which layers): layer name -> the
    # checkpointed module holding it, and group name -> that module for a group wholly inside one.
    checkpointed: dict = field(default_factory=dict)
    checkpointed_groups: dict = field(default_factory=dict)

    def fraction(self, nbytes: int) -> float:
        """Position of `nbytes` on the log scale, 0 (smallest) to 1 (largest output)."""
        lo, hi = self.log_range
        if hi - lo < 1e-9:
            return 1.0
        return min(max((math.log10(max(nbytes, 1)) - lo) / (hi - lo), 0.0), 1.0)

    def group_names(self) -> list[str]:
        return [group.name for group in self.groups if group.name]


def prepare_diagram(analysis) -> DiagramModel:
    """Group the layers and choose labels and scales; every group starts collapsed above
    COLLAPSE_ABOVE layers, none below."""
    layers = list(analysis.layers)
    groups = tuple(group_layers(layers))
    labels = {}
    for group in groups:
        labels.update(display_names(group) if group.name else {layer.name: layer.name for layer in group.layers})
    logs = [math.log10(max(layer.output_bytes, 1)) for layer in layers] or [0.0]
    hi = max(logs)
    names = frozenset(group.name for group in groups if group.name)
    checkpointed = checkpointed_layers(analysis)
    whole = {group.name: checkpointed[group.layers[0].name] for group in groups
             if group.name and all(layer.name in checkpointed for layer in group.layers)}
    return DiagramModel(
        model_name=analysis.model_name, layer_count=len(layers), groups=groups,
        group_of={layer.name: group for group in groups for layer in group.layers}, labels=labels,
        log_range=(min(min(logs), hi - 1.0), hi),
        starts_collapsed=names if len(layers) > COLLAPSE_ABOVE else frozenset(),
        checkpointed=checkpointed, checkpointed_groups=whole)


# ---- Layout (where everything goes)
@dataclass(frozen=True)
class BlockBox:
    """One block: a layer, or a collapsed group's summary (`group` set, `layer` None)."""

    name: str  # the layer's name, or the group's
    rect: Rect
    label_rect: Rect  # the label lines, under the block
    lines: tuple  # label lines; the first (the name) is bold
    fraction: float  # 0..1 on the memory ramp (output bytes, log scale)
    kind: str  # the layer kind; '' for a summary
    layer: object = None
    group: LayerGroup | None = None
    checkpointed: str = ""  # the checkpointed module holding this layer or group ('' when none)


@dataclass(frozen=True)
class FrameBox:
    """A group's frame around one row's worth of its blocks, with its ▾/▸ label above."""

    group: str
    rect: Rect
    label: str
    label_rect: Rect
    collapsed: bool
    checkpointed: str = ""  # the checkpointed module the whole group runs in ('' when none)


@dataclass(frozen=True)
class DiagramLayout:
    blocks: tuple
    frames: tuple
    width: float
    height: float


def layer_lines(layer, label: str, decimal_units: bool = False, compact: bool = False) -> tuple:
    """Name, shape, params, output bytes; in a compact layout only the name and the bytes."""
    if compact:
        return (label, format_size(layer.output_bytes, decimal_units))
    return (label, _shape_text(layer.output_shape),
            f"{format_count(layer.params)} params" if layer.params else "no params",
            format_size(layer.output_bytes, decimal_units))


def summary_lines(group: LayerGroup, decimal_units: bool = False, compact: bool = False) -> tuple:
    n = len(group.layers)
    if compact:
        return (short_path(group.name), f"{n} layers, max {format_size(group.max_output_bytes, decimal_units)}")
    return (short_path(group.name), f"{n} layer{'s' if n != 1 else ''}",
            f"{format_count(group.params)} params" if group.params else "no params",
            f"max {format_size(group.max_output_bytes, decimal_units)}")


def frame_label(name: str, collapsed: bool, continued: bool, checkpointed: bool = False) -> str:
    """'▾ features.denseblock1', '▸ …' when collapsed, ' (cont.)' on a row it wraps onto,
    ' · checkpointed' when the group's activations are recomputed in backward."""
    return (f"{COLLAPSED_MARK if collapsed else EXPANDED_MARK} {name}{' (cont.)' if continued else ''}"
            f"{f' · {CHECKPOINTED_TAG}' if checkpointed else ''}")


def row_height(line_h: float, block_h_max: float = BLOCK_H_MAX, compact: bool = False) -> float:
    """One row of the layout, from its frame's label to the gap under its frame."""
    label_h = line_h * (2 if compact else LABEL_LINES)
    return (line_h + 4) + GROUP_PAD + block_h_max + 3 + label_h + GROUP_PAD + ROW_GAP


def layout_diagram(model: DiagramModel, collapsed, metrics: TextMetrics, row_width: float,
                   decimal_units: bool = False, block_h_max: float = BLOCK_H_MAX,
                   compact: bool = False) -> DiagramLayout:
    """Flow the groups left to right from (0, 0), wrapping rows at `row_width`; a collapsed group
    takes one block's room; `block_h_max` is the tallest block, `compact` keeps two label lines. Blocks are as wide as their widest label line (one width per group),
    frames at least as wide as their label, so no text is ever cut."""
    line_h = metrics.line_h
    label_h = line_h * (2 if compact else LABEL_LINES)
    frame_label_h = line_h + 4
    row_h = row_height(line_h, block_h_max, compact)
    blocks: list[BlockBox] = []
    frames: list[FrameBox] = []
    row, x, width = 0, 0.0, 0.0

    def text_w(lines) -> float:
        return max(metrics.measure(text, i == 0) for i, text in enumerate(lines))

    for group in model.groups:
        is_collapsed = bool(group.name) and group.name in collapsed
        if is_collapsed:
            members = [(group, summary_lines(group, decimal_units, compact))]
        else:
            members = [(layer, layer_lines(layer, model.labels[layer.name], decimal_units, compact))
                       for layer in group.layers]
        block_w = max(BLOCK_W_MIN, max(text_w(lines) for _, lines in members) + 2 * LABEL_PAD)
        pad = GROUP_PAD if group.name else 0.0
        step = block_w + BLOCK_GAP
        start = 0
        group_checkpointed = model.checkpointed_groups.get(group.name, "")
        while start < len(members):
            label = frame_label(group.name, is_collapsed, start > 0, bool(group_checkpointed)) if group.name else ""
            label_w = metrics.measure(label, False) + 8 if label else 0.0
            room = int((row_width - x - 2 * pad + BLOCK_GAP) // step)
            left = len(members) - start
            if x > 0 and (room < min(left, max(1, int((row_width - 2 * pad + BLOCK_GAP) // step)))
                          or x + label_w > row_width):
                row, x = row + 1, 0.0  # the run would not fit: start it on a new row
                continue
            chunk = members[start:start + max(room, 1)]
            top = row * row_h
            baseline = top + frame_label_h + GROUP_PAD + block_h_max
            for i, (member, lines) in enumerate(chunk):
                is_group = isinstance(member, LayerGroup)
                nbytes = member.max_output_bytes if is_group else member.output_bytes
                frac = model.fraction(nbytes)
                h = BLOCK_H_MIN + frac * (block_h_max - BLOCK_H_MIN)
                bx = x + pad + i * step
                blocks.append(BlockBox(
                    name=member.name, rect=Rect(bx, baseline - h, block_w, h),
                    label_rect=Rect(bx, baseline + 3, block_w, label_h), lines=lines, fraction=frac,
                    kind="" if is_group else member.kind, layer=None if is_group else member,
                    group=member if is_group else None,
                    checkpointed=group_checkpointed if is_group else model.checkpointed.get(member.name, "")))
            frame_w = max(len(chunk) * step - BLOCK_GAP + 2 * pad, label_w)
            if group.name:
                frame = Rect(x, top + frame_label_h, frame_w, row_h - frame_label_h - ROW_GAP)
                frames.append(FrameBox(group.name, frame, label,
                                       Rect(x + 4, top + 1, label_w - 4, line_h), is_collapsed, group_checkpointed))
            x += frame_w + GROUP_GAP
            width = max(width, x - GROUP_GAP)
            start += len(chunk)
            if x >= row_width:
                row, x = row + 1, 0.0
    rows = row + (1 if x > 0 else 0)
    return DiagramLayout(tuple(blocks), tuple(frames), width, rows * row_h - ROW_GAP)
