"""Measured truth: run the same step for real on the CPU and read the allocator's accounting.

This is validation, not analysis: it allocates everything for real. The tests and benchmarks
use it to check the trace; the engine never uses it to produce a number.

Peak = bytes live at the start (unique storages of parameters, buffers, optimizer state, inputs
and targets) + the highest running sum of the CPU allocator's `[memory]` events recorded by
`torch.profiler` with `profile_memory=True` during the step.
"""
from __future__ import annotations

import gc
from dataclasses import dataclass

import torch
from torch import nn

from .levers import accumulated_gradients, accumulating, apply_to_real_model, step_batch
from .lora import prepare_for_request
from .loss import make_targets, output_tensors
from .request import AnalysisRequest
from .sources import load_model
from .step import build_optimizer, cast_floating, optimizer_state_tensors, run_step, torch_dtype


@dataclass(frozen=True)
class MeasuredStep:
    peak_bytes: int
    start_bytes: int  # live before the step
    end_bytes: int  # live after the step


def materialize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Real CPU tensors for a meta-built model, filled with small random values."""
    torch.manual_seed(seed)
    _to_empty_keeping_ties(module)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.02)
        for name, b in module.named_buffers():
            if b.is_floating_point():
                b.fill_(1.0 if name.endswith("running_var") else 0.0)
            else:
                b.zero_()
    return module


def _to_empty_keeping_ties(module: nn.Module) -> None:
    """`Module.to_empty` gives each module its own new tensor, so a weight shared by two modules
    (tied embeddings) would become two weights. Here each distinct tensor gets one CPU copy."""
    copies: dict[int, torch.Tensor] = {}
    for m in module.modules():
        for table in (m._parameters, m._buffers):
            for name, t in table.items():
                if t is None:
                    continue
                if id(t) not in copies:
                    empty = torch.empty_like(t, device="cpu")
                    copies[id(t)] = nn.Parameter(empty, t.requires_grad) if isinstance(t, nn.Parameter) else empty
                table[name] = copies[id(t)]


@dataclass
class RealStep:
    """A request's step set up with real tensors on `device`: what `run_step` needs."""

    model: nn.Module
    inputs: list[torch.Tensor]
    targets: dict
    optimizer: object


def build_real_step(request: AnalysisRequest, device: str = "cpu", shapes_on_meta: bool = False) -> RealStep:
    """Model (small random weights), input batch, targets and optimizer, allocated for real.
    The targets' shapes come from a no-grad forward of the real model, or with `shapes_on_meta`
    of the meta model before it is materialised, so nothing runs on the device before the first
    step (a GPU measurement: a real forward would leave cached segments behind)."""
    loaded = prepare_for_request(load_model(request.model), request)  # engine/lora.py, as the trace does
    dtype = torch_dtype(request.dtype)
    meta_shapes = _meta_output_shapes(loaded, request, dtype) if shapes_on_meta and request.mode == "train" else None
    model = cast_floating(materialize(loaded.module), dtype, device)
    model.train(request.mode == "train")
    apply_to_real_model(model, request, loaded.name)  # the trace's levers (engine/levers.py)
    shape = (step_batch(request), *(request.input_shape if request.input_shape is not None else loaded.input_shape))
    if loaded.input_dtype is not None and not loaded.input_dtype.is_floating_point:
        x = torch.randint(0, loaded.input_high, shape, dtype=loaded.input_dtype, device=device)
    else:
        x = torch.randn(shape, dtype=dtype, device=device)
    targets, optimizer = {}, None
    if request.mode == "train":
        shapes = meta_shapes
        if shapes is None:
            with torch.no_grad():
                shapes = [tuple(t.shape) for t in output_tensors(model(x))]
        targets = make_targets(shapes, dtype, device=device, task=loaded.task)
        optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], request.optimizer, device)
    return RealStep(model, [x], targets, optimizer)


def _meta_output_shapes(loaded, request: AnalysisRequest, dtype) -> list[tuple[int, ...]] | None:
    """The model's output shapes from its meta copy (None when a meta forward cannot run)."""
    shape = (step_batch(request), *(request.input_shape if request.input_shape is not None else loaded.input_shape))
    if loaded.input_dtype is not None and not loaded.input_dtype.is_floating_point:
        x = torch.zeros(shape, dtype=loaded.input_dtype, device="meta")
    else:
        x = torch.empty(shape, dtype=dtype, device="meta")
    try:
        module = cast_floating(loaded.module, dtype) if dtype != torch.float32 else loaded.module
        module.train(True)
        with torch.no_grad():
            return [tuple(t.shape) for t in output_tensors(module(x))]
    except Exception:  # noqa: BLE001 - fall back to the real model's forward
        return None


def measure_cpu_step(request: AnalysisRequest) -> MeasuredStep:
    """Run `request`'s step for real on the CPU and return the allocator's peak."""
    from torch.profiler import ProfilerActivity, profile

    step = build_real_step(request, "cpu")
    model, (x,), targets, optimizer = step.model, step.inputs, step.targets, step.optimizer
    if optimizer is not None and not request.first_step:
        # A real earlier step, then grads dropped: the steady state the trace models.
        run_step(model, [x], targets, optimizer, mode="train", amp=request.amp, device=request.device,
                 amp_dtype=request.amp_dtype)
        optimizer.zero_grad(set_to_none=True)
    model.zero_grad(set_to_none=True)
    gc.collect()
    live = [*model.parameters(), *model.buffers(), x, *targets.values()]
    if accumulating(request):  # the earlier micro-steps' gradients
        live += accumulated_gradients(list(model.parameters()))
    live += [t for _, t in optimizer_state_tensors(optimizer)]
    start = unique_bytes(live)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run_step(model, [x], targets, optimizer, mode=request.mode, amp=request.amp, device=request.device,
                 amp_dtype=request.amp_dtype)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        running += e.nbytes()
        peak = max(peak, running)
    return MeasuredStep(peak_bytes=start + peak, start_bytes=start, end_bytes=start + running)


def unique_bytes(tensors) -> int:
    """Bytes of the distinct storages behind real tensors (views and tied weights counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
    return sum(seen.values())
