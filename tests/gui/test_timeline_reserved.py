"""The timeline shows what the simulated caching allocator reserves beside what tensors hold, for
a step traced for CUDA; the curve is the engine's, never computed in the view."""
import numpy as np
import pytest

from engine import AnalysisRequest, analyze
from gui.timeline import RESERVED_LABEL, MemoryTimelineWidget, prepare


@pytest.fixture(scope="module")
def cuda_resnet():
    return analyze(AnalysisRequest(model="resnet18", batch=2, device="cuda"))


@pytest.fixture
def timeline(qtbot):
    widget = MemoryTimelineWidget()
    qtbot.addWidget(widget)
    widget.resize(1100, 420)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_reserved_is_a_step_line_above_the_stacked_areas(timeline, cuda_resnet):
    data = prepare(cuda_resnet)
    assert data.reserved is cuda_resnet.cuda.simulation.reserved  # the engine's array, as it is
    timeline.set_analysis(cuda_resnet, data)
    x, y = timeline.reserved_curve.getData()
    factor = 2**20 if timeline.unit() == "MiB" else 2**30
    assert np.isclose(y.max() * factor, cuda_resnet.cuda.simulation.peak_reserved_bytes)
    stacked_top = timeline.curves["inputs"].getData()[1]  # the last category: the stacked total
    assert y.max() >= stacked_top.max()
    assert np.all(np.diff(x) >= 0) and np.any(np.diff(x) == 0)  # vertical risers: a step line
    assert RESERVED_LABEL in timeline.legend_text()
    low, high = timeline.getViewBox().viewRange()[1]
    assert high >= y.max()


def test_a_cpu_trace_has_no_reserved_line(timeline):
    a = analyze(AnalysisRequest(model="resnet18", batch=2))
    timeline.set_analysis(a)
    assert timeline.reserved_curve is None and RESERVED_LABEL not in timeline.legend_text()
