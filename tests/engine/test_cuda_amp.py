"""CUDA AMP as CUDA runs it: float16 training with a GradScaler (its scale and growth tensors, the
inf checks, the unscale), inference and bfloat16 without one. The step code is shared by the
trace and the real runs (engine/step.py)."""
import os

import torch

from engine import AnalysisRequest, analyze
from engine.step import build_scaler, run_step
from engine.truth import build_real_step

TINY = os.path.join(os.path.dirname(__file__), "..", "data", "tiny_mlp.py") + ":build"


def cuda(**changes):
    return analyze(AnalysisRequest(model=TINY, batch=2, device="cuda", optimizer="adam", **changes))


def test_float16_training_holds_the_scalers_scale_and_growth_tensors_from_the_start():
    """Steady state: an earlier step made them (a float32 scale, an int32 growth tracker): one
    512-byte block each beside the same Adam state."""
    amp, plain = cuda(amp=True), cuda()
    assert amp.timeline.live_at(0)["optimizer_state"] == plain.timeline.live_at(0)["optimizer_state"] + 2 * 512


def test_a_first_step_makes_them_inside_the_step():
    amp, plain = cuda(amp=True, first_step=True), cuda(first_step=True)
    assert amp.timeline.live_at(0)["optimizer_state"] == plain.timeline.live_at(0)["optimizer_state"] == 0
    scaler_blocks = [life for life in amp.lifetimes if life.category == "optimizer_state" and life.nbytes == 512]
    assert len(scaler_blocks) >= 2  # the scale and the growth tracker (the tiny net's biases are 512 B too)


def test_the_scaler_adds_the_inf_checks_and_the_unscale_to_the_optimizer_phase():
    amp, plain = cuda(amp=True), cuda()
    def optimizer_allocations(a):
        start = next(s for p, s, e in a.timeline.phase_spans if p == "optimizer")
        return int((a.events.nbytes[start:] > 0).sum())
    assert optimizer_allocations(amp) > optimizer_allocations(plain)


def test_inference_and_cpu_amp_have_no_scaler():
    assert build_scaler(True, "cuda", "inference") is None
    assert build_scaler(True, "cpu", "train") is None  # bfloat16
    assert build_scaler(False, "cuda", "train") is None
    inference = analyze(AnalysisRequest(model=TINY, batch=2, device="cuda", mode="inference", amp=True))
    assert inference.timeline.live_at(0)["optimizer_state"] == 0


def test_a_real_cpu_step_runs_the_same_scaler_code():
    """The CPU truth can run CUDA's float16 step: the scaler reads its inf flags for real and,
    the gradients being finite, keeps its initial scale."""
    request = AnalysisRequest(model=TINY, batch=2, device="cuda", amp=True, optimizer="sgd")
    step = build_real_step(request, "cpu")
    scaler = build_scaler(True, "cuda", "train", "cpu")
    for _ in range(2):
        run_step(step.model, step.inputs, step.targets, step.optimizer, mode="train", amp=True, device="cuda",
                 scaler=scaler)
        step.optimizer.zero_grad(set_to_none=True)
    assert scaler._scale.dtype == torch.float32 and scaler._scale.shape == ()
    assert scaler._growth_tracker.dtype == torch.int32 and scaler.get_scale() == 65536.0


# ---- CUDA's autocast lists on CPU tensors (engine/target.py CudaAutocast)
import torch.nn.functional as F  # noqa: E402

from engine.target import CudaAutocast  # noqa: E402


def test_cuda_lists_lower_matrix_products_and_keep_normalisation_softmax_and_losses_in_float32():
    x, w = torch.randn(4, 8), torch.randn(8, 8, requires_grad=True)
    with CudaAutocast():
        y = F.linear(x, w)
        assert y.dtype == torch.float16 and (x @ w).dtype == torch.float16
        assert F.conv2d(torch.randn(1, 3, 8, 8), torch.randn(4, 3, 3, 3)).dtype == torch.float16
        assert F.layer_norm(y, (8,)).dtype == torch.float32  # CPU's autocast keeps float16 here
        assert torch.softmax(y, -1).dtype == torch.float32 and y.sum().dtype == torch.float32  # set_opt_dtype
        assert y.exp().dtype == torch.float32 and F.relu(y).dtype == torch.float16  # relu: not listed
        assert torch.cat([y, x]).dtype == torch.float32  # plain type promotion
    with torch.autocast("cpu", dtype=torch.float16):
        assert F.layer_norm(F.linear(x, w), (8,)).dtype == torch.float16


def test_composites_are_cast_inside_as_autocast_casts_their_ops():
    with CudaAutocast():
        logits = F.linear(torch.randn(4, 8), torch.randn(3, 8))
        assert F.cross_entropy(logits, torch.zeros(4, dtype=torch.long)).dtype == torch.float32
        mha = torch.nn.MultiheadAttention(8, 2)
        q = torch.randn(5, 2, 8)
        assert mha(q, q, q, need_weights=False)[0].dtype == torch.float16
    assert F.has_torch_function_variadic is torch.overrides.has_torch_function_variadic  # restored


def test_a_parameter_is_cast_once_per_forward_like_autocasts_cache():
    w = torch.randn(8, 8, requires_grad=True)
    with CudaAutocast() as mode:
        a = F.linear(torch.randn(2, 8), w)
        b = F.linear(torch.randn(2, 8), w)
        assert len(mode.cache) == 1 and a.dtype == b.dtype == torch.float16
    assert mode.cache == {}


