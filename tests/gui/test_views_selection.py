"""Selection through one SelectionModel: select highlights everywhere (and may open a diagram
group), preview (hover, timeline scrub) only highlights lightly: no group opens, no scene is rebuilt.

Real densenet201 / resnet18 analyses, real views, offscreen Qt.
"""
import numpy as np
import pytest

from engine import AnalysisRequest, analyze
from gui.diagram import NetworkDiagramWidget
from gui.lifetimes import LifetimesWidget
from gui.selection import SelectionModel
from gui.table import LayerTableWidget
from gui.timeline import MemoryTimelineWidget
from gui.window import MainWindow


@pytest.fixture(scope="module")
def densenet():
    return analyze(AnalysisRequest(model="densenet201", batch=2))


@pytest.fixture(scope="module")
def resnet():
    return analyze(AnalysisRequest(model="resnet18", batch=2))


def _summary_ids(diagram):
    return {name: id(diagram.summary_block(name)) for name in diagram.group_names()}


def _scrub(timeline, analysis, steps=40):
    for point in np.linspace(0, len(analysis.timeline) - 1, steps).astype(int):
        timeline.set_cursor(int(point))


# ---- the two bugs, through the window as a user meets them ----------------------------------------
@pytest.fixture
def window(qtbot):
    w = MainWindow(AnalysisRequest(model="densenet201", batch=2))
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    qtbot.waitExposed(w)
    w.build_plots()
    yield w
    w.close()


def test_every_group_starts_collapsed_in_the_window_even_the_peak_layers(window, densenet):
    """Bug: the cursor starts at the peak, and the peak layer's group opened on load."""
    window.set_analysis(densenet)
    assert window.timeline.layer_at(densenet.peak.point)  # the cursor does sit on a layer
    assert window.diagram.collapsed_groups() == set(window.diagram.group_names())


def test_scrubbing_the_timeline_in_the_window_opens_no_group_and_rebuilds_no_scene(window, densenet):
    """Bug: scrubbing densenet201's timeline expanded six groups, each a full scene rebuild."""
    window.set_analysis(densenet)
    before = _summary_ids(window.diagram)
    _scrub(window.timeline, densenet)
    assert window.diagram.collapsed_groups() == set(window.diagram.group_names())
    assert _summary_ids(window.diagram) == before  # the very same items: nothing was rebuilt


# ---- the views bound to one model (what any window does) -----------------------------------------
@pytest.fixture
def views(qtbot):
    selection = SelectionModel()
    made = {"diagram": NetworkDiagramWidget(), "timeline": MemoryTimelineWidget(),
            "lifetimes": LifetimesWidget(), "table": LayerTableWidget()}
    for view in made.values():
        qtbot.addWidget(view)
        view.resize(1000, 500)
        view.show()
        view.bind_selection(selection)
    made["selection"] = selection
    return made


def _show(views, analysis):
    views["selection"].set_layers([layer.name for layer in analysis.layers])
    for key in ("diagram", "timeline", "lifetimes", "table"):
        views[key].set_analysis(analysis)


def test_preview_from_the_timeline_lightly_marks_the_collapsed_group(views, densenet):
    _show(views, densenet)
    diagram, timeline, selection = views["diagram"], views["timeline"], views["selection"]
    before = _summary_ids(diagram)
    layer = next(lay for lay in densenet.layers if lay.parent.startswith("features.denseblock3"))
    timeline.set_cursor(layer.forward_span[0] + 1)
    assert selection.previewed == timeline.layer_at(layer.forward_span[0] + 1)
    assert selection.selected == ""  # scrubbing never selects
    group = diagram.group_of(selection.previewed)
    assert diagram.summary_block(group).is_previewed()
    assert not diagram.summary_block(group).is_highlighted()
    assert diagram.collapsed_groups() == set(diagram.group_names())
    assert _summary_ids(diagram) == before


def test_select_opens_the_group_and_marks_every_view(views, densenet):
    _show(views, densenet)
    diagram, selection = views["diagram"], views["selection"]
    name = next(lay.name for lay in densenet.layers if lay.parent.startswith("features.denseblock2"))
    selection.select(name)
    group = diagram.group_of(name)
    assert diagram.collapsed_groups() == set(diagram.group_names()) - {group}
    assert diagram.block(name).is_highlighted()
    assert views["table"].selected_layer() == name
    assert views["lifetimes"].highlighted_bar_count() > 0
    start, end = densenet.layer_named(name).forward_span
    assert views["timeline"].span.isVisible()
    assert views["timeline"].span.getRegion() == (start, max(end, start + 1))


def test_clicks_and_hovers_go_through_the_model(qtbot, views, resnet):
    _show(views, resnet)
    selection = views["selection"]
    table = views["table"]
    with qtbot.waitSignal(selection.sig_selected) as blocker:
        table.view.selectRow(table.proxy.mapFromSource(table.model.index(3, 0)).row())
    assert blocker.args == [resnet.layers[3].name]
    assert views["diagram"].block(resnet.layers[3].name).is_highlighted()
    with qtbot.waitSignal(selection.sig_previewed) as blocker:
        views["diagram"].sig_layer_hovered.emit("layer2.0.conv1")
    assert blocker.args == ["layer2.0.conv1"]
    assert views["diagram"].block("layer2.0.conv1").is_previewed()
    assert selection.selected == resnet.layers[3].name  # a hover leaves the selection alone
    selection.preview("")
    assert not views["diagram"].block("layer2.0.conv1").is_previewed()


def test_clearing_the_selection_clears_every_view(views, resnet):
    _show(views, resnet)
    views["selection"].select("layer3.0.conv2")
    views["selection"].clear()
    assert views["diagram"].selected_layer() is None
    assert views["table"].selected_layer() is None
    assert views["lifetimes"].highlighted_bar_count() == 0
    assert not views["timeline"].span.isVisible()


def test_the_selected_block_stays_in_view_when_the_panel_reflows(qtbot, views, densenet):
    _show(views, densenet)
    diagram = views["diagram"]
    name = "features.denseblock3.denselayer20.conv2"
    views["selection"].select(name)
    diagram.resize(700, 260)  # a narrower panel re-flows the rows
    qtbot.waitUntil(lambda: diagram.layout().width <= diagram.viewport().width(), timeout=3000)
    visible = diagram.mapToScene(diagram.viewport().rect()).boundingRect()
    assert visible.intersects(diagram.block(name).sceneBoundingRect())
