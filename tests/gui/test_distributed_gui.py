"""One GPU of N in the window (issue 12): the strategy controls build the request, the rank view
draws the engine's per-rank summary and world-size sweep, the analysis cache keeps the summary,
and the fit check plans for the fullest GPU."""
import os

import pytest

from conftest import DATA, SPECS
from engine import AnalysisRequest, analyze
from engine.devices import custom_device
from engine.distributed.sweep import world_size_sweep
from engine.footprint import fit_check

pytest.importorskip("PySide6")

from gui import analysis_cache  # noqa: E402
from gui.config_panel import ConfigPanel  # noqa: E402
from gui.distributed_panel import DistributedPanel  # noqa: E402
from gui.rank_view import RankView  # noqa: E402
from isolation import SMALL_SCREEN, private_settings, shown_window  # noqa: E402,F401 - a fixture

MLP = os.path.join(DATA, "tiny_mlp.py") + ":build"


@pytest.fixture(scope="module")
def fsdp8():
    # 8 ranks: Linear(16,4)'s 4 rows leave ranks 4-7 without optimizer state for it: two groups.
    return analyze(AnalysisRequest(model=MLP, batch=4, strategy="fsdp", world_size=8))


def test_choosing_a_strategy_offers_eight_gpus_and_builds_the_request(qtbot, private_settings):
    panel = ConfigPanel(AnalysisRequest(model=MLP, batch=4))
    qtbot.addWidget(panel)
    assert panel.request().strategy == "single" and not panel.distributed.world_size.isEnabled()
    with qtbot.waitSignal(panel.sig_request_changed, timeout=3000) as blocker:
        panel.distributed.strategy.setCurrentText("zero3")
    request = blocker.args[0]
    assert (request.strategy, request.world_size, request.offload) == ("zero3", 8, None)
    panel.distributed.offload.setCurrentText("optimizer")
    assert panel.request().offload == "optimizer"


def test_a_world_size_the_strategy_cannot_use_is_explained(qtbot, private_settings):
    panel = ConfigPanel(AnalysisRequest(model=MLP, batch=4, strategy="fsdp", world_size=4))
    qtbot.addWidget(panel)
    panel.distributed.world_size.setValue(6)
    with qtbot.waitSignal(panel.sig_invalid, timeout=3000) as blocker:
        pass
    assert "needs a power-of-two world size" in blocker.args[0]


def test_set_request_shows_the_distributed_fields_without_re_analysing(qtbot):
    panel = DistributedPanel()
    qtbot.addWidget(panel)
    with qtbot.assertNotEmitted(panel.sig_changed):
        panel.set_request(AnalysisRequest(model=MLP, strategy="ddp", world_size=16, bucket_cap_mb=50))
    assert panel.fields() == {"strategy": "ddp", "world_size": 16, "offload": None, "bucket_cap_mb": 50,
                              "gradient_as_bucket_view": False, "param_dtype": None, "reduce_dtype": None}
    assert panel.bucket.isEnabled() and panel.bucket_view.isEnabled() and not panel.param_dtype.isEnabled()


def test_ddp_gradients_as_bucket_views_reach_the_request_and_lower_the_peak(qtbot, private_settings):
    panel = ConfigPanel(AnalysisRequest(model=MLP, batch=4, strategy="ddp", world_size=2))
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.sig_request_changed, timeout=3000) as blocker:
        panel.distributed.bucket_view.setChecked(True)
    request = blocker.args[0]
    assert request.gradient_as_bucket_view
    assert analyze(request).peak.total_bytes < analyze(request.replace(gradient_as_bucket_view=False)).peak.total_bytes


def test_fsdp_mixed_precision_policy_reaches_the_request(qtbot, private_settings):
    panel = ConfigPanel(AnalysisRequest(model=MLP, batch=4, strategy="fsdp", world_size=4))
    qtbot.addWidget(panel)
    assert panel.distributed.param_dtype.isEnabled() and not panel.distributed.bucket_view.isEnabled()
    panel.distributed.param_dtype.setCurrentText("bfloat16")
    with qtbot.waitSignal(panel.sig_request_changed, timeout=3000) as blocker:
        panel.distributed.reduce_dtype.setCurrentText("float32")
    request = blocker.args[0]
    assert (request.param_dtype, request.reduce_dtype) == ("bfloat16", "float32")
    # the policy belongs to FSDP: switching to DDP drops it (the request would refuse it), and back restores it
    panel.distributed.strategy.setCurrentText("ddp")
    assert (panel.request().param_dtype, panel.request().reduce_dtype) == (None, None)
    assert not panel.distributed.param_dtype.isEnabled()
    panel.distributed.strategy.setCurrentText("zero3")
    assert panel.request().param_dtype == "bfloat16"


