"""The one colour table (memory categories, phases, highlights, the diagram's memory ramp) and the
`Display` every view styles itself from (theme, font scale, GB vs GiB).

Qt-free on purpose: the worker thread and a future PDF report read the same table. Highlights
are magenta, a hue no category uses (the old red selection read as "optimizer state"), and the
phases are one set of faint tints shared by the timeline and the lifetimes.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from engine.categories import CATEGORIES, PHASES

CATEGORY_LABELS = {
    "parameters": "Parameters",
    "buffers": "Buffers",
    "gradients": "Gradients",
    "optimizer_state": "Optimizer state",
    "activations": "Activations (saved)",
    "temporaries": "Temporaries",
    "inputs": "Inputs",
    "communication": "Communication",
}


@dataclass(frozen=True)
class Theme:
    """Every colour a view draws with, as '#rrggbb' (or an (r, g, b, a) tuple for tints)."""

    name: str
    background: str
    text: str
    muted_text: str
    axis: str
    grid_alpha: float
    categories: dict = field(repr=False)  # category -> colour (stacked areas, swatches, cards)
    phases: dict = field(repr=False)  # phase -> (r, g, b, a) band behind both linked plots
    selected: str  # outline and marks of the selected layer
    selected_fill: tuple  # (r, g, b, a): the selected layer's span / block background
    previewed: str  # the hovered or scrubbed layer: a lighter mark of the same hue
    previewed_fill: tuple
    cursor: str
    peak: str
    memory_ramp: tuple  # diagram blocks, small to large output bytes (no category hue)
    frame: str  # group frames in the diagram
    frame_fill: str
    toggle_text: str
    line_width: float  # block outlines and curve pens


_LIGHT_CATEGORIES = {
    "parameters": "#1f77b4",
    "buffers": "#aec7e8",
    "gradients": "#ff7f0e",
    "optimizer_state": "#d62728",
    "activations": "#2ca02c",
    "temporaries": "#9467bd",
    "inputs": "#8c564b",
    "communication": "#17becf",  # cyan: the one tab10 hue no other category uses
}
# Okabe–Ito: distinguishable with the common colour-vision deficiencies and on a washed-out projector.
_HIGH_CONTRAST_CATEGORIES = {
    "parameters": "#0072B2",
    "buffers": "#56B4E9",
    "gradients": "#E69F00",
    "optimizer_state": "#D55E00",
    "activations": "#009E73",
    "temporaries": "#CC79A7",
    "inputs": "#6B4E00",
    "communication": "#3D3D3D",  # neutral dark grey: apart from every Okabe-Ito hue, also projected
}
_PHASES = {"forward": (70, 110, 160, 30), "backward": (160, 110, 50, 30), "optimizer": (110, 110, 110, 34)}
# Slate ramp: a lightness scale with a faint blue cast, far from every category hue.
_SLATE_RAMP = ("#EEF1F5", "#D3DAE4", "#AEB9C9", "#8593AA", "#5D6B84", "#38445A")

THEMES = {
    "light": Theme(
        name="light", background="#FFFFFF", text="#22262C", muted_text="#5A616B", axis="#444A52",
        grid_alpha=0.25, categories=_LIGHT_CATEGORIES, phases=_PHASES,
        selected="#B0177E", selected_fill=(214, 40, 160, 60), previewed="#D563B4", previewed_fill=(214, 40, 160, 26),
        cursor="#333333", peak="#111111", memory_ramp=_SLATE_RAMP,
        frame="#C9CED6", frame_fill="#F5F6F8", toggle_text="#2B5C9E", line_width=1.0),
    "high-contrast": Theme(
        name="high-contrast", background="#FFFFFF", text="#000000", muted_text="#1A1A1A", axis="#000000",
        grid_alpha=0.4, categories=_HIGH_CONTRAST_CATEGORIES,
        phases={phase: (r, g, b, a * 2) for phase, (r, g, b, a) in _PHASES.items()},
        selected="#7A0063", selected_fill=(150, 0, 120, 80), previewed="#B0179A", previewed_fill=(150, 0, 120, 36),
        cursor="#000000", peak="#000000", memory_ramp=("#F2F2F2", "#CFCFCF", "#A3A3A3", "#777777", "#4D4D4D", "#262626"),
        frame="#555555", frame_fill="#FAFAFA", toggle_text="#0040A0", line_width=2.0),
}
for _theme in THEMES.values():
    assert set(_theme.categories) == set(CATEGORIES) and set(_theme.phases) == set(PHASES)


@dataclass(frozen=True)
class Display:
    """How views draw: a theme, a font scale and the byte unit family. Views re-style from it."""

    theme: str = "light"
    colours: Theme = field(default=THEMES["light"], repr=False)
    font_scale: float = 1.0
    decimal_units: bool = False  # GB/MB (vendors' units) instead of GiB/MiB

    def px(self, base_px: float) -> int:
        """A font size in pixels: the view's base size for that text, scaled."""
        return max(1, round(base_px * self.font_scale))


# Base text sizes in pixels, before the font scale. The smallest (tick labels, diagram details)
# is what the presentation preset lifts to >= 11 px.
TEXT_PX = {"small": 11, "normal": 12, "title": 14}
PRESENTATION_FONT_SCALE = 1.45


def make_display(theme: str = "light", font_scale: float = 1.0, decimal_units: bool = False) -> Display:
    """A Display for theme `theme` ('light' or 'high-contrast')."""
    return Display(theme=theme, colours=THEMES[theme], font_scale=font_scale, decimal_units=decimal_units)


DEFAULT_DISPLAY = make_display()
PRESENTATION = make_display("high-contrast", font_scale=PRESENTATION_FONT_SCALE)


def presentation(display: Display) -> Display:
    """`display` for a projector: high contrast and large text, keeping its unit choice."""
    return replace(PRESENTATION, decimal_units=display.decimal_units)


# Names the rest of the GUI already reads (summary cards, comparison table, window).
CATEGORY_COLOURS = DEFAULT_DISPLAY.colours.categories
ERROR_STYLE = "background:#fde2e1; color:#8a1c13; border:1px solid #e0a09b; border-radius:4px; padding:6px;"
CARD_STYLE = "QFrame#card { background:#f7f7f9; border:1px solid #dcdce3; border-radius:6px; }"


def ramp_colour(theme: Theme, fraction: float) -> str:
    """The memory ramp's colour for `fraction` in [0, 1] (0: smallest)."""
    ramp = theme.memory_ramp
    return ramp[min(len(ramp) - 1, max(0, int(fraction * len(ramp))))]
