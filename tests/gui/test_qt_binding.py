"""The Qt binding must not leak or over-release references in the paths every view uses.

PySide6 6.12.0 released None once too often on each return from a Python override of a void
virtual (paint, paintEvent): None's refcount fell by thousands per redraw of the timeline and
diagram, and a long session or test run aborted with 'deallocating None'. requirements.txt pins a
release without that bug; this test fails if one comes back.
"""
import gc
import sys

from engine import AnalysisRequest, analyze
from gui.diagram import NetworkDiagramWidget
from gui.timeline import MemoryTimelineWidget


def test_redrawing_views_keeps_none_alive(qtbot):
    a = analyze(AnalysisRequest(model="resnet18", batch=2))
    widgets = [MemoryTimelineWidget(), NetworkDiagramWidget()]
    for w in widgets:
        qtbot.addWidget(w)
        w.resize(800, 400)
        w.show()
        w.set_analysis(a)
        w.grab()
    gc.collect()
    before = sys.getrefcount(None)
    for _ in range(5):
        for w in widgets:
            w.set_analysis(a)
            w.grab()
    gc.collect()
    assert sys.getrefcount(None) - before > -200  # 6.12.0: about -8000
