"""Checkpointed blocks are marked in the diagram: the engine says which layers ran under
torch.utils.checkpoint (engine/lever_fields.checkpointed_layers), the layout carries it, and the
items draw a badge, a heavier frame and a tooltip line. Real analyses, offscreen pixels."""
import os

import numpy as np
import pytest

from conftest import DATA
from engine import AnalysisRequest, analyze
from engine.lever_fields import RECOMPUTED_NOTE, checkpointed_layers

pytest.importorskip("PySide6")

from PySide6.QtCore import QPointF  # noqa: E402
from PySide6.QtGui import QColor  # noqa: E402

from gui.diagram import NetworkDiagramWidget  # noqa: E402
from gui.lifetimes import RECOMPUTED_INK, LifetimesWidget  # noqa: E402
from gui.diagram_layout import approx_metrics, layout_diagram, prepare_diagram  # noqa: E402
from gui.style import DEFAULT_DISPLAY  # noqa: E402

BLOCK_NET = os.path.join(DATA, "lever_models.py") + ":block_net"
INSIDE = ("blocks.0.fc1", "blocks.0.relu", "blocks.0.fc2")
OUTSIDE = ("stem", "blocks.1.fc1", "blocks.1.relu", "blocks.1.fc2", "flatten", "head")


@pytest.fixture(scope="module")
def checkpointed():
    return analyze(AnalysisRequest(model=BLOCK_NET, batch=8, checkpoint=("blocks.0",)))


@pytest.fixture(scope="module")
def plain():
    return analyze(AnalysisRequest(model=BLOCK_NET, batch=8))


def test_the_engine_names_the_checkpointed_layers(checkpointed, plain):
    assert checkpointed_layers(checkpointed) == {name: "blocks.0" for name in INSIDE}
    assert checkpointed_layers(plain) == {}
    # A recomputed layer is still one row (the recomputation is attributed to it, not to 'blocks.0.fc1#2').
    assert [layer.name for layer in checkpointed.layers] == [layer.name for layer in plain.layers]


def test_the_layout_carries_the_mark_to_blocks_and_frames(checkpointed, plain):
    model = prepare_diagram(checkpointed)
    assert model.checkpointed_groups == {"blocks.0": "blocks.0"}
    layout = layout_diagram(model, set(), approx_metrics(), 2000.0)
    assert {b.name for b in layout.blocks if b.checkpointed} == set(INSIDE)
    assert [(f.group, f.label, f.checkpointed) for f in layout.frames] == [
        ("blocks.0", "▾ blocks.0 · checkpointed", "blocks.0"), ("blocks.1", "▾ blocks.1", "")]
    collapsed = layout_diagram(model, {"blocks.0"}, approx_metrics(), 2000.0)
    summary = next(b for b in collapsed.blocks if b.group is not None)
    assert (summary.name, summary.checkpointed) == ("blocks.0", "blocks.0")
    bare = layout_diagram(prepare_diagram(plain), set(), approx_metrics(), 2000.0)
    assert not any(b.checkpointed for b in bare.blocks) and not any(f.checkpointed for f in bare.frames)


def pixel(view, item, rect) -> str:
    """The colour on screen at the centre of `rect` (item coordinates)."""
    point = view.mapFromScene(item.mapToScene(rect.center()))
    return QColor(view.viewport().grab().toImage().pixel(point)).name()


