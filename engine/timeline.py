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


def layer_table(raw: RawTrace, lifetimes_: tuple[Lifetime, ...], model=None) -> tuple[Layer, ...]:
    """Leaf-module calls in execution order with their own numbers; the rows' parameters sum to
    the model's.

    Each parameter is counted once, in the first row (execution order) whose module holds it: a
    tied weight (embedding and output head) is counted under the layer that uses it first, and
    the later layer shows 0. A parameter held directly by a parent module (ViT's class token,
    positional embedding) gets a row of its own, named after it (`encoder.pos_embedding`, type
    'Parameter'), placed where its module starts; so does a parameter no layer of the step
    uses, at the end of the table.
    """
    saved: dict[int, int] = {}
    for life in lifetimes_:
        if life.category == "activations":
            call = raw.storage_call.get(life.storage)
            if call is not None:
                saved[call] = saved.get(call, 0) + life.nbytes
    counted: set[int] = set()
    rows: list[tuple[tuple, dict]] = []
    for call in raw.calls:
        if call.leaf:
            own = [p for p in call.module.parameters() if id(p) not in counted]
            counted.update(id(p) for p in own)
            kind = layer_kind(call.module)
            rows.append(((call.order, 1), dict(
                name=call.name, type=type(call.module).__name__, kind=kind,
                output_shape=call.output_shape, params=sum(p.numel() for p in own),
                param_bytes=sum(p.numel() * p.element_size() for p in own),
                output_bytes=call.output_bytes, saved_bytes=saved.get(call.order, 0),
                textbook_bytes=call.output_bytes if kind in TEXTBOOK_KINDS else 0,
                forward_span=(call.start_point, max(call.end_point, call.start_point)),
            )))
    if model is not None:
        first_call = {}
        for call in raw.calls:
            first_call.setdefault(id(call.module), call)
        end = len(raw.nbytes)
        for i, (name, p) in enumerate(model.named_parameters()):
            if id(p) in counted:
                continue
            counted.add(id(p))
            holder = model.get_submodule(name.rpartition(".")[0])
            call = first_call.get(id(holder))
            key = (call.order, 0, i) if call is not None else (float("inf"), 0, i)
            span = (call.start_point, call.start_point) if call is not None else (end, end)
            rows.append((key, dict(
                name=name, type="Parameter", kind="other", output_shape=(), params=p.numel(),
                param_bytes=p.numel() * p.element_size(), output_bytes=0, saved_bytes=0,
                textbook_bytes=0, forward_span=span,
            )))
    rows.sort(key=lambda row: row[0])
    return tuple(Layer(index=i, **fields) for i, (_, fields) in enumerate(rows))
