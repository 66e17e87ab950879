"""Scenario A/B: up to four pinned analyses beside the current one, as plain numbers.

A user pins an analysis (fp32, Adam, batch 32 on an A100...), changes a setting and wants to
see what moved: the timelines on one axis, the categories at the peak, the layers that changed
most and whether each still fits. Every figure here is read from the analyses' own numbers
(their peak, breakdown, layer table, fit check), so a comparison can never disagree with the
views that show each analysis alone. The GUI, the CSV and the PDF comparison page read this.
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

import numpy as np

from .analysis import Analysis, Layer, Timeline
from .categories import PHASES, listed_categories
from .devices import DeviceInfo
from .errors import MemLensError
from .footprint import Fit, fit_check

MAX_PINNED = 4  # four pinned plus the current one: five columns still read side by side
TOP_LAYERS = 10
# The steps being compared have different event counts (AMP adds casts, SGD has fewer optimizer
# ops): each phase is stretched to one unit so forward, backward and the optimizer line up.
PHASE_AXIS_LABEL = "step, each phase stretched to one unit (forward 0–1, backward 1–2, optimizer 2–3)"


@dataclass(frozen=True)
class Scenario:
    """One analysis under a user's name, with the device it is checked against (None: whichever
    device the GPU panel has chosen) and the overhead lines the user edited then."""

    name: str
    analysis: Analysis
    device: DeviceInfo | None = None
    overrides: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Column:
    """One scenario's own figures, as its views show them."""

    name: str
    settings: str  # the request in words
    peak_bytes: int
    peak_phase: str
    breakdown: dict[str, int]
    fit: Fit | None  # None: no device chosen


@dataclass(frozen=True)
class CategoryRow:
    """One category at each scenario's peak, and its difference from the baseline's."""

    category: str
    bytes: tuple[int, ...]
    delta: tuple[int, ...]  # column minus baseline


@dataclass(frozen=True)
class LayerRow:
    """One layer (matched by name) in each scenario: `layer_bytes`, None where it does not exist."""

    name: str
    type: str
    bytes: tuple[int | None, ...]
    delta: tuple[int, ...]  # column minus baseline, a missing layer counting as 0

    @property
    def change(self) -> int:
        """How much it changed in the scenario that moved it most (the ranking key)."""
        return max(abs(d) for d in self.delta)


