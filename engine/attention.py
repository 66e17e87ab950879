"""Pick the attention kernel the target device would run, not the one meta tensors pick.

`F.scaled_dot_product_attention` chooses its kernel from the tensors' device. On meta it falls
back to the math path, which materialises the (sequence x sequence) attention matrix and saves
it for backward; a real CPU runs a flash kernel that saves only the output and a log-sum-exp.
That difference is 8-12% of a small transformer's peak. While tracing, the function is replaced
by one that asks torch what the target would choose and calls that kernel on the meta tensors.
- cpu: torch's own CPU choice, computed on empty CPU tensors of the same shapes and flags.
- cuda: flash attention for float16/bfloat16 without a mask, memory-efficient attention
  otherwise (torch's preference order on a recent GPU); math when neither applies.
Not modelled: the fused inference fast path of nn.TransformerEncoderLayer / MultiheadAttention
(`_transformer_encoder_layer_fwd`), which real CPUs and GPUs take under no_grad; the trace follows
the standard path instead, which reads high (measured +12% on resources/specs/tiny_transformer.yaml).
`fast_path_warning` says so in the analysis.
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

aten = torch.ops.aten
_MATH, _FLASH, _EFFICIENT = 0, 1, 2


def _cpu_choice(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> int:
    def cpu(t):
        return None if t is None else torch.empty_strided(t.shape, t.stride(), dtype=t.dtype).requires_grad_(t.requires_grad)

    return torch._fused_sdp_choice(cpu(q), cpu(k), cpu(v), cpu(attn_mask), dropout_p, is_causal,
                                   scale=scale, enable_gqa=enable_gqa)


def _cuda_choice(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> int:
    if enable_gqa or q.dim() != 4 or q.shape[-1] > 256 or q.shape[-1] % 8:
        return _MATH
    if q.dtype in (torch.float16, torch.bfloat16) and attn_mask is None:
        return _FLASH
    return _EFFICIENT


@contextlib.contextmanager
def target_attention(device: str):
    """While tracing: attention kernels and fast paths as on `device` (see the module doc)."""
    original = F.scaled_dot_product_attention
    choose = _cpu_choice if device == "cpu" else _cuda_choice

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        if query.device.type != "meta":
            return original(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
        choice = choose(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        if device == "cpu" and choice == _FLASH:
            return aten._scaled_dot_product_flash_attention_for_cpu(
                query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)[0]
        if device == "cuda" and choice == _FLASH:
            return aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, scale=scale)[0]
        if device == "cuda" and choice == _EFFICIENT:
            needs_lse = query.requires_grad or key.requires_grad or value.requires_grad
            return aten._scaled_dot_product_efficient_attention(
                query, key, value, attn_mask, needs_lse and torch.is_grad_enabled(), dropout_p, is_causal, scale=scale)[0]
        return original(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)

    F.scaled_dot_product_attention = sdpa
    try:
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
