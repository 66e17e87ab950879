"""The lever fields of an `AnalysisRequest`, checked without torch (the window imports requests at
start-up): the checkpoint presets' words, and what a request alone can tell is wrong."""
from __future__ import annotations

from .errors import RequestError

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
        if request.batch % m:
            divisors = [d for d in range(1, request.batch + 1) if request.batch % d == 0]
            shown = ", ".join(map(str, divisors[:12])) + (", …" if len(divisors) > 12 else "")
            raise RequestError(f"batch {request.batch} is not a multiple of micro-batch {m}: the last micro-step "
                               f"would hold {request.batch % m} samples; choose one of {shown}")
