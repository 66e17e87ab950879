"""Recurrent layers the trace does not run as the target does are named in the warnings
(engine/rnn_limits.py), and only those."""
import os

import pytest

from conftest import DATA
from engine import AnalysisRequest, analyze
from engine.cpu_kernels import onednn_low_precision
from engine.truth import measure_cpu_step

LSTM = os.path.join(DATA, "user_models.py") + ":build_lstm"
GRU = os.path.join(DATA, "user_models.py") + ":build_bidirectional_gru"
PROJECTED = os.path.join(DATA, "user_models.py") + ":build_projected_lstm"


def warnings_of(model, **kwargs):
    return " ".join(analyze(AnalysisRequest(model=model, batch=4, optimizer="adam", **kwargs)).warnings)


def test_a_gpu_trace_of_an_lstm_or_a_gru_says_cudnn_rnn_is_not_modelled():
    for model, kind in ((LSTM, "nn.LSTM"), (GRU, "nn.GRU")):
        text = warnings_of(model, device="cuda")
        assert f"{kind} on a GPU: cuDNN's RNN kernels" in text and "not modelled" in text
        assert "cuDNN" not in warnings_of(model)  # the CPU's float32 path is modelled: no warning


def test_a_model_without_recurrent_layers_gets_no_rnn_warning():
    assert "RNN" not in warnings_of("resnet18", device="cuda")


@pytest.mark.slow
def test_the_cpu_autocast_lstm_warning_is_warranted_by_a_measured_step():
    """Where oneDNN runs bfloat16 the warning says the figure reads low, and a real step must show
    it (if it stops doing so, the path is modelled and the warning must go); where it does not,
    ATen's cells run the LSTM as traced: no warning, and the figure holds."""
    request = AnalysisRequest(model=LSTM, batch=4, optimizer="adam", amp=True)
    traced = analyze(request)
    try:
        measured = measure_cpu_step(request)
    except RuntimeError as e:
        # ONEDNN_MAX_CPU_ISA below AVX-512 on an AVX-512 CPU (how the ISA runs emulate older CPUs):
        # torch's LSTM asks cpuinfo, not oneDNN, whether bfloat16 runs, and oneDNN then refuses it.
        if os.environ.get("ONEDNN_MAX_CPU_ISA") and "primitive descriptor" in str(e):
            pytest.skip("torch's own bfloat16 LSTM cannot run under this ONEDNN_MAX_CPU_ISA cap")
        raise
    if onednn_low_precision():
        assert any("nn.LSTM under CPU autocast" in w for w in traced.warnings)
        assert traced.peak.total_bytes < 0.98 * measured.peak_bytes
    else:
        assert not any("autocast" in w for w in traced.warnings)
        assert abs(traced.peak.total_bytes - measured.peak_bytes) < 0.02 * measured.peak_bytes
    assert not any("autocast" in w for w in analyze(request.replace(amp=False)).warnings)


@pytest.mark.slow
def test_an_lstm_with_projections_on_a_cpu_is_named_and_reads_high_as_said():
    """ATen's cells run it (no oneDNN): the warning says the figure can read high, and a measured
    inference pass must show it (if it stops, the path is modelled and the warning must go)."""
    request = AnalysisRequest(model=PROJECTED, batch=4, mode="inference", optimizer="none")
    traced = analyze(request)
    assert any("nn.LSTM with proj_size on a CPU" in w for w in traced.warnings)
    measured = measure_cpu_step(request)
    assert traced.peak.total_bytes > 1.02 * measured.peak_bytes
    assert not any("proj_size" in w for w in analyze(request.replace(model=LSTM)).warnings)
