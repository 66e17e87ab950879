"""The Step panel's language-model controls (gui/hf_panel.py): a Hugging Face config shows a
sequence length and a LoRA rank in place of the input shape, and they reach the request; the
shipped configs are in the model list; the window opens a config folder."""
import os

import pytest

from conftest import DATA, ROOT, SPECS
from engine import AnalysisRequest

pytest.importorskip("PySide6")

from gui.config_panel import ConfigPanel  # noqa: E402
from gui.hf_panel import GROUP_TITLE, shipped_configs  # noqa: E402
from isolation import private_settings  # noqa: E402,F401 - a fixture

TINY_GPT2 = os.path.join(DATA, "hf_tiny_gpt2")
GPT2 = os.path.join(ROOT, "resources", "hf", "gpt2")


@pytest.fixture
def panel(qtbot, private_settings):
    p = ConfigPanel(AnalysisRequest(model="resnet18", batch=2))
    qtbot.addWidget(p)
    p.show()
    return p


def visible_rows(panel) -> set[str]:
    form = panel.batch.parentWidget().layout()
    return {form.labelForField(w).text() for w in (panel.input, panel.hf.seq, panel.hf.lora_rank, panel.hf.kv_cache)
            if form.isRowVisible(w)}


def test_the_sequence_and_lora_rows_replace_the_input_for_a_hugging_face_model(panel, qtbot):
    assert visible_rows(panel) == {"Input"}
    panel.set_model(TINY_GPT2)
    assert visible_rows(panel) == {"Sequence", "LoRA rank", "KV cache"}
    panel.set_model(os.path.join(SPECS, "tiny_transformer.yaml"))
    assert visible_rows(panel) == {"Input"}


def test_the_controls_reach_the_request(panel, qtbot):
    panel.set_model(TINY_GPT2)
    assert panel.request().input_shape is None and panel.request().lora_rank == 0  # model default, no LoRA
    with qtbot.waitSignal(panel.sig_request_changed, timeout=5_000) as blocker:
        panel.hf.seq.setValue(128)
        panel.hf.lora_rank.setValue(8)
    request = blocker.args[0]
    assert request.input_shape == (128,) and request.lora_rank == 8 and request.model == TINY_GPT2


def test_the_kv_cache_box_counts_in_inference_only(panel, qtbot):
    panel.set_request(AnalysisRequest(model=TINY_GPT2, input_shape=(64,), mode="inference", kv_cache=True))
    assert panel.hf.kv_cache.isChecked() and panel.request().kv_cache
    panel.mode.setCurrentText("train")  # a training step keeps no cache: the request stays valid, without it
    assert panel.request().kv_cache is False and panel.hf.kv_cache.isChecked()
    panel.mode.setCurrentText("inference")
    with qtbot.waitSignal(panel.sig_request_changed, timeout=5_000) as blocker:
        panel.hf.kv_cache.setChecked(False)
    assert blocker.args[0].kv_cache is False and blocker.args[0].mode == "inference"


def test_a_request_naming_alpha_and_targets_keeps_them(panel):
    request = AnalysisRequest(model=TINY_GPT2, input_shape=(64,), lora_rank=4, lora_alpha=32.0,
                              lora_targets=("c_attn",))
    panel.set_request(request)
    assert panel.hf.seq.value() == 64 and panel.hf.lora_rank.value() == 4
    assert panel.request() == request.replace(optimizer="adam")


def test_an_image_model_ignores_the_hidden_language_controls(panel):
    panel.set_request(AnalysisRequest(model=TINY_GPT2, input_shape=(64,), lora_rank=4))
    panel.set_model("resnet18")
    request = panel.request()
    assert request.lora_rank == 0 and request.input_shape is None


def test_the_shipped_configs_are_listed_and_open_on_click(panel, qtbot):
    panel.set_catalog({"classification": ["resnet18"]})
    groups = [panel.models.topLevelItem(i) for i in range(panel.models.topLevelItemCount())]
    (group,) = [g for g in groups if g.text(0).startswith(GROUP_TITLE)]
    names = [group.child(j).text(0) for j in range(group.childCount())]
    assert names == [name for name, _ in shipped_configs()] and "gpt2" in names
    with qtbot.waitSignal(panel.sig_request_changed, timeout=5_000) as blocker:
        panel._on_model_item(group.child(names.index("gpt2")))
    assert blocker.args[0].model == GPT2 and visible_rows(panel) == {"Sequence", "LoRA rank", "KV cache"}


def test_the_window_analyses_a_dropped_config_folder_with_lora(qtbot, private_settings, tmp_path):
    from gui.window import MainWindow

    w = MainWindow(AnalysisRequest(model=os.path.join(SPECS, "small_cnn.yaml"), batch=2))
    qtbot.addWidget(w)
    w.show()
    try:
        with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
            w.start()
        with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
            w.open_dropped([str(tmp_path / "notes.txt"), TINY_GPT2])
        assert w.analysis.source == "hf" and w.analysis.input_shape == (2, 256)
        with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
            w.config.hf.lora_rank.setValue(4)
        assert w.analysis.request.lora_rank == 4
        assert any(".lora_A." in layer.name for layer in w.analysis.layers)
        if os.environ.get("MEMLENS_SCREENSHOT"):
            w.resize(1280, 800)
            with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
                w.open_model(GPT2)
            w.grab().save(os.environ["MEMLENS_SCREENSHOT"])
    finally:
        w.close()
        assert w.controller.shutdown(60.0)


def test_a_lora_analysis_is_cached_until_its_config_changes(tmp_path):
    import json
    import shutil

    from engine import analyze
    from gui import analysis_cache

    folder = tmp_path / "gpt"
    shutil.copytree(TINY_GPT2, folder)
    request = AnalysisRequest(model=str(folder), batch=1, input_shape=(32,), lora_rank=4, lora_alpha=8.0,
                              lora_targets=("c_attn",))
    a = analyze(request)
    analysis_cache.save(a, str(tmp_path / "cache"))
    b = analysis_cache.load(request, str(tmp_path / "cache"))
    assert b is not None and (b.request, b.source, b.peak, b.layers) == (a.request, "hf", a.peak, a.layers)
    config = folder / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "n_layer": 3}))  # edited in place
    assert analysis_cache.load(request, str(tmp_path / "cache")) is None
