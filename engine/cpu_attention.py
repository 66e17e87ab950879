"""The CPU's flash attention kernel's own buffers (aten/src/ATen/native/cpu/FlashAttentionKernel.cpp),
which its meta kernel does not show: scaled_dot_product_attention on a CPU runs it for float32,
bfloat16 and float16 wherever torch's CPU choice allows (engine/target.py).

The kernel tiles the query by `q_split` rows (256 from 768 query rows, 64 from 192, else 32) and
the keys by 512, and each thread works in buffers of the accumulation type:
- forward, after the output and its log-sum-exp: per thread a tile of scores, the row maxima
  and sums, and an output tile (`qSplit * kvSplit + 2 * qSplit + qSplit * headSize`); for 16-bit
  inputs also a tile of scores in the input's type; freed when the kernel returns;
- backward, after the three gradients: a contiguous copy of the output's gradient when it is not
  laid out (batch, sequence, heads, head size) already, per thread a tile of scores and one of
  their gradients (twice for 16-bit inputs), and the row sums of one tile.
Measured on this CPU with torch.profiler (tests/engine/test_cpu_attention.py): a 1,024-token
attention's forward takes 1.04 MiB beside a 2 MiB output on 2 threads, its backward 2 MiB.
Not modelled: the per-matrix-product buffers of the 16-bit backward (oneDNN's, ~130 KiB a
product, freed at once), and fp16's packed keys and values on CPUs with AMX-FP16 (held outside
the allocator, but they widen the tiles).
"""
from __future__ import annotations

import torch

aten = torch.ops.aten

_KV_SPLIT = 512


def attention_script(func, args) -> list[tuple] | None:
    """The kernel's allocations around its outputs (engine/cpu_kernels.py's step format)."""
    if func is aten._scaled_dot_product_flash_attention_for_cpu.default:
        q, v = args[0], args[2]
        return _forward(q.shape[2], v.shape[2], q.shape[3], q.dtype)
    if func is aten._scaled_dot_product_flash_attention_for_cpu_backward.default:
        grad_out, q, v = args[0], args[1], args[3]
        return _backward(grad_out, q.shape[2], v.shape[2], q.dtype)
    return None


def _q_split(q_len: int) -> int:
    return 256 if q_len >= 768 else 64 if q_len >= 192 else 32


def _forward(q_len: int, kv_len: int, head: int, dtype) -> list[tuple]:
    threads, acc, elem, reduced = _sizes(dtype)
    q_split, kv_split = min(_q_split(q_len), q_len), min(_KV_SPLIT, kv_len)
    per_thread = q_split * kv_split + 2 * q_split + q_split * head
    steps = [("out", 0), ("out", 1), ("alloc", "tiles", threads * per_thread * acc)]
    if reduced:
        steps += [("alloc", "16-bit scores", threads * q_split * kv_split * elem), ("free", "16-bit scores")]
    return steps + [("free", "tiles")]


def _backward(grad_out, q_len: int, kv_len: int, dtype) -> list[tuple]:
    threads, acc, elem, reduced = _sizes(dtype)
    q_split, kv_split = min(_q_split(q_len), q_len), min(_KV_SPLIT, kv_len)
    steps = [("out", 0), ("out", 1), ("out", 2)]
    copies = not grad_out.transpose(1, 2).is_contiguous()
    if copies:
        steps.append(("alloc", "gradient copy", grad_out.numel() * grad_out.element_size()))
    steps.append(("alloc", "tiles", threads * 2 * q_split * kv_split * acc))
    if reduced:
        steps.append(("alloc", "16-bit tiles", threads * 2 * q_split * kv_split * elem))
    steps += [("alloc", "row sums", q_split * acc), ("free", "row sums")]
    if reduced:
        steps.append(("free", "16-bit tiles"))
    steps.append(("free", "tiles"))
    return steps + ([("free", "gradient copy")] if copies else [])


def _sizes(dtype) -> tuple[int, int, int, bool]:
    """Threads, accumulator bytes, element bytes, and whether the type is a 16-bit one."""
    reduced = dtype in (torch.bfloat16, torch.float16)
    return torch.get_num_threads(), 8 if dtype == torch.float64 else 4, dtype.itemsize, reduced