def test_a_checkpointed_block_is_marked_and_an_unmarked_one_is_not(qtbot, checkpointed, tmp_path):
    view = NetworkDiagramWidget()
    qtbot.addWidget(view)
    view.resize(1100, 520)
    view.show()
    view.set_analysis(checkpointed)
    theme = DEFAULT_DISPLAY.colours
    marked, unmarked = view.block("blocks.0.fc1"), view.block("blocks.1.fc1")
    assert all(view.block(n).is_checkpointed() for n in INSIDE)
    assert not any(view.block(n).is_checkpointed() for n in OUTSIDE)
    assert f"{RECOMPUTED_NOTE} (blocks.0)" in marked.toolTip()
    assert "checkpointed" not in unmarked.toolTip()
    # The badge is drawn: its disc has the toggle colour; the same corner of an unmarked block does not.
    badge = marked.badge_rect()
    assert unmarked.badge_rect() is None
    assert pixel(view, marked, badge) == QColor(theme.toggle_text).name()
    corner = badge.translated(unmarked.rect().topLeft() - marked.rect().topLeft())
    assert pixel(view, unmarked, corner) != QColor(theme.toggle_text).name()
    frames = {f.group_name: f for f in view.scene().items() if type(f).__name__ == "GroupFrameItem"}
    assert frames["blocks.0"].pen().color().name() == QColor(theme.toggle_text).name()
    assert frames["blocks.1"].pen().color().name() == QColor(theme.frame).name()
    assert any("checkpointed (1 module): activations recomputed in backward" == getattr(i, "text", lambda: "")()
               for i in view.scene().items())  # the legend explains the badge
    view.viewport().grab().save(str(tmp_path / "diagram_checkpointed.png"))
    # Collapsed, the group's summary block carries the mark.
    view.collapse_group("blocks.0")
    summary = view.summary_block("blocks.0")
    assert summary.is_checkpointed() and RECOMPUTED_NOTE in summary.toolTip()
    view.collapse_group("blocks.1")
    assert not view.summary_block("blocks.1").is_checkpointed()


def test_no_legend_line_and_no_badge_without_checkpointing(qtbot, plain):
    view = NetworkDiagramWidget()
    qtbot.addWidget(view)
    view.set_analysis(plain)
    assert not any(block.is_checkpointed() for block in view.blocks())
    assert not any("recomputed" in getattr(i, "text", lambda: "")() for i in view.scene().items())


def _hatch_pixels(view, bars) -> int:
    """Pixels of the hatch colour inside the drawn rectangles of `bars`."""
    image = view.grab().toImage()
    vb, ink, count = view.getPlotItem().getViewBox(), QColor(RECOMPUTED_INK).rgb(), 0
    d = view._data
    for bar in bars:
        top_left = view.mapFromScene(vb.mapViewToScene(QPointF(d.x0[bar], d.rows[bar] - d.heights[bar] / 2)))
        bottom_right = view.mapFromScene(vb.mapViewToScene(QPointF(d.x1[bar], d.rows[bar] + d.heights[bar] / 2)))
        for x in range(top_left.x() + 2, bottom_right.x() - 1):
            for y in range(top_left.y() + 2, bottom_right.y() - 1):
                count += image.pixel(x, y) == ink
    return count


def test_recomputed_activations_are_hatched_in_the_lifetimes(qtbot, checkpointed, plain):
    """A checkpointed block's activations live twice: once saved in the forward (freed early, its
    block keeps only the input), once recomputed in the backward. The second life is drawn in orange."""
    recomputed = [lt for lt in checkpointed.lifetimes if lt.recomputed]
    assert recomputed and {lt.module for lt in recomputed} <= set(INSIDE)
    assert not any(lt.recomputed for lt in plain.lifetimes)
    views = {}
    for name, analysis in (("checkpointed", checkpointed), ("plain", plain)):
        view = views[name] = LifetimesWidget()
        qtbot.addWidget(view)
        view.resize(1000, 420)
        view.show()
        view.set_analysis(analysis)
        qtbot.waitExposed(view)
    marked, bare = views["checkpointed"], views["plain"]
    assert marked.recomputed_bar_count() == len(recomputed)
    assert bare.recomputed_bar_count() == 0
    bars = [int(i) for i in np.flatnonzero(marked._data.recomputed)]
    assert "recomputed" in marked.bar_tooltip(bars[0])
    assert not any("recomputed" in bare.bar_tooltip(i) for i in range(bare.bar_count()))
    assert f"{len(recomputed)} recomputed in backward" in marked.getPlotItem().titleLabel.text
    # Painted: the hatch's ink is inside the recomputed bars, and inside none of the plain step's.
    assert _hatch_pixels(marked, bars) > 0
    assert _hatch_pixels(bare, range(bare.bar_count())) == 0
