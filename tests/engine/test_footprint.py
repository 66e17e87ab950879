"""The fit check: every line the step needs on a device, each with bytes and a source, and the
three verdicts exactly at their boundaries. Also the `TargetDevice` rules the trace relies on."""
import os

import pytest
import torch

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.devices import custom_device, find_gpu
from engine.errors import RequestError
from engine.footprint import DOES_NOT_FIT, FITS, TIGHT, FootprintLine, fit_check, verdict
from engine.target import CPU, CUDA, target_for

MIB = 2**20
CNN = os.path.join(SPECS, "small_cnn.yaml")
TRANSFORMER = os.path.join(SPECS, "tiny_transformer.yaml")


@pytest.fixture(scope="module")
def cnn():
    return analyze(AnalysisRequest(model=CNN, batch=4, device="cuda"))


# ---- The lines
def test_every_line_is_separate_labelled_and_sourced(cnn):
    fit = fit_check(cnn, find_gpu("RTX 4090"))
    assert [line.key for line in fit.lines] == ["tensors", "cublas", "workspace", "reserve", "context", "others"]
    tensors, cublas, workspace, reserve, context, others = fit.lines
    assert tensors.bytes == cnn.peak.total_bytes and tensors.source == "traced" and not tensors.editable
    assert cublas.bytes == 64 * MIB and cublas.source == "measured table" and "VALIDATION" in cublas.note
    assert workspace.bytes == 54 * MIB and "convolutions" in workspace.note  # the spec CNN has convolutions
    assert reserve.source == "default" and reserve.bytes == int(0.05 * (tensors.bytes + cublas.bytes + workspace.bytes))
    assert context.bytes == 512 * MIB and context.source == "default"
    assert others.bytes == 0 and "assumed idle" in others.note  # a catalog GPU: nothing detected on it
    assert fit.total_bytes == sum(line.bytes for line in fit.lines)
    assert fit.capacity_bytes == 24564 * MIB


def test_a_model_without_convolutions_gets_the_other_workspace_default():
    a = analyze(AnalysisRequest(model=TRANSFORMER, batch=2, device="cuda"))
    assert fit_check(a, find_gpu("T4")).line("workspace").bytes == 30 * MIB


def test_detected_devices_count_what_other_processes_hold(cnn):
    from dataclasses import replace

    gpu = replace(find_gpu("A100 80GB"), kind="nvml", index=0, other_processes_bytes=3 * 2**30)
    others = fit_check(cnn, gpu).line("others")
    assert others.bytes == 3 * 2**30 and others.source == "measured"


def test_user_edits_replace_a_line_and_say_so(cnn):
    default = fit_check(cnn, find_gpu("L4"))
    edited = fit_check(cnn, find_gpu("L4"), overrides={"context": 300 * MIB, "cublas": 0})
    assert edited.line("context").bytes == 300 * MIB and edited.line("context").source == "user"
    assert "default 512.0 MiB" in edited.line("context").note
    # The reserve follows the allocated lines it sits above.
    assert edited.line("reserve").bytes == int(0.05 * (cnn.peak.total_bytes + 54 * MIB))
    assert edited.total_bytes == default.total_bytes - 212 * MIB - 64 * MIB - (
        default.line("reserve").bytes - edited.line("reserve").bytes)


def test_the_reserve_model_is_a_seam(cnn):
    def simulated(analysis, allocated):
        return FootprintLine("reserve", "allocator reserve above allocated", 2 * MIB, "simulated", "test")

    fit = fit_check(cnn, find_gpu("L4"), reserve=simulated)
    assert fit.line("reserve").source == "simulated" and fit.line("reserve").bytes == 2 * MIB


@pytest.mark.parametrize("overrides, message", [
    ({"tensors": 1}, "cannot override footprint line 'tensors'"),
    ({"context": -1}, "must be a byte count >= 0"),
])
def test_bad_overrides_are_refused(cnn, overrides, message):
    with pytest.raises(RequestError, match=message):
        fit_check(cnn, find_gpu("L4"), overrides=overrides)


