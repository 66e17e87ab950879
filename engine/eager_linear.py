"""`F.linear` as eager CUDA runs it, while tracing.

ATen's linear (Linear.cpp) adds the bias in place (`output.add_(bias)`) after the matrix product
of an input it cannot flatten (a non-contiguous 3-D input such as multi-head attention's
transposed query), unless a tensor is "subclass-like"; under a dispatch mode every tensor is, so
the trace would take the out-of-place `add` and hold a second output-sized buffer that a GPU
never allocates (recorded on an H200: tests/data/gpu/). This mode makes the eager choice.
"""
from __future__ import annotations

import inspect

import torch

from .target import composite_body


class EagerLinear(torch.overrides.TorchFunctionMode):
    """Enter below CUDA's autocast (engine/target.py CudaAutocast): it sees linear's arguments
    already cast, as ATen's linear does."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") == "linear":
            x, weight = args[0], args[1]
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            if bias is not None and x.dim() not in (0, 2) and not x.is_contiguous():
                out = torch.matmul(x, weight.t())
                return out.add_(bias)
        elif getattr(func, "__module__", None) == "torch.nn.functional" and inspect.isfunction(func):
            with composite_body(), self:  # multi-head attention's projections are linears inside it
                return func(*args, **kwargs)
        return func(*args, **kwargs)
