"""The device panel's fit lines for a step traced for CUDA: the simulated reserve is shown with
its source, and the panel says what the total compares with the capacity."""
import os

import pytest

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.devices import catalog, detect, find_gpu
from engine.footprint import fit_check

pytest.importorskip("PySide6")

from gui.device_panel import SIMULATED_TOTAL, DevicePanel  # noqa: E402
from isolation import private_settings  # noqa: E402,F401 - a fixture

CNN = os.path.join(SPECS, "small_cnn.yaml")


@pytest.fixture
def panel(qtbot, private_settings):  # noqa: F811
    p = DevicePanel()
    qtbot.addWidget(p)
    p.resize(520, 900)
    p.set_detection(detect(), catalog())
    p.show()
    return p


def test_a_cuda_trace_shows_the_simulated_reserve_and_what_the_total_is(panel):
    fit = fit_check(analyze(AnalysisRequest(model=CNN, batch=8, device="cuda")), find_gpu("L4"))
    panel.set_fit(fit)
    text = panel.legend.text()
    assert "allocator reserve above allocated" in text and "(simulated)" in text
    assert SIMULATED_TOTAL in text and "cuBLAS" not in text.split(SIMULATED_TOTAL)[0].split("traced")[0]


def test_a_cpu_trace_on_a_gpu_does_not_claim_a_simulation(panel):
    fit = fit_check(analyze(AnalysisRequest(model=CNN, batch=8)), find_gpu("L4"))
    panel.set_fit(fit)
    assert SIMULATED_TOTAL not in panel.legend.text() and "(default)" in panel.legend.text()


def test_lines_a_cuda_trace_traces_cannot_be_edited(panel):
    """cuBLAS and cuDNN workspaces are in a CUDA trace's tensors: their override boxes say so and
    take no input; a CPU trace checked on a GPU keeps them editable."""
    cuda = fit_check(analyze(AnalysisRequest(model=CNN, batch=8, device="cuda")), find_gpu("L4"))
    panel.set_fit(cuda)
    for key in ("workspace", "cublas"):
        assert not panel.override_edits[key].isEnabled() and panel.override_edits[key].placeholderText() == "traced"
    assert panel.override_edits["context"].isEnabled()
    panel.set_fit(fit_check(analyze(AnalysisRequest(model=CNN, batch=8)), find_gpu("L4")))
    assert all(edit.isEnabled() and edit.placeholderText() == "default" for edit in panel.override_edits.values())


def test_the_peak_card_of_a_cuda_trace_reads_what_torch_would(qtbot):
    """torch.cuda.max_memory_allocated counts whole blocks: the traced-peak card of a CUDA trace
    shows the simulated allocator's allocated and reserved peaks under the traced one; a CPU
    trace's card does not claim them."""
    from gui.summary import SummaryWidget
    from engine.units import format_bytes

    summary = SummaryWidget()
    qtbot.addWidget(summary)
    cuda = analyze(AnalysisRequest(model=CNN, batch=8, device="cuda"))
    sim = cuda.cuda.simulation
    assert sim.peak_allocated_bytes > cuda.peak.total_bytes  # a block handed out whole
    summary.set_analysis(cuda)
    text = summary.peak_where.text()
    assert (f"allocator: {format_bytes(sim.peak_allocated_bytes)} allocated, "
            f"{format_bytes(sim.peak_reserved_bytes)} reserved") in text
    assert "max_memory_allocated" in summary.peak_where.toolTip()
    summary.set_analysis(analyze(AnalysisRequest(model=CNN, batch=8)))
    assert "allocator:" not in summary.peak_where.text() and summary.peak_where.toolTip() == ""
