"""The Scenarios tab (issue 10): pin up to four analyses, compare them with the current one, export
the comparison to CSV and to PDF pages a real reader (poppler) opens."""
import csv
import os
import shutil
import subprocess

import pytest

from conftest import SPECS
from engine import AnalysisRequest
from engine.scenarios import MAX_PINNED
from engine.units import format_bytes, format_size
from gui.scenarios import CURRENT, ScenarioError
from gui.window import MainWindow
from isolation import private_settings  # noqa: F401 - a fixture

CNN = os.path.join(SPECS, "small_cnn.yaml")
WAIT = 120_000


@pytest.fixture
def window(qtbot, private_settings):
    w = MainWindow(AnalysisRequest(model=CNN, batch=4))
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    with qtbot.waitSignal(w.sig_analysis_shown, timeout=WAIT):
        w.start()
    yield w
    w.close()
    assert w.controller.shutdown(60.0)


def analyse(window, qtbot, **changes):
    request = window.analysis.request.replace(**changes)
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=WAIT):
        window.config.set_request(request)
        window.config.schedule()
    return window.analysis


def test_pinning_a_fifth_scenario_is_refused_clearly(window):
    for name in "ABCD":
        window.scenarios.pin(name)
    with pytest.raises(ScenarioError, match=f"{MAX_PINNED} scenarios are pinned already.*unpin one first"):
        window.scenarios.pin("E")
    assert [p.name for p in window.scenarios.pinned] == list("ABCD")
    window.pin_scenario()  # the menu action says so in the tab, without asking for a name
    assert window.lower_tabs.currentWidget() is window.scenarios
    assert "unpin one first" in window.scenarios.note.text() and "unpin one first" in window.status.text()


def test_the_pin_action_has_a_shortcut_and_names_must_differ(window):
    assert window.actions["pin"].shortcut().toString() == "Ctrl+B"
    window.scenarios.pin("A")
    for taken in ("A", " A ", CURRENT, ""):
        with pytest.raises(ScenarioError):
            window.scenarios.pin(taken)
    window.scenarios.pin("B")
    with pytest.raises(ScenarioError, match="taken"):
        window.scenarios.rename(1, "A")
    window.scenarios.rename(1, "B: renamed")
    window.scenarios.unpin(0)
    assert [p.name for p in window.scenarios.pinned] == ["B: renamed"]


def test_the_tab_shows_each_scenario_beside_the_current_one(window, qtbot):
    a = window.analysis
    window.scenarios.pin("A: fp32 adam")
    b = analyse(window, qtbot, batch=8)
    view = window.scenarios
    assert view.comparison.names == ("A: fp32 adam", CURRENT)
    table = view.table
    assert [table.horizontalHeaderItem(j).text() for j in range(2)] == ["A: fp32 adam", CURRENT]
    assert table.item(0, 0).text() == format_size(a.peak.total_bytes)
    delta = b.peak.total_bytes - a.peak.total_bytes
    assert table.item(0, 1).text() == f"{format_size(b.peak.total_bytes)} (+{format_size(delta)})"
    assert len(view._curves) == 2  # one overlaid line each
    layer_rows = [table.verticalHeaderItem(i).text().strip() for i in range(table.rowCount())]
    assert [r.name for r in view.comparison.layers] == layer_rows[layer_rows.index("Layers (most changed)") + 1:]
    # The baseline can be switched: differences are then taken against the current analysis.
    view.baseline.setCurrentIndex(1)
    assert view.comparison.peak_delta == (-delta, 0)


def test_the_comparison_exports_to_csv_and_to_a_pdf_a_reader_opens(window, qtbot, tmp_path):
    a = window.analysis
    window.scenarios.pin("A: Adam")
    b = analyse(window, qtbot, optimizer="sgd")
    window.scenarios.export_csv(str(tmp_path / "cmp.csv"))
    with open(tmp_path / "cmp.csv", newline="", encoding="utf-8") as f:
        rows = {(r[0], r[1]): r[2:] for r in csv.reader(f)}
    assert rows["section", "item"] == ["A: Adam", CURRENT, f"{CURRENT} − A: Adam"]
    assert [int(v) for v in rows["peak", "total bytes"]] == [a.peak.total_bytes, b.peak.total_bytes,
                                                            b.peak.total_bytes - a.peak.total_bytes]

    if shutil.which("pdftotext") is None:
        pytest.skip("poppler-utils (pdftotext) is not installed")
    pdf = tmp_path / "cmp.pdf"
    assert window.scenarios.export_pdf(str(pdf)) == 2
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "Pages:           2" in info
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for name, analysis in (("A: Adam", a), (CURRENT, b)):
        assert name in text and format_bytes(analysis.peak.total_bytes) in text
    assert "Scenario comparison" in text and "forward" in text and "Optimizer state" in text
    assert text.count("\f") == 2  # one form feed per page


def test_an_export_to_an_unwritable_place_is_said_in_the_tab(window, qtbot, tmp_path):
    window.scenarios.pin("A")
    analyse(window, qtbot, batch=2)
    assert not window.scenarios.save_comparison(str(tmp_path / "missing" / "cmp.csv"))
    assert "could not export the comparison" in window.scenarios.note.text()


def test_a_reopened_scenario_that_cannot_be_analysed_says_why_and_can_be_tried_again(window, qtbot):
    bad = AnalysisRequest(model="resnet_that_does_not_exist")
    window.scenarios.restore([("A", window.analysis.request.replace(batch=2), None, ()), ("B", bad, None, ())])
    qtbot.waitUntil(lambda: all(p.analysis is not None or p.error for p in window.scenarios.pinned), timeout=WAIT)
    good, failed = window.scenarios.pinned
    assert good.analysis.request.batch == 2 and not good.error
    assert failed.analysis is None and "resnet_that_does_not_exist" in failed.error
    assert f"B: {failed.error}" in window.scenarios.note.text()
    assert window.scenarios.comparison.names == ("A", CURRENT)  # the rest is still compared
    window.scenarios.retry(1)
    assert window.scenarios.pinned[1].error == ""
    qtbot.waitUntil(lambda: window.scenarios.pinned[1].error != "", timeout=WAIT)
