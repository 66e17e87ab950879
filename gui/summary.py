"""Summary cards: the traced peak and its breakdown, textbook vs traced, parameters, time."""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine import units
from engine.categories import CATEGORIES, listed_categories
from engine.lever_fields import card_lines, summary_lines
from engine.units import format_count

from .style import CARD_STYLE, CATEGORY_COLOURS, CATEGORY_LABELS

HEADING_PX, BODY_PX, PEAK_PX, NOTE_PX = 11, 12, 22, 11  # before the Display's font scale
LEVER_SEPARATOR = "  ·  "


def reason_for_difference(mode: str, diff_bytes: int) -> str:
    """Why the traced peak differs from the textbook figure, in the words that fit the mode."""
    if mode == "train":
        return ("autograd also saves layer inputs, temporaries and allocator scratch the formula leaves out"
                if diff_bytes > 0 else
                "in-place layers and early frees keep fewer maps alive than the formula assumes")
    return ("a layer's input, output and its temporaries are alive together, which two feature maps leave out"
            if diff_bytes > 0 else "in-place layers reuse their input, so fewer maps are alive than the formula assumes")


def _text_card(row: QHBoxLayout, title: str, stretch: int, tooltip: str) -> QLabel:
    """A card of one wrapped text, added to `row` with `stretch`; returns its label."""
    card, lay = _card(title)
    card.setToolTip(tooltip)
    label = QLabel("—")
    label.setWordWrap(True)
    lay.addWidget(label)
    lay.addStretch(1)  # the row is as tall as its tallest card: the rest goes below
    row.addWidget(card, stretch)
    return label


def _card(title: str) -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    frame.setStyleSheet(CARD_STYLE)
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(10, 6, 10, 6)
    heading = QLabel(title)
    heading.setObjectName("heading")
    layout.addWidget(heading)
    return frame, layout


