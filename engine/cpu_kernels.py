"""Scratch buffers that CPU kernels allocate inside one op, which no meta kernel shows.

Measured with torch.profiler's allocator events (torch 2.14, oneDNN 3.x), per oneDNN ISA family
(`engine/cpu_isa.py`; each restricted with ONEDNN_MAX_CPU_ISA on one AMX machine). A 2-D
convolution that ATen hands to oneDNN (`_uses_onednn`, ATen's `use_mkldnn` rule)
1. may allocate a small scratch first (a padded bias when the output channels are not a
   multiple of the block: 128 bytes + the padded bias),
2. reorders the input into a blocked layout when it has at least one block of channels
   (channels padded up to the block: 16 with AVX-512, 8 below),
3. reorders the weight (output channels padded to the block, input channels too when the input
   is blocked; bfloat16 pads unblocked input channels to a pair; grouped float32 convolutions
   pad no channel anywhere),
4. computes the output in the blocked layout, frees the copies, allocates the real output (the
   tensor the trace sees), copies into it and frees the blocked output.
With AMX (bfloat16 on Sapphire Rapids and later) oneDNN's brgemm kernels work in channels-last:
the input is always copied (unpadded), the weight's output channels are padded to 16, the
output is computed unpadded, and a second output-sized buffer is taken beside the real output.
Their per-thread scratchpad (tiles, a few hundred KiB per convolution, shape- and thread-
dependent) is not modelled: it is listed as such in the analysis.
Convolutions oneDNN does not take (e.g. a batch of 1 with a small input, or bfloat16 on a CPU
without native bf16) run the slow path, which unfolds the batch into im2col columns
(N x C_in x kh x kw x H_out x W_out) before allocating the output, and again in its backward
(`_slow_backward`).
Transposed convolutions (float32, every family alike) go through oneDNN's backward-data
kernel: a per-thread scratch, an input copy, the weight with output channels padded to the
block, the output, then the real output and a second output-sized buffer. Their backward is a
forward convolution of the output gradient (input gradient) and a weight gradient.
Convolution backward: the input gradient through blocked copies (channels padded to the block;
with a stride the kernel also takes a scratch and a second input-sized buffer), the weight
gradient through copies padded to the block of the kernel oneDNN picks (16 with AVX-512 when the
input has 16 channels, else AVX2's 8; a "first convolution" with 1-3 input channels reads the
input as it is). AVX2's 8-channel weight-gradient kernel, when the output is one block of
channels, sums per-thread copies of the gradient in a scratchpad (`_avx2_weight_grad_scratchpad`).
A kernel wider than the jit weight-gradient kernels take (15 with AVX-512, 14 with AVX2: patch
embeddings) runs im2col+GEMM, with per-thread columns and reduction buffers (`_gemm_weight_grad`).
Channels-last convolutions (an input or weight with channels-last strides, as ConvNeXt's
LayerNorm2d leaves them) run oneDNN's brgemm kernels on the plain channels-last tensors, with
weight copies instead (`_channels_last_forward`, `_channels_last_backward`), a 7x7 depthwise
weight gradient through per-group tiles (`_channels_last_depthwise_backward`); their output is
channels-last, where the meta kernel says contiguous (`output_layout`).
A bfloat16 matrix product on AVX-512 without native bfloat16 accumulates its whole output in
float32. LSTMs: `engine/cpu_lstm.py`; GRUs: `engine/cpu_gru.py`; flash attention: `engine/cpu_attention.py`.
Grouped and depthwise float32 backward on contiguous tensors: `_grouped_backward`.
Not modelled (listed as such, lower bounds): the per-thread scratchpads (AMX tiles, the
transposed kernels' buffers beyond one input image per thread when the kernel size is not the
stride, the strided input-gradient kernel's, the weight-gradient reductions of AVX-512's
16-channel kernel on several threads), grouped convolutions on the slow path, bfloat16 backward with
channels below a block, AVX2's strided grouped input gradient for groups of 9-15 channels,
depthwise channels-last backward with 3x3 kernels, the channels-last input gradient's
scratchpad, brgemm's per-thread buffers of bfloat16 matrix products on CPUs with
native bfloat16 (AMX also copies the right-hand matrix).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from .cpu_isa import AMX, AVX512, channel_block, onednn_family
from . import cpu_gru  # noqa: F401 - routes meta GRUs the CPU's way inside a CPU trace
from .aten_copies import aten_script
from .cpu_attention import attention_script
from .cpu_lstm import rnn_backward, rnn_forward

aten = torch.ops.aten


# A kernel's allocations as the allocator sees them, in order:
#   ("alloc", name, bytes)   an internal buffer is taken
#   ("free", name)           it is given back
#   ("out", index)           the op's output `index` is allocated (index 0 for a single tensor)
#   ("out", index, bytes)    the same, for an output larger than its meta tensor (a workspace)
Step = tuple


def kernel_script(func, args) -> list[Step] | None:
    """The allocations of a modelled CPU kernel around its outputs, or None when `func` is not
    one (the trace then sees the outputs only)."""
    if func is aten.convolution.default:
        args, copy = _contiguous_input(args, 0)
        args = _as_2d(args, tensors=(0, 1), pairs=(3, 4, 5, 7))
        return around_copy(copy, _transposed_forward(args) if args[6] else _conv_forward(args))
    if func is aten.convolution_backward.default:
        args, copy = _contiguous_input(args, 1)
        args = _as_2d(args, tensors=(0, 1, 2), pairs=(4, 5, 6, 8))
        return around_copy(copy, _transposed_backward(args) if args[7] else _conv_backward(args))
    if func is aten.mm.default:
        return _bf16_matmul(args[0], args[1])
    if func is aten.addmm.default:
        return _bf16_matmul(args[1], args[2])
    if func is aten.native_batch_norm_backward.default:
        return _batch_norm_backward(args)
    if func in (aten._upsample_bicubic2d_aa.default, aten._upsample_bilinear2d_aa.default):
        return _antialiased_resize(args[0], args[1])
    if func in (aten.mean.dim, aten.mean.default):
        return _low_precision_mean(args[0], args[1] if len(args) > 1 else None)
    if func is aten.mkldnn_rnn_layer.default:
        return rnn_forward(args)
    if func is aten.mkldnn_rnn_layer_backward.default:
        return rnn_backward(args)
    script = attention_script(func, args)  # engine/cpu_attention.py
    return script if script is not None else aten_script(func, args)


def _batch_norm_backward(args) -> list[Step] | None:
    """batch_norm_backward_cpu_template's contiguous path allocates the input's gradient, the
    weight's and the bias's, then allocates the input's gradient again in the input's memory
    format and drops the first: for a moment two input-sized buffers (measured for 2-, 3- and
    4-d inputs). Another layout takes TensorIterator's path: not modelled."""
    grad_out, x, mask = args[0], args[1], args[9]
    fmt = torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format
    same = grad_out.is_contiguous(memory_format=fmt) and x.is_contiguous(memory_format=fmt)
    if not (mask[0] and same):
        return None
    return [("alloc", "first input gradient", x.numel() * x.element_size()), ("out", 1), ("out", 2), ("out", 0),
            ("free", "first input gradient")]


