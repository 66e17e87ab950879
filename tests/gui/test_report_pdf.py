"""The capacity-plan report: a real PDF that poppler opens, with the expected pages and the
model, the peak and the verdict in its text; missing sections say so instead of leaving a hole."""
import datetime
import itertools
import os
import subprocess

import numpy as np
import pytest
from PySide6.QtGui import QImage

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.devices import custom_device
from engine.report import gather_report
from engine.units import format_bytes
from gui.controller import companion_request
from gui.report_pdf import write_report_pdf, write_report_png

CNN = os.path.join(SPECS, "small_cnn.yaml")
NOW = datetime.datetime(2026, 11, 28, 12, 0, tzinfo=datetime.timezone.utc)


def pdf_pages(path) -> int:
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    return int(next(line.split()[-1] for line in info.splitlines() if line.startswith("Pages:")))


def pdf_text(path) -> str:
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    return " ".join(text.split())  # wrapped lines read as one


@pytest.fixture(scope="module")
def analysis():
    return analyze(AnalysisRequest(model=CNN, batch=4, device="cuda"))


@pytest.fixture(scope="module")
def companion(analysis):
    return analyze(companion_request(analysis.request, "adam"))


def test_report_on_a_device_names_the_model_the_peak_and_the_verdict(qapp, tmp_path, analysis, companion):
    data = gather_report(analysis, custom_device(2**30), companion=companion, command="python main.py report ...")
    path = tmp_path / "plan.pdf"
    assert write_report_pdf(str(path), data, torch_version="2.x", now=NOW) == 2
    assert pdf_pages(path) == 2
    text = pdf_text(path)
    assert "Capacity plan: small-resnet" in text
    assert f"{analysis.peak.total_bytes:,} bytes" in text and format_bytes(analysis.peak.total_bytes) in text
    assert data.fit.state == "fits" and "FITS" in text and data.fit.describe() in text
    assert "LARGEST BATCH" in text and f" {data.largest.value} " in text
    assert f"batch {data.largest.value + 1} needs" in text  # the first batch over the capacity
    assert "Training vs inference" in text and format_bytes(companion.peak.total_bytes) in text
    assert "Textbook estimate vs traced peak" in text and data.analysis.textbook.formula in text
    for item in analysis.not_modelled:
        assert item.label in text
    assert "MemLens 0.1.0" in text and "torch 2.x" in text and "2026-11-28 12:00 UTC" in text
    assert "python main.py report ..." in text
    for label in ("Parameters", "Gradients", "Optimizer state", "Activations (saved)", "Temporaries", "Inputs"):
        assert label in text  # the legend and the breakdown name every category in words


def test_missing_sections_say_why(qapp, tmp_path, analysis):
    data = gather_report(analysis)  # no device, no companion
    path = tmp_path / "bare.pdf"
    write_report_pdf(str(path), data, page_size="Letter", now=NOW)
    info = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True).stdout
    assert "612 x 792 pts (letter)" in info
    text = pdf_text(path)
    assert "no device chosen" in text and "No capacity line: no device was chosen." in text
    assert "Not in this report: the other mode was not analysed." in text
    assert "(no command recorded)" in text


def test_a_step_that_does_not_fit_says_so_and_why_there_is_no_largest_batch(qapp, tmp_path, analysis):
    data = gather_report(analysis, custom_device(2**20))
    assert data.fit.state == "does not fit" and data.largest is None
    path = tmp_path / "over.pdf"
    write_report_pdf(str(path), data)
    text = pdf_text(path)
    assert "DOES NOT FIT" in text and "over" in text
    assert "does not fit even at batch 1" in text


def test_the_first_page_as_a_picture_has_the_page_size(qapp, tmp_path, analysis):
    path = tmp_path / "page.png"
    assert write_report_png(str(path), gather_report(analysis), dpi=100)
    image = QImage(str(path))
    assert (image.width(), image.height()) == (round(595.276 * 100 / 72), round(841.89 * 100 / 72))


def test_in_black_and_white_every_category_still_has_its_own_pattern(qapp):
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QColor, QPainter

    from engine.categories import CATEGORIES
    from gui.report_pdf import swatch

    greys = {}
    for category in CATEGORIES:
        image = QImage(48, 48, QImage.Format_RGB32)
        image.fill(QColor("#ffffff"))
        painter = QPainter(image)
        swatch(painter, QRectF(0, 0, 48, 48), category)
        painter.end()
        grey = image.convertToFormat(QImage.Format_Grayscale8)
        rows = np.frombuffer(bytes(grey.constBits()), np.uint8)[: grey.sizeInBytes()].reshape(48, -1)
        greys[category] = rows[4:44, 4:44].astype(float)  # inside the outline
    for a, b in itertools.combinations(CATEGORIES, 2):  # no two categories print alike in grey
        assert np.abs(greys[a] - greys[b]).mean() > 10, (a, b)


def test_every_category_has_its_own_hatch_in_the_report_and_the_comparison():
    """Black-and-white prints tell categories apart by hatching: a new category (communication,
    issue 12) must get a pattern of its own in both PDFs, or painting it fails."""
    from engine.categories import CATEGORIES
    from gui.report_compare import HATCHES as COMPARE_HATCHES
    from gui.report_pdf import HATCHES

    assert set(HATCHES) == set(CATEGORIES) == set(COMPARE_HATCHES)
    patterns = [tuple(sorted(h)) if h != "dots" else h for h in HATCHES.values()]
    assert len(set(patterns)) == len(patterns)


def test_checkpointed_layers_carry_the_windows_badge_on_paper(qapp, tmp_path):
    """The report's diagram marks a checkpointed block as the window does: a disc in the badge
    colour on each checkpointed layer and a heavier frame; the text says what the mark means."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QColor, QPainter

    from conftest import DATA
    from gui.report_pdf import paint_diagram
    from gui.style import THEMES

    model = os.path.join(DATA, "lever_models.py") + ":block_net"
    ink = QColor(THEMES["high-contrast"].toggle_text)

    def badge_pixels(analysis) -> int:
        image = QImage(900, 500, QImage.Format_RGB32)
        image.fill(QColor("#ffffff"))
        painter = QPainter(image)
        paint_diagram(painter, QRectF(10, 10, 880, 480), analysis)
        painter.end()
        rgb = np.frombuffer(bytes(image.constBits()), np.uint32)[: 900 * 500].reshape(500, 900) & 0xFFFFFF
        return int((rgb == (ink.rgb() & 0xFFFFFF)).sum())

    checkpointed = analyze(AnalysisRequest(model=model, batch=8, checkpoint=("blocks.0",)))
    plain = analyze(AnalysisRequest(model=model, batch=8))
    assert badge_pixels(checkpointed) > 100 and badge_pixels(plain) == 0
    pdf = tmp_path / "checkpointed.pdf"
    write_report_pdf(str(pdf), gather_report(checkpointed), now=NOW)
    assert "A round-arrow badge and a heavier frame mark checkpointed layers" in pdf_text(pdf)
    write_report_pdf(str(tmp_path / "plain.pdf"), gather_report(plain), now=NOW)
    assert "round-arrow badge" not in pdf_text(tmp_path / "plain.pdf")
