"""Copies ATen's own kernels make inside one op, which the meta kernels skip: the same native
code runs on a CPU and on a GPU, so one script serves both targets (engine/cpu_kernels.py
`kernel_script`, engine/cudnn_workspaces.py `CudnnWorkspaces`).

- Layer norm (layer_norm_cpu / layer_norm_cuda and their backwards) works on
  `input.expect_contiguous()`: an input that is not contiguous (Swin's stem: a convolution's
  output permuted to channels-last order) is copied first, and the copy lives until the op
  returns; the backward copies the saved input again, and a non-contiguous output gradient.
  A hand-written stem (conv, permute, LayerNorm) read -29% inference and -23% training on a CPU.
- `torch.roll` over several dimensions (roll_common) rolls one dimension at a time: each but the
  last makes a tensor of the output's size that lives until the op returns (Swin's shifted
  windows, seen in the H200 recordings of swin_t; a hand-written shift read -30% inference on
  a CPU).
- `F.affine_grid` (a spatial transformer) builds a base grid of homogeneous coordinates, 1.5
  times its output in 2-d, and drops it once the output is made.
Each is measured against a real CPU step in tests/engine/test_truth_cpu.py (user models
`shifted_windows`, `permuted_norm`).
"""
from __future__ import annotations

import math

import torch

aten = torch.ops.aten


def aten_script(func, args) -> list[tuple] | None:
    """The op's allocations around its outputs (engine/cpu_kernels.py's step format), or None
    where the meta kernel's outputs are all it makes."""
    if func is aten.native_layer_norm.default:
        return _around(_copies(args[0]), outputs=3)
    if func is aten.native_layer_norm_backward.default:
        return _around(_copies(args[1]), outputs=3, then=_copies(args[0], "output gradient"))
    if func is aten.roll.default:
        return _roll(args[0], args[2] if len(args) > 2 else ())
    if func is aten.affine_grid_generator.default:
        return _affine_grid(args[0], args[1])
    return None


def _affine_grid(theta, size) -> list[tuple] | None:
    """affine_grid_generator builds a base grid of homogeneous coordinates, (N, H, W, 3) or
    (N, D, H, W, 4), multiplies it by theta into the output and drops it (AffineGridGenerator.cpp)."""
    size = [int(s) for s in size]
    if len(size) not in (4, 5):
        return None
    n, *spatial = size[0], *size[2:]
    nbytes = n * math.prod(spatial) * (len(spatial) + 1) * theta.element_size()
    return [("alloc", "base grid", nbytes), ("out", 0), ("free", "base grid")] if nbytes else None


def _copies(t, name: str = "input") -> list[tuple[str, int]]:
    if not isinstance(t, torch.Tensor) or t.is_contiguous() or not t.numel():
        return []
    return [(name, t.numel() * t.element_size())]


def _around(copies, outputs: int, then=()) -> list[tuple] | None:
    """The copies, the outputs (one the op does not make is passed over), then the backward's
    output-gradient copy taken and given back, and the copies given back."""
    if not copies and not then:
        return None
    steps = [("alloc", name, nbytes) for name, nbytes in copies]
    steps += [("out", i) for i in range(outputs)]
    for name, nbytes in then:
        steps += [("alloc", name, nbytes), ("free", name)]
    return steps + [("free", name) for name, _ in reversed(copies)]


def _roll(x, dims) -> list[tuple] | None:
    dims = [dims] if isinstance(dims, int) else list(dims)
    if len(dims) < 2 or not x.numel():
        return None
    nbytes = x.numel() * x.element_size()
    names = [f"rolled {d}" for d in range(len(dims) - 1)]
    return [*(("alloc", n, nbytes) for n in names), ("out", 0), *(("free", n) for n in reversed(names))]
