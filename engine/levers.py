"""The levers people pull when a step does not fit: activation checkpointing, frozen parameters and
gradient accumulation, applied to the model the same way for the trace and for the real step
(engine/truth.py), so the measured truth checks exactly what is traced.

- **Checkpointing** (`request.checkpoint`: module names or a preset, engine/checkpointing.py).
  The engine also traces the same request without it: the bytes saved are the difference of the
  two peaks, and the extra compute is the FLOPs of the recomputed forwards as a share of the step.
- **Freezing** (`request.freeze`: fnmatch patterns on parameter or module names):
  `requires_grad_(False)` before the optimizer is built, so those parameters get no gradient and
  no optimizer state, and autograd saves less.
- **Gradient accumulation** (`request.micro_batch` m for the global batch B): the traced step is
  a micro-step of m samples that starts with the gradients of the earlier micro-steps live and
  ends with the optimizer step: the largest of the ceil(B/m) micro-steps. When m does not divide
  B the last micro-step is smaller, and this full one is an upper bound for it.

What the levers saved together is traced too, never estimated: the same request without any
lever (no checkpointing, freezing, micro-batch or LoRA adapters: full fine-tuning of a freshly
built model) is one more trace, its peak kept in `Levers.without_levers_peak_bytes`. Searches that
trace many variants (engine/planner.py) skip it with `without_savings()`.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import fnmatch
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from . import checkpointing
from .analysis import Analysis, Checkpointing, Levers
from .errors import RequestError
from .meta_cache import kernel_cache
from .units import format_bytes

INFERENCE_NOTE = "{what} ignored: inference keeps nothing for backward and makes no gradients"
_SAVINGS = contextvars.ContextVar("memlens_lever_savings", default=True)


# ---- Public API
def analyze_with_levers(loaded, request, report, cancelled, started, trace: Callable,
                        baseline: Analysis | None = None) -> Analysis:
    """`trace(loaded, step_request, report, cancelled, started, hooks)` with the request's levers
    applied to the model for this trace only (engine/pipeline.py). `baseline` (the same request
    without checkpointing) is traced here when checkpointing is asked for and not given."""
    model = loaded.module
    warnings: list[str] = []
    training = request.mode == "train"
    if not training:
        for what, on in (("checkpointing", request.checkpoint), ("--freeze", request.freeze),
                         ("micro-batch", request.micro_batch)):
            if on:
                warnings.append(INFERENCE_NOTE.format(what=what))
    names = checkpointing.resolve(model, request.checkpoint, loaded.name) if training else ()
    frozen = frozen_parameter_names(model, request.freeze, loaded.name) if training else ()
    if names and baseline is None:
        with without_savings():
            baseline = analyze_with_levers(loaded, request.replace(checkpoint=()), lambda f, m: None, cancelled,
                                           started, trace)
    if names:
        _check_saves_something(names, baseline, model, loaded.name)
    micro = request.micro_batch if accumulating(request) else None
    hooks = StepHooks(accumulate=micro is not None, count_flops=bool(names))
    step_request = request.replace(batch=micro or request.batch, checkpoint=(), freeze=(), micro_batch=None)
    with frozen_parameters(model, frozen), checkpointing.checkpointed(model, names):
        analysis = trace(loaded, step_request, report, cancelled, started, hooks)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    params = dict(model.named_parameters())
    lora = bool(request.lora_rank) and training
    pulled = [bool(names), bool(frozen), micro is not None, lora]
    without = None
    if pulled == [True, False, False, False]:
        without = baseline.peak.total_bytes  # checkpointing alone: its own baseline
    elif any(pulled) and _SAVINGS.get():
        without = _without_levers(loaded, request, cancelled, started, trace).peak.total_bytes
    check = None
    if names:
        check = Checkpointing(names, baseline.peak.total_bytes, baseline.peak.total_bytes - analysis.peak.total_bytes,
                              hooks.recompute_flops, hooks.step_flops - hooks.recompute_flops)
    levers = Levers(
        blocks=checkpointing.blocks(model), checkpoint=check,
        frozen_parameters=sum(params[n].numel() for n in frozen), frozen_tensors=len(frozen),
        micro_batch=micro, accumulation_steps=-(-request.batch // micro) if micro else 1,
        accumulated_gradient_bytes=hooks.gradient_bytes, trainable_parameters=trainable if training else 0,
        adapter_parameters=sum(p.numel() for n, p in params.items() if request.lora_rank and ".lora_" in n),
        without_levers_peak_bytes=without)
    return dataclasses.replace(analysis, request=request, levers=levers,
                               warnings=tuple(warnings) + analysis.warnings)


@contextlib.contextmanager
def without_savings():
    """Analyses inside skip the extra trace without levers (searches trace many variants)."""
    token = _SAVINGS.set(False)
    try:
        yield
    finally:
        _SAVINGS.reset(token)


@dataclass(frozen=True)
class BlocksToFit:
    """The fewest blocks whose checkpointing brings the step under a device's capacity."""

    blocks: tuple[str, ...]  # () when the step fits without checkpointing
    candidates: int  # the model's blocks
    analysis: Analysis  # the step with `blocks` checkpointed
    fit: object  # engine.footprint.Fit of that step
    traces: int