def _contiguous_input(args, i: int):
    """A convolution's input that is not dense in the layout its kernel runs (a Conv1d over
    transposed features; a slice of an image, as a Siamese network's halves) is made so first,
    forward and backward (`_convolution`, `convolution_backward`: `input.contiguous(format)`), and
    the copy held until the op returns (measured: a depthwise Conv1d over transposed features read
    -22% inference before, a width slice's convolution -7%). Returns the arguments with that input,
    and the copy's bytes (0: none). 1-d and 2-d convolutions (the measured ones)."""
    x, weight = args[i], args[i + 1]
    nbytes = input_copy_bytes(x, weight) if x.dim() in (3, 4) else 0
    if not nbytes:
        return args, 0
    args = list(args)
    args[i] = x.contiguous(memory_format=kernel_layout(x, weight))
    return tuple(args), nbytes


def kernel_layout(x, weight) -> torch.memory_format:
    """The layout a convolution's kernel runs its input in: channels-last where the input or the
    weight is (oneDNN's and cuDNN's rule), else contiguous."""
    return torch.channels_last if x.dim() == 4 and either_channels_last(x, weight) else torch.contiguous_format


def input_copy_bytes(x, weight) -> int:
    """The bytes of the copy ATen makes of a convolution's input that is not dense in its kernel's
    layout (0: none); a CPU's and a GPU's alike (engine/cudnn_workspaces.py)."""
    return 0 if x.is_contiguous(memory_format=kernel_layout(x, weight)) else x.numel() * x.element_size()


def around_copy(nbytes: int, script):
    """`script` with an input copy of `nbytes` taken before it and given back after it."""
    if not nbytes or script is None:
        return script
    return [("alloc", "input copy", nbytes), *script, ("free", "input copy")]


def _low_precision_mean(x, dims) -> list[Step] | None:
    """The mean of a bfloat16 or float16 tensor on a CPU (what global average pooling is under
    CPU autocast) is taken in float32: after its output, a float32 result and a float32 copy of
    the whole input, both dropped (measured: twice the input's bytes for a moment; a sum takes
    none). An explicit `dtype=` is not seen here; it is rare."""
    if x.dtype not in (torch.bfloat16, torch.float16) or not x.numel():
        return None
    reduced = range(x.dim()) if not dims else {d % x.dim() for d in dims}
    out = x.numel()
    for d in reduced:
        out //= x.shape[d]
    return [("out", 0), ("alloc", "float result", 4 * out), ("alloc", "float input", 4 * x.numel()),
            ("free", "float input"), ("free", "float result")]


def _antialiased_resize(x, size) -> list[Step] | None:
    """An antialiased resize (F.interpolate(..., antialias=True)) is separable on a CPU: the width
    first, into a buffer of the input's height and the output's width, then the height into the
    output; the buffer is dropped at the end (only when both change). Its per-pass index and
    weight tables (a few hundred bytes) are not modelled."""
    n, c, h, w = x.shape
    h_out, w_out = (int(s) for s in size)
    if h_out == h or w_out == w:
        return None
    return [("out", 0), ("alloc", "width pass", n * c * h * w_out * x.element_size()), ("free", "width pass")]


