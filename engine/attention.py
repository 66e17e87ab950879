"""Pick the attention kernel the target device would run, not the one meta tensors pick.

`F.scaled_dot_product_attention` chooses its kernel from the tensors' device. On meta it falls
back to the math path, which materialises the (sequence x sequence) attention matrix and saves
it for backward; a real CPU runs a flash kernel that saves only the output and a log-sum-exp.
That difference is 8-12% of a small transformer's peak. While tracing, the function is replaced
by one that asks torch what the target would choose and calls that kernel on the meta tensors.
The choice and the kernels per device live in `TargetDevice` (engine/target.py).
For a CUDA target the fake CPU tensors of a distributed trace are routed the same way (their device says cpu).
nn.TransformerEncoderLayer's and nn.MultiheadAttention's fused inference paths
(`_transformer_encoder_layer_fwd`, `_native_multi_head_attention`) are traced as a CPU or a GPU
runs them (engine/fused_transformer.py), except under CPU autocast: `fast_path_warning`.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import is_fake

from .eager_composites import EagerComposites
from .fused_transformer import fused_encoder_layers
from .target import target_for


@contextlib.contextmanager
def target_attention(device: str):
    """While tracing: attention kernels and fast paths as on `device` (see the module doc). Yields
    a list the fused paths append their warnings to (engine/fused_transformer.py)."""
    original = F.scaled_dot_product_attention
    target = target_for(device)

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        # Real tensors (the truth), and fake CPU tensors for the CPU (CPU's own choice): as they are.
        if query.device.type != "meta" and not (device == "cuda" and is_fake(query)):
            return original(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
        query, key, value = _autocast(query, key, value)
        choice = target.attention_choice(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        out = target.attention(choice, query, key, value, attn_mask, dropout_p, is_causal, scale)
        if out is not None:
            return out
        return original(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)

    F.scaled_dot_product_attention = sdpa
    try:
        # engine/eager_composites.py; engine/fused_transformer.py
        with EagerComposites(device), fused_encoder_layers(target) as warnings:
            yield warnings
    finally:
        F.scaled_dot_product_attention = original


def _autocast(*tensors):
    """CUDA's autocast (engine/target.py CudaAutocast) lowers attention's inputs; this function
    replaces the one it would see, so it casts them here."""
    from .target import active_cuda_autocast

    mode = active_cuda_autocast()
    return tensors if mode is None else mode._cast(tensors, mode.dtype)


def fast_path_warning(model: torch.nn.Module, mode: str, device: str, amp: bool = False) -> str | None:
    """The fused inference paths of the encoder layer and of nn.MultiheadAttention are traced for a
    CPU and a GPU (engine/fused_transformer.py), but not under CPU autocast, where their attention
    casts its inputs one by one (three projections and a cat). CUDA autocast never takes them."""
    if mode != "inference" or device != "cpu" or not amp:
        return None
    layers = any(isinstance(m, torch.nn.TransformerEncoderLayer) for m in model.modules())
    attentions = any(isinstance(m, torch.nn.MultiheadAttention) and m.batch_first for m in model.modules())
    if not (layers or attentions):
        return None
    what = "nn.TransformerEncoderLayer" if layers else "nn.MultiheadAttention"
    return (f"AMP inference of {what} on a CPU: the fused fast path under autocast is not "
            "modelled; the figure follows the standard path and reads low (-9% to -18% measured on small "
            "transformers)")
