"""Pictures from the window (File ▸ Export…): PNGs decode at the size asked for (1x, 2x, 4K), SVGs
parse as XML and carry their text (category names, layer names) as text, not pixels."""
import os
import xml.etree.ElementTree as ET

import pytest
from PySide6.QtGui import QImage

from conftest import SPECS
from engine import AnalysisRequest, analyze
from gui import export
from gui.style import CATEGORY_LABELS

CNN = os.path.join(SPECS, "small_cnn.yaml")


@pytest.fixture(scope="module")
def analysis():
    return analyze(AnalysisRequest(model=CNN, batch=4))


def svg_text(path) -> str:
    root = ET.parse(path).getroot()  # raises on anything that is not well-formed XML
    assert root.tag.endswith("svg")
    return " ".join(" ".join(e.itertext()) for e in root.iter() if e.tag.endswith("text"))


@pytest.fixture
def timeline(qtbot, analysis):
    from gui.timeline import MemoryTimelineWidget

    w = MemoryTimelineWidget()
    qtbot.addWidget(w)
    w.resize(900, 420)
    w.show()
    w.set_analysis(analysis)
    qtbot.waitExposed(w)
    return w


@pytest.mark.parametrize("scale, factor", [("1x", 1), ("2x", 2)])
def test_a_view_exports_as_png_at_the_asked_scale(timeline, tmp_path, scale, factor):
    path = str(tmp_path / f"timeline-{scale}.png")
    size = export.save_png(timeline, path, scale)
    image = QImage(path)
    assert not image.isNull()
    assert (image.width(), image.height()) == (900 * factor, 420 * factor) == (size.width(), size.height())


def test_4k_fills_3840_by_2160_keeping_the_aspect(timeline, tmp_path):
    path = str(tmp_path / "timeline-4k.png")
    export.save_png(timeline, path, "4K")
    image = QImage(path)
    assert image.width() == 3840 and image.height() == round(420 * 3840 / 900) <= 2160


def test_the_timeline_svg_names_every_category_as_text(timeline, tmp_path, analysis):
    path = str(tmp_path / "timeline.svg")
    export.save_svg(timeline, path)
    text = svg_text(path)
    present = [c for c in CATEGORY_LABELS if analysis.timeline.curves[c].any()]
    assert present
    for category in present:
        assert CATEGORY_LABELS[category] in text


def test_the_diagram_exports_its_whole_scene(qtbot, tmp_path, analysis):
    from gui.diagram import NetworkDiagramWidget

    diagram = NetworkDiagramWidget()
    qtbot.addWidget(diagram)
    diagram.resize(500, 200)  # smaller than the scene: the export still holds every block
    diagram.show()
    diagram.set_analysis(analysis)
    scene = diagram.scene().sceneRect()
    png = str(tmp_path / "diagram.png")
    size = export.save_png(diagram, png, "2x")
    assert (QImage(png).width(), QImage(png).height()) == (size.width(), size.height())
    assert size.width() == 2 * round(scene.width()) and size.height() == 2 * round(scene.height())
    svg = str(tmp_path / "diagram.svg")
    export.save_svg(diagram, svg)
    text = svg_text(svg)
    assert analysis.model_name in text and "conv2d1" in text and "linear1" in text


def test_an_unwritable_picture_is_an_error_naming_the_file(timeline, tmp_path):
    with pytest.raises(export.ExportError, match="missing/t.png: could not write"):
        export.save_png(timeline, str(tmp_path / "missing" / "t.png"))
    with pytest.raises(export.ExportError, match="unknown picture size"):
        export.save_png(timeline, str(tmp_path / "t.png"), "3y")


def test_the_dialog_offers_size_only_for_png_pictures(qtbot):
    dialog = export.ExportDialog(["window", "timeline"])
    qtbot.addWidget(dialog)
    assert dialog.choice() == ("window", "png", "1x") and dialog.scale.isEnabled()
    dialog.format.setCurrentText("SVG")
    assert dialog.choice()[1] == "svg" and not dialog.scale.isEnabled()
    dialog.what.setCurrentIndex(dialog.what.findData("csv"))
    assert dialog.choice()[:2] == ("csv", "csv") and not dialog.format.isEnabled()
    dialog.what.setCurrentIndex(dialog.what.findData("report"))
    assert dialog.choice()[:2] == ("report", "pdf")
