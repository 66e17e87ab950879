"""Scratch buffers that CPU kernels allocate inside one op, which no meta kernel shows.

Measured with torch.profiler's allocator events on this workstation's torch (2.14, oneDNN):
a float32 2-D convolution with a batch of 2 or more runs through oneDNN, which
1. reorders the input into a channel-blocked layout (only when it has 8 or more channels),
2. reorders the weight the same way,
3. computes the output in the blocked layout,
4. frees the weight and input copies, allocates the real output (the tensor the trace sees),
   copies into it and frees the blocked output.
Channels are padded up to the block (8 on AVX2 CPUs, 16 with AVX-512). Convolutions oneDNN
does not take (ATen's `use_mkldnn` rule: e.g. a batch of 1 with a small input, or bfloat16 on a
CPU without native bf16) run the slow path, which unfolds the batch into im2col columns
(N x C_in x kh x kw x H_out x W_out) before allocating the output. The trace replays these
allocations as `temporaries`; without them a small model's inference peak reads ~3% low.
Not modelled: grouped convolutions on the slow path and the backward kernels' scratch.
"""
from __future__ import annotations

import functools

import torch

aten = torch.ops.aten


@functools.lru_cache(maxsize=1)
def channel_block() -> int:
    capability = torch.backends.cpu.get_cpu_capability()
    return 16 if "AVX512" in capability.upper() else 8


def _pad(channels: int, block: int) -> int:
    return -(-channels // block) * block


def conv_scratch(func, args) -> tuple[tuple[int, ...], int] | None:
    """The scratch buffers of a CPU convolution forward, as (freed before the output is
    allocated, freed right after it), or None when the op is not a modelled convolution."""
    if func is not aten.convolution.default:
        return None
    x, weight = args[0], args[1]
    stride, dilation, transposed, groups = args[3], args[5], args[6], args[8]
    if transposed or x.dim() != 4 or weight.dim() != 4:
        return None
    n, c_in, h, w = x.shape
    c_out, c_in_group, kh, kw = weight.shape
    elem = x.element_size()
    h_out, w_out = _conv_out_size(h, w, kh, kw, args)
    if _uses_onednn(x, weight, stride, dilation, groups):
        if x.dtype != torch.float32:
            return None
        block = channel_block()
        blocked = c_in >= 8
        in_copy = n * _pad(c_in, block) * h * w * elem if blocked else 0
        if groups > 1:
            w_copy = _pad(c_out, block) * c_in_group * kh * kw * elem
        else:
            w_copy = _pad(c_out, block) * (_pad(c_in, block) if blocked else c_in) * kh * kw * elem
        return (in_copy, w_copy), n * _pad(c_out, block) * h_out * w_out * elem
    if groups > 1:
        return None  # per-group loop of the slow path: not modelled
    one_by_one = kh == kw == 1 and all(s == 1 for s in stride) and all(p == 0 for p in args[4])
    if one_by_one:
        return None
    # The slow path (slow_conv2d) unfolds the whole batch into im2col columns first.
    return (), n * c_in * kh * kw * h_out * w_out * elem


def _uses_onednn(x, weight, stride, dilation, groups) -> bool:
    """ATen's ConvParams::use_mkldnn for CPU tensors (aten/src/ATen/native/Convolution.cpp)."""
    if x.dtype in (torch.bfloat16, torch.float16):
        return _onednn_low_precision()
    if x.dtype != torch.float32:
        return False
    n = x.shape[0]
    strided = any(s != 1 for s in stride)
    dilated = any(d != 1 for d in dilation)
    kh, kw = weight.shape[-2:]
    worth_it = strided or dilated or n >= 16 or kw != 1 or kh != 1 or torch.get_num_threads() > 1
    big_enough = groups > 1 or (kw > 3 and kh > 3) or n > 1 or x.numel() > 20480
    return worth_it and big_enough


@functools.lru_cache(maxsize=1)
def _onednn_low_precision() -> bool:
    """oneDNN runs bf16/fp16 convolutions only on CPUs with native support (AVX512-BF16, AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _conv_out_size(h, w, kh, kw, args) -> tuple[int, int]:
    stride, padding, dilation = args[3], args[4], args[5]
    sh, sw = (stride * 2)[:2] if len(stride) == 1 else stride
    ph, pw = (padding * 2)[:2] if len(padding) == 1 else padding
    dh, dw = (dilation * 2)[:2] if len(dilation) == 1 else dilation
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
