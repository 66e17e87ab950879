"""Scratch buffers that CPU kernels allocate inside one op, which no meta kernel shows.

Measured with torch.profiler's allocator events on this workstation's torch (2.14, oneDNN):
a float32 2-D convolution with a batch of 2 or more runs through oneDNN, which
1. reorders the input into a channel-blocked layout (only when it has 8 or more channels),
2. reorders the weight the same way,
3. computes the output in the blocked layout,
4. frees the weight and input copies, allocates the real output (the tensor the trace sees),
   copies into it and frees the blocked output.
Channels are padded up to the block (8 on AVX2 CPUs, 16 with AVX-512). The trace replays these
allocations as `temporaries`; without them a small model's inference peak reads ~3% low.
Not modelled (listed in the analysis): batch-1 convolutions (im2col buffers of the slow path),
reduced-precision convolutions, and the backward kernels' scratch.
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


def conv_scratch(func, args) -> tuple[int, int, int] | None:
    """(input copy, weight copy, blocked output) bytes for a oneDNN convolution, or None."""
    if func is not aten.convolution.default:
        return None
    x, weight = args[0], args[1]
    transposed, groups = args[6], args[8]
    if transposed or x.dim() != 4 or x.dtype != torch.float32 or x.shape[0] < 2:
        return None
    block = channel_block()
    n, c_in, h, w = x.shape
    c_out, c_in_group, kh, kw = weight.shape
    elem = x.element_size()
    h_out, w_out = _conv_out_size(h, w, kh, kw, args)
    blocked = c_in >= 8
    in_copy = n * _pad(c_in, block) * h * w * elem if blocked else 0
    if groups > 1:
        w_copy = _pad(c_out, block) * c_in_group * kh * kw * elem
    else:
        w_copy = _pad(c_out, block) * (_pad(c_in, block) if blocked else c_in) * kh * kw * elem
    out_blocked = n * _pad(c_out, block) * h_out * w_out * elem
    return in_copy, w_copy, out_blocked


def _conv_out_size(h, w, kh, kw, args) -> tuple[int, int]:
    stride, padding, dilation = args[3], args[4], args[5]
    sh, sw = (stride * 2)[:2] if len(stride) == 1 else stride
    ph, pw = (padding * 2)[:2] if len(padding) == 1 else padding
    dh, dw = (dilation * 2)[:2] if len(dilation) == 1 else dilation
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