def test_a_cpu_trace_checked_against_a_gpu_warns():
    a = analyze(AnalysisRequest(model=CNN, batch=4, device="cpu"))
    assert "trace with --device cuda" in fit_check(a, find_gpu("L4")).warnings[0]


# ---- The verdict at its boundaries
@pytest.mark.parametrize("total, state", [
    (0, FITS), (900, FITS),  # exactly 10% headroom still fits
    (901, TIGHT), (1000, TIGHT),  # under 10% headroom; exactly full is tight, not over
    (1001, DOES_NOT_FIT),
])
def test_verdict_boundaries(total, state):
    assert verdict(total, 1000) == state


def test_fit_states_on_a_real_footprint_at_their_boundaries(cnn):
    total = fit_check(cnn, custom_device(10**12)).total_bytes
    # The reserve does not depend on the capacity, so the total is the same on every device.
    fits_at = -(-total * 10 // 9)  # smallest capacity with >= 10% headroom
    cases = [(fits_at, FITS), (fits_at - 1, TIGHT), (total, TIGHT), (total - 1, DOES_NOT_FIT)]
    for capacity, state in cases:
        fit = fit_check(cnn, custom_device(capacity))
        assert fit.total_bytes == total
        assert fit.state == state, (capacity, fit.describe())
    over = fit_check(cnn, custom_device(total - 1))
    assert over.headroom_bytes == -1 and over.describe().startswith("does not fit on custom")
    ok = fit_check(cnn, custom_device(fits_at))
    assert ok.headroom_pct >= 10.0 and "headroom" in ok.describe()


# ---- TargetDevice: the device-specific rules, in one place
def test_target_rounding_and_optimizers():
    assert CUDA.block_bytes(1) == 512 and CUDA.block_bytes(513) == 1024 and CUDA.block_bytes(0) == 0
    assert CPU.block_bytes(513) == 513
    assert CUDA.foreach_optimizers and not CPU.foreach_optimizers
    assert CUDA.amp_dtype == torch.float16 and CPU.amp_dtype == torch.bfloat16
    assert target_for("cuda") is CUDA
    step = torch.zeros(())
    assert not CUDA.on_device("step", step) and CPU.on_device("step", step)
    assert CUDA.on_device("exp_avg", torch.zeros(3))


def test_target_attention_choice():
    q = torch.empty(2, 4, 16, 64, device="meta", dtype=torch.float16)
    assert CUDA.attention_choice(q, q, q, None, 0.0, False, None, False) == 1  # flash
    q32 = q.float()
    assert CUDA.attention_choice(q32, q32, q32, None, 0.0, False, None, False) == 2  # memory-efficient
    odd = torch.empty(2, 4, 16, 60, device="meta")
    assert CUDA.attention_choice(odd, odd, odd, None, 0.0, False, None, False) == 0  # math


def test_cuda_trace_differs_from_cpu_only_by_the_target_rules():
    cpu = analyze(AnalysisRequest(model=CNN, batch=3, mode="inference", optimizer="none", device="cpu"))
    gpu = analyze(AnalysisRequest(model=CNN, batch=3, mode="inference", optimizer="none", device="cuda"))
    assert all(n % 512 == 0 for n in gpu.events.nbytes.tolist())
    assert any(n % 512 for n in cpu.events.nbytes.tolist())
    # Parameters are rounded per storage on CUDA (the spec's BatchNorm biases are under 512 B).
    assert gpu.peak.breakdown["parameters"] > cpu.peak.breakdown["parameters"]
    assert [n.label for n in gpu.not_modelled][:2] == ["CUDA context", "cuBLAS workspace"]


def test_the_cpu_lists_precisely_the_kernel_scratch_it_does_not_replay():
    """Convolution, matrix-product and LSTM scratch is replayed; the card said 'kernel scratch
    buffers' as if none were."""
    from engine.target import CPU

    lines = CPU.not_modelled()
    assert [n.label for n in lines] == ["oneDNN per-thread scratchpads (AMX/brgemm)",
                                        "AVX2 small-channel weight-gradient reductions"]
    assert all(n.note and n.bytes is None for n in lines)  # no made-up figure: a lower bound, said so
