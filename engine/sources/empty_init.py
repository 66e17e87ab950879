"""Build any nn.Module without memory, then give it fake CPU tensors to trace with.

Why this way (checked on all 80 torchvision classification models):
- building under `torch.device("meta")` breaks regnet (its constructor computes widths with
  tensors); building under FakeTensorMode breaks vit, swin, convnext and regnet (their
  `trunc_normal_` initialisers are data-dependent);
- redirecting each parameter and buffer to meta *as it is registered* (the `init_empty_weights`
  pattern) builds them all: constructors run on real, empty tensors of zero cost, initialisers
  then run on meta tensors and do nothing.
Swapping the meta tensors for fresh tensors created inside FakeTensorMode gives fake-*CPU*
semantics: the trace picks the same kernels (and saves the same tensors) as a real CPU step.
"""
from __future__ import annotations

import contextlib

import torch
from torch import nn


@contextlib.contextmanager
def empty_weights():
    """Within this block every registered parameter and buffer lands on the meta device."""
    register_parameter = nn.Module.register_parameter
    register_buffer = nn.Module.register_buffer

    def _register_parameter(module, name, param):
        register_parameter(module, name, param)
        if param is not None and param.device.type != "meta":
            cls = type(module._parameters[name])
            kwargs = module._parameters[name].__dict__
            module._parameters[name] = cls(module._parameters[name].to("meta"), **kwargs)
            module._parameters[name].requires_grad_(param.requires_grad)

    def _register_buffer(module, name, buffer, persistent=True):
        register_buffer(module, name, buffer, persistent)
        if buffer is not None:
            module._buffers[name] = module._buffers[name].to("meta")

    nn.Module.register_parameter = _register_parameter
    nn.Module.register_buffer = _register_buffer
    try:
        yield
    finally:
        nn.Module.register_parameter = register_parameter
        nn.Module.register_buffer = register_buffer


def to_fake(model: nn.Module, fake_mode, dtype: torch.dtype | None = None) -> nn.Module:
    """Replace every parameter and buffer with an uninitialised fake CPU tensor of the same shape.

    Tied parameters stay tied. Floating tensors take `dtype` when given (what `.to(dtype)` does).
    """
    swapped: dict[int, torch.Tensor] = {}

    def fake_like(t: torch.Tensor) -> torch.Tensor:
        target = dtype if (dtype is not None and t.is_floating_point()) else t.dtype
        with fake_mode:
            if t.is_floating_point():
                return torch.empty(t.shape, dtype=target)
            return torch.zeros(t.shape, dtype=target)

    for module in model.modules():
        for name, param in list(module._parameters.items()):
            if param is None:
                continue
            if id(param) not in swapped:
                swapped[id(param)] = nn.Parameter(fake_like(param), requires_grad=param.requires_grad)
            module._parameters[name] = swapped[id(param)]
        for name, buffer in list(module._buffers.items()):
            if buffer is None:
                continue
            if id(buffer) not in swapped:
                swapped[id(buffer)] = fake_like(buffer)
            module._buffers[name] = swapped[id(buffer)]
    return model
