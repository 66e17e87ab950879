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
    assert [line.key for line in fit.lines] == ["tensors", "rounding", "reserve", "context", "others"]
    tensors, rounding, reserve, context, others = fit.lines
    assert tensors.bytes == cnn.peak.total_bytes and tensors.source == "traced" and not tensors.editable
    # The cuBLAS workspaces and cuDNN's convolution workspaces are traced: no line counts them twice.
    assert "cuBLAS/cuBLASLt workspaces (65.0 MiB" in tensors.note
    convolutions = cnn.cuda.convolutions
    assert convolutions.count > 0 and "cuDNN convolution workspaces (NVIDIA H200" in tensors.note
    sim = cnn.cuda.simulation
    # max_memory_allocated counts whole blocks: what they hold beyond the traced bytes is its own line
    assert rounding.source == "simulated" and not rounding.editable
    assert tensors.bytes + rounding.bytes == sim.peak_allocated_bytes and "max_memory_allocated" in rounding.note
    assert reserve.source == "simulated" and reserve.bytes == sim.peak_reserved_bytes - sim.peak_allocated_bytes
    assert "max_memory_reserved" in reserve.note
    # The context, and a cuBLAS and a cuDNN handle per thread that used them (forward's, autograd's)
    cublas_threads = sum(w.label.startswith("cuBLAS workspace") for w in cnn.cuda.workspaces)
    assert (cublas_threads, convolutions.threads) == (2, 2)
    assert context.bytes == (610 + 2 * 65 + 2 * 11) * MIB
    assert context.source == "default" and "extrapolated" in context.note  # measured on torch 2.11 only
    assert others.bytes == 0 and "assumed idle" in others.note  # a catalog GPU: nothing detected on it
    assert fit.total_bytes == sum(line.bytes for line in fit.lines)
    assert fit.capacity_bytes == 24564 * MIB


def test_a_cpu_trace_on_a_gpu_keeps_the_measured_cublas_line_and_the_default_reserve():
    a = analyze(AnalysisRequest(model=CNN, batch=4, device="cpu"))
    fit = fit_check(a, find_gpu("L4"))
    assert [line.key for line in fit.lines] == ["tensors", "cublas", "workspace", "reserve", "context", "others"]
    assert fit.line("cublas").bytes == 65 * MIB and "VALIDATION" in fit.line("cublas").note
    allocated = sum(fit.line(k).bytes for k in ("tensors", "cublas", "workspace"))
    assert fit.line("reserve").source == "default" and fit.line("reserve").bytes == int(0.05 * allocated)


def test_a_cpu_trace_of_a_model_without_convolutions_gets_the_other_workspace_default():
    a = analyze(AnalysisRequest(model=TRANSFORMER, batch=2, device="cpu"))
    assert fit_check(a, find_gpu("T4")).line("workspace").bytes == 31352422  # 29.9 MiB


def test_an_inference_trace_holds_one_thread_of_library_handles():
    a = analyze(AnalysisRequest(model=TRANSFORMER, batch=2, device="cuda", mode="inference", optimizer="none"))
    context = fit_check(a, find_gpu("T4")).line("context")
    assert a.cuda.convolutions is None and context.bytes == (610 + 65) * MIB  # no convolution: no cuDNN handle


def test_detected_devices_count_what_other_processes_hold(cnn):
    from dataclasses import replace

    gpu = replace(find_gpu("A100 80GB"), kind="nvml", index=0, other_processes_bytes=3 * 2**30)
    others = fit_check(cnn, gpu).line("others")
    assert others.bytes == 3 * 2**30 and others.source == "measured"


def test_user_edits_replace_a_line_and_say_so(cnn):
    from engine.units import format_bytes

    default = fit_check(cnn, find_gpu("L4"))
    edited = fit_check(cnn, find_gpu("L4"), overrides={"context": 300 * MIB})
    assert edited.line("context").bytes == 300 * MIB and edited.line("context").source == "user"
    assert f"default {format_bytes(default.line('context').bytes)}" in edited.line("context").note
    assert edited.line("reserve") == default.line("reserve")  # simulated: it does not follow the edits
    assert edited.total_bytes == default.total_bytes - default.line("context").bytes + 300 * MIB


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
    # The verdict reads the reserve without memory pressure, so the total is the same on every device.
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


def test_over_the_capacity_a_warning_says_when_releasing_the_cache_would_still_run_it():
    """release_cached_blocks: one MiB short, the simulated allocator frees cached segments (resnet18
    caches some between its layers) and stays within the capacity: the verdict stays 'does not
    fit' (max_memory_reserved would not), and a warning says it would run, flushing its cache.
    With no room for the tensors themselves there is no such warning."""
    a = analyze(AnalysisRequest(model="resnet18", batch=8, device="cuda"))
    total = fit_check(a, custom_device(10**12)).total_bytes
    squeezed = fit_check(a, custom_device(total - MIB))
    assert squeezed.state == DOES_NOT_FIT
    assert any("releasing its cached segments" in w and "it would run" in w for w in squeezed.warnings)
    reserve = squeezed.line("reserve").bytes
    over = fit_check(a, custom_device(total - reserve - 2 * MIB))
    assert not any("releasing its cached segments" in w for w in over.warnings)


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
    # The cuBLAS and cuDNN workspaces are traced and the reserve simulated: what is left is not in the trace.
    assert [n.label for n in gpu.not_modelled] == ["CUDA context", "cuDNN workspaces off the recorded table"]


def test_the_cpu_lists_precisely_the_kernel_scratch_it_does_not_replay():
    """Convolution, matrix-product and LSTM scratch is replayed; the card said 'kernel scratch
    buffers' as if none were."""
    from engine.target import CPU

    lines = CPU.not_modelled()
    assert [n.label for n in lines] == ["oneDNN per-thread scratchpads (AMX/brgemm)",
                                        "AVX2 small-channel weight-gradient reductions"]
    assert all(n.note and n.bytes is None for n in lines)  # no made-up figure: a lower bound, said so
