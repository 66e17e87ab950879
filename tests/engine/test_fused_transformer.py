"""The fused inference paths of the encoder layer and of nn.MultiheadAttention: traced where torch
takes them, and as they allocate.

`fuses` must agree with torch's own choice on real tensors (read from the profiler: the layer
ran `aten::_transformer_encoder_layer_fwd` or not) across the conditions users meet; the bytes
are checked against measured CPU passes in test_truth_cpu.py and test_spec_language_models.py, and
against the H200 recordings in test_gpu_predict.py (tiny_transformer inference, float32).
"""
import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from engine import AnalysisRequest, analyze
from engine.fused_transformer import attention_fuses, fuses
from engine.sources.spec import CausalTransformerLayer


def torch_fuses(layer, x, grad=False, **kw) -> bool:
    with torch.set_grad_enabled(grad), profile(activities=[ProfilerActivity.CPU]) as prof:
        layer(x, **kw)
    return any(e.name == "aten::_transformer_encoder_layer_fwd" for e in prof.events())


def layer(cls=nn.TransformerEncoderLayer, heads=4, train=False, **kw):
    made = cls(32, heads, 64, dropout=0.0, **{"batch_first": True, **kw})
    return made.train(train)


CASES = {
    "eval, no grad": (layer(), {}),
    "norm first, gelu": (layer(norm_first=True, activation="gelu"), {}),
    "causal mask": (layer(CausalTransformerLayer, norm_first=True), {}),
    "padding mask": (layer(), {"src_key_padding_mask": torch.zeros(2, 8, dtype=torch.bool)}),
    "training": (layer(train=True), {}),
    "sequence first": (layer(batch_first=False), {}),
    "odd heads": (layer(heads=1), {}),
    "silu activation": (layer(activation=nn.functional.silu), {}),
    "no bias": (layer(bias=False), {}),
}


@pytest.mark.parametrize("name", CASES)
def test_the_fused_path_is_traced_exactly_where_torch_takes_it(name):
    made, kw = CASES[name]
    x = torch.randn(2, 8, 32)
    expected = torch_fuses(made, x, **kw)
    with torch.no_grad():
        assert fuses(made, x, kw.get("src_key_padding_mask")) == expected
    if name == "eval, no grad":
        assert expected  # the case the model is for: torch fuses it


def test_grad_enabled_with_trainable_weights_takes_the_module_path():
    made = layer()
    x = torch.randn(2, 8, 32)
    assert not torch_fuses(made, x, grad=True)
    with torch.enable_grad():
        assert not fuses(made, x)


def test_only_cpu_autocast_warns_that_the_fused_path_is_not_modelled(tmp_path):
    spec = tmp_path / "enc.yaml"
    spec.write_text("name: enc\ninput: [16]\ninput_dtype: long\nlayers:\n  - embedding: {vocab: 50, dim: 32}\n"
                    "  - transformer: {heads: 4, mlp: 64}\n  - linear: {out: 50}\n")
    request = AnalysisRequest(model=str(spec), batch=2, mode="inference", optimizer="none")
    for quiet in (request, request.replace(device="cuda"), request.replace(device="cuda", amp=True)):
        assert not any("fused fast path" in w for w in analyze(quiet).warnings), quiet
    assert any("fused fast path under autocast is not modelled" in w
               for w in analyze(request.replace(amp=True)).warnings)


def torch_fuses_attention(attn, x, grad=False, same=True, **kw) -> bool:
    with torch.set_grad_enabled(grad), profile(activities=[ProfilerActivity.CPU]) as prof:
        attn(x, x if same else x.clone(), x, **kw)
    return any(e.name == "aten::_native_multi_head_attention" for e in prof.events())


def attention(heads=4, train=False, **kw):
    return nn.MultiheadAttention(32, heads, **{"batch_first": True, **kw}).train(train)


ATTENTION_CASES = {
    "eval, no grad": (attention(), {}),
    "weights asked for": (attention(), {"need_weights": True}),
    "weights not asked for": (attention(), {"need_weights": False}),
    "padding mask": (attention(), {"key_padding_mask": torch.zeros(2, 8, dtype=torch.bool)}),
    "float mask": (attention(), {"attn_mask": torch.zeros(8, 8)}),
    "training": (attention(train=True), {}),
    "sequence first": (attention(batch_first=False), {}),
    "odd heads": (attention(heads=1), {}),
    "no bias": (attention(bias=False), {}),
    "key bias": (attention(add_bias_kv=True), {}),
    "zero attention": (attention(add_zero_attn=True), {}),
    "cross attention": (attention(), {"same": False}),
}


@pytest.mark.parametrize("name", ATTENTION_CASES)
def test_multi_head_attentions_fused_path_is_traced_exactly_where_torch_takes_it(name):
    made, kw = ATTENTION_CASES[name]
    x = torch.randn(2, 8, 32)
    expected = torch_fuses_attention(made, x, **kw)
    same = kw.get("same", True)
    with torch.no_grad():
        assert attention_fuses(made, x, x if same else x.clone(), x, kw.get("key_padding_mask"),
                               kw.get("attn_mask")) == expected
    if name in ("eval, no grad", "weights asked for"):
        assert expected  # the cases the model is for: torch fuses them


def test_a_gpu_runs_vits_attention_as_the_trace_does():
    """ViT-B/16's inference on the H200: the fused attention asks SDPA on views of one projection,
    then projects the merged heads; the traced pass makes every allocation the recorded one made
    (what the trace has more of: 512-byte blocks, a kernel's empty outputs)."""
    import os
    import sys

    from conftest import ROOT

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from gpu_accuracy import load_document
    from gpu_trace_diff import unmatched

    run = os.path.join(ROOT, "tests", "data", "gpu", "h200_2026-11-28_fresh", "gpu_accuracy.json")
    case = next(c for c in load_document(run)["cases"] if c["model"] == "vit_b_16" and c["mode"] == "inference"
                and c["precision"] == "float32")
    traced_only, recorded_only = unmatched(case, (9, 0))
    assert recorded_only == [] and {n for n, _ in traced_only} <= {512}


@pytest.mark.slow
def test_a_padded_encoders_inference_is_an_upper_bound_and_says_so():
    """nn.TransformerEncoder given a padding mask in inference packs the unpadded tokens into nested
    tensors: the trace counts every token and warns; with a quarter of the tokens padding, the
    real pass takes less. Training keeps the padded batch: no warning."""
    from conftest import DATA
    from engine.fused_transformer import PADDING_WARNING
    from engine.truth import measure_cpu_step

    request = AnalysisRequest(model=f"{DATA}/user_models.py:build_heavily_padded_encoder", batch=4,
                              mode="inference", optimizer="none")
    traced = analyze(request)
    assert PADDING_WARNING in traced.warnings
    measured = measure_cpu_step(request)
    assert measured.peak_bytes < traced.peak.total_bytes
    assert PADDING_WARNING not in analyze(request.replace(mode="train", optimizer="adam")).warnings
