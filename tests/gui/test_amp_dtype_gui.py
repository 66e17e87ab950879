"""AMP's autocast dtype in the window: a combo beside the AMP checkbox (enabled with it), carried
into the request, and part of the disk cache's key."""
import os

import pytest

from conftest import DATA
from engine import AnalysisRequest, analyze
from gui import analysis_cache

pytest.importorskip("PySide6")

from gui.config_panel import ConfigPanel  # noqa: E402
from isolation import private_settings  # noqa: E402,F401 - a fixture

TINY = os.path.join(DATA, "tiny_mlp.py") + ":build"


def test_the_step_panel_carries_the_amp_dtype_into_the_request(qtbot, private_settings):
    request = AnalysisRequest(model=TINY, batch=2, device="cuda", amp=True, amp_dtype="bfloat16")
    panel = ConfigPanel(request)
    qtbot.addWidget(panel)
    assert panel.request() == request and panel.amp_dtype.isEnabled()
    panel.amp_dtype.setCurrentIndex(panel.amp_dtype.findData(""))
    assert panel.request().amp_dtype == "" and panel.request().autocast_dtype == "float16"
    panel.amp_dtype.setCurrentIndex(panel.amp_dtype.findData("bfloat16"))
    panel.amp.setChecked(False)  # without AMP the dtype is greyed out and not asked for
    assert not panel.amp_dtype.isEnabled() and panel.request() == request.replace(amp=False, amp_dtype="")
    with qtbot.waitSignal(panel.sig_request_changed) as emitted:
        panel.amp.setChecked(True)
    assert emitted.args[0].amp_dtype == "bfloat16" and panel.amp_dtype.isEnabled()


def test_the_cached_analysis_keeps_its_amp_dtype_and_another_dtype_misses(tmp_path):
    request = AnalysisRequest(model=TINY, batch=2, device="cuda", amp=True, amp_dtype="bfloat16")
    analysis_cache.save(analyze(request), str(tmp_path))
    back = analysis_cache.load(request, str(tmp_path))
    assert back is not None and back.request.amp_dtype == "bfloat16"
    assert analysis_cache.load(request.replace(amp_dtype="float16"), str(tmp_path)) is None
