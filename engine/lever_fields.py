"""The levers' plain side, without torch (the window imports it at start-up): the request fields'
checks and the checkpoint presets' words, the summary lines and the JSON keys of an analysis."""
from __future__ import annotations

from .errors import RequestError
from .units import format_bytes

EVERY_BLOCK = "every-block"
FIT = "fit"


def preset_step(word: str) -> int | None:
    """'every-block' -> 1, 'every-3-blocks' -> 3; None when `word` is not a preset."""
    if word == EVERY_BLOCK:
        return 1
    parts = word.split("-")
    if len(parts) == 3 and parts[0] == "every" and parts[2] == "blocks" and parts[1].isdigit() and int(parts[1]) > 0:
        return int(parts[1])
    return None


def is_preset(word: str) -> bool:
    return preset_step(word) is not None or word == FIT


def check_request_levers(request) -> None:
    """Validate the lever fields of an `AnalysisRequest` (what needs no model)."""
    for field in ("checkpoint", "freeze"):
        value = getattr(request, field)
        if isinstance(value, str):
            value = tuple(v.strip() for v in value.split(",") if v.strip())
        value = tuple(value)
        if any(not isinstance(v, str) or not v.strip() for v in value):
            raise RequestError(f"{field} must be names or patterns, got {value!r}")
        object.__setattr__(request, field, tuple(v.strip() for v in value))
    spec = request.checkpoint
    if any(is_preset(word) for word in spec) and len(spec) > 1:
        raise RequestError(f"checkpoint: a preset ({', '.join(w for w in spec if is_preset(w))}) "
                           "stands alone; do not mix it with module names")
    if spec == (FIT,):
        raise RequestError("checkpoint 'fit' searches against a capacity: give --gpu or --capacity with it")
    m = request.micro_batch
    if m is not None:
        if isinstance(m, bool) or not isinstance(m, int) or m <= 0:
            raise RequestError(f"micro-batch must be a positive integer, got {m!r}")
        if m > request.batch:
            raise RequestError(f"micro-batch {m} is larger than the batch {request.batch}: a micro-step is a "
                               "part of the global batch")


def summary_lines(analysis: Analysis, fmt=format_bytes) -> list[str]:
    """One line per lever pulled, e.g. 'checkpointing 12 blocks: −3.1 GiB, +24% compute'."""
    levers = analysis.levers
    if levers is None:
        return []
    lines = []
    c = levers.checkpoint
    if c is not None:
        n = len(c.blocks)
        sign = "−" if c.saved_bytes >= 0 else "+"
        lines.append(f"checkpointing {n} block{'s' if n != 1 else ''}: {sign}{fmt(abs(c.saved_bytes))}, "
                     f"+{c.recompute_pct:.0f}% compute")
    if levers.frozen_tensors:
        lines.append(f"frozen: {levers.frozen_parameters:,} parameters in {levers.frozen_tensors} tensors "
                     "(no gradient, no optimizer state)")
    if levers.micro_batch:
        last = analysis.request.batch % levers.micro_batch
        steps = (f"{levers.accumulation_steps} steps (the last of {last} samples: a full one is traced, an upper "
                 "bound for it)" if last else f"{levers.accumulation_steps} steps")
        lines.append(f"micro-batch {levers.micro_batch} × {steps}: a micro-step with "
                     f"{fmt(levers.accumulated_gradient_bytes)} of accumulated gradients live and the optimizer step")
    return lines


RECOMPUTED_NOTE = "checkpointed: activations recomputed in backward"


def checkpointed_layers(analysis) -> dict[str, str]:
    """Layer name -> the checkpointed module holding it (the module itself, or an ancestor), for
    every layer whose forward ran under torch.utils.checkpoint; empty without checkpointing.
    The views mark these layers; which they are is decided here, from the analysis."""
    levers = analysis.levers
    if levers is None or levers.checkpoint is None:
        return {}
    out = {}
    for layer in analysis.layers:
        path = layer.name.split("#", 1)[0]
        for block in levers.checkpoint.blocks:
            if path == block or path.startswith(block + "."):
                out[layer.name] = block
                break
    return out


def json_fields(analysis: Analysis) -> dict:
    """The levers' keys of `analyze --json` (engine/report.py)."""
    levers = analysis.levers
    if levers is None:
        from .analysis import Levers

        levers = Levers()
    c = levers.checkpoint
    return {
        "model_blocks": list(levers.blocks),
        "checkpoint": None if c is None else {
            "blocks": list(c.blocks), "baseline_peak_bytes": c.baseline_peak_bytes, "saved_bytes": c.saved_bytes,
            "recompute_flops": c.recompute_flops, "step_flops": c.step_flops,
            "recompute_pct": round(c.recompute_pct, 3)},
        "frozen_parameters": levers.frozen_parameters,
        "frozen_tensors": levers.frozen_tensors,
        "micro_batch": None if levers.micro_batch is None else {
            "size": levers.micro_batch, "steps": levers.accumulation_steps,
            "last_size": analysis.request.batch - (levers.accumulation_steps - 1) * levers.micro_batch,
            "accumulated_gradient_bytes": levers.accumulated_gradient_bytes},
    }
