"""The levers in the window: the Step panel's checkpointing preset and per-block toggles, freeze
pattern and micro-batch; a diagram group's 'checkpoint this block'; the summary's line. Real
analyses, offscreen."""
import os

import pytest
from PySide6.QtCore import Qt

from conftest import DATA, SPECS
from engine import AnalysisRequest, analyze

pytest.importorskip("PySide6")

from gui.config_panel import ConfigPanel  # noqa: E402
from gui.diagram import NetworkDiagramWidget  # noqa: E402
from gui.levers_panel import CheckpointFitter, LeversPanel  # noqa: E402
from gui.summary import SummaryWidget  # noqa: E402
from isolation import private_settings  # noqa: E402,F401 - a fixture

BLOCK_NET = os.path.join(DATA, "lever_models.py") + ":block_net"


@pytest.fixture(scope="module")
def checkpointed():
    return analyze(AnalysisRequest(model=BLOCK_NET, batch=8, checkpoint=("blocks.0",)))


def test_presets_and_toggles_set_the_checkpoint_field(qtbot, checkpointed):
    panel = LeversPanel()
    qtbot.addWidget(panel)
    panel.set_analysis(checkpointed)
    assert [panel.blocks.item(i).text() for i in range(panel.blocks.count())] == ["blocks.0", "blocks.1"]
    assert panel.fields()["checkpoint"] == ()  # nothing chosen yet: the preset says off
    with qtbot.waitSignal(panel.sig_changed):
        panel.preset.setCurrentText("every block")
    assert panel.fields()["checkpoint"] == ("every-block",)
    with qtbot.waitSignal(panel.sig_changed):
        panel.blocks.item(0).setCheckState(Qt.CheckState.Unchecked)
    assert panel.preset.currentText() == "chosen blocks" and panel.fields()["checkpoint"] == ("blocks.1",)


def test_the_config_panel_carries_the_levers_into_the_request(qtbot, private_settings):
    request = AnalysisRequest(model=BLOCK_NET, batch=8, checkpoint=("every-2-blocks",), freeze=("stem", "head.*"),
                              micro_batch=4)
    panel = ConfigPanel(request)
    qtbot.addWidget(panel)
    assert panel.request() == request
    panel.levers.micro_batch.setValue(0)
    panel.levers.freeze.setText("")
    panel.levers.preset.setCurrentText("off")
    assert panel.request() == AnalysisRequest(model=BLOCK_NET, batch=8)
    with qtbot.waitSignal(panel.sig_invalid):  # a micro-batch above the batch: the panel says why
        panel.levers.micro_batch.setValue(16)
        panel._emit_request()


def test_checkpoint_this_block_from_the_diagram(qtbot, checkpointed):
    diagram = NetworkDiagramWidget()
    qtbot.addWidget(diagram)
    diagram.set_analysis(checkpointed)
    panel = LeversPanel()
    qtbot.addWidget(panel)
    panel.set_analysis(checkpointed)
    diagram.sig_checkpoint_toggled.connect(panel.toggle_block)
    assert diagram.group_menu("") is None  # top-level layers are no block
    on = diagram.group_menu("blocks.0").actions()[0]
    assert on.text() == "Stop checkpointing (blocks.0)"
    off = diagram.group_menu("blocks.1").actions()[0]
    assert off.text() == "Checkpoint this block (blocks.1)"
    with qtbot.waitSignal(panel.sig_changed):
        off.trigger()
    assert panel.fields()["checkpoint"] == ("blocks.0", "blocks.1")


