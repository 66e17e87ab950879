"""Bad models never wedge the window: a broken spec, a python file that calls sys.exit() and
one that never returns are each followed by a good request, which is analysed and shown."""
import os
import textwrap

import pytest

from conftest import SPECS
from engine import AnalysisRequest

pytest.importorskip("PySide6")

from gui.window import MainWindow  # noqa: E402

GOOD = os.path.join(SPECS, "small_cnn.yaml")
MODELS = textwrap.dedent('''
    import sys, time
    import torch
    from torch import nn

    def exits():
        sys.exit(0)

    def hangs():
        while True:
            time.sleep(0.05)
''')


@pytest.fixture
def window(qtbot):
    w = MainWindow(AnalysisRequest(model=GOOD, batch=2))
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
        w.start()
    yield w
    w.close()
    assert not w.controller.worker.is_busy()


@pytest.fixture
def models(tmp_path):
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return str(path)


def _then_a_good_request_is_shown(window, qtbot, batch):
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=180_000,
                          check_params_cb=lambda a: a.request.batch == batch):
        window.open_model(GOOD)
        window.config.batch.setValue(batch)
    assert window.analysis.model_name == "small-resnet" and window.analysis.request.batch == batch
    assert not window.error.isVisible()


def test_a_broken_spec_shows_its_error_then_the_next_request_runs(window, qtbot, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input: [8]\nlayers:\n  - repeat: 1000000000\n    layers: [relu]\n")
    with qtbot.waitSignal(window.sig_error_shown, timeout=60_000) as blocker:
        window.open_model(str(bad))
    assert "expands to 1,000,000,000 layers" in blocker.args[0]
    assert window.error.isVisible()
    _then_a_good_request_is_shown(window, qtbot, 3)


def test_a_model_file_calling_sys_exit_is_an_error_not_a_wedge(window, qtbot, models):
    with qtbot.waitSignal(window.sig_error_shown, timeout=180_000) as blocker:
        window.open_model(f"{models}:exits")
    assert "the model file called sys.exit(0)" in blocker.args[0]
    assert window.error.isVisible() and not window.controller.is_analysing()
    _then_a_good_request_is_shown(window, qtbot, 4)


def test_a_model_file_that_never_returns_is_stopped_by_the_next_request(window, qtbot, models):
    with qtbot.waitSignal(window.controller.sig_analysis_started, timeout=10_000):
        window.open_model(f"{models}:hangs")
    assert window.controller.is_analysing()
    _then_a_good_request_is_shown(window, qtbot, 5)
