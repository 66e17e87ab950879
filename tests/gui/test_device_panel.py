"""The device panel and the sweep plot, standalone (offscreen), fed by real engine results."""
import os

import pytest

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.devices import Detection, DeviceInfo, catalog, custom_device, detect, find_gpu
from engine.footprint import fit_check
from engine.planner import max_batch, sweep

pytest.importorskip("PySide6")

from PySide6.QtGui import QColor  # noqa: E402

from gui.device_panel import LINE_COLOURS, STATE_COLOURS, DevicePanel  # noqa: E402
from isolation import SMALL_SCREEN, private_settings, shown_window  # noqa: E402,F401 - a fixture

CNN = os.path.join(SPECS, "small_cnn.yaml")
GIB = 2**30


@pytest.fixture(scope="module")
def cnn():
    return analyze(AnalysisRequest(model=CNN, batch=8, device="cuda"))


@pytest.fixture
def panel(qtbot):
    p = DevicePanel()
    qtbot.addWidget(p)
    p.resize(520, 900)
    p.set_detection(detect(), catalog())
    p.show()
    return p


def listed(panel):
    return [panel.devices.item(i) for i in range(panel.devices.count())]


def test_no_gpu_is_said_plainly_and_measuring_is_disabled_with_the_reason(panel):
    assert "no GPU" in panel.status.text() and "no NVIDIA driver" in panel.status.text()
    texts = [item.text() for item in listed(panel)]
    assert texts[0] == "Detected on this machine" and texts[1].strip() == "none (see above)"
    assert texts[2] == "Catalog" and len(texts) == 3 + len(catalog())
    assert not panel.measure_button.isEnabled()
    assert panel.measure_button.toolTip().startswith("Needs a CUDA device torch can use: no GPU")
    assert panel.minimumSizeHint().width() <= 280  # fits the window's side column


def test_a_detected_cuda_device_comes_first_and_enables_measuring(qtbot):
    gpu = DeviceInfo(name="NVIDIA GeForce RTX 4090", capacity_bytes=24564 * 2**20, kind="cuda",
                     source="torch.cuda.mem_get_info total", index=0, other_processes_bytes=GIB)
    p = DevicePanel()
    qtbot.addWidget(p)
    p.set_detection(Detection((gpu,), None, ()), catalog())
    assert listed(p)[1].text() == "GPU 0: NVIDIA GeForce RTX 4090 — 24.0 GiB, 1.0 GiB used by other processes"
    assert p.measure_button.isEnabled()


def test_choosing_a_catalog_gpu_announces_its_capacity(panel, qtbot):
    with qtbot.waitSignal(panel.sig_capacity_changed) as capacity, qtbot.waitSignal(panel.sig_device_changed) as dev:
        assert panel.select_device("NVIDIA A100 80GB")
    assert capacity.args == [85_899_345_920, "NVIDIA A100 80GB"]
    assert dev.args[0] is find_gpu("A100 80GB")
    assert panel.current_device() is find_gpu("A100 80GB")


def test_the_search_filters_the_catalog(panel):
    panel.search.setText("4090")
    shown = [i.text() for i in listed(panel) if not i.isHidden() and i.data(0x0100) is not None]
    assert shown == ["NVIDIA GeForce RTX 4090 — 24.0 GiB"]
    panel.search.setText("")
    assert sum(not i.isHidden() for i in listed(panel)) == panel.devices.count()


def test_custom_capacity_is_parsed_and_bad_text_is_explained(panel, qtbot):
    panel.custom.setText("24 GB of RAM")
    panel.custom_button.click()
    assert panel.error.isVisible() and "cannot read '24 GB of RAM' as a size" in panel.error.text()
    panel.custom.setText("24GiB")
    with qtbot.waitSignal(panel.sig_capacity_changed) as capacity:
        panel.custom_button.click()
    assert capacity.args[0] == 24 * GIB and not panel.error.isVisible()
    assert panel.current_device().kind == "custom"