def test_set_request_shows_the_mixed_precision_policy_and_bucket_views(qtbot):
    panel = DistributedPanel()
    qtbot.addWidget(panel)
    panel.set_request(AnalysisRequest(model=MLP, strategy="zero2", world_size=8, param_dtype="float16"))
    assert (panel.param_dtype.currentText(), panel.reduce_dtype.currentText()) == ("float16", "as stored")
    panel.set_request(AnalysisRequest(model=MLP, strategy="zero1", world_size=2, gradient_as_bucket_view=True))
    assert panel.bucket_view.isChecked() and panel.fields()["gradient_as_bucket_view"]


def test_rank_view_shows_rank_zero_and_the_rank_that_differs(qtbot, fsdp8):
    view = RankView()
    qtbot.addWidget(view)
    view.set_analysis(fsdp8)
    titles = [item.titleLabel.text for item in view.plots.ci.items if hasattr(item, "titleLabel")]
    assert len(titles) == 2 and titles[0].startswith("rank 0 + 3 like it") and titles[1].startswith("rank 4 + 3")
    assert "fsdp over 8 GPUs" in view.header.text() and view.sweep_button.isEnabled()

    # a peak of ~2.7 KB: every panel's axis says so in KiB, not as a rescaled GiB ("GiB (x0.001)")
    import pyqtgraph as pg

    plots = [item for item in view.plots.ci.items if isinstance(item, pg.PlotItem)]
    labels = [p.getAxis("left").labelString() for p in plots]
    assert len(labels) == 2 and all("KiB" in text and "x0" not in text for text in labels), labels
    top = max(max(p.listDataItems()[0].yData) for p in plots)
    assert top == pytest.approx(fsdp8.distributed.max_peak_bytes / 1024)


def test_rank_view_tables_the_engine_sweep_of_world_sizes(qtbot, fsdp8):
    view = RankView()
    qtbot.addWidget(view)
    view.set_analysis(fsdp8)
    points = world_size_sweep(fsdp8.request, world_sizes=(1, 2, 4))
    for point in points:
        view.add_point(point)
    assert [view.table.item(r, 0).text() for r in range(3)] == ["1", "2", "4"]
    # model states shrink with the shards: 848 B on one GPU, 424 B on two, 212 B on four (x4 with Adam)
    assert [p.model_state_bytes for p in points] == [848 * 4 + 16, 424 * 4 + 16, 212 * 4 + 16]


def test_one_device_analysis_says_how_to_see_one_gpu_of_n(qtbot):
    view = RankView()
    qtbot.addWidget(view)
    view.set_analysis(analyze(AnalysisRequest(model=MLP, batch=4)))
    assert "One device" in view.header.text() and not view.sweep_button.isEnabled()


def test_the_cache_keeps_the_per_rank_summary(fsdp8, tmp_path):
    analysis_cache.save(fsdp8, str(tmp_path))
    back = analysis_cache.load(fsdp8.request, str(tmp_path))
    assert back is not None and back.distributed == fsdp8.distributed


def test_the_fit_check_plans_for_the_fullest_gpu(fsdp8):
    fit = fit_check(fsdp8, custom_device(2**30))
    tensors = next(line for line in fit.lines if line.key == "tensors")
    assert tensors.bytes == fsdp8.distributed.max_peak_bytes == fsdp8.peak.total_bytes


def test_communication_is_listed_for_a_distributed_step_and_left_out_on_one_device(qtbot, qapp, fsdp8, tmp_path):
    """A single GPU has no collective buffers: its summary, report and comparison list no
    'Communication 0 B' line; a distributed step's do, with its bytes."""
    import subprocess

    from engine.report import gather_report
    from engine.scenarios import Scenario, compare
    from gui.report_pdf import write_report_pdf
    from gui.summary import SummaryWidget

    single = analyze(AnalysisRequest(model=MLP, batch=4))
    assert fsdp8.peak.breakdown["communication"] > 0 and single.peak.breakdown["communication"] == 0

    summary = SummaryWidget()
    qtbot.addWidget(summary)
    summary.show()
    for analysis, listed in ((single, False), (fsdp8, True), (single, False)):
        summary.set_analysis(analysis)
        assert summary.breakdown["communication"].isVisible() == listed
        assert summary.breakdown["gradients"].isVisible()

    def report_text(analysis):
        path = tmp_path / f"{analysis.request.strategy}.pdf"
        write_report_pdf(str(path), gather_report(analysis))
        return subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout

    assert "Communication" not in report_text(single) and "Gradients" in report_text(single)
    assert "Communication" in report_text(fsdp8)

    def categories(*analyses):
        return [row.category for row in compare([Scenario(str(i), a) for i, a in enumerate(analyses)]).categories]

    assert "communication" not in categories(single, single) and "gradients" in categories(single, single)
    assert "communication" in categories(single, fsdp8)


