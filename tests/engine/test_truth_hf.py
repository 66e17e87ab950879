"""Language models from a Hugging Face config, traced against a *measured* real CPU step
(engine/truth.py: the same model, input, targets and optimizer, allocated for real): within 2%.

Tiny configs in tests/data (2 layers, width 64, vocabulary 1000), sequence 128, batch 2, float32:
GPT-2 (learned positions, tied head, Conv1D projections), Llama (rotary, grouped-query attention,
RMSNorm, SwiGLU) and Mixtral (a mixture of experts through grouped_mm). Attention is
transformers' `sdpa`, whose kernel the trace picks as the CPU would.
"""
import os

import pytest

from conftest import DATA
from engine import AnalysisRequest, analyze
from engine.truth import measure_cpu_step

TOLERANCE = 0.02
GPT2, LLAMA, MIXTRAL = (os.path.join(DATA, f"hf_tiny_{name}") for name in ("gpt2", "llama", "mixtral"))


def case(model, mode, optimizer, lora_rank=0, amp=False):
    words = [os.path.basename(model).removeprefix("hf_tiny_"), mode, optimizer]
    words += [f"lora{lora_rank}"] if lora_rank else []
    words += ["amp"] if amp else []
    return pytest.param(model, mode, optimizer, lora_rank, amp, id="-".join(words))


CASES = [
    case(GPT2, "train", "adamw"),
    case(GPT2, "train", "adam"),
    case(GPT2, "inference", "none"),
    case(GPT2, "train", "adamw", lora_rank=8),
    case(LLAMA, "train", "adamw"),
    case(LLAMA, "inference", "none"),
    case(LLAMA, "train", "adamw", lora_rank=8),
    case(LLAMA, "train", "adamw", amp=True),  # bfloat16 autocast; the loss upcasts the logits
    case(MIXTRAL, "train", "adamw"),
    case(MIXTRAL, "inference", "none"),
]


@pytest.mark.slow
@pytest.mark.parametrize("model, mode, optimizer, lora_rank, amp", CASES)
def test_traced_peak_matches_a_measured_cpu_step(model, mode, optimizer, lora_rank, amp):
    request = AnalysisRequest(model=model, batch=2, input_shape=(128,), mode=mode, optimizer=optimizer,
                              lora_rank=lora_rank, amp=amp)
    traced = analyze(request)
    measured = measure_cpu_step(request)
    assert traced.timeline.total[0] == measured.start_bytes  # weights, state, ids, labels: to the byte
    error = (traced.peak.total_bytes - measured.peak_bytes) / measured.peak_bytes
    print(f"{request.model} {mode} {optimizer} lora={lora_rank} amp={amp}: traced {traced.peak.total_bytes} "
          f"measured {measured.peak_bytes} error {error:+.3%}")
    assert abs(error) < TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("model", [GPT2, LLAMA, MIXTRAL], ids=["gpt2", "llama", "mixtral"])
def test_an_inference_prefill_keeping_its_kv_cache_matches_a_measured_cpu_step(model):
    request = AnalysisRequest(model=model, batch=2, input_shape=(128,), mode="inference", kv_cache=True)
    traced, measured = analyze(request), measure_cpu_step(request)
    error = (traced.peak.total_bytes - measured.peak_bytes) / measured.peak_bytes
    assert abs(error) < TOLERANCE, f"traced {traced.peak.total_bytes} measured {measured.peak_bytes} ({error:+.3%})"
    plain = measure_cpu_step(request.replace(kv_cache=False))
    assert measured.peak_bytes > plain.peak_bytes  # the real forward did keep a cache


@pytest.mark.slow
def test_the_real_step_and_the_trace_share_the_adapters():
    """The truth harness builds the same LoRA model the trace does: frozen base, trainable adapters."""
    from engine.truth import build_real_step

    request = AnalysisRequest(model=LLAMA, batch=2, input_shape=(16,), lora_rank=4)
    step = build_real_step(request)
    trainable = {n for n, p in step.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    assert len(step.optimizer.param_groups[0]["params"]) == len(trainable)
