"""`apply_display` on every view: theme colours, font scale, GB vs GiB; presentation mode keeps
the smallest text at 11 px or more at 1920×1080."""
import pytest
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from engine import AnalysisRequest, analyze
from engine.units import format_size
from gui.diagram import NetworkDiagramWidget
from gui.lifetimes import LifetimesWidget
from gui.style import DEFAULT_DISPLAY, PRESENTATION, THEMES, make_display, presentation, ramp_colour
from gui.table import LayerTableWidget
from gui.timeline import MemoryTimelineWidget

# What each view gets in a 1920×1080 window (left panel, cards and splitter taken off).
SIZES_1080P = {"diagram": (1560, 330), "timeline": (1560, 380), "lifetimes": (1560, 260), "table": (1560, 260)}
VIEWS = {"diagram": NetworkDiagramWidget, "timeline": MemoryTimelineWidget, "lifetimes": LifetimesWidget,
         "table": LayerTableWidget}


@pytest.fixture(scope="module", params=["vgg16", "densenet201"])
def analysis(request):
    return analyze(AnalysisRequest(model=request.param, batch=2))


@pytest.fixture
def views(qtbot, analysis):
    made = {}
    for key, cls in VIEWS.items():
        view = cls()
        qtbot.addWidget(view)
        view.resize(*SIZES_1080P[key])
        view.show()
        qtbot.waitExposed(view)
        view.set_analysis(analysis)
        made[key] = view
    QApplication.processEvents()
    return made


def test_presentation_text_is_at_least_11_px_at_1080p(views):
    normal = {key: min(view.font_pixel_sizes()) for key, view in views.items()}
    for view in views.values():
        view.apply_display(PRESENTATION)
    QApplication.processEvents()
    for key, view in views.items():
        sizes = view.font_pixel_sizes()
        assert min(sizes) >= 11, (key, sizes)
        assert min(sizes) > normal[key]  # and larger than the everyday size


def test_the_diagram_stays_at_1_to_1_so_its_text_is_not_shrunk(views):
    diagram = views["diagram"]
    diagram.apply_display(PRESENTATION)
    assert diagram.transform().m11() == pytest.approx(1.0)
    layout = diagram.layout()
    assert layout.width <= diagram.viewport().width()  # rows wrap at the panel's width instead


def test_themes_recolour_the_views(views):
    display = make_display("high-contrast")
    for view in views.values():
        view.apply_display(display)
    block = views["diagram"].blocks()[0] if views["diagram"].blocks() else views["diagram"].summary_block(
        views["diagram"].group_names()[0])
    assert block.brush().color() == QColor(ramp_colour(display.colours, block.box.fraction))
    assert views["timeline"].backgroundBrush().color() == QColor(display.colours.background)
    assert views["lifetimes"]._highlight.opts["brush"] == display.colours.selected


def test_decimal_units_reach_every_label(views, analysis):
    display = make_display(decimal_units=True)
    for view in views.values():
        view.apply_display(display)
    layer = max(analysis.layers, key=lambda lay: lay.output_bytes)
    diagram = views["diagram"]
    diagram.expand_all()
    assert format_size(layer.output_bytes, True) in diagram.block(layer.name).label_lines()
    assert "MB" in format_size(layer.output_bytes, True) or "GB" in format_size(layer.output_bytes, True)
    assert views["timeline"].unit() in ("MB", "GB")
    table = views["table"]
    row = [lay.name for lay in analysis.layers].index(layer.name)
    assert table.model.text(row, 5) == format_size(layer.output_bytes, True)


def test_presentation_keeps_the_unit_choice_and_themes_cover_every_colour():
    assert presentation(make_display(decimal_units=True)).decimal_units
    assert presentation(DEFAULT_DISPLAY).font_scale > 1 and presentation(DEFAULT_DISPLAY).theme == "high-contrast"
    for theme in THEMES.values():
        hues = {c.lower() for c in theme.categories.values()}
        assert theme.selected.lower() not in hues and theme.previewed.lower() not in hues
        assert not hues & {c.lower() for c in theme.memory_ramp}
        assert len({theme.phases[p] for p in ("forward", "backward", "optimizer")}) == 3


@pytest.mark.parametrize("nbytes, decimal, unit", [
    (500, False, "KiB"), (3 * 2**20, False, "MiB"), (2**30 - 1, False, "MiB"), (2**30, False, "GiB"),
    (5 * 2**40, False, "TiB"), (2**50, False, "TiB"), (2.5e9, True, "GB"), (999_999_999, True, "MB"),
    (1.2e12, True, "TB")])
def test_one_unit_is_chosen_from_the_largest_value(nbytes, decimal, unit):
    from engine.units import choose_unit, format_in_unit

    chosen = choose_unit(nbytes, decimal)
    assert chosen[0] == unit
    text = format_in_unit(nbytes, chosen)
    assert text.endswith(f" {unit}") and "e+" not in text


def test_format_size_says_gb_when_asked():
    assert format_size(2_500_000_000, decimal=True) == "2.5 GB"
    assert format_size(2_500_000_000) == "2.3 GiB"
    assert format_size(999, decimal=True) == "999 B"
