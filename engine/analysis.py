"""The plain, frozen data every view, export and the CLI reads. No torch objects live here.

Events are kept as numpy columns (a million events would be a million objects otherwise); the
curves, peak and lifetimes are derived from them once, in `engine/timeline.py`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import numpy as np

from .categories import CATEGORIES, PHASES
from .request import AnalysisRequest

if TYPE_CHECKING:
    from .cuda_allocator import CudaMemory


@dataclass(frozen=True)
class MemoryEvent:
    """One allocation (`nbytes > 0`) or free (`nbytes < 0`) of a storage during the step."""

    index: int
    nbytes: int
    storage: int
    category: str
    module: str
    phase: str

    @property
    def kind(self) -> str:
        return "alloc" if self.nbytes > 0 else "free"


@dataclass(frozen=True, eq=False)
class EventLog:
    """Every allocation and free, in order. Column i is event index i.

    `nbytes` is signed (+alloc, -free), already rounded for the target device. `category`,
    `module` and `phase` are codes into CATEGORIES, `modules` and PHASES.
    """

    nbytes: np.ndarray  # int64
    storage: np.ndarray  # int64: serial number of the storage, unique within the trace
    category: np.ndarray  # int8
    module: np.ndarray  # int32
    phase: np.ndarray  # int8
    modules: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.nbytes.shape[0])

    def event(self, i: int) -> MemoryEvent:
        return MemoryEvent(
            index=i,
            nbytes=int(self.nbytes[i]),
            storage=int(self.storage[i]),
            category=CATEGORIES[self.category[i]],
            module=self.modules[self.module[i]],
            phase=PHASES[self.phase[i]],
        )

    def __iter__(self) -> Iterator[MemoryEvent]:
        return (self.event(i) for i in range(len(self)))


@dataclass(frozen=True, eq=False)
class Timeline:
    """Live bytes per category, sampled after each event.

    Point 0 is the state before the first event (what is live at the start); point i+1 is the
    state after event i, so every array has `len(events) + 1` entries.
    """

    curves: dict[str, np.ndarray]  # category -> int64 live bytes
    total: np.ndarray
    phase_spans: tuple[tuple[str, int, int], ...]  # (phase, first point, last point) in order

    def __len__(self) -> int:
        return int(self.total.shape[0])

    def live_at(self, point: int) -> dict[str, int]:
        return {c: int(self.curves[c][point]) for c in CATEGORIES}

    def peak_points(self, start: int = 0, stop: int | None = None, max_points: int = 2000) -> np.ndarray:
        """Point indices in [start, stop) thinned to about `max_points`, keeping in each bucket the
        point where the total is highest (peaks survive any zoom level), plus both ends."""
        stop = len(self) if stop is None else min(stop, len(self))
        start = max(0, min(start, stop))
        n = stop - start
        if n <= max_points:
            return np.arange(start, stop)
        width = -(-n // max(1, max_points - 3))  # room for both ends and a tail bucket
        buckets = n // width
        body = self.total[start:start + buckets * width].reshape(buckets, width)
        picks = start + np.arange(buckets) * width + np.argmax(body, axis=1)
        tail = self.total[start + buckets * width:stop]
        if tail.size:
            picks = np.append(picks, start + buckets * width + int(np.argmax(tail)))
        return np.unique(np.concatenate([[start], picks, [stop - 1]]))

    def downsampled(self, max_points: int = 2000) -> dict[str, list[int]]:
        """Peak-preserving downsampling of the whole step (see `peak_points`)."""
        picks = self.peak_points(max_points=max_points)
        out = {"point": picks.tolist()}
        out.update({c: self.curves[c][picks].tolist() for c in CATEGORIES})
        out["total"] = self.total[picks].tolist()
        return out


@dataclass(frozen=True)
class Peak:
    """The most bytes live at any moment of the step, and what they were."""

    point: int  # timeline point (0 = before the first event)
    total_bytes: int
    breakdown: dict[str, int]
    phase: str
    module: str


@dataclass(frozen=True)
class Lifetime:
    """One storage allocated during the step: when it was born and when it died.

    `free_point` is the timeline point after its free event, or `len(timeline)` if it outlives
    the step (gradients, new optimizer state).
    """

    storage: int
    nbytes: int
    category: str
    module: str
    alloc_point: int
    free_point: int
    alloc_phase: str

    @property
    def recomputed(self) -> bool:
        """An activation made in the backward: a checkpointed block's forward run again, which
        saves it a second time, for the short while its backward needs it."""
        return self.category == "activations" and self.alloc_phase == "backward"


@dataclass(frozen=True)
class Layer:
    """One call of a leaf module in execution order (a module called twice gives two layers)."""

    index: int
    name: str  # dotted module path; repeated calls get a '#2' suffix
    type: str  # class name
    kind: str  # one of LAYER_KINDS
    output_shape: tuple[int, ...]
    params: int
    param_bytes: int
    output_bytes: int
    saved_bytes: int  # bytes allocated by this layer and kept for backward
    textbook_bytes: int  # the article's feature-map figure for this layer (0 if not counted)
    forward_span: tuple[int, int]  # timeline points covering the call

    @property
    def parent(self) -> str:
        return self.name.rsplit(".", 1)[0] if "." in self.name else ""


@dataclass(frozen=True)
class Textbook:
    """The article's arithmetic: params x bytes, feature maps H x W x C x batch x bytes."""

    parameters_bytes: int
    gradients_bytes: int
    optimizer_bytes: int
    feature_map_bytes: int  # all layer outputs counted by the article
    peak_bytes: int
    formula: str


