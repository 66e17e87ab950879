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


def check_kv_cache(request) -> None:
    """A KV cache is what an inference prefill of a Hugging Face language model keeps."""
    if not isinstance(request.kv_cache, bool):
        raise RequestError(f"kv_cache must be true or false, got {request.kv_cache!r}")
    if not request.kv_cache:
        return
    if request.mode != "inference":
        raise RequestError("--kv-cache: a KV cache is kept by inference (a prefill for generation); a training "
                           "step keeps none: use --mode inference")
    if request.source_kind != "hf":
        raise RequestError(f"--kv-cache applies to Hugging Face language models (a config.json or a folder holding "
                           f"one); '{request.model}' is a {request.source_kind} model")


def summary_lines(analysis: Analysis, fmt=format_bytes) -> list[str]:
    """One line per lever pulled, e.g. 'checkpointing 12 blocks: −3.1 GiB, +24% compute', and what
    they saved: on the lever's own line when it is the only one, else a line for all of them
    ('levers together: −5.2 GiB (peak 9.8 GiB without them)'), each from a trace without it."""
    from .lora import describe as lora_text

    levers = analysis.levers
    if levers is None:
        return []
    lines = []
    without = levers.without_levers_peak_bytes
    saved = None if without is None else without - analysis.peak.total_bytes
    pulled = [levers.checkpoint is not None, bool(levers.frozen_tensors), bool(levers.micro_batch),
              bool(levers.adapter_parameters) and analysis.request.mode == "train"]
    own = _signed(saved, fmt) if saved is not None and sum(pulled) == 1 else ""  # one lever: its own saving
    c = levers.checkpoint
    if c is not None:
        n = len(c.blocks)
        lines.append(f"checkpointing {n} block{'s' if n != 1 else ''}: {_signed(c.saved_bytes, fmt)}, "
                     f"+{c.recompute_pct:.0f}% compute")
    if (lora := lora_text(analysis.request)) is not None:
        trained = (f"; {levers.adapter_parameters:,} adapter parameters trained "
                   f"({_share(levers.adapter_parameters, analysis.parameters)} of {analysis.parameters:,})"
                   if levers.adapter_parameters and analysis.request.mode == "train" else "")
        lines.append(lora + trained + (f"; vs full fine-tuning: {own}" if own and pulled[3] else ""))
    if levers.frozen_tensors:
        lines.append(f"frozen: {levers.frozen_parameters:,} parameters in {levers.frozen_tensors} tensors "
                     f"(no gradient, no optimizer state){f': {own}' if own and pulled[1] else ''}")
    if levers.micro_batch:
        last = analysis.request.batch % levers.micro_batch
        steps = (f"{levers.accumulation_steps} steps (the last of {last} samples: a full one is traced, an upper "
                 "bound for it)" if last else f"{levers.accumulation_steps} steps")
        whole = f"; vs batch {analysis.request.batch} in one step: {own}" if own and pulled[2] else ""
        lines.append(f"micro-batch {levers.micro_batch} × {steps}: a micro-step with "
                     f"{fmt(levers.accumulated_gradient_bytes)} of accumulated gradients live and the optimizer "
                     f"step{whole}")
    if saved is not None and sum(pulled) > 1:
        lines.append(f"levers together: {_signed(saved, fmt)} (peak {fmt(without)} without them)")
    if analysis.request.kv_cache:
        lines.append(KV_CACHE_NOTE)
    return lines


def card_lines(analysis: Analysis, fmt=format_bytes) -> list[str]:
    """The same levers in a few words each, for the window's summary card (its tooltip holds
    `summary_lines`): 'checkpointing 12 blocks: −3.1 GiB, +24% compute', 'LoRA rank 8: 0.1% trained'."""
    levers = analysis.levers
    if levers is None:
        return []
    without = levers.without_levers_peak_bytes
    saved = None if without is None else without - analysis.peak.total_bytes
    training = analysis.request.mode == "train"
    pulled = [levers.checkpoint is not None, bool(levers.frozen_tensors), bool(levers.micro_batch),
              bool(levers.adapter_parameters) and training]
    own = f": {_signed(saved, fmt)}" if saved is not None and sum(pulled) == 1 else ""
    lines = []
    c = levers.checkpoint
    if c is not None:
        n = len(c.blocks)
        lines.append(f"checkpointing {n} block{'s' if n != 1 else ''}: {_signed(c.saved_bytes, fmt)}, "
                     f"+{c.recompute_pct:.0f}% compute")
    if analysis.request.lora_rank:
        trained = (f", {_share(levers.adapter_parameters, analysis.parameters)} trained"
                   if levers.adapter_parameters and training else "")
        lines.append(f"LoRA rank {analysis.request.lora_rank}{trained}{own if pulled[3] else ''}")
    if levers.frozen_tensors:
        lines.append(f"frozen {levers.frozen_parameters:,} parameters{own if pulled[1] else ''}")
    if levers.micro_batch:
        lines.append(f"micro-batch {levers.micro_batch} × {levers.accumulation_steps} steps{own if pulled[2] else ''}")
    if saved is not None and sum(pulled) > 1:
        lines.append(f"together: {_signed(saved, fmt)} (peak {fmt(without)} without)")
    if analysis.request.kv_cache:
        lines.append("KV cache kept (prefill)")
    return lines


def _signed(nbytes: int, fmt) -> str:
    """'−3.1 GiB' for bytes saved, '+0.2 GiB' for bytes added."""
    return f"{'−' if nbytes >= 0 else '+'}{fmt(abs(nbytes))}"


def _share(part: int, whole: int) -> str:
    pct = 100.0 * part / whole if whole else 0.0
    return f"{pct:.2g}%" if pct < 10 else f"{pct:.0f}%"


RECOMPUTED_NOTE = "checkpointed: activations recomputed in backward"
KV_CACHE_NOTE = "KV cache kept: a prefill, every layer's keys and values live until the forward returns"


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
        "trainable_parameters": levers.trainable_parameters,
        "lora_adapter_parameters": levers.adapter_parameters,
        "without_levers_peak_bytes": levers.without_levers_peak_bytes,
        "micro_batch": None if levers.micro_batch is None else {
            "size": levers.micro_batch, "steps": levers.accumulation_steps,
            "last_size": analysis.request.batch - (levers.accumulation_steps - 1) * levers.micro_batch,
            "accumulated_gradient_bytes": levers.accumulated_gradient_bytes},
    }