def _as_2d(args, tensors, pairs):
    """A 1-d convolution as ATen runs it on a CPU (`_convolution`'s view1d_as_2d): its tensors
    viewed with a height of 1, its stride, padding, dilation and output padding given a first
    entry of 1, 0, 1, 0; the 2-d kernels (and their scripts) then run it. Other ranks as they are."""
    if args[0].dim() != 3:
        return args
    args = list(args)
    for i in tensors:
        args[i] = args[i].unsqueeze(2)
    for i, first in zip(pairs, (1, 0, 1, 0)):
        args[i] = [first, *args[i]]
    return tuple(args)


def output_layout(func, args, out):
    """`out`, restrided as the device's kernel leaves it. oneDNN writes a convolution whose input or
    weight is channels-last in channels-last (ATen's `mkldnn_conv_use_channels_last`, and the
    slow path's alike), and so does cuDNN (`cudnn_conv_suggest_memory_format`); the meta kernel
    returns it contiguous, which would send every later kernel of the network (ConvNeXt's blocks
    after a downsampling) down the wrong path."""
    if func is not aten.convolution.default or args[6] or out.dim() != 4:
        return out
    if not either_channels_last(args[0], args[1]) or out.is_contiguous(memory_format=torch.channels_last):
        return out
    return torch.empty_like(out, memory_format=torch.channels_last)