# ---- Tensor parallelism and the rank view's room (issue 12)
TINY_TRANSFORMER = os.path.join(SPECS, "tiny_transformer.yaml")


def test_the_strategy_control_offers_tensor_parallelism_without_offload(qtbot, private_settings):
    panel = ConfigPanel(AnalysisRequest(model=MLP, batch=4, strategy="fsdp", world_size=4, offload="optimizer"))
    qtbot.addWidget(panel)
    strategies = [panel.distributed.strategy.itemText(i) for i in range(panel.distributed.strategy.count())]
    assert "tp" in strategies and "tp: tensor parallelism" in panel.distributed.strategy.toolTip()
    with qtbot.waitSignal(panel.sig_request_changed, timeout=3000) as blocker:
        panel.distributed.strategy.setCurrentText("tp")
    request = blocker.args[0]
    # offload is data parallelism's: the control greys out and the request drops it (it would refuse it)
    assert (request.strategy, request.world_size, request.offload) == ("tp", 4, None)
    assert not panel.distributed.offload.isEnabled() and not panel.distributed.param_dtype.isEnabled()


def test_rank_view_says_which_layers_tensor_parallelism_split(qtbot, tmp_path):
    view = RankView()
    qtbot.addWidget(view)
    a = analyze(AnalysisRequest(model=MLP, batch=4, strategy="tp", world_size=2))
    view.set_analysis(a)
    assert "tp over 2 GPUs" in view.header.text()
    assert "Split: 1 Linear layer column-wise, 1 row-wise." in view.header.text()
    assert "split column-wise (0)" in view.header.toolTip()  # the engine's note names the layers
    analysis_cache.save(a, str(tmp_path))  # and the next launch shows the same plan
    assert analysis_cache.load(a.request, str(tmp_path)).distributed.tensor_parallel == a.distributed.tensor_parallel


def test_the_gpus_table_says_which_counts_the_layers_cannot_be_split_over(qtbot):
    view = RankView()
    qtbot.addWidget(view)
    view.set_analysis(analyze(AnalysisRequest(model=MLP, batch=4, strategy="tp", world_size=2)))
    for point in world_size_sweep(view.analysis.request, world_sizes=(2, 32)):
        view.add_point(point)
    assert [view.table.item(r, 0).text() for r in range(2)] == ["2", "32"]
    assert view.table.item(0, 1).text().endswith("B")  # a figure
    assert view.table.item(1, 1).text() == "cannot split"
    assert "do not divide by 32" in view.table.item(1, 1).toolTip()


def test_the_rank_view_is_roomy_at_1280x720(qtbot, private_settings):
    """Opening the tab gives it room below (as the sweeps tab gets), the plots keep most of the
    width and the GPUs table shows every column of a sweep without scrolling sideways."""
    from gui.window import SWEEP_MIN_HEIGHT

    request = AnalysisRequest(model=TINY_TRANSFORMER, batch=2, strategy="zero1", world_size=4)
    with shown_window(qtbot, request, SMALL_SCREEN) as w:
        before = w.lower_tabs.height()
        w.lower_tabs.setCurrentWidget(w.rank_view)
        view = w.rank_view
        for point in world_size_sweep(w.analysis.request, world_sizes=(1, 2)):
            view.add_point(point)
        qtbot.wait(50)
        assert w.lower_tabs.height() > before and view.height() >= min(SWEEP_MIN_HEIGHT, 180)
        assert w.timeline.height() >= 60 and w.diagram.height() >= 60
        table = view.table
        columns = sum(table.columnWidth(c) for c in range(table.columnCount()))
        assert table.viewport().width() >= columns and not table.horizontalScrollBar().isVisible()
        assert view.plots.width() > 1.5 * table.width()  # the small multiples keep most of the width
        assert view.plots.height() >= 150
