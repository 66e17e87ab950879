"""Build any nn.Module without memory: every parameter and buffer ends up on the meta device.

Why this way (checked on all 80 torchvision classification models):
- building under `torch.device("meta")` breaks regnet (its constructor computes widths with
  tensors); building under FakeTensorMode breaks vit, swin, convnext and regnet (their
  `trunc_normal_` initialisers are data-dependent);
- redirecting each parameter and buffer to meta *as it is registered* (the `init_empty_weights`
  pattern) builds them all: constructors run on real, empty tensors that are never touched,
  initialisers then run on meta tensors and do nothing.
The trace then runs on meta tensors. A meta step of a CNN matches a real CPU step byte for byte
and runs 2-3x faster than FakeTensorMode, whose per-op bookkeeping dominates on big graphs.
"""
from __future__ import annotations

import contextlib

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