class SummaryWidget(QWidget):
    """A row of cards; `set_analysis` fills them, `apply_display` scales and re-labels them."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.analysis = None
        self._scale, self._decimal = 1.0, False
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(4)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        column.addLayout(row)
        card, lay = _card("Traced peak")
        card.setToolTip("The most bytes live at any moment of the step, as traced op by op")
        self.peak = QLabel("—")
        self.peak.setObjectName("peak")
        self.peak_where = QLabel("")
        self.peak_where.setWordWrap(True)
        self.not_included = QLabel("")
        self.not_included.setObjectName("note")
        self.not_included.setWordWrap(True)
        lay.addWidget(self.peak)
        lay.addWidget(self.peak_where)
        lay.addWidget(self.not_included)
        lay.addStretch(1)  # the row is as tall as its tallest card: the rest goes below
        row.addWidget(card, 2)

        card, lay = _card("At the peak")
        card.setToolTip("What the bytes live at the peak are, by category")
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(1)
        self.breakdown: dict[str, QLabel] = {}
        self._breakdown_rows: dict[str, tuple[QLabel, ...]] = {}  # swatch, name, value: hidden together
        for i, cat in enumerate(CATEGORIES):
            swatch = QLabel()
            swatch.setFixedSize(10, 10)
            swatch.setStyleSheet(f"background:{CATEGORY_COLOURS[cat]}; border-radius:2px;")
            value = QLabel("—")
            value.setAlignment(Qt.AlignRight)
            name = QLabel(CATEGORY_LABELS[cat])
            grid.addWidget(swatch, i % 4, (i // 4) * 3)
            grid.addWidget(name, i % 4, (i // 4) * 3 + 1)
            grid.addWidget(value, i % 4, (i // 4) * 3 + 2)
            self.breakdown[cat] = value
            self._breakdown_rows[cat] = (swatch, name, value)
        lay.addLayout(grid)
        lay.addStretch(1)  # the row is as tall as its tallest card: the rest goes below
        row.addWidget(card, 4)

        self.textbook = _text_card(row, "Textbook vs traced", 3,
                                   "The article's arithmetic beside the traced figure, and why they differ")
        self.model = _text_card(row, "Model", 2, "The model and the step that was traced")

        # A strip under the cards, shown only while a lever is pulled: a few words per lever on one
        # line (the cards keep their width at 1280x720), the full sentences in its tooltip.
        self.levers_card = QFrame()
        self.levers_card.setObjectName("card")
        self.levers_card.setStyleSheet(CARD_STYLE)
        lay = QHBoxLayout(self.levers_card)
        lay.setContentsMargins(10, 4, 10, 4)
        heading = QLabel("Levers")
        heading.setObjectName("heading")
        lay.addWidget(heading, 0, Qt.AlignTop)
        self.levers = QLabel("")  # e.g. 'checkpointing 12 blocks: −3.1 GiB, +24% compute · frozen ...'
        self.levers.setWordWrap(True)
        lay.addWidget(self.levers, 1)
        column.addWidget(self.levers_card)
        self.levers_card.hide()
        self._restyle()

    # ---- Public API
    def apply_display(self, display) -> None:
        """Font scale and GB/GiB from the window's Display."""
        self._scale = display.font_scale
        self._decimal = display.decimal_units
        self._restyle()
        if self.analysis is not None:
            self.set_analysis(self.analysis)

    def set_analysis(self, a, prepared=None) -> None:
        self.analysis = a
        format_bytes = self._format
        p = a.peak
        self.peak.setText(format_bytes(p.total_bytes))
        where = f"in the {p.phase}, at {p.module}\n{p.total_bytes:,} bytes"
        if a.cuda is not None:  # what torch.cuda.max_memory_allocated / _reserved would read (engine/cuda_allocator.py)
            sim = a.cuda.simulation
            where += (f"\nallocator: {format_bytes(sim.peak_allocated_bytes)} allocated, "
                      f"{format_bytes(sim.peak_reserved_bytes)} reserved")
        self.peak_where.setText(where)
        self.peak_where.setToolTip(
            "The simulated caching allocator's peaks, as torch.cuda.max_memory_allocated and "
            "max_memory_reserved count them: whole blocks, and the segments they sit in"
            if a.cuda is not None else "")
        lines = card_lines(a, format_bytes)
        self.levers.setText(LEVER_SEPARATOR.join(lines))
        self.levers_card.setToolTip("\n".join(summary_lines(a, format_bytes)))
        self.levers_card.setVisible(bool(lines))
        listed = listed_categories(a.request.strategy != "single")
        for cat, label in self.breakdown.items():
            label.setText(format_bytes(p.breakdown[cat]))
            for widget in self._breakdown_rows[cat]:
                widget.setVisible(cat in listed)
        extra = [f"{n.label} {format_bytes(n.bytes)}" if n.bytes else n.label for n in a.not_modelled]
        notes = [html.escape("not included: " + ", ".join(extra), quote=False)] if extra else []
        if a.warnings:  # what the figure may miss for this model: seen on the card, whole in the tooltip
            notes.append(f"<span style='color:#b00020'>⚠ {html.escape(warning_head(a.warnings), quote=False)}</span>")
        self.not_included.setText("<br>".join(notes))
        self.not_included.setToolTip("\n".join([*(f"{n.label}: {n.note}" for n in a.not_modelled),
                                                *(f"Warning: {w}" for w in a.warnings)]))
        t = a.textbook
        diff = p.total_bytes - t.peak_bytes
        reason = reason_for_difference(a.request.mode, diff)
        self.textbook.setText(
            f"textbook {format_bytes(t.peak_bytes)} · traced {format_bytes(p.total_bytes)}\n"
            f"difference {'+' if diff >= 0 else ''}{format_bytes(diff)}: {reason}.\n"
            f"formula: {t.formula}")
        r = a.request
        self.model.setText(
            f"<b>{a.model_name}</b><br>{a.parameters:,} parameters ({format_count(a.parameters)}, "
            f"{format_bytes(a.parameter_bytes)})<br>input {'×'.join(map(str, a.input_shape))} {r.dtype}"
            f"{' AMP' if r.amp else ''}<br>{r.mode}{' · ' + r.optimizer if r.mode == 'train' else ''} · "
            f"target {r.device} · analysed in {a.analysis_seconds:.2f} s")

    # ---- Private API
    def _format(self, nbytes) -> str:
        return units.format_size(nbytes, self._decimal)

    def _restyle(self) -> None:
        """One style sheet for every label on the cards: all of them follow the font scale."""
        px = lambda base: max(1, round(base * self._scale))  # noqa: E731
        self.setStyleSheet(
            f"QLabel {{ font-size:{px(BODY_PX)}px; }}"
            f"QLabel#heading {{ color:#444; font-size:{px(HEADING_PX)}px; font-weight:600; text-transform:uppercase; }}"
            f"QLabel#peak {{ font-size:{px(PEAK_PX)}px; font-weight:700; }}"
            f"QLabel#note {{ color:#7a4f00; font-size:{px(NOTE_PX)}px; }}")


def warning_head(warnings, limit: int = 110) -> str:
    """The card's line for the analysis's warnings: the first one to its first semicolon (the
    warnings say what is missing first), else its first `limit` characters; how many more; the
    tooltip has them whole."""
    first = warnings[0]
    semicolon = first.find(";")
    if 0 < semicolon <= limit:
        first = first[:semicolon]
    elif len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0].rstrip(",;:(") + "…"
    more = f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else ""
    return f"{first}{more}"