def fewest_blocks_to_fit(request, device, overrides=None, progress=None, cancelled=None) -> BlocksToFit:
    """Checkpoint the blocks keeping the most activations first (measured on the plain step), and
    search (bisection over how many) for the fewest that bring the fit check's total under the
    capacity. Refuses, naming the figures, when even every block does not fit."""
    from .footprint import DOES_NOT_FIT, fit_check
    from .pipeline import analyze_loaded
    from .sources import load_model

    report = progress or (lambda fraction, message: None)
    if device.kind != "host" and request.device != "cuda":
        request = request.replace(device="cuda")  # a GPU plan uses CUDA's rules, as engine/planner.py
    if request.mode != "train":
        raise RequestError("--checkpoint fit: checkpointing only changes a training step (use --mode train)")
    loaded = load_model(request.model, cancelled)
    traces = 0

    def trace(names, baseline=None):
        nonlocal traces
        traces += 1
        report(min(0.95, 0.1 * traces), f"trace {traces}: checkpointing {len(names)} blocks")
        try:
            with without_savings():
                analysis = analyze_loaded(loaded, request.replace(checkpoint=names), lambda f, m: None, cancelled,
                                          time.perf_counter(), baseline)
        finally:
            for p in loaded.module.parameters():  # the next trace starts with grads at None
                p.grad = None
        return analysis, fit_check(analysis, device, overrides)

    base, base_fit = trace(())
    candidates = checkpointing.blocks(loaded.module)
    if base_fit.state != DOES_NOT_FIT:
        return BlocksToFit((), len(candidates), base, base_fit, traces)
    if not candidates:
        raise RequestError(f"--checkpoint fit: {loaded.name} has no blocks (modules grouping other modules) to checkpoint")

    def kept(block):
        return sum(layer.saved_bytes for layer in base.layers if layer.name.startswith(block + "."))

    order = sorted(candidates, key=lambda b: (-kept(b), candidates.index(b)))

    def chosen(n):
        first = set(order[:n])
        return tuple(b for b in candidates if b in first)

    results = {len(candidates): trace(chosen(len(candidates)), base)}
    every, every_fit = results[len(candidates)]
    if every_fit.state == DOES_NOT_FIT:
        raise RequestError(f"--checkpoint fit: even checkpointing all {len(candidates)} blocks of {loaded.name} needs "
                           f"{format_bytes(every_fit.total_bytes)}, above the capacity "
                           f"({format_bytes(every_fit.capacity_bytes)}): no set of blocks fits (try a smaller batch, "
                           "--micro-batch or --freeze)")
    lo, hi = 0, len(candidates)  # lo does not fit, hi fits
    while hi - lo > 1:
        mid = (lo + hi) // 2
        results[mid] = trace(chosen(mid), base)
        if results[mid][1].state == DOES_NOT_FIT:
            lo = mid
        else:
            hi = mid
    analysis, fit = results[hi]
    report(1.0, "done")
    return BlocksToFit(chosen(hi), len(candidates), analysis, fit, traces)


def frozen_parameter_names(model: nn.Module, patterns: tuple[str, ...], model_name: str) -> tuple[str, ...]:
    """Parameters matched by any pattern, on its own name or on a module holding it (fnmatch:
    `features.*`, `encoder.layers.encoder_layer_[0-5]`, `*.bias`)."""
    if not patterns:
        return ()
    names = [n for n, _ in model.named_parameters()]
    modules = [n for n, _ in model.named_modules() if n]
    out: dict[str, None] = {}
    for pattern in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        hits += [n for m in modules if fnmatch.fnmatchcase(m, pattern) for n in names if n.startswith(m + ".")]
        if not hits:
            close = difflib.get_close_matches(pattern, modules + names, n=3, cutoff=0.5)
            hint = f"close names: {', '.join(close)}" if close else f"names look like {', '.join(names[:3])}"
            raise RequestError(f"--freeze {pattern!r} matches no parameter or module of {model_name} ({hint})")
        out.update(dict.fromkeys(hits))
    return tuple(out)


