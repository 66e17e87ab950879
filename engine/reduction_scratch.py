"""CUDA reductions' scratch: a long reduction is split across thread blocks, whose partial results
meet in a global buffer. ATen's reduce kernel (aten/src/ATen/native/cuda/Reduce.cuh,
`setReduceConfig`, `gpu_reduce_kernel`) takes that buffer and a semaphore array from the caching
allocator after the output and gives both back when the kernel is queued: no meta kernel shows
them, yet they count in max_memory_allocated. They are the largest at a bias gradient, the sum of
the output gradient over the batch and sequence: 8,192,000 bytes for a 1000-word head over 1,024
tokens, recorded on an H200 (tests/data/gpu/), where the gradient itself is 4,096,000.

The launch configuration is computed as `setReduceConfig` computes it, from the shapes and strides
of the iterator TensorIterator builds (reduced dimensions first, adjacent dimensions coalesced),
the accumulator's size, and the GPU's multiprocessor count and threads per multiprocessor.
Modelled: sum and mean (autograd's bias and broadcast gradients, losses). Not modelled: the other
reductions (max, var/std, norms, argmax ...), whose scratch is small beside their inputs.
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# (multiprocessors, max threads per multiprocessor) by compute capability: the data-centre parts
# (H100/H200 SXM, A100, V100); other GPUs of an architecture differ in multiprocessors only,
# which decides the split only for reductions over few outputs.
_SM = {(9, 0): (132, 2048), (8, 0): (108, 2048), (8, 6): (84, 1536), (8, 9): (128, 1536), (7, 5): (40, 1024),
       (7, 0): (80, 2048)}
_DEFAULT_SM = (132, 2048)
_MAX_NUM_THREADS = 512  # mnt_wrapper<T>::MAX_NUM_THREADS (256 only for complex<double>)
_WARP = 32
_INPUT_VEC = 4  # ReduceConfig::input_vec_size
_SUMS = {aten.sum.dim_IntList, aten.sum.default, aten.mean.dim, aten.mean.default}


class ReductionScratch(TorchDispatchMode):
    """Enter inside a `StepRecorder` for a CUDA target: each sum or mean split across thread
    blocks takes its buffer and semaphores after its output and frees them before returning."""

    def __init__(self, recorder, arch: tuple[int, int] | None):
        super().__init__()
        self.recorder = recorder
        self.sm = _SM.get(tuple(arch) if arch else (9, 0), _DEFAULT_SM)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in _SUMS and isinstance(out, torch.Tensor):
            scratch = reduce_scratch(args[0], _reduced_dims(args), out, *self.sm)
            if scratch:
                self.recorder.kernel_scratch(*scratch)
        return out


# ---- Public API
def reduce_scratch(x: torch.Tensor, dims: list[int], out: torch.Tensor, num_mp: int = 132,
                   max_threads_per_mp: int = 2048) -> tuple[int, int] | None:
    """(global buffer bytes, semaphore bytes) that reducing `x` over `dims` into `out` takes on a
    GPU with `num_mp` multiprocessors, or None when the reduction stays inside each block."""
    if not x.is_floating_point() or x.numel() == 0 or out.numel() == 0:
        return None
    acc_bytes = 8 if x.dtype == torch.float64 else 4  # sum/mean accumulate in float (double for double)
    scalar_bytes = x.element_size()
    shape, in_strides, n_reduce = _iterator(x, dims)
    num_outputs = out.numel()
    inputs_per_output = x.numel() // num_outputs
    if not shape:  # one element
        return None
    on_fastest = n_reduce == len(shape) or in_strides[0] < in_strides[n_reduce]
    if on_fastest:
        dim0, dim1, fastest = inputs_per_output, num_outputs, in_strides[0]
    else:
        dim0, dim1, fastest = num_outputs, inputs_per_output, in_strides[n_reduce]
    output_vec = 1
    if fastest == 1:
        if on_fastest and dim0 > 128 and n_reduce == 1:
            dim0 //= _INPUT_VEC  # vectorized along the input
        elif not on_fastest:
            output_vec = _output_vec_size(x, shape, in_strides, n_reduce, scalar_bytes)
            dim0 //= output_vec
    # ReduceConfig::set_block_dimension
    max_threads = _MAX_NUM_THREADS // output_vec
    dim0_pow2 = _last_pow2(dim0) if dim0 < max_threads else max_threads
    dim1_pow2 = _last_pow2(dim1) if dim1 < max_threads else max_threads
    block_width = min(dim0_pow2, _WARP)
    block_height = min(dim1_pow2, max_threads // block_width)
    block_width = min(dim0_pow2, max_threads // block_height)
    num_threads = block_width * block_height
    step_input = step_output = 1
    block_x_reduce = on_fastest
    if on_fastest:
        step_input *= block_width
    else:
        step_output *= block_width
    values_per_thread = -(-inputs_per_output // step_input)
    block_y_reduce = values_per_thread >= min(block_height * 16, 256)
    if block_y_reduce:
        step_input *= block_height
    else:
        step_output *= block_height
    grid_x = -(-(num_outputs // output_vec) // step_output)
    target_grid = num_mp * (max_threads_per_mp // num_threads)
    values_per_thread = -(-inputs_per_output // step_input)
    if not (block_y_reduce and values_per_thread >= 256 and grid_x <= target_grid):
        return None
    ctas = max(min(-(-target_grid // grid_x), -(-values_per_thread // 16)), -(-values_per_thread // 256))
    if ctas <= 1:
        return None
    size = acc_bytes * num_outputs * ctas
    if not block_x_reduce:
        size *= block_width * output_vec
    return size, 4 * grid_x


# ---- Private API
def _reduced_dims(args) -> list[int]:
    x = args[0]
    dims = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else None
    if not dims:  # sum.default, or an empty dim list: every dimension
        return list(range(x.dim()))
    return [d % x.dim() for d in dims] if x.dim() else []


def _iterator(x: torch.Tensor, dims: list[int]) -> tuple[list[int], list[int], int]:
    """TensorIterator's shape and input strides (in elements) for the reduction, and how many of
    its leading dimensions are reduced: size-1 dimensions dropped, reduced dimensions first (by
    input stride), the others by the contiguous output's order, adjacent ones coalesced."""
    reduced = sorted((x.stride(d), x.shape[d]) for d in dims if x.shape[d] > 1)
    kept = [(x.stride(d), x.shape[d]) for d in reversed(range(x.dim())) if d not in dims and x.shape[d] > 1]
    groups = []
    for part in (reduced, kept):
        merged: list[tuple[int, int]] = []
        for stride, size in part:
            if merged and merged[-1][0] * merged[-1][1] == stride:  # contiguous with the one before
                merged[-1] = (merged[-1][0], merged[-1][1] * size)
            else:
                merged.append((stride, size))
        groups.append(merged)
    dims_all = groups[0] + groups[1]
    return [s for _, s in dims_all], [st for st, _ in dims_all], len(groups[0])


def _output_vec_size(x, shape, in_strides, n_reduce, scalar_bytes) -> int:
    """get_output_vec_size: 4, halved until it divides the input's address, the output
    dimension's size and every other input stride."""
    vec = 4
    values = [x.storage_offset(), shape[n_reduce]] + [s for i, s in enumerate(in_strides) if i != n_reduce]
    for v in values:
        while v % vec:
            vec //= 2
    return vec


def _last_pow2(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1) if n > 0 else 1