def test_freeze_this_block_from_the_diagram(qtbot, checkpointed):
    diagram = NetworkDiagramWidget()
    qtbot.addWidget(diagram)
    diagram.set_analysis(checkpointed)
    panel = LeversPanel()
    qtbot.addWidget(panel)
    panel.set_fields(checkpointed.request)
    diagram.sig_freeze_toggled.connect(panel.toggle_freeze)
    freeze = diagram.group_menu("blocks.1").actions()[1]
    assert freeze.text() == "Freeze this block (blocks.1)" and freeze.isEnabled()
    with qtbot.waitSignal(panel.sig_changed):
        freeze.trigger()
    assert panel.fields()["freeze"] == ("blocks.1",)
    frozen = analyze(checkpointed.request.replace(**panel.fields()))
    assert frozen.levers.frozen_parameters == 2 * (64 * 64 + 64)  # blocks.1's two linear layers
    diagram.set_analysis(frozen)
    unfreeze = diagram.group_menu("blocks.1").actions()[1]
    assert unfreeze.text() == "Unfreeze (blocks.1)"
    with qtbot.waitSignal(panel.sig_changed):
        unfreeze.trigger()
    assert panel.fields()["freeze"] == ()
    inference = analyze(AnalysisRequest(model=BLOCK_NET, batch=8, mode="inference"))
    diagram.set_analysis(inference)
    assert not any(a.isEnabled() for a in diagram.group_menu("blocks.1").actions())


def test_the_summary_says_what_checkpointing_saved_and_costs(qtbot, checkpointed):
    summary = SummaryWidget()
    qtbot.addWidget(summary)
    summary.set_analysis(checkpointed)
    c = checkpointed.levers.checkpoint
    assert summary.levers.text().startswith("checkpointing 1 block: ")
    assert summary.levers.text().endswith(f"+{c.recompute_pct:.0f}% compute")
    summary.set_analysis(analyze(AnalysisRequest(model=BLOCK_NET, batch=8)))
    assert summary.levers.text() == "" and summary.levers_card.isHidden()


