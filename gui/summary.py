"""Summary cards: the traced peak and its breakdown, textbook vs traced, parameters, time."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.categories import CATEGORIES
from engine.units import format_bytes, format_count

from .style import CARD_STYLE, CATEGORY_COLOURS, CATEGORY_LABELS


def _card(title: str) -> tuple[QFrame, QVBoxLayout]:
    frame = QFrame()
    frame.setObjectName("card")
    frame.setStyleSheet(CARD_STYLE)
    layout = QVBoxLayout(frame)
    layout.setContentsMargins(10, 6, 10, 6)
    heading = QLabel(title)
    heading.setStyleSheet("color:#555; font-size:11px; font-weight:600; text-transform:uppercase;")
    layout.addWidget(heading)
    return frame, layout


class SummaryWidget(QWidget):
    """A row of cards; `set_analysis` fills them."""

    def __init__(self, parent=None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        card, lay = _card("Traced peak")
        self.peak = QLabel("—")
        self.peak.setStyleSheet("font-size:22px; font-weight:700;")
        self.peak_where = QLabel("")
        self.peak_where.setWordWrap(True)
        self.not_included = QLabel("")
        self.not_included.setWordWrap(True)
        self.not_included.setStyleSheet("color:#8a5a00; font-size:11px;")
        lay.addWidget(self.peak)
        lay.addWidget(self.peak_where)
        lay.addWidget(self.not_included)
        row.addWidget(card, 2)

        card, lay = _card("At the peak")
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(1)
        self.breakdown: dict[str, QLabel] = {}
        for i, cat in enumerate(CATEGORIES):
            swatch = QLabel()
            swatch.setFixedSize(10, 10)
            swatch.setStyleSheet(f"background:{CATEGORY_COLOURS[cat]}; border-radius:2px;")
            value = QLabel("—")
            value.setAlignment(Qt.AlignRight)
            grid.addWidget(swatch, i % 4, (i // 4) * 3)
            grid.addWidget(QLabel(CATEGORY_LABELS[cat]), i % 4, (i // 4) * 3 + 1)
            grid.addWidget(value, i % 4, (i // 4) * 3 + 2)
            self.breakdown[cat] = value
        lay.addLayout(grid)
        row.addWidget(card, 4)

        card, lay = _card("Textbook vs traced")
        self.textbook = QLabel("—")
        self.textbook.setWordWrap(True)
        lay.addWidget(self.textbook)
        row.addWidget(card, 3)

        card, lay = _card("Model")
        self.model = QLabel("—")
        self.model.setWordWrap(True)
        lay.addWidget(self.model)
        row.addWidget(card, 2)

    def set_analysis(self, a) -> None:
        p = a.peak
        self.peak.setText(format_bytes(p.total_bytes))
        self.peak_where.setText(f"in the {p.phase}, at {p.module}\n{p.total_bytes:,} bytes")
        for cat, label in self.breakdown.items():
            label.setText(format_bytes(p.breakdown[cat]))
        extra = [f"{n.label} {format_bytes(n.bytes)}" if n.bytes else n.label for n in a.not_modelled]
        self.not_included.setText("not included: " + ", ".join(extra) if extra else "")
        self.not_included.setToolTip("\n".join(f"{n.label}: {n.note}" for n in a.not_modelled))
        t = a.textbook
        diff = p.total_bytes - t.peak_bytes
        reason = ("autograd also saves layer inputs, temporaries and allocator scratch the formula leaves out"
                  if diff > 0 else "in-place layers and early frees keep fewer maps alive than the formula assumes")
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
