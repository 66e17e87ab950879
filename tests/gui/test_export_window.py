"""File ▸ Export… end to end on a real window: the picture of the whole window, the layer CSV, the
analysis JSON (valid against the schema) and the PDF report made through the controller's job."""
import csv
import json
import os
import subprocess
import xml.etree.ElementTree as ET

import pytest
from PySide6.QtGui import QImage

from conftest import SPECS
from engine import AnalysisRequest
from engine.json_schema import validate
from gui import export
from gui.style import CATEGORY_LABELS
from gui.window import MainWindow
from isolation import private_settings  # noqa: F401 - a fixture

CNN = os.path.join(SPECS, "small_cnn.yaml")


@pytest.fixture
def window(qtbot, private_settings):
    w = MainWindow(AnalysisRequest(model=CNN, batch=4))
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
        w.start()
    yield w
    w.close()
    assert w.controller.shutdown(60.0)


def test_every_export_of_the_window_opens_in_a_real_reader(window, qtbot, tmp_path):
    a = window.analysis
    export.export(window, "window", str(tmp_path / "window.png"), "2x")
    image = QImage(str(tmp_path / "window.png"))
    assert (image.width(), image.height()) == (2 * window.width(), 2 * window.height())
    export.export(window, "window", str(tmp_path / "window.svg"))
    root = ET.parse(tmp_path / "window.svg").getroot()
    text = " ".join(" ".join(e.itertext()) for e in root.iter())
    for category in ("parameters", "activations", "optimizer_state"):
        assert CATEGORY_LABELS[category] in text
    for key in ("timeline", "diagram", "lifetimes", "sweeps"):
        export.export(window, key, str(tmp_path / f"{key}.png"), "1x")
        assert not QImage(str(tmp_path / f"{key}.png")).isNull(), key
    export.export(window, "csv", str(tmp_path / "layers.csv"))
    with open(tmp_path / "layers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["output_bytes"]) for r in rows] == [layer.output_bytes for layer in a.layers]
    export.export(window, "json", str(tmp_path / "analysis.json"))
    doc = json.loads((tmp_path / "analysis.json").read_text())
    assert validate(doc) == [] and doc["peak_bytes"] == a.peak.total_bytes
    assert not window.error.isVisible()
    with qtbot.waitSignal(window.report_export.sig_done, timeout=240_000):
        export.export(window, "report", str(tmp_path / "plan.pdf"))
    info = subprocess.run(["pdfinfo", str(tmp_path / "plan.pdf")], capture_output=True, text=True).stdout
    assert "Pages:           2" in info
    pdf = " ".join(subprocess.run(["pdftotext", str(tmp_path / "plan.pdf"), "-"], capture_output=True,
                                  text=True).stdout.split())
    assert a.model_name in pdf and f"{a.peak.total_bytes:,} bytes" in pdf and "no device chosen" in pdf
    assert "Inference" in pdf and "the other mode was not analysed" not in pdf  # the report job ran it
    assert window.status.text() == f"exported {tmp_path / 'plan.pdf'}"


def test_a_failed_export_is_a_message_and_the_window_carries_on(window, tmp_path):
    export.export(window, "csv", str(tmp_path / "no" / "such" / "layers.csv"))
    assert window.error.isVisible() and "layers.csv: could not write the table" in window.error.text()
    assert window.analysis is not None
