"""The layer table, defined once: its columns, how each cell is written, and its two renderings
(CSV with raw numbers for spreadsheets and scripts, aligned text for the terminal).

The CLI's table, the GUI's table model and its "Copy table" all read `COLUMNS` from here, so a
column added or renamed shows up everywhere at once (STYLE.md §8: one writer per format).
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Callable

from .units import format_count, format_size


@dataclass(frozen=True)
class Column:
    """One column: its CSV key, its heading, the raw value and how that value reads as text."""

    key: str  # CSV header (snake_case, stable: scripts read it)
    title: str  # heading in the GUI and the terminal
    value: Callable  # (layer, peak_bytes) -> raw value (str, int, float, or a shape tuple)
    text: Callable  # (raw value, decimal_units) -> display text
    numeric: bool  # right-aligned; sorts on the raw value
    width: int  # terminal column width


def _shape(shape: tuple[int, ...], sep: str = "x") -> str:
    return sep.join(str(d) for d in shape)


def _size(value: int, decimal: bool) -> str:
    return format_size(value, decimal)


COLUMNS = (
    Column("name", "Layer", lambda layer, _p: layer.name, lambda v, _d: str(v), False, 34),
    Column("type", "Type", lambda layer, _p: layer.type, lambda v, _d: str(v), False, 18),
    Column("output_shape", "Output shape", lambda layer, _p: tuple(layer.output_shape),
           lambda v, _d: _shape(v, "×"), False, 20),
    Column("params", "Params", lambda layer, _p: layer.params, lambda v, _d: format_count(v), True, 9),
    Column("param_bytes", "Param bytes", lambda layer, _p: layer.param_bytes, _size, True, 11),
    Column("output_bytes", "Output bytes", lambda layer, _p: layer.output_bytes, _size, True, 12),
    Column("saved_bytes", "Saved bytes", lambda layer, _p: layer.saved_bytes, _size, True, 11),
    Column("share_of_peak", "Share of peak", lambda layer, peak: layer.saved_bytes / max(peak, 1),
           lambda v, _d: f"{100 * v:.1f}%", True, 13),
)


# ---- Public API
def cell_value(layer, column: int, peak_bytes: int):
    """The raw value of `layer` in column `column` (what sorting and the CSV use)."""
    return COLUMNS[column].value(layer, peak_bytes)


def cell_text(layer, column: int, peak_bytes: int, decimal_units: bool = False) -> str:
    """The value as the table shows it ('392.0 MiB', '1.8K', '64×112×112')."""
    c = COLUMNS[column]
    return c.text(c.value(layer, peak_bytes), decimal_units)


def layers_csv(analysis, delimiter: str = ",") -> str:
    """Every layer as one row of raw numbers (bytes as integers, the share of the peak as a
    fraction, shapes as 2x64x112x112) under a header of column keys. Reading it back gives the
    analysis's numbers exactly; a tab `delimiter` gives what pastes into a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow([c.key for c in COLUMNS])
    peak = analysis.peak.total_bytes
    for layer in analysis.layers:
        row = []
        for c in COLUMNS:
            value = c.value(layer, peak)
            if isinstance(value, tuple):
                value = _shape(value)
            elif isinstance(value, float):
                value = repr(value)  # every digit: reading it back gives the same float
            row.append(value)
        writer.writerow(row)
    return buffer.getvalue()


def layers_text(analysis, decimal_units: bool = False) -> str:
    """The table for a terminal: fixed-width columns, long names cut to fit."""
    peak = analysis.peak.total_bytes

    def line(cells):
        return " ".join(f"{t[:c.width]:>{c.width}}" if c.numeric else f"{t[:c.width]:<{c.width}}"
                        for c, t in zip(COLUMNS, cells)).rstrip()

    lines = [line([c.title for c in COLUMNS])]
    lines += [line([cell_text(layer, i, peak, decimal_units) for i in range(len(COLUMNS))])
              for layer in analysis.layers]
    return "\n".join(lines)


def write_layers_csv(analysis, path: str) -> None:
    """`layers_csv` to `path` ('-' for stdout); an OSError propagates to the caller's message."""
    text = layers_csv(analysis)
    if path == "-":
        print(text, end="")
        return
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