def _pad(channels: int, block: int) -> int:
    return -(-channels // block) * block


class _Conv(NamedTuple):
    n: int
    c_in: int
    c_out: int
    c_in_group: int
    taps: int  # kh * kw
    in_pixels: int
    out_pixels: int
    groups: int
    elem: int
    path: str  # "onednn" | "amx" | "slow"


def _conv(x, weight, stride, padding, dilation, transposed, groups) -> _Conv | None:
    if transposed or x.dim() != 4 or weight.dim() != 4:
        return None
    n, c_in, h, w = x.shape
    c_out, c_in_group, kh, kw = weight.shape
    h_out, w_out = _conv_out_size(h, w, kh, kw, stride, padding, dilation)
    if not _uses_onednn(x, weight, stride, dilation, groups):
        path = "slow"
    elif x.dtype == torch.float32:
        path = "onednn"
    elif x.dtype == torch.bfloat16:
        depthwise = groups > 1 and c_in_group == 1
        path = "amx" if onednn_family() == AMX and not depthwise else "onednn"
    else:
        return None
    return _Conv(n, c_in, c_out, c_in_group, kh * kw, h * w, h_out * w_out, groups, x.element_size(), path)


def _block(c: _Conv) -> int:
    return 16 if c.elem == 2 else channel_block()


def _conv_forward(args) -> list[Step] | None:
    x, weight, bias, stride, padding, dilation, transposed, _, groups = args[:9]
    c = _conv(x, weight, stride, padding, dilation, transposed, groups)
    if c is None:
        return None
    out = c.n * c.c_out * c.out_pixels * c.elem
    if c.path == "onednn" and c.elem == 4 and groups == 1 and either_channels_last(x, weight):
        return _channels_last_forward(c, weight)
    if c.path == "slow":
        if groups > 1 or any(d != 1 for d in dilation):
            return None  # the slow path's per-group loop, slow_conv_dilated2d: not modelled
        if c.taps == 1 and all(s == 1 for s in stride) and all(p == 0 for p in padding):
            return None
        # slow_conv2d unfolds the whole batch into im2col columns first.
        return [("alloc", "columns", c.n * c.c_in * c.taps * c.out_pixels * c.elem), ("out", 0), ("free", "columns")]
    if c.path == "amx":
        w_copy = _pad(c.c_out, 16) * c.c_in_group * c.taps * c.elem
        return [("alloc", "input", c.n * c.c_in * c.in_pixels * c.elem), ("alloc", "weight", w_copy),
                ("alloc", "blocked", out), ("free", "weight"), ("free", "input"),
                ("out", 0), ("alloc", "beside", out), ("free", "blocked"), ("free", "beside")]
    block = _block(c)
    blocked = c.c_in >= block
    low = c.elem == 2
    if groups > 1 and c.c_in_group > 1 and not low:
        # Grouped (not depthwise) float32: every copy keeps its channels unpadded (measured on
        # AVX2 and AMX with 8-32 channels per group, 40-72 in all).
        return [("alloc", "input", c.n * c.c_in * c.in_pixels * c.elem if blocked else 0),
                ("alloc", "weight", c.c_out * c.c_in_group * c.taps * c.elem), ("alloc", "blocked", out),
                ("free", "weight"), ("free", "input"), ("out", 0), ("free", "blocked")]
    if groups > 1:
        w_copy = _pad(c.c_out, block) * c.c_in_group * c.taps * c.elem
        bias_scratch = 128 + 4 * _pad(c.c_out, block) if low and c.c_in_group == 1 and bias is not None else 0
    else:
        w_in = _pad(c.c_in, block) if blocked else (_pad(c.c_in, 2) if low else c.c_in)
        w_copy = _pad(c.c_out, block) * w_in * c.taps * c.elem
        bias_scratch = 128 + c.elem * _pad(c.c_out, block) if bias is not None and c.c_out % block else 0
    in_copy = c.n * _pad(c.c_in, block) * c.in_pixels * c.elem if blocked else 0
    return [("alloc", "bias", bias_scratch), ("alloc", "input", in_copy), ("alloc", "weight", w_copy),
            ("alloc", "blocked", c.n * _pad(c.c_out, block) * c.out_pixels * c.elem),
            ("free", "weight"), ("free", "input"), ("free", "bias"), ("out", 0), ("free", "blocked")]


def _conv_backward(args) -> list[Step] | None:
    """oneDNN's convolution backward: the input gradient, then the weight (and bias) gradient,
    each computed in blocked layouts from reordered copies. Their per-thread scratchpads are
    not modelled; bfloat16 with channels below a block is not either."""
    grad_out, x, weight, _, stride, padding, dilation, transposed, _, groups, mask = args[:11]
    c = _conv(x, weight, stride, padding, dilation, transposed, groups)
    if c is not None and c.path == "onednn" and c.elem == 4 and _channels_last_depthwise(c, x, weight):
        return _channels_last_depthwise_backward(c, mask)
    if c is not None and c.path == "onednn" and c.elem == 4 and groups == 1 and either_channels_last(x, weight):
        return _channels_last_backward(c, grad_out, weight, mask)
    if c is not None and groups > 1 and c.path == "onednn" and c.elem == 4 and not channels_last_strided(x) \
            and all(d == 1 for d in dilation):
        return _grouped_backward(c, grad_out, stride, weight.shape[-2:], mask)
    if c is None or groups > 1:
        return None
    if c.path == "slow":
        # A dilated convolution runs slow_conv_dilated2d instead: not modelled.
        return None if any(d != 1 for d in dilation) else _slow_backward(c, stride, padding, mask)
    block = 16 if c.path == "amx" else _block(c)
    fp32 = c.elem == 4 and c.path == "onednn"
    if not fp32 and (c.c_in < block or c.c_out < block):
        return None
    e, ci, co = c.elem, _pad(c.c_in, block), _pad(c.c_out, block)
    strided = any(s != 1 for s in stride)
    steps: list[Step] = []
    if mask[0]:
        # A stride sends float32 through a kernel that computes the gradient unpadded when the
        # input has less than a block of channels, then takes a second input-sized buffer.
        in_bytes = c.n * (c.c_in if strided and c.c_in < block else ci) * c.in_pixels * e
        steps += [("alloc", "grad_out", c.n * co * c.out_pixels * e), ("alloc", "weight", co * ci * c.taps * e),
                  ("alloc", "grad_in", in_bytes), ("free", "weight"), ("free", "grad_out"), ("out", 0)]
        if c.path == "amx":
            steps += [("alloc", "beside", c.n * c.c_in * c.in_pixels * e), ("free", "grad_in"), ("free", "beside")]
        elif fp32 and strided:
            steps += [("alloc", "beside", c.n * c.c_in * c.in_pixels * e), ("free", "grad_in"), ("free", "beside")]
        else:
            steps += [("free", "grad_in")]
    if mask[1] and fp32 and weight.shape[-1] >= (15 if block == 16 else 14) and not channels_last_strided(x):
        steps += _gemm_weight_grad(c, grad_out, mask[2])
    elif mask[1]:
        if fp32:
            go_copy, in_copy, w_bytes = _weight_grad_copies(c, block)
            accumulate = _avx2_weight_grad_scratchpad(c, block, w_bytes, mask[2])
        else:
            go_copy, in_copy, w_bytes = c.n * co * c.out_pixels * e, c.n * ci * c.in_pixels * e, co * ci * c.taps * e
            # bfloat16 weight gradients are reduced in float32 on every family that runs them (one
            # accumulator at least: a lower bound of the scratchpad, the rest being per-thread
            # transposed copies or AMX tiles; measured 1.0-13x it on resnet18's shapes).
            accumulate = co * ci * c.taps * 4
        steps += [("alloc", "grad_out", go_copy), ("alloc", "input", in_copy), ("alloc", "grad_w", w_bytes),
                  ("alloc", "accumulate", accumulate), ("alloc", "grad_b", c.c_out * e if mask[2] else 0),
                  ("free", "accumulate"), ("free", "input"), ("free", "grad_out"),
                  ("out", 2), ("out", 1), ("free", "grad_w"), ("free", "grad_b")]
    return steps


def _grouped_backward(c: _Conv, grad_out, stride, kernel, mask) -> list[Step]:
    """A float32 grouped or depthwise convolution's backward on contiguous tensors. oneDNN's jit
    kernels take a depthwise convolution (its weight gradient up to 3x3) and groups of a whole
    number of 8 channels: the dense kernels' blocked copies, unpadded for groups, padded to the
    block for depthwise. The rest runs im2col+GEMM on plain tensors: the input gradient computed
    beside the real one from per-thread columns (+ 128 bytes), every thread working (it splits
    the groups), and the weight gradient as `_gemm_weight_grad`'s, every thread working while
    each has under 256 output pixels, else one (a 13x13 depthwise weight gradient over 56x56
    pixels, measured 2026-11-29). From AVX-512 on, the input
    gradient of any group of 2 or more input channels takes the jit kernel. Measured on AMX
    and AVX2, 2 threads, batch 1-4, 20-128 channels, 1-12 per group (and depthwise x2),
    1x1 to 5x5 kernels, stride 1 and 2 (2026-11-28). Not modelled (its output only): AVX2's
    strided input gradient for groups of 8 or more channels not a whole number of 8 (another
    kernel: a weight copy padded to 16 output channels per group, per-thread buffers growing
    with the groups and the pixels, and a second input-sized buffer; 12 per group measured)."""
    e, threads = c.elem, min(torch.get_num_threads(), c.n * c.groups)
    depthwise = c.c_in_group == 1 and c.c_out == c.groups
    per_group_out = c.c_out // c.groups
    whole = c.c_in_group % 8 == 0 and per_group_out % 8 == 0
    ch = (lambda n: _pad(n, channel_block())) if depthwise else (lambda n: n)
    go_copy = c.n * ch(c.c_out) * c.out_pixels * e
    steps: list[Step] = []
    if mask[0]:
        if depthwise or whole or (channel_block() == 16 and c.c_in_group > 1):
            steps += [("alloc", "grad_out", go_copy), ("alloc", "weight", ch(c.c_out) * c.c_in_group * c.taps * e),
                      ("alloc", "grad_in", c.n * ch(c.c_in) * c.in_pixels * e), ("free", "weight"),
                      ("free", "grad_out"), ("out", 0), ("free", "grad_in")]
        elif all(s == 1 for s in stride) or c.c_in_group < 8:
            columns = threads * c.c_in_group * c.taps * c.out_pixels * e + 128
            steps += [("alloc", "grad_in", c.n * c.c_in * c.in_pixels * e), ("alloc", "columns", columns),
                      ("free", "columns"), ("out", 0), ("free", "grad_in")]
        else:
            steps += [("out", 0)]
    if mask[1] and ((depthwise and max(kernel) <= 3) or (not depthwise and whole)):
        steps += [("alloc", "grad_out", go_copy), ("alloc", "input", c.n * ch(c.c_in) * c.in_pixels * e),
                  ("alloc", "grad_w", ch(c.c_out) * c.c_in_group * c.taps * e),
                  ("alloc", "grad_b", c.c_out * e if mask[2] else 0), ("free", "input"), ("free", "grad_out"),
                  ("out", 2), ("out", 1), ("free", "grad_w"), ("free", "grad_b")]
    elif mask[1]:
        # Every thread works only while each has under 256 output pixels, as for the dense kernel
        # (a 13x13 depthwise weight over 56x56 pixels takes one thread's columns: was +30%).
        workers = threads if c.out_pixels // torch.get_num_threads() < 256 else 1
        steps += _gemm_weight_grad(c, grad_out, mask[2], workers)
    return steps


def _gemm_weight_grad(c: _Conv, grad_out, bias: bool, workers: int | None = None) -> list[Step]:
    """oneDNN's jit weight-gradient kernels take kernels up to 14 wide (13 with AVX2); a wider
    one (a vision transformer's 16x16 or 32x32 patch embedding) falls back on its im2col+GEMM
    kernel, on the plain layouts (ATen copies a non-contiguous output gradient first). Its
    scratchpad, per thread that works (all of them when the output has under 256 pixels per
    thread and the batch more than one image, else one): the im2col columns of one image
    (c_in x kh x kw x out_pixels floats) and a weight-gradient reduction buffer booked as
    the weight's size in bytes, in floats (4 x the weight's bytes), plus 128 bytes per buffer.
    Measured on AMX and AVX2, 1 and 2 threads, batch 1-4, 1-16 input channels, 13x13 to 32x32
    kernels of stride 1 and their size (2026-11-28): vit_b_32's is 76.7 MB with 2 threads."""
    e = c.elem
    if workers is None:
        threads = torch.get_num_threads()
        workers = threads if c.out_pixels // threads < 256 and c.n != 1 else 1
    columns = c.c_in_group * c.taps * c.out_pixels * e
    reduction = 4 * c.c_out * c.c_in_group * c.taps * e
    scratch = workers * (columns + reduction) + 2 * 128
    go_copy = 0 if grad_out.is_contiguous() else c.n * c.c_out * c.out_pixels * e
    return [("alloc", "grad_out", go_copy), ("alloc", "grad_w", c.c_out * c.c_in_group * c.taps * e),
            ("alloc", "scratch", scratch), ("alloc", "grad_b", c.c_out * e if bias else 0), ("free", "scratch"),
            ("out", 2), ("out", 1), ("free", "grad_w"), ("free", "grad_b"), ("free", "grad_out")]


def either_channels_last(x, weight) -> bool:
    """A convolution runs channels-last when its input or its weight is (oneDNN's and cuDNN's rule)."""
    return channels_last_strided(x) or channels_last_strided(weight)


def channels_last_strided(x) -> bool:
    """Channels-last strides, not contiguous: a permuted tensor, as ConvNeXt's LayerNorm2d leaves.
    ATen then hands oneDNN (`mkldnn_conv_use_channels_last`) and cuDNN
    (`cudnn_conv_suggest_memory_format`) a channels-last convolution."""
    return not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def _channels_last_depthwise(c: _Conv, x, weight) -> bool:
    """A float32 depthwise convolution on channels-last input with a kernel wider than 3: oneDNN's
    depthwise weight-gradient kernel does not take it, so a grouped kernel that pads every
    group's single input and output channel to a block does (ConvNeXt's 7x7)."""
    kh, kw = weight.shape[-2:]
    return (c.groups > 1 and c.c_in_group == 1 and c.c_out == c.groups and max(kh, kw) > 3
            and channels_last_strided(x))


def _channels_last_depthwise_backward(c: _Conv, mask) -> list[Step]:
    """The input gradient is written in place from a weight copy (channels padded to the block);
    the weight gradient is computed as a grouped convolution's, each group's 1x1 channel pair
    padded to a block x block tile (c x kh x kw x 16 x 16 floats with AVX-512, 8 x 8 below:
    38.5 MB for ConvNeXt's 768-channel 7x7, 128 times its weight), then reordered to the plain
    weight; a bias gradient takes a padded per-group copy (128 + c x block floats). Measured on
    AMX and AVX2, 1-4 threads (none depends on them), 8-768 channels, 4x4 to 7x7 kernels, stride
    1 and 2, 7-56 pixels wide (2026-11-28)."""
    b, e = channel_block(), c.elem
    steps: list[Step] = []
    if mask[0]:
        steps += [("out", 0), ("alloc", "weight", _pad(c.c_out, b) * c.taps * e), ("free", "weight")]
    if mask[1]:
        steps += [("alloc", "tiles", c.c_out * c.taps * b * b * e)]
        if mask[2]:
            steps += [("alloc", "bias_pad", 128 + c.c_out * b * e), ("alloc", "grad_b", c.c_out * e),
                      ("free", "bias_pad"), ("out", 2)]
        steps += [("alloc", "grad_w", c.c_out * c.taps * e), ("out", 1), ("free", "grad_w"), ("free", "tiles"),
                  ("free", "grad_b")]
    return steps


def _channels_last_forward(c: _Conv, weight) -> list[Step]:
    """A float32 channels-last convolution (oneDNN's brgemm kernels): ATen copies the weight to
    channels-last where it is not (a 1x1 weight is both); the output is written in place beside a
    fixed scratchpad (12336 bytes) and a reordered weight whose output channels are padded to
    the kernel's output block: 32 with AVX-512 (two vectors), 24 with AVX2 (three), where the
    input has 8 channels or more and the kernel is wider than 1x1 (else unpadded). Measured on
    AMX and AVX2, 3-384 input and 32-768 output channels, 1x1 to 3x3 kernels, stride 1 and 2."""
    e = c.elem
    w = c.c_out * c.c_in * c.taps * e
    avx512 = channel_block() == 16
    block = 32 if avx512 else (24 if c.c_in >= 8 and c.taps > 1 else 1)
    return [("alloc", "weight_cl", 0 if weight.is_contiguous(memory_format=torch.channels_last) else w),
            ("out", 0), ("alloc", "scratch", 12336), ("alloc", "weight", _pad(c.c_out, block) * c.c_in * c.taps * e),
            ("free", "weight"), ("free", "scratch"), ("free", "weight_cl")]


def _channels_last_backward(c: _Conv, grad_out, weight, mask) -> list[Step]:
    """A float32 channels-last convolution's backward (ConvNeXt's downsampling convolutions): ATen
    first copies the weight and the output gradient to channels-last where they are not (a 1x1
    weight is both); the input gradient is written in place from a weight copy whose input
    channels are padded to the block; the weight gradient is computed padded to the block
    (a bias gradient whose channels are not a whole block takes a padded copy, 128 + 4 x the
    padded channels bytes), then reordered to the plain weight beside the real gradient: three
    weight-sized buffers at once. The input gradient's scratchpad (12-60 KiB measured at 16
    pixels wide, 0.35-1.2 MB in ConvNeXt) is freed before them and is not modelled, nor AVX2's
    per-thread copies of a 1x1 weight gradient. Measured on AMX and AVX2, 2 threads, 3-384
    input channels, 1x1 to 3x3 kernels, stride 1 and 2 (2026-11-28)."""
    b, e = channel_block(), c.elem
    w = c.c_out * c.c_in * c.taps * e
    go_copy = 0 if grad_out.is_contiguous(memory_format=torch.channels_last) else c.n * c.c_out * c.out_pixels * e
    steps: list[Step] = [("alloc", "weight_cl", 0 if weight.is_contiguous(memory_format=torch.channels_last) else w),
                         ("alloc", "grad_out_cl", go_copy)]
    if mask[0]:
        steps += [("out", 0), ("alloc", "weight", c.c_out * _pad(c.c_in, b) * c.taps * e), ("free", "weight")]
    if mask[1]:
        padded_bias = 128 + _pad(c.c_out, b) * e if mask[2] and c.c_out % b else 0
        steps += [("alloc", "grad_w", _pad(c.c_out, b) * _pad(c.c_in, b) * c.taps * e), ("alloc", "bias_pad", padded_bias),
                  ("alloc", "grad_b", c.c_out * e if mask[2] else 0), ("free", "bias_pad"), ("out", 2),
                  ("alloc", "grad_w_plain", w), ("out", 1), ("free", "grad_w_plain"), ("free", "grad_w"),
                  ("free", "grad_b")]
    return steps + [("free", "grad_out_cl"), ("free", "weight_cl")]


def _slow_backward(c: _Conv, stride, padding, mask) -> list[Step]:
    """slow_conv2d's backward (bfloat16 on CPUs without native bf16, float32 convolutions oneDNN
    does not take): the input gradient, the bias gradient (bfloat16 sums a float32 copy of the
    output gradient), the weight gradient, then im2col columns of the whole batch, taken even
    when the input needs no gradient (none for a 1x1 kernel without stride or padding)."""
    steps: list[Step] = [("out", 0)] if mask[0] else []
    if mask[2]:
        steps.append(("out", 2))
        if c.elem == 2:
            steps += [("alloc", "sum", c.c_out * 4), ("alloc", "grad_out", c.n * c.c_out * c.out_pixels * 4),
                      ("free", "grad_out"), ("free", "sum")]
    steps.append(("out", 1))
    if not (c.taps == 1 and all(s == 1 for s in stride) and all(p == 0 for p in padding)):
        steps += [("alloc", "columns", c.n * c.c_in * c.taps * c.out_pixels * c.elem), ("free", "columns")]
    return steps


def _weight_grad_copies(c: _Conv, block: int) -> tuple[int, int, int]:
    """Output-gradient copy, input copy and blocked weight gradient of a float32 weight
    gradient. AVX-512 uses its 16-channel kernel only for inputs of 16 channels or more, else
    AVX2's 8-channel one; a first convolution (AVX-512: 1-3 input channels, AVX2: 3) reads the
    input as it is and leaves the weight's input channels unpadded."""
    first = c.c_in in ((1, 2, 3) if block == 16 else (3,))
    b = block if first or c.c_in >= block else 8
    go_copy = c.n * _pad(c.c_out, b) * c.out_pixels * c.elem
    if first:
        return go_copy, 0, _pad(c.c_out, b) * c.c_in * c.taps * c.elem
    ci = _pad(c.c_in, b)
    return go_copy, c.n * ci * c.in_pixels * c.elem, _pad(c.c_out, b) * ci * c.taps * c.elem


def _avx2_weight_grad_scratchpad(c: _Conv, block: int, w_bytes: int, bias: bool) -> int:
    """The scratchpad of AVX2's 8-channel float32 weight-gradient kernel (on AVX2 CPUs, and on
    AVX-512 ones for inputs below 16 channels) when the output has a single block of channels:
    oneDNN cannot split the work over output channels, so with one input block each thread
    (one image or more each) sums its own weight and bias gradient, (threads - 1) copies, plus a
    fixed 24576 bytes (20864 for a 1x1 kernel); with several input blocks the threads split
    those instead and take 12288 bytes. A bias whose channels are not a whole block adds its
    padded copy (128 + 4 x 8 bytes). Measured with 1, 2 and 4 threads on 1-32 input channels,
    1x1 to 7x7 kernels, batch 2-4, 7-64 pixels wide (2026-11-28); unmeasured splits (another
    kernel, several output blocks) take none here."""
    first = c.c_in in ((1, 2, 3) if block == 16 else (3,))
    b = block if first or c.c_in >= block else 8
    if b != 8 or _pad(c.c_out, b) != b:
        return 0
    bias_bytes = 4 * b if bias else 0
    padded_bias = 128 + bias_bytes if bias and c.c_out % b else 0
    threads = min(torch.get_num_threads(), c.n)
    if threads < 2:
        return padded_bias
    if _pad(c.c_in, b) > b:
        return 12288 + (threads - 1) * bias_bytes + padded_bias
    fixed = 20864 if c.taps == 1 else 24576
    return (threads - 1) * (w_bytes + bias_bytes) + fixed + padded_bias


def _transposed(x, weight, stride, groups) -> _Conv | None:
    """A float32 transposed convolution that oneDNN runs (the input is `x`, the output is what
    a convolution with `weight` would take as input)."""
    if x.dim() != 4 or weight.dim() != 4 or groups != 1 or x.dtype != torch.float32:
        return None
    if not _uses_onednn(x, weight, stride, (1,), groups):
        return None  # slow_conv_transpose2d: not modelled
    n, c_in, h, w = x.shape
    _, c_out, kh, kw = weight.shape
    return _Conv(n, c_in, c_out, c_in, kh * kw, h * w, 0, groups, x.element_size(), "onednn")


def _transposed_forward(args) -> list[Step] | None:
    x, weight, _, stride, padding, dilation, _, output_padding, groups = args[:9]
    c = _transposed(x, weight, stride, groups)
    if c is None:
        return None
    h_out, w_out = _transposed_out_size(x.shape[2], x.shape[3], weight.shape[2], weight.shape[3],
                                        stride, padding, dilation, output_padding)
    out = c.n * c.c_out * h_out * w_out * c.elem
    return [("alloc", "scratch", _transposed_scratch(c, x.shape[3], weight.shape[2:], stride)),
            ("alloc", "input", c.n * c.c_in * c.in_pixels * c.elem),
            ("alloc", "weight", c.c_in * _pad(c.c_out, channel_block()) * c.taps * c.elem),
            ("alloc", "blocked", out), ("free", "weight"), ("free", "input"), ("free", "scratch"),
            ("out", 0), ("alloc", "beside", out), ("free", "blocked"), ("free", "beside")]


def _transposed_scratch(c: _Conv, width: int, kernel, stride) -> int:
    """The scratchpad of oneDNN's strided backward-data kernel. Where the kernel size equals the
    stride (the usual 2x upsampling), measured on every family with 1 and 2 threads (2x2 kernels of
    stride 2, c_in 16-64, 8-32 pixels wide): 12416 bytes plus, per thread, one input image with rows
    padded to 16 pixels and 8216 bytes. Elsewhere one input image per thread (one in all
    without a stride) is the lower bound that every measured shape exceeds."""
    if any(s != 1 for s in stride):
        threads = torch.get_num_threads()
        if tuple(kernel) == tuple(stride if len(stride) == 2 else stride * 2):
            rows = c.in_pixels // width
            return 12416 + threads * (8216 + c.c_in * rows * _pad(width, 16) * c.elem)
        return threads * c.c_in * c.in_pixels * c.elem
    return c.c_in * c.in_pixels * c.elem


def _transposed_backward(args) -> list[Step] | None:
    """The input gradient is a forward convolution of the output gradient (blocked when it has
    a block of channels); the weight gradient reads copies of both. The weight gradient's
    AVX-512 scratchpad is not modelled."""
    grad_out, x, weight, _, stride, _, _, _, _, groups, mask = args[:11]
    c = _transposed(x, weight, stride, groups)
    if c is None:
        return None
    block, e = channel_block(), c.elem
    out_pixels = grad_out.shape[2] * grad_out.shape[3]
    go_blocked = c.c_out >= block
    go_copy = c.n * _pad(c.c_out, block) * out_pixels * e if go_blocked else 0
    steps: list[Step] = []
    if mask[0]:
        w_copy = (_pad(c.c_in, block) * _pad(c.c_out, block) if go_blocked else c.c_in * c.c_out) * c.taps * e
        steps += [("alloc", "grad_out", go_copy), ("alloc", "weight", w_copy),
                  ("alloc", "grad_in", c.n * _pad(c.c_in, block) * c.in_pixels * e),
                  ("free", "weight"), ("free", "grad_out"), ("out", 0), ("free", "grad_in")]
    if mask[1]:
        in_copy = c.n * _pad(c.c_in, block) * c.in_pixels * e if c.c_in >= block else 0
        grad_w = (_pad(c.c_in, block) * _pad(c.c_out, block) if go_blocked else c.c_in * c.c_out) * c.taps * e
        steps += [("alloc", "grad_out", go_copy), ("alloc", "input", in_copy), ("alloc", "grad_w", grad_w),
                  ("alloc", "grad_b", c.c_out * e if mask[2] else 0), ("free", "input"), ("free", "grad_out"),
                  ("out", 2), ("out", 1), ("free", "grad_w"), ("free", "grad_b")]
    return steps


# ---- Matrix products
def _bf16_matmul(a, b) -> list[Step] | None:
    """A bfloat16 matrix product on an AVX-512 CPU without native bfloat16: ATen hands it to
    oneDNN (mkldnn_bf16_gemm: above 16^3 multiply-adds), which accumulates the whole output in
    float32 (measured: M x N x 4 + 128 bytes, a little more when a row is not a whole number of
    cache lines). CPUs with native bfloat16 take brgemm's per-thread buffers instead (not
    modelled); AVX2 takes ATen's own kernel, with none."""
    if a.dtype != torch.bfloat16 or a.dim() != 2 or b.dim() != 2 or onednn_family() != AVX512:
        return None
    m, k, n = a.shape[0], a.shape[1], b.shape[1]
    if m * n * k <= 16 ** 3 or not onednn_low_precision():
        return None
    return [("out", 0), ("alloc", "accumulate", m * n * 4 + 128), ("free", "accumulate")]


def _uses_onednn(x, weight, stride, dilation, groups) -> bool:
    """ATen's ConvParams::use_mkldnn for CPU tensors (aten/src/ATen/native/Convolution.cpp)."""
    if x.dtype in (torch.bfloat16, torch.float16):
        return onednn_low_precision()
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
def onednn_low_precision() -> bool:
    """oneDNN runs bf16/fp16 kernels (convolutions, matrix products, LSTMs: engine/rnn_limits.py)
    only on CPUs with native support (AVX512-BF16, AMX) or AVX-512 emulation; the answer follows
    ONEDNN_MAX_CPU_ISA."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _conv_out_size(h, w, kh, kw, stride, padding, dilation) -> tuple[int, int]:
    sh, sw = (stride * 2)[:2] if len(stride) == 1 else stride
    ph, pw = (padding * 2)[:2] if len(padding) == 1 else padding
    dh, dw = (dilation * 2)[:2] if len(dilation) == 1 else dilation
    return (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1


def _transposed_out_size(h, w, kh, kw, stride, padding, dilation, output_padding) -> tuple[int, int]:
    sh, sw = (stride * 2)[:2] if len(stride) == 1 else stride
    ph, pw = (padding * 2)[:2] if len(padding) == 1 else padding
    dh, dw = (dilation * 2)[:2] if len(dilation) == 1 else dilation
    oh, ow = (output_padding * 2)[:2] if len(output_padding) == 1 else output_padding
    return (h - 1) * sh - 2 * ph + dh * (kh - 1) + oh + 1, (w - 1) * sw - 2 * pw + dw * (kw - 1) + ow + 1
