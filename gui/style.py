"""Colours and fonts shared by every view: one colour per memory category, used everywhere."""
from __future__ import annotations

CATEGORY_COLOURS = {
    "parameters": "#1f77b4",
    "buffers": "#aec7e8",
    "gradients": "#ff7f0e",
    "optimizer_state": "#d62728",
    "activations": "#2ca02c",
    "temporaries": "#9467bd",
    "inputs": "#8c564b",
}
CATEGORY_LABELS = {
    "parameters": "Parameters",
    "buffers": "Buffers",
    "gradients": "Gradients",
    "optimizer_state": "Optimizer state",
    "activations": "Activations (saved)",
    "temporaries": "Temporaries",
    "inputs": "Inputs",
}
PHASE_COLOURS = {"forward": (76, 120, 168, 28), "backward": (245, 133, 24, 28), "optimizer": (214, 39, 40, 28)}
HIGHLIGHT = "#111111"
ERROR_STYLE = "background:#fde2e1; color:#8a1c13; border:1px solid #e0a09b; border-radius:4px; padding:6px;"
CARD_STYLE = "QFrame#card { background:#f7f7f9; border:1px solid #dcdce3; border-radius:6px; }"
