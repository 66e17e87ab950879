"""Pick the attention kernel the target device would run, not the one meta tensors pick.

`F.scaled_dot_product_attention` chooses its kernel from the tensors' device. On meta it falls
back to the math path, which materialises the (sequence x sequence) attention matrix and saves
it for backward; a real CPU runs a flash kernel that saves only the output and a log-sum-exp.
That difference is 8-12% of a small transformer's peak. While tracing, the function is replaced
by one that asks torch what the target would choose and calls that kernel on the meta tensors.
The choice and the kernels per device live in `TargetDevice` (engine/target.py).
Not modelled: the fused inference fast path of nn.TransformerEncoderLayer / MultiheadAttention
(`_transformer_encoder_layer_fwd`), which real CPUs and GPUs take under no_grad; the trace follows
the standard path instead, which reads high (measured +12% on resources/specs/tiny_transformer.yaml).
`fast_path_warning` says so in the analysis.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from .eager_linear import EagerLinear
from .target import target_for


@contextlib.contextmanager
def target_attention(device: str):
    """While tracing: attention kernels and fast paths as on `device` (see the module doc)."""
    original = F.scaled_dot_product_attention
    target = target_for(device)

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if query.device.type != "meta":
            return original(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
        choice = target.attention_choice(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        out = target.attention(choice, query, key, value, attn_mask, dropout_p, is_causal, scale)
        if out is not None:
            return out
        return original(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)

    F.scaled_dot_product_attention = sdpa
    try:
        with EagerLinear() if device == "cuda" else contextlib.nullcontext():  # engine/eager_linear.py
            yield
    finally:
        F.scaled_dot_product_attention = original


def fast_path_warning(model: torch.nn.Module, mode: str) -> str | None:
    if mode != "inference":
        return None
    fused = (torch.nn.TransformerEncoderLayer, torch.nn.MultiheadAttention)
    if any(isinstance(m, fused) for m in model.modules()):
        return ("inference of nn.TransformerEncoderLayer/MultiheadAttention: torch's fused fast path is not "
                "modelled; the figure follows the standard path and reads high (about +12% measured on a "
                "small transformer)")
    return None
