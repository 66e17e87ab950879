"""What "one step" means, written once and run both on meta tensors (the trace) and on real
tensors (the truth it is checked against), so the two cannot drift apart.

Training: forward (inside autocast when AMP is on) and the loss, `loss.backward()`,
`optimizer.step()`. Like a typical training loop, the output and the loss stay referenced until
the step returns. Inference: a forward under `torch.no_grad()`.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch
from torch import nn

from .loss import compute_loss
from .target import CudaAutocast, target_for

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


def cast_floating(module: torch.nn.Module, dtype: torch.dtype, device=None) -> torch.nn.Module:
    """`module.to(dtype)` for its floating-point tensors only: Module.to casts complex ones too,
    dropping their imaginary parts (a Fourier layer's complex weights would no longer multiply
    its spectrum). Integer and complex tensors keep their dtype; `device` moves every tensor."""
    return module._apply(lambda t: t.to(device=device, dtype=dtype if t.is_floating_point() else None))


def amp_torch_dtype(device: str, amp_dtype: str = "") -> torch.dtype:
    """AMP's autocast dtype: `amp_dtype` when given, else the target's default (DESIGN.md:
    bfloat16 on the CPU, float16 on CUDA)."""
    return _DTYPES[amp_dtype] if amp_dtype else target_for(device).amp_dtype


def autocast_for(amp: bool, device: str, tensors_on: str = "cpu", amp_dtype: str = ""):
    """AMP: autocast to `amp_dtype` (see `amp_torch_dtype`).

    The trace runs on CPU tensors either way (`tensors_on="cpu"`): for a CUDA target it applies
    CUDA's autocast lists to them (engine/target.py CudaAutocast), not the CPU's. A real step on
    a GPU (`tensors_on="cuda"`) uses CUDA's autocast itself.
    """
    if not amp:
        return contextlib.nullcontext()
    dtype = amp_torch_dtype(device, amp_dtype)
    if device == "cuda" and tensors_on != "cuda":
        return CudaAutocast(dtype)
    return torch.autocast(tensors_on, dtype=dtype)


def build_scaler(amp: bool, device: str, mode: str, tensors_on: str = "cpu", amp_dtype: str = ""):
    """CUDA's float16 AMP trains with a `torch.amp.GradScaler` (its scale and growth tensors, the
    inf checks, the unscale); bfloat16, and AMP on the CPU, need none. On CPU tensors (the trace,
    the CPU truth) the CPU scaler makes the same tensors."""
    if not amp or mode != "train" or device != "cuda" or amp_torch_dtype(device, amp_dtype) != torch.float16:
        return None
    return torch.amp.GradScaler(tensors_on)


def build_optimizer(params: list[nn.Parameter], name: str, device: str):
    """Optimizers as torch builds them by default for the target device: for-loop on the CPU,
    foreach (with its list temporaries) on CUDA."""
    foreach = target_for(device).foreach_optimizers
    if name == "none":
        return None
    if name == "sgd":
        return torch.optim.SGD(params, lr=0.01, foreach=foreach)
    if name == "momentum":
        return torch.optim.SGD(params, lr=0.01, momentum=0.9, foreach=foreach)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=foreach)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-3, foreach=foreach)
    raise ValueError(name)


def prime_optimizer(optimizer, params: list[nn.Parameter]) -> None:
    """Create the optimizer state an earlier step would have left (steady state), then drop grads.

    Adam/AdamW create their whole state in `_init_group`, before calling the functional update,
    so the update itself is skipped here (it would only cost trace time). SGD's momentum buffer
    is created by the update, so SGD runs it.
    """
    if optimizer is None:
        return
    for p in params:
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    if isinstance(local_optimizer(optimizer), torch.optim.Adam):
        import torch.optim.adam as adam_module

        update = adam_module.adam
        adam_module.adam = lambda *args, **kwargs: None
        try:
            optimizer.step()
        finally:
            adam_module.adam = update
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def local_optimizer(optimizer):
    """The optimizer that holds this rank's state: ZeRO-1's ZeroRedundancyOptimizer keeps it in
    the inner optimizer of the parameters the rank owns (engine/distributed)."""
    return getattr(optimizer, "optim", optimizer)


def optimizer_state_tensors(optimizer) -> list[tuple[str, torch.Tensor]]:
    if optimizer is None:
        return []
    state = local_optimizer(optimizer).state
    return [(k, v) for s in state.values() for k, v in s.items() if isinstance(v, torch.Tensor)]


def run_step(
    model: nn.Module,
    inputs: list[torch.Tensor],
    targets: dict,
    optimizer,
    *,
    mode: str,
    amp: bool,
    device: str,
    on_phase: Callable[[str], None] = lambda phase: None,
    tensors_on: str = "cpu",
    scaler=None,
    amp_dtype: str = "",
) -> None:
    on_phase("forward")
    if mode == "inference":
        with torch.no_grad(), autocast_for(amp, device, tensors_on, amp_dtype):
            output = model(*inputs)
        del output
        return
    with autocast_for(amp, device, tensors_on, amp_dtype):
        output = model(*inputs)
        loss = compute_loss(output, targets)
    if loss is None or not loss.requires_grad:
        raise_no_grad()
    on_phase("backward")
    (loss if scaler is None else scaler.scale(loss)).backward()
    if optimizer is not None:
        on_phase("optimizer")
        if scaler is None:
            optimizer.step()
        else:  # unscale_ (inf checks, grads unscaled in place), the step if finite, the new scale
            scaler.step(optimizer)
            scaler.update()


def raise_no_grad():
    from .errors import UnsupportedError

    raise UnsupportedError(
        "cannot train this model: its output has no floating-point tensor that depends on a "
        "trainable parameter (try --mode inference)"
    )