def test_the_cast_cache_lives_until_the_outermost_region_ends_also_across_composites():
    """autocast_mode.cpp cached_cast: a float32 leaf requiring grad (not a view) is cast once and
    kept until autocast exits, under no_grad too; composites (multi-head attention) re-enter the
    mode without dropping it."""
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True)
    lin = torch.nn.Linear(8, 8)
    q = torch.randn(2, 5, 8)
    with torch.no_grad(), CudaAutocast() as mode:
        lin(q)
        mha(q, q, q, need_weights=False)
        lin(lin.weight[:2])  # a view of a parameter is no leaf of its own: cast, not cached
        cached = {id(source) for source, _ in mode.cache.values()}
    assert cached == {id(p) for p in (lin.weight, lin.bias, mha.in_proj_weight, mha.in_proj_bias,
                                      mha.out_proj.weight, mha.out_proj.bias)}
    assert mode.cache == {}


# ---- Against the recorded H200 run (tests/data/gpu/, benchmarks/gpu_accuracy.py): a trace for
# CUDA (compute capability 9.0) checked against what max_memory_allocated measured.
import sys  # noqa: E402

import pytest  # noqa: E402

from conftest import ROOT  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from gpu_accuracy import load_document  # noqa: E402
from gpu_predict import request_for  # noqa: E402

RECORDED = load_document(os.path.join(ROOT, "tests", "data", "gpu", "h200_2026-11-28_fresh", "gpu_accuracy.json"))


def recorded(model, mode, optimizer, precision):
    return next(c for c in RECORDED["cases"] if (c["model"], c["mode"], c["optimizer"], c["precision"])
                == (model, mode, optimizer, precision))


def traced_against_recorded(model, mode, optimizer, precision):
    """The traced peak (tensors and the cuBLAS workspaces) and the measured max_memory_allocated."""
    case = recorded(model, mode, optimizer, precision)
    analysis = analyze(request_for(case, tuple(RECORDED["compute_capability"])))
    return analysis.peak.total_bytes, case["max_memory_allocated"]


@pytest.mark.parametrize("precision", ["amp_float16", "amp_bfloat16"])
def test_an_amp_inference_holds_a_low_precision_copy_of_every_weight_as_the_gpu_did(precision):
    """vit_b_16, batch 8 (its one convolution is the patch embedding): the GPU measured 214 MiB
    above the start, 172 MiB of it the weights' float16/bfloat16 copies; the trace read -28%
    without them."""
    traced, measured = traced_against_recorded("vit_b_16", "inference", "none", precision)
    assert abs(traced - measured) <= 0.02 * measured


def signed_sizes(case, at_least):
    """The recorded step's allocations and frees of at least `at_least` bytes, in order (+/- bytes)."""
    from engine.allocator_replay import decode_trace

    sizes, addresses = decode_trace(case["trace"])
    held, out = {}, []
    for size, address in zip(sizes.tolist(), addresses.tolist()):
        if size > 0:
            held[address] = -(-size // 512) * 512
            if held[address] >= at_least:
                out.append(held[address])
        elif held.get(address, 0) >= at_least:
            out.append(-held.pop(address))
    return out


def test_cross_entropy_under_autocast_takes_log_softmax_in_half_and_nll_loss_in_float32():
    """The GPT-2-style decoder's loss over 8 x 256 tokens of a 32,000-word vocabulary, as the H200
    ran it: the float16 logits, their float16 log-probabilities, a float32 copy for nll_loss; in
    backward the float32 gradient, cast back to float16, then the log-softmax gradient in float16
    (the trace cast the whole loss to float32 before: two float32 copies, +22% at the peak)."""
    case = recorded("hf_decoder.py:build", "train", "sgd", "amp_float16")
    analysis = analyze(request_for(case, tuple(RECORDED["compute_capability"])))
    big = 100_000_000
    traced = [int(n) for n in analysis.events.nbytes.tolist() if abs(n) >= big]
    assert traced[:10] == signed_sizes(case, big)[:10] == [
        131_072_000, 131_072_000, 262_144_000, 262_144_000, -262_144_000, 131_072_000, -262_144_000,
        131_072_000, -131_072_000, -131_072_000]


def test_a_transformers_float16_training_step_peaks_as_recorded():
    for optimizer in ("adam", "sgd"):
        traced, measured = traced_against_recorded("tiny_transformer.yaml", "train", optimizer, "amp_float16")
        assert abs(traced - measured) <= 0.005 * measured  # +0.8% with the loss cast to float32


def test_the_gpt2_decoders_steps_peak_as_recorded():
    """Dropout's one-byte mask (CUDA's fused kernel, engine/eager_composites.py) in float32; under
    float16 autocast also the attention kernel CUDA picks for the float16 inputs (the trace ran
    the CPU's choice on its fake CPU tensors: +22% at the peak)."""
    for optimizer, precision in (("sgd", "float32"), ("sgd", "amp_float16"), ("adam", "amp_float16")):
        traced, measured = traced_against_recorded("hf_decoder.py:build", "train", optimizer, precision)
        assert abs(traced - measured) <= 0.01 * measured, (optimizer, precision)