def test_edited_overheads_are_sent_as_bytes(panel, qtbot):
    panel.override_edits["context"].setText("300 MiB")
    with qtbot.waitSignal(panel.sig_overrides_changed) as changed:
        panel.override_edits["context"].editingFinished.emit()
    assert changed.args[0] == {"context": 300 * 2**20}
    panel.override_edits["reserve"].setText("-1")
    panel.override_edits["reserve"].editingFinished.emit()
    assert "Allocator reserve: a size must be positive" in panel.error.text()
    assert panel.overrides() == {"context": 300 * 2**20}


def pixel(widget, x, y) -> str:
    return QColor(widget.grab().toImage().pixel(int(x), int(y))).name()


@pytest.mark.parametrize("headroom, state", [(0.5, "fits"), (0.05, "tight"), (-0.05, "does not fit")])
def test_the_gauge_stacks_the_lines_against_the_capacity_in_the_verdict_colour(panel, cnn, headroom, state):
    total = fit_check(cnn, custom_device(10**12)).total_bytes
    fit = fit_check(cnn, custom_device(int(total / (1 - headroom))))
    assert fit.state == state
    panel.set_fit(fit)
    gauge = panel.gauge
    segments = gauge.segments()
    assert [k for k, _, _ in segments] == [x.key for x in fit.lines if x.bytes > 0]
    bar = gauge.bar_rect()
    mid = bar.center().y()
    key, x0, x1 = segments[0]
    assert pixel(gauge, (x0 + x1) / 2, mid) == LINE_COLOURS[key]  # the traced tensors, drawn
    assert pixel(gauge, gauge.capacity_x(), bar.bottom() + 3) == STATE_COLOURS[state]  # the capacity mark
    assert gauge.verdict_text().startswith(state.upper())
    assert "traced tensor peak" in panel.legend.text() and "(simulated)" in panel.legend.text()


def test_largest_batch_read_out_and_apply(panel, qtbot):
    found = max_batch(AnalysisRequest(model=CNN, batch=8, device="cuda"), custom_device(GIB))
    panel.set_largest(found)
    assert panel.largest.text() == f"Largest batch: {found.value}"
    assert f"batch {found.value + 1} needs" in panel.largest_detail.text()
    with qtbot.waitSignal(panel.sig_apply_batch) as applied:
        panel.apply_button.click()
    assert applied.args == [found.value]
    panel.set_largest_error("does not fit even at batch 1: needs 1.0 GiB")
    assert not panel.apply_button.isEnabled() and "needs 1.0 GiB" in panel.largest_detail.text()


# ---- The sweep plot
def test_sweep_points_appear_as_computed_with_capacity_and_boundary(qtbot):
    from gui.sweeps import SweepPlotWidget

    plot = SweepPlotWidget()
    qtbot.addWidget(plot)
    device = custom_device(2 * GIB)
    plot.start("batch", device.capacity_bytes, device.name)
    counts = []

    def on_point(point):
        plot.add_point(point)
        counts.append(len(plot.points))

    sweep(AnalysisRequest(model=CNN, batch=8, device="cuda"), device, "batch", [1, 512, 4096, 8192], on_point=on_point)
    assert counts == [1, 2, 3, 4]
    assert plot.capacity_line.value() == pytest.approx(2.0)  # GiB
    assert plot.boundary is not None and 512 < plot.boundary.value() < 4096
    xs, ys = plot.curve.getData()
    assert list(xs) == [1, 512, 4096, 8192] and ys[0] < ys[-1]


def test_configurations_are_compared_as_bars(qtbot):
    from engine.planner import compare_variants
    from gui.sweeps import SweepPlotWidget

    plot = SweepPlotWidget()
    qtbot.addWidget(plot)
    plot.choice.setCurrentIndex(plot.choice.findData("variants"))
    assert not plot.values.isEnabled()
    with qtbot.waitSignal(plot.sig_variants_requested):
        plot.run_button.click()
    device = custom_device(GIB)
    plot.start_variants(device.capacity_bytes, device.name)
    compare_variants(AnalysisRequest(model=CNN, batch=64, device="cuda"), device, on_point=plot.add_variant)
    heights = plot.bars.opts["height"]
    assert len(heights) == 6 and heights[-1] < heights[0]  # inference below Adam training
    assert plot.capacity_line.value() == pytest.approx(1.0)


