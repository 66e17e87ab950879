"""The layer table as CSV: one writer (engine/layer_csv.py) for the CLI, the GUI and the report;
reading the file back gives the analysis's own numbers."""
import csv
import io
import os

import pytest

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.cli import summary_text
from engine.layer_csv import COLUMNS, layers_csv, layers_text, write_layers_csv


@pytest.fixture(scope="module")
def analysis():
    return analyze(AnalysisRequest(model=os.path.join(SPECS, "small_cnn.yaml"), batch=4))


def test_csv_round_trips_to_the_same_numbers(analysis, tmp_path):
    path = tmp_path / "layers.csv"
    write_layers_csv(analysis, str(path))
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [c.key for c in COLUMNS] == list(rows[0])
    assert len(rows) == len(analysis.layers)
    for row, layer in zip(rows, analysis.layers):
        assert row["name"] == layer.name and row["type"] == layer.type
        assert tuple(int(d) for d in row["output_shape"].split("x")) == layer.output_shape
        assert int(row["params"]) == layer.params
        assert int(row["param_bytes"]) == layer.param_bytes
        assert int(row["output_bytes"]) == layer.output_bytes
        assert int(row["saved_bytes"]) == layer.saved_bytes
        assert float(row["share_of_peak"]) == layer.saved_bytes / analysis.peak.total_bytes
    assert sum(int(r["params"]) for r in rows) == analysis.parameters


def test_a_name_with_a_comma_or_quote_survives(analysis):
    layer = analysis.layers[0]
    odd = type(analysis)(**{**analysis.__dict__, "layers": (type(layer)(**{**layer.__dict__,
                                                                            "name": 'a,"b"\nc'}),)})
    rows = list(csv.reader(io.StringIO(layers_csv(odd))))
    assert rows[1][0] == 'a,"b"\nc'


def test_tab_separated_is_the_same_table(analysis):
    tsv = list(csv.reader(io.StringIO(layers_csv(analysis, delimiter="\t")), delimiter="\t"))
    assert tsv == list(csv.reader(io.StringIO(layers_csv(analysis))))


def test_the_cli_summary_shows_the_same_columns_as_the_gui(analysis):
    text = summary_text(analysis)
    header = layers_text(analysis).splitlines()[0]
    assert header in text
    for c in COLUMNS:
        assert c.title in header
    row = next(line for line in text.splitlines() if line.startswith("conv2d1 "))
    assert "512.0 KiB" in row  # conv2d1's output: 4 x 32 x 32 x 32 float32 = 524,288 bytes
