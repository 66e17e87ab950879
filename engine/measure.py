"""Measure on this GPU: run one real step of the analysed configuration on a CUDA device and read
what its caching allocator did, to set beside the prediction (the panel's "Measure on this GPU").

Like scripts/gpu_check.py: one warm-up step (creates optimizer state and the cuBLAS workspace),
grads set to None, `torch.cuda.reset_peak_memory_stats`, then the measured step under
`torch.cuda.memory._record_memory_history`, whose snapshot gives the measured timeline. The result
explains the difference with the fit check line by line. It allocates for real: it needs a CUDA
device, and runs only when the user asks. Not exercised by the tests here (no GPU on this machine)
beyond refusing cleanly without one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .errors import CancelledError, RequestError
from .footprint import ALLOCATED_LINES
from .request import AnalysisRequest
from .units import format_bytes


@dataclass(frozen=True)
class Measurement:
    """What one real step on the GPU allocated and reserved, and the measured timeline."""

    device_name: str
    start_allocated_bytes: int  # memory_allocated() before the measured step (after warm-up)
    max_allocated_bytes: int  # max_memory_allocated() over the step
    max_reserved_bytes: int  # max_memory_reserved() over the step
    timeline_bytes: tuple[int, ...]  # allocated bytes after each allocator event of the step
    explanation: tuple[str, ...]  # the difference with the prediction, line by line


def measure_on_gpu(request: AnalysisRequest, fit=None, device_index: int = 0,
                   progress: Callable[[float, str], None] | None = None,
                   cancelled: Callable[[], bool] | None = None) -> Measurement:
    """One real step on CUDA device `device_index`; `fit` (the prediction) is explained against it."""
    import torch

    report = progress or (lambda fraction, message: None)
    if not torch.cuda.is_available():
        raise RequestError("cannot measure: no CUDA device is available to torch on this machine")
    from .step import build_scaler, run_step
    from .truth import build_real_step

    def check():
        if cancelled is not None and cancelled():
            raise CancelledError("measurement cancelled")

    with torch.cuda.device(device_index):
        report(0.05, "building the model on the GPU")
        step = build_real_step(request.replace(device="cuda"), "cuda")
        model, inputs, targets, optimizer = step.model, step.inputs, step.targets, step.optimizer
        scaler = build_scaler(request.amp, "cuda", request.mode, "cuda", request.amp_dtype)  # float16 AMP trains with one
        check()
        report(0.3, "warm-up step")
        run_step(model, list(inputs), targets, optimizer, mode=request.mode, amp=request.amp, device="cuda",
                 tensors_on="cuda", scaler=scaler, amp_dtype=request.amp_dtype)
        if optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        check()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        report(0.6, "measured step")
        torch.cuda.memory._record_memory_history(max_entries=1_000_000)
        try:
            run_step(model, list(inputs), targets, optimizer, mode=request.mode, amp=request.amp, device="cuda",
                     tensors_on="cuda", scaler=scaler, amp_dtype=request.amp_dtype)
            torch.cuda.synchronize()
            snapshot = torch.cuda.memory._snapshot()
        finally:
            torch.cuda.memory._record_memory_history(enabled=None)
        allocated = torch.cuda.max_memory_allocated()
        reserved = torch.cuda.max_memory_reserved()
        name = torch.cuda.get_device_name()
        del step, model, inputs, targets, optimizer, scaler
        torch.cuda.empty_cache()
    report(1.0, "done")
    timeline = measured_timeline(snapshot, start)
    return Measurement(name, start, allocated, reserved, timeline, explain(fit, start, allocated, reserved))


def measured_timeline(snapshot: dict, start_bytes: int) -> tuple[int, ...]:
    """Allocated bytes after each alloc/free in the snapshot's trace (device traces concatenated)."""
    live = start_bytes
    out = [live]
    for trace in snapshot.get("device_traces", []):
        for entry in trace:
            action = entry.get("action")
            if action == "alloc":
                live += entry["size"]
            elif action == "free_completed":
                live -= entry["size"]
            else:
                continue
            out.append(live)
    return tuple(out)


def explain(fit, start_bytes: int, max_allocated: int, max_reserved: int) -> tuple[str, ...]:
    """The measured figures beside the fit check's lines they correspond to."""
    lines = [f"measured: max allocated {format_bytes(max_allocated)}, max reserved {format_bytes(max_reserved)} "
             f"(allocator reserve {format_bytes(max_reserved - max_allocated)}); allocated before the step "
             f"{format_bytes(start_bytes)}"]
    if fit is None:
        return tuple(lines)
    by_key = {line.key: line for line in fit.lines}
    predicted_allocated = sum(by_key[k].bytes for k in ALLOCATED_LINES if k in by_key)
    lines.append(f"allocated: predicted {format_bytes(predicted_allocated)} (tensors + cuBLAS + workspaces + "
                 "block rounding), "
                 f"measured {format_bytes(max_allocated)}: {_delta(max_allocated, predicted_allocated)}")
    if "reserve" in by_key:
        lines.append(f"allocator reserve: predicted {format_bytes(by_key['reserve'].bytes)} "
                     f"({by_key['reserve'].source}), measured {format_bytes(max_reserved - max_allocated)}")
    lines.append("CUDA context and other processes are outside torch's allocator: compare with nvidia-smi")
    return tuple(lines)


def _delta(measured: int, predicted: int) -> str:
    if predicted <= 0:
        return "no prediction"
    return f"{100 * (predicted - measured) / measured:+.1f}% ({format_bytes(predicted - measured)})"