# ---- In the window: the panel drives the timeline's capacity line, the gauge and the largest batch
def test_choosing_a_catalog_gpu_changes_gauge_capacity_line_and_largest_batch(qtbot, private_settings):
    from gui.window import MainWindow

    w = MainWindow(AnalysisRequest(model=CNN, batch=8))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
        w.start()
    assert w.analysis.request.device == "cpu"

    def settled(device):  # the largest batch for this device and the analysis on screen
        found = w.devices.largest_result()
        return (found is not None and found.fit.device is device
                and found.analysis.request == w.analysis.request.replace(batch=found.value))

    try:
        qtbot.waitUntil(lambda: w.devices.detection is not None, timeout=60_000)  # detection ran as a job
        assert "no NVIDIA driver" in w.devices.status.text()
        assert not w.devices.measure_button.isEnabled()
        # A GPU is planned with CUDA's rules: the step is traced again for it.
        with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
            assert w.devices.select_device("NVIDIA GeForce RTX 3060")
        assert w.analysis.request.device == "cuda"
        answers = {}
        for name in ("NVIDIA GeForce RTX 3060", "NVIDIA T4"):
            device = find_gpu(name)
            if name != "NVIDIA GeForce RTX 3060":
                assert w.devices.select_device(name)
            qtbot.waitUntil(lambda: settled(device), timeout=120_000)
            assert w.timeline.capacity_line.value() == pytest.approx(device.capacity_bytes / 2**20)  # MiB axis
            fit = w.devices.gauge.fit
            assert fit.device is device and fit.total_bytes == fit_check(w.analysis, device).total_bytes
            answers[name] = w.devices.largest_result().value
            assert w.devices.largest.text() == f"Largest batch: {answers[name]}"
        assert answers["NVIDIA T4"] > answers["NVIDIA GeForce RTX 3060"]  # 15 GiB holds more than 12 GiB
        # Apply: the window analyses the largest batch, which fits.
        with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
            w.devices.apply_button.click()
        assert w.analysis.request.batch == answers["NVIDIA T4"]
        assert w.devices.gauge.fit.state in ("fits", "tight")
        # A measurement (as measure_on_gpu returns it on a GPU machine) is drawn over the timeline.
        from engine.measure import Measurement

        w.planning.overlay(Measurement("NVIDIA T4", 0, 5 * 2**20, 6 * 2**20, (0, 5 * 2**20, 2 * 2**20), ("",)))
        xs, ys = w.planning.measured_curve.getData()
        assert list(ys) == [0.0, 5.0, 2.0] and xs[-1] == len(w.analysis.events)  # MiB over the predicted step
    finally:
        w.close()
        assert w.controller.shutdown(60.0)


def test_detection_superseded_by_a_new_analysis_still_reaches_the_panel(qtbot, private_settings):
    """Bug: a new analysis cancels every queued job; the device detection it cancelled never
    came back, leaving the panel without its devices."""
    from gui.window import MainWindow

    w = MainWindow(AnalysisRequest(model=CNN, batch=8))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
        w.start()
    try:
        qtbot.waitUntil(lambda: w.devices.detection is not None, timeout=60_000)
        w.devices.detection = None
        with qtbot.waitSignal(w.controller.sig_cancel, timeout=60_000,
                              check_params_cb=lambda kind: kind == "devices"):
            w.planning.detect()
            w.controller.analyse(w.analysis.request.replace(batch=9))  # supersedes the queued detection
        qtbot.waitUntil(lambda: w.devices.detection is not None, timeout=60_000)
        assert "no NVIDIA driver" in w.devices.status.text()
    finally:
        w.close()


def test_opening_the_sweeps_tab_at_1280x720_gives_the_plot_room(qtbot, private_settings):
    from gui.window import SWEEP_MIN_HEIGHT

    with shown_window(qtbot, AnalysisRequest(model=CNN, batch=8), SMALL_SCREEN) as w:
        before = w.lower_tabs.height()
        w.lower_tabs.setCurrentWidget(w.sweeps)
        qtbot.wait(20)
        # A 660 px window has ~420 px for diagram, timeline and tabs: the plot gets what the
        # other two can give while each stays 100 px tall.
        assert w.sweeps.height() >= min(SWEEP_MIN_HEIGHT, 180) and w.lower_tabs.height() > before
        assert w.timeline.height() >= 100 and w.diagram.height() >= 100