@dataclass(frozen=True)
class Comparison:
    """Columns in the order given (pinned first, the current one last); differences are taken
    against `columns[baseline]`."""

    columns: tuple[Column, ...]
    baseline: int
    peak_delta: tuple[int, ...]
    categories: tuple[CategoryRow, ...]
    layers: tuple[LayerRow, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


# ---- Public API
def layer_bytes(layer: Layer) -> int:
    """What a layer holds in the layer table's three byte columns: its parameters, its output and
    what it keeps for backward (an output kept for backward counts in both, as the table shows it)."""
    return layer.param_bytes + layer.output_bytes + layer.saved_bytes


def describe_request(request) -> str:
    """'resnet18 · batch 32 · float32 AMP · train · adam · cpu': the settings that tell scenarios apart."""
    dtype = f"{request.dtype} AMP" if request.amp else request.dtype
    parts = [os.path.basename(request.model), f"batch {request.batch}"]
    if request.input_shape:
        parts.append("x".join(map(str, request.input_shape)))
    parts += [dtype, request.mode]
    if request.mode == "train":
        parts.append(request.optimizer + (" (first step)" if request.first_step else ""))
    parts.append(request.device)
    return " · ".join(parts)


def fit_of(scenario: Scenario, device: DeviceInfo | None = None, overrides: dict | None = None) -> Fit | None:
    """The scenario's fit on its own device, else on `device` (the GPU panel's); None without one."""
    chosen = scenario.device or device
    if chosen is None:
        return None
    lines = dict(scenario.overrides) if scenario.device is not None else dict(overrides or {})
    try:
        return fit_check(scenario.analysis, chosen, lines)
    except MemLensError:
        return None


def compare(scenarios: list[Scenario] | tuple[Scenario, ...], baseline: int = 0, device: DeviceInfo | None = None,
            overrides: dict | None = None, top: int = TOP_LAYERS) -> Comparison:
    """Side by side: each scenario's figures, and every difference against `scenarios[baseline]`."""
    if not scenarios:
        raise MemLensError("nothing to compare: pin an analysis first")
    baseline = baseline if 0 <= baseline < len(scenarios) else 0
    analyses = [s.analysis for s in scenarios]
    columns = tuple(Column(s.name, describe_request(s.analysis.request), s.analysis.peak.total_bytes,
                           s.analysis.peak.phase, dict(s.analysis.peak.breakdown), fit_of(s, device, overrides))
                    for s in scenarios)
    peaks = [c.peak_bytes for c in columns]
    categories = []
    for category in listed_categories(any(a.request.strategy != "single" for a in analyses)):
        values = tuple(int(a.peak.breakdown.get(category, 0)) for a in analyses)
        categories.append(CategoryRow(category, values, tuple(v - values[baseline] for v in values)))
    return Comparison(columns, baseline, tuple(p - peaks[baseline] for p in peaks), tuple(categories),
                      _changed_layers(analyses, baseline, top))


def phase_x(timeline: Timeline) -> np.ndarray:
    """Every timeline point's place on the common axis: phase k (forward 0, backward 1, optimizer
    2) spans [k, k+1], its points spread evenly; the start state sits at 0."""
    x = np.zeros(len(timeline), dtype=float)
    for phase, start, end in timeline.phase_spans:
        k = PHASES.index(phase)
        points = np.arange(start, end + 1)
        x[start:end + 1] = k + (points - start) / max(1, end - start)
    return x


def overlay_curve(analysis: Analysis, max_points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """(x on the phase axis, live bytes) thinned to about `max_points`, keeping every bucket's
    highest point so each scenario's peak survives (`Timeline.peak_points`)."""
    picks = analysis.timeline.peak_points(max_points=max_points)
    return phase_x(analysis.timeline)[picks], analysis.timeline.total[picks].astype(np.int64)


def write_comparison_csv(comparison: Comparison, target) -> None:
    """The comparison as one table: `section,item,<each scenario>,<each scenario> − <baseline>`.
    Sections: settings, peak, category (bytes at each peak), fit, layer (`layer_bytes`). Byte
    counts are exact integers; a cell is empty where a scenario has no such layer or no device.
    `target` is a path or an open text file."""
    if isinstance(target, (str, bytes)) or hasattr(target, "__fspath__"):
        with open(target, "w", newline="", encoding="utf-8") as f:
            write_comparison_csv(comparison, f)
        return
    writer = csv.writer(target)
    writer.writerows(comparison_rows(comparison))


def comparison_rows(comparison: Comparison) -> list[list]:
    """The rows `write_comparison_csv` writes (header first)."""
    c = comparison
    base = c.columns[c.baseline].name
    others = [i for i in range(len(c.columns)) if i != c.baseline]
    header = ["section", "item", *c.names, *[f"{c.names[i]} − {base}" for i in others]]

    def row(section, item, values, deltas=None):
        cells = ["" if v is None else v for v in values]
        extra = ["" if deltas is None else deltas[i] for i in others]
        return [section, item, *cells, *extra]

    fits = [col.fit for col in c.columns]
    rows = [header,
            row("settings", "request", [col.settings for col in c.columns]),
            row("peak", "total bytes", [col.peak_bytes for col in c.columns], c.peak_delta),
            row("peak", "phase", [col.peak_phase for col in c.columns])]
    rows += [row("category", r.category, r.bytes, r.delta) for r in c.categories]
    rows += [row("fit", "device", [f.device.name if f else None for f in fits]),
             row("fit", "capacity bytes", [f.capacity_bytes if f else None for f in fits]),
             row("fit", "footprint bytes", [f.total_bytes if f else None for f in fits],
                 _deltas([f.total_bytes if f else None for f in fits], c.baseline)),
             row("fit", "verdict", [f.state if f else None for f in fits])]
    rows += [row("layer", r.name, r.bytes, r.delta) for r in c.layers]
    return rows


# ---- Private API
def _deltas(values: list, baseline: int) -> list | None:
    if values[baseline] is None:
        return [None] * len(values)
    return [None if v is None else v - values[baseline] for v in values]


def _changed_layers(analyses: list[Analysis], baseline: int, top: int) -> tuple[LayerRow, ...]:
    """The `top` layers (matched by name) whose `layer_bytes` moved most from the baseline in any
    scenario; layers that did not change are left out."""
    tables = [{layer.name: layer for layer in a.layers} for a in analyses]
    names = list(dict.fromkeys(name for table in tables for name in table))  # execution order, first seen
    rows = []
    for name in names:
        found = [table.get(name) for table in tables]
        values = tuple(None if layer is None else layer_bytes(layer) for layer in found)
        base = values[baseline] or 0
        delta = tuple((v or 0) - base for v in values)
        if any(delta):
            kind = next(layer.type for layer in found if layer is not None)
            rows.append(LayerRow(name, kind, values, delta))
    rows.sort(key=lambda r: -r.change)  # stable: equal changes keep execution order
    return tuple(rows[:top])
