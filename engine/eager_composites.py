"""Composite ops as eager torch runs them, while tracing.

- `F.linear` (every device): ATen's linear (Linear.cpp) adds the bias in place (`output.add_(bias)`)
  after the matrix product of an input it cannot flatten (a non-contiguous 3-D input such as
  multi-head attention's transposed query, or a transposed unfold), unless a tensor is
  "subclass-like"; under a dispatch mode every tensor is, so the trace would take the
  out-of-place `add` and hold a second output-sized buffer that no device allocates (recorded on
  an H200; on a CPU, a linear over a transposed unfold read +22% in training).
- `F.dropout` in training, on a GPU: on a CUDA tensor ATen runs the fused `native_dropout`, whose
  mask is one byte per element; on the meta/CPU tensors of a trace it would multiply by a noise
  tensor of the input's dtype (four bytes per element in float32), kept for backward. A CPU
  multiplies by that noise tensor itself.
"""
from __future__ import annotations

import inspect

import torch

from .target import composite_body


class EagerComposites(torch.overrides.TorchFunctionMode):
    """Enter below CUDA's autocast (engine/target.py CudaAutocast): it sees the arguments
    already cast, as ATen's composites do."""

    def __init__(self, device: str):
        super().__init__()
        self.cuda = device == "cuda"

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name == "linear":
            return aten_linear(args[0], args[1], args[2] if len(args) > 2 else kwargs.get("bias"))
        elif name == "dropout" and func is torch.dropout and self.cuda:
            x, p, train = (list(args) + [kwargs.get("p"), kwargs.get("train")])[:3]
            if train and 0 < p < 1 and x.numel() > 0:  # is_fused_kernel_acceptable
                return torch.native_dropout(x, p, True)[0]
        elif getattr(func, "__module__", None) == "torch.nn.functional" and inspect.isfunction(func):
            with composite_body(), self:  # multi-head attention's projections, dropout's _VF call
                return func(*args, **kwargs)
        return func(*args, **kwargs)


def aten_linear(x, weight, bias=None):
    """F.linear with ATen's allocations: the bias added in place after the product of an input
    linear cannot flatten (not contiguous, not 2-d), where under a dispatch mode F.linear would
    add it out of place. Also for code that runs below the torch-function modes (engine/cpu_gru.py)."""
    if bias is not None and x.dim() not in (0, 2) and not x.is_contiguous():
        return torch.matmul(x, weight.t()).add_(bias)
    return torch.nn.functional.linear(x, weight, bias)
