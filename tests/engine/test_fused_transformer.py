"""The encoder layer's fused inference path: traced where torch takes it, and as it allocates.

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
from engine.fused_transformer import fuses
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
