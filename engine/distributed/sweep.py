"""Peak per GPU against the number of GPUs: the table people bring to a planning meeting.

One distributed analysis per world size (1, 2, 4, ... 64 by default) of the same request, with
the planners' contract: `progress(fraction, message)`, `cancelled()`, `on_point(point)`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from ..errors import CancelledError, RequestError

WORLD_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class WorldSizePoint:
    world_size: int
    peak_bytes: int  # the fullest rank's peak
    model_state_bytes: int  # parameters + gradients + optimizer state that rank holds
    communication_bytes: int  # collective buffers live at its peak
    seconds: float
    not_possible: str = ""  # why this world size cannot run the strategy (a layer that does not divide); no figures


def world_size_sweep(request, world_sizes=WORLD_SIZES, progress=None, cancelled=None, on_point=None,
                     loaded=None) -> list[WorldSizePoint]:
    """Trace `request` at each world size (its strategy, everything else unchanged)."""
    from ..pipeline import analyze_loaded
    from ..sources import load_model
    from .tensor_parallel import IndivisibleError

    if request.strategy == "single":
        raise RequestError("a world-size sweep needs a distributed strategy (ddp, fsdp, zero1 ...), not 'single'")
    report = progress or (lambda fraction, message: None)
    loaded = loaded or load_model(request.model, cancelled)
    points = []
    for i, n in enumerate(world_sizes):
        if cancelled is not None and cancelled():
            raise CancelledError("sweep cancelled")
        report(i / len(world_sizes), f"{request.strategy} over {n} ranks")
        started = time.perf_counter()
        try:
            analysis = analyze_loaded(loaded, request.replace(world_size=n), lambda f, m: None, cancelled, started)
        except IndivisibleError as e:  # tensor parallelism over a count the layers do not divide by: say, go on
            point = WorldSizePoint(n, 0, 0, 0, time.perf_counter() - started, not_possible=str(e))
            points.append(point)
            if on_point is not None:
                on_point(point)
            continue
        d = analysis.distributed
        fullest = max(d.ranks, key=lambda t: t.peak_bytes)
        point = WorldSizePoint(n, d.max_peak_bytes, sum(dict(fullest.model_state).values()),
                               d.communication_at_peak_bytes, time.perf_counter() - started)
        points.append(point)
        if on_point is not None:
            on_point(point)
    report(1.0, "done")
    return points