@contextlib.contextmanager
def frozen_parameters(model: nn.Module, names: tuple[str, ...]):
    """`requires_grad_(False)` on the named parameters while the block is open (by name: an AMP
    trace swaps the parameter objects)."""
    changed = [n for n in names if model.get_parameter(n).requires_grad]
    for n in changed:
        model.get_parameter(n).requires_grad_(False)
    try:
        yield
    finally:
        for n in changed:
            model.get_parameter(n).requires_grad_(True)


def apply_to_real_model(model: nn.Module, request, model_name: str) -> None:
    """The levers on a real model for good (the measured step, engine/truth.py): the same
    resolution, freezing and wrapping as the trace."""
    if request.mode != "train":
        return
    for n in frozen_parameter_names(model, request.freeze, model_name):
        model.get_parameter(n).requires_grad_(False)
    names = checkpointing.resolve(model, request.checkpoint, model_name)
    checkpointing.wrap(model, names)  # never undone: the model is the step's own


def accumulating(request) -> bool:
    """Gradients of earlier micro-steps are live: training with a micro-batch below the batch."""
    return request.mode == "train" and request.micro_batch not in (None, request.batch)


def step_batch(request) -> int:
    """Samples in the traced (or measured) step: the micro-batch when accumulating."""
    return request.micro_batch if accumulating(request) else request.batch


def accumulated_gradients(params: list[nn.Parameter]) -> list[torch.Tensor]:
    """The gradients earlier micro-steps left: one per trainable parameter, live at the start."""
    grads = []
    for p in params:
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    return grads


class StepHooks:
    """What the pipeline calls at fixed points of a trace on behalf of the levers."""

    def __init__(self, accumulate: bool = False, count_flops: bool = False):
        self.accumulate, self.count_flops = accumulate, count_flops
        self.gradient_bytes = 0
        self.step_flops = self.recompute_flops = 0

    def before_step(self, recorder, trainable: list[nn.Parameter]) -> None:
        """Gradients accumulated by earlier micro-steps are live when this one starts."""
        if not self.accumulate:
            return
        for g in accumulated_gradients(trainable):
            recorder.register_existing(g, "gradients")
            self.gradient_bytes += g.numel() * g.element_size()

    def measure_flops(self, step: Callable[[], None]) -> None:
        """FLOPs of `step` and of the forwards it recomputes (FlopCounterMode on meta). A pass of its
        own: FlopCounterMode's module tracker hooks the recomputed outputs and would keep them alive
        in the memory trace (+17% on resnet18)."""
        from torch.utils.flop_counter import FlopCounterMode

        listener = _RecomputeFlops()
        with listener, FlopCounterMode(display=False) as counter:  # the counter above the memo
            step()
        self.step_flops = counter.get_total_flops()
        self.recompute_flops = listener.flops


# ---- Private API
def _without_levers(loaded, request, cancelled, started, trace) -> Analysis:
    """The request with no lever pulled. LoRA adapters live in the loaded model, so a LoRA request
    is compared with full fine-tuning of a model built again without them."""
    plain = request.replace(checkpoint=(), freeze=(), micro_batch=None, lora_rank=0, lora_alpha=None,
                            lora_targets=())
    if request.lora_rank:
        from .sources import load_model

        loaded = load_model(request.model, cancelled)
    try:
        with without_savings():
            return analyze_with_levers(loaded, plain, lambda f, m: None, cancelled, started, trace)
    finally:
        for p in loaded.module.parameters():  # the next trace starts with grads at None
            p.grad = None


class _RecomputeFlops(TorchDispatchMode):
    """Listens for recomputed forwards (engine/checkpointing.py) and counts their FLOPs; ops run
    through the trace's memo of meta kernels (engine/meta_cache.py), which the trace has filled."""

    def __init__(self):
        super().__init__()
        self.flops = 0
        self.kernels = kernel_cache()

    def checkpoint_region(self):
        return None

    def rng_state_stand_in(self):
        return None

    @contextlib.contextmanager
    def recomputing(self, _region, _rng_state=None):
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            try:
                yield
            finally:
                self.flops += counter.get_total_flops()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return self.kernels.call(func, args, kwargs or {})


def _check_saves_something(names: tuple[str, ...], baseline: Analysis, model: nn.Module, model_name: str) -> None:
    """A checkpointed module with no parameters whose layers kept nothing for backward saves nothing."""
    for name in names:
        module = model.get_submodule(name)
        params = sum(p.numel() for p in module.parameters())
        saved = sum(layer.saved_bytes for layer in baseline.layers
                    if layer.name.split("#")[0] == name or layer.name.startswith(name + "."))
        if params == 0 and saved == 0:
            raise RequestError(f"--checkpoint {name!r}: {model_name}'s {name} has no parameters and keeps no "
                               "activations for backward: checkpointing it saves nothing")