def _footprint(*levers) -> int:
    """The fit check's total for resnet18 at batch 64, from the real CLI."""
    import json
    import subprocess
    import sys

    from conftest import ROOT

    out = subprocess.run([sys.executable, "main.py", "analyze", "--model", "resnet18", "--batch", "64", *levers,
                          "--capacity", "1TiB", "--json", "-"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["fit"]["total_bytes"]


def test_fewest_to_fit_ticks_the_blocks_the_engine_found(qtbot):
    from engine.devices import custom_device
    from gui.controller import Controller

    request = AnalysisRequest(model="resnet18", batch=64)
    panel = LeversPanel()
    qtbot.addWidget(panel)
    panel.set_analysis(analyze(request.replace(batch=1)))
    controller = Controller()
    controller.worker.start()  # generic jobs only
    device = [None]
    fitter = CheckpointFitter(panel, controller, lambda: device[0], dict, lambda: request)
    panel.fit.click()
    assert panel.fit_status.text() == "choose a device in 'GPU: does it fit?' first"
    # a capacity between the footprints with every block checkpointed and with none, as the
    # engine's footprint model (simulated reserve, workspaces) places them
    plain, every = _footprint(), _footprint("--checkpoint", "every-block")
    assert every < plain
    device[0] = custom_device((plain + every) // 2)
    with qtbot.waitSignal(panel.sig_changed, timeout=300_000):
        panel.fit.click()
    chosen = panel.fields()["checkpoint"]
    assert panel.preset.currentText() == "chosen blocks" and 0 < len(chosen) < 8
    assert panel.fit_status.text().startswith(f"{len(chosen)} of 8 blocks fit custom")
    device[0] = custom_device(500 * 2**20)
    with qtbot.waitSignal(controller.sig_error, timeout=300_000):
        panel.fit.click()
    assert panel.fit_status.text().startswith("--checkpoint fit: even checkpointing all 8 blocks of resnet18")
    assert fitter is not None and controller.shutdown(30.0)


def test_the_largest_batch_with_accumulation_reads_and_applies_batch_and_micro_batch(qtbot):
    """With a micro-batch the planner searches the micro-batch at fixed accumulation steps; the
    panel says both and Apply sets both, so the steps stay those searched."""
    from engine.devices import custom_device
    from engine.planner import max_batch
    from gui.controller import Controller
    from gui.device_panel import DevicePanel
    from gui.device_planning import DevicePlanning
    from gui.sweeps import SweepPlotWidget

    cnn = os.path.join(SPECS, "small_cnn.yaml")
    found = max_batch(AnalysisRequest(model=cnn, batch=64, micro_batch=16, device="cuda"), custom_device(2**30))
    m = found.value
    panel, sweeps = DevicePanel(), SweepPlotWidget()
    qtbot.addWidget(panel)
    qtbot.addWidget(sweeps)
    planning = DevicePlanning(panel, sweeps, Controller())
    panel.set_largest(found)
    assert panel.largest.text() == f"Largest batch: {4 * m} (micro-batch {m} × 4 steps)"
    assert f"; batch {4 * (m + 1)} (micro-batch {m + 1} × 4 steps) needs" in panel.largest_detail.text()
    with qtbot.waitSignal(planning.sig_use_settings) as applied:
        panel.apply_button.click()
    assert applied.args == [{"batch": 4 * m, "micro_batch": m}]


def test_the_summary_lists_every_lever_on_and_what_it_saved(qtbot):
    """LoRA, freezing and micro-batches each get a line on the Levers card (the full sentence in
    its tooltip); what they saved is the traced peak without them (an independent analysis here)
    minus the peak with them."""
    from engine.units import format_size

    summary = SummaryWidget()
    qtbot.addWidget(summary)
    llama = os.path.join(DATA, "hf_tiny_llama")
    lora = analyze(AnalysisRequest(model=llama, batch=2, input_shape=(32,), lora_rank=4,
                                   lora_targets=("q_proj", "v_proj")))
    full = analyze(AnalysisRequest(model=llama, batch=2, input_shape=(32,)))
    saved = format_size(full.peak.total_bytes - lora.peak.total_bytes)
    summary.set_analysis(lora)
    assert not summary.levers_card.isHidden()
    adapters = 2 * ((64 * 4 + 4 * 64) + (64 * 4 + 4 * 32))  # q_proj 64->64, v_proj 64->32, in 2 layers
    assert lora.parameters == 220_480 + adapters  # 1,792 of 222,272: 0.81%
    assert summary.levers.text() == f"LoRA rank 4, 0.81% trained: −{saved}"
    tip = summary.levers_card.toolTip()
    assert tip.startswith("LoRA rank 4, alpha 8, on q_proj,v_proj: base weights frozen, adapters trained; "
                          f"{lora.levers.adapter_parameters:,} adapter parameters trained")
    assert tip.endswith(f"vs full fine-tuning: −{saved}")
    both = analyze(AnalysisRequest(model=BLOCK_NET, batch=8, freeze=("stem",), micro_batch=4))
    plain = analyze(AnalysisRequest(model=BLOCK_NET, batch=8))
    summary.set_analysis(both)
    from gui.summary import LEVER_SEPARATOR

    assert summary.levers.text().split(LEVER_SEPARATOR) == [
        "frozen 2,112 parameters", "micro-batch 4 × 2 steps",
        f"together: −{format_size(plain.peak.total_bytes - both.peak.total_bytes)} (peak "
        f"{format_size(plain.peak.total_bytes)} without)"]
    assert summary.levers_card.toolTip().split("\n")[-1].startswith("levers together: ")
    summary.set_analysis(plain)
    assert summary.levers_card.isHidden()


def test_a_batch_sweep_with_accumulation_is_labelled_as_the_micro_batch(qtbot):
    from engine.devices import custom_device
    from engine.planner import sweep
    from gui.sweeps import SweepPlotWidget

    cnn = os.path.join(SPECS, "small_cnn.yaml")
    plot = SweepPlotWidget()
    qtbot.addWidget(plot)
    plot.start("batch", 2**30)
    points = sweep(AnalysisRequest(model=cnn, batch=64, micro_batch=16, device="cuda"), custom_device(2**30),
                   "batch", [2, 8], on_point=plot.add_point)
    assert plot.plot.getAxis("bottom").labelText == "micro-batch (× 4 accumulation steps = batch)"
    assert plot.status.text().startswith("micro-batch 8: ") and points[-1].batch == 32
