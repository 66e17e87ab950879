"""From recorded events to what the views read: curves, peak, lifetimes, the layer table."""
from __future__ import annotations

import numpy as np

from .analysis import EventLog, Layer, Lifetime, Peak, Timeline
from .categories import CATEGORIES, PHASES
from .layer_kinds import TEXTBOOK_KINDS, layer_kind
from .tracer import RawTrace


def event_log(raw: RawTrace) -> EventLog:
    return EventLog(
        nbytes=raw.nbytes, storage=raw.storage, category=raw.category,
        module=raw.module, phase=raw.phase, modules=raw.modules,
    )


def build_timeline(raw: RawTrace) -> Timeline:
    curves = {}
    for code, cat in enumerate(CATEGORIES):
        deltas = np.where(raw.category == code, raw.nbytes, 0)
        curve = np.empty(len(deltas) + 1, dtype=np.int64)
        curve[0] = raw.initial[cat]
        np.cumsum(deltas, out=curve[1:])
        curve[1:] += raw.initial[cat]
        curves[cat] = curve
    total = np.sum([curves[c] for c in CATEGORIES], axis=0)
    n = len(raw.nbytes)
    spans = []
    for i, (phase, start) in enumerate(raw.phase_starts):
        end = raw.phase_starts[i + 1][1] if i + 1 < len(raw.phase_starts) else n
        spans.append((phase, start, end))
    return Timeline(curves=curves, total=total, phase_spans=tuple(spans))


def find_peak(timeline: Timeline, events: EventLog) -> Peak:
    point = int(np.argmax(timeline.total))  # the first moment the maximum is reached
    if point == 0:
        phase, module = "forward", "(start)"
    else:
        phase = PHASES[events.phase[point - 1]]
        module = events.modules[events.module[point - 1]]
    return Peak(
        point=point,
        total_bytes=int(timeline.total[point]),
        breakdown=timeline.live_at(point),
        phase=phase,
        module=module,
    )


def lifetimes(raw: RawTrace) -> tuple[Lifetime, ...]:
    """One bar per storage born in the step, from its allocation to its free (or the end)."""
    n = len(raw.nbytes)
    idx = np.arange(n)
    allocs = raw.nbytes > 0
    frees = ~allocs
    free_at = dict(zip(raw.storage[frees].tolist(), idx[frees].tolist()))
    out = []
    for i, serial, nbytes, module, phase in zip(
        idx[allocs].tolist(), raw.storage[allocs].tolist(), raw.nbytes[allocs].tolist(),
        raw.module[allocs].tolist(), raw.phase[allocs].tolist(),
    ):
        f = free_at.get(serial)
        out.append(Lifetime(
            storage=serial, nbytes=nbytes, category=raw.storage_category[serial],
            module=raw.modules[module], alloc_point=i + 1,
            free_point=(f + 1) if f is not None else n + 1, alloc_phase=PHASES[phase],
        ))
    return tuple(out)


def layer_table(raw: RawTrace, lifetimes_: tuple[Lifetime, ...]) -> tuple[Layer, ...]:
    """Leaf-module calls in execution order with their own numbers."""
    saved: dict[int, int] = {}
    for life in lifetimes_:
        if life.category == "activations":
            call = raw.storage_call.get(life.storage)
            if call is not None:
                saved[call] = saved.get(call, 0) + life.nbytes
    layers = []
    for call in sorted((c for c in raw.calls if c.leaf), key=lambda c: c.order):
        first_call = "#" not in call.name
        params = sum(p.numel() for p in call.module.parameters()) if first_call else 0
        param_bytes = sum(p.numel() * p.element_size() for p in call.module.parameters()) if first_call else 0
        kind = layer_kind(call.module)
        layers.append(Layer(
            index=len(layers), name=call.name, type=type(call.module).__name__, kind=kind,
            output_shape=call.output_shape, params=params, param_bytes=param_bytes,
            output_bytes=call.output_bytes, saved_bytes=saved.get(call.order, 0),
            textbook_bytes=call.output_bytes if kind in TEXTBOOK_KINDS else 0,
            forward_span=(call.start_point, max(call.end_point, call.start_point)),
        ))
    return tuple(layers)