@dataclass(frozen=True)
class NotModelled:
    """A labelled line for what the trace cannot see; never folded into the tensor figure."""

    label: str
    bytes: int | None  # None: known to exist, size not estimated
    note: str


@dataclass(frozen=True, eq=False)
class Analysis:
    """Everything one analysis found. Built once by `engine.analyze`, read by every view."""

    request: AnalysisRequest
    model_name: str
    source: str  # 'torchvision', 'spec', 'python'
    input_shape: tuple[int, ...]  # with the batch dimension
    parameters: int
    parameter_bytes: int
    layers: tuple[Layer, ...]
    events: EventLog
    timeline: Timeline
    peak: Peak
    lifetimes: tuple[Lifetime, ...]
    textbook: Textbook
    not_modelled: tuple[NotModelled, ...]
    warnings: tuple[str, ...]
    analysis_seconds: float
    engine: str = field(default="")  # how it was traced, e.g. 'meta tensors, torch 2.14.1'
    cuda: "CudaMemory | None" = None  # --device cuda: library workspaces and the simulated allocator (issue 7)
    levers: "Levers | None" = None  # checkpointing, freezing, micro-batches (engine/levers.py)
    # Issue 12: per-rank figures of a distributed step (engine/distributed/summary.py); None on one device.
    distributed: object | None = None

    def layer_named(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)


@dataclass(frozen=True)
class Checkpointing:
    """What activation checkpointing did to the step (engine/levers.py)."""

    blocks: tuple[str, ...]  # the modules whose forward ran under torch.utils.checkpoint
    baseline_peak_bytes: int  # the same request without checkpointing
    saved_bytes: int  # baseline_peak_bytes minus this step's peak
    recompute_flops: int  # the forwards run again in backward (FlopCounterMode)
    step_flops: int  # the step without checkpointing: the baseline the overhead is a share of

    @property
    def recompute_pct(self) -> float:
        return 100.0 * self.recompute_flops / self.step_flops if self.step_flops else 0.0


@dataclass(frozen=True)
class Levers:
    """The levers pulled for this analysis: checkpointing, frozen parameters, micro-batches."""

    blocks: tuple[str, ...] = ()  # the model's blocks (engine/checkpointing.py): what presets count
    checkpoint: Checkpointing | None = None
    frozen_parameters: int = 0  # parameter elements frozen by the request's patterns
    frozen_tensors: int = 0  # parameter tensors frozen
    micro_batch: int | None = None  # samples per micro-step when accumulating gradients
    accumulation_steps: int = 1  # micro-steps per optimizer step (global batch / micro_batch)
    accumulated_gradient_bytes: int = 0  # gradients live before the traced micro-step's backward
    trainable_parameters: int = 0  # parameter elements that got gradients (training)
    adapter_parameters: int = 0  # LoRA adapter elements (the only trainable ones with LoRA)
    without_levers_peak_bytes: int | None = None  # the same request with no lever pulled (None: not traced)
