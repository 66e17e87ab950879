"""Capacity planning with traces, never with real out-of-memory errors: the largest batch, square
resolution or sequence length that fits on a device, and sweeps of the footprint over any of them.

"Peak" here is the fit check's total (engine/footprint.py): the traced tensor peak plus every
other line, the figure compared with the capacity. For fixed shapes it is piecewise affine in the
batch size (every activation scales with it, parameters and optimizer state do not; the peak
moves between a few places in the step). So the search fits a line through what it has traced,
jumps to where the line meets the capacity, and keeps a bracket [largest fitting, smallest not
fitting] that every trace narrows; it stops when both ends are adjacent and traced, which makes
the answer exact with respect to the trace: peak(b) <= capacity < peak(b + 1). Resolution and
sequence length are searched the same way (against the area R^2 for a square resolution).
Measured: resnet50 train Adam against 24 GiB takes 4 traces (benchmarks/max_batch.py).

With gradient accumulation (a micro-batch m below the batch B) the traced step is one micro-step
of m samples, whose peak does not depend on B. So "the largest batch" then means the largest
*micro-batch* that fits with the number of accumulation steps k = ceil(B / m) held fixed, and the
global batch is k x that micro-batch (every micro-step full). A batch sweep likewise varies the
micro-batch with k fixed. Points and results then say `micro_batch`, never a bare "batch".
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from .analysis import Analysis
from .devices import DeviceInfo
from .errors import CancelledError, RequestError
from .footprint import Fit, fit_check
from .meta_cache import shared_kernel_cache
from .request import MAX_BATCH, AnalysisRequest
from .units import format_bytes

Progress = Callable[[float, str], None]
PARAMETERS = ("batch", "resolution", "seq")
WORDS = {"batch": "batch", "resolution": "resolution", "seq": "sequence length", "micro_batch": "micro-batch"}
MAX_RESOLUTION = 16384
MAX_SEQUENCE = 1 << 20


@dataclass(frozen=True)
class PlanPoint:
    """One traced configuration: the swept value, the fit check's total and the tensor peak."""

    parameter: str  # 'batch', 'resolution', 'seq', or 'micro_batch' (a batch search when accumulating)
    value: int
    peak_bytes: int  # the fit check's total: what is compared with the capacity
    tensor_peak_bytes: int
    capacity_bytes: int
    state: str  # 'fits', 'tight', 'does not fit'
    seconds: float
    accumulation_steps: int = 1  # held fixed when the parameter is 'micro_batch'

    @property
    def batch(self) -> int | None:
        """The global batch at this point (None for a shape parameter)."""
        return _global_batch(self.parameter, self.value, self.accumulation_steps)


@dataclass(frozen=True)
class Largest:
    """The largest value that fits, with the trace at it and at one more."""

    parameter: str
    value: int
    peak_bytes: int  # at value
    next_peak_bytes: int | None  # at value + 1 (None when value is the search limit)
    capacity_bytes: int
    fit: Fit  # the fit check at value
    analysis: Analysis  # the trace at value (what "apply" shows without tracing again)
    points: tuple[PlanPoint, ...]  # every trace, in the order they ran
    seconds: float
    limit_reached: bool = False
    accumulation_steps: int = 1  # held fixed when the parameter is 'micro_batch'

    @property
    def traces(self) -> int:
        return len(self.points)

    @property
    def batch(self) -> int | None:
        """The global batch at the answer (None for a shape parameter)."""
        return _global_batch(self.parameter, self.value, self.accumulation_steps)

    def request_changes(self) -> dict:
        """The request fields that applying a batch answer sets: the batch, and the micro-batch when
        accumulating (so the accumulation steps stay those searched)."""
        if self.parameter == "micro_batch":
            return {"batch": self.batch, "micro_batch": self.value}
        return {"batch": self.value}

    def value_text(self, value: int | None = None) -> str:
        """'batch 160 (micro-batch 40 x 4 steps)' or 'resolution 512' at `value` (default: the answer)."""
        value = self.value if value is None else value
        if self.parameter == "micro_batch":
            k = self.accumulation_steps
            return f"batch {k * value} (micro-batch {value} × {k} steps)"
        return f"{WORDS[self.parameter]} {value}"

    def describe(self) -> str:
        if self.parameter == "micro_batch":
            text = f"largest micro-batch: {self.value} × {self.accumulation_steps} steps = batch {self.batch}"
        else:
            text = f"largest {WORDS[self.parameter]}: {self.value}"
        text += f" ({format_bytes(self.peak_bytes)} of {format_bytes(self.capacity_bytes)})"
        if self.next_peak_bytes is not None:
            text += f"; {self.value_text(self.value + 1)} needs {format_bytes(self.next_peak_bytes)}"
        if self.limit_reached:
            text += f"; still fits at the search limit {self.value}"
        return text + f" [{self.traces} traces, {self.seconds:.1f} s]"


class DoesNotFitError(RequestError):
    """Even the smallest configuration is over the capacity."""


# ---- Public API
def max_batch(request: AnalysisRequest, device: DeviceInfo, overrides: Mapping[str, int] | None = None,
              progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> Largest:
    """The largest batch whose footprint fits `device`, shapes as in `request`. With a micro-batch
    below the batch: the largest micro-batch, the accumulation steps held (the module docstring)."""
    return _largest("batch", request, device, overrides, progress, cancelled)


def max_resolution(request: AnalysisRequest, device: DeviceInfo, overrides: Mapping[str, int] | None = None,
                   progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> Largest:
    """The largest square input (channels x R x R) that fits at the request's batch."""
    return _largest("resolution", request, device, overrides, progress, cancelled)


def max_sequence(request: AnalysisRequest, device: DeviceInfo, overrides: Mapping[str, int] | None = None,
                 progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> Largest:
    """The longest token sequence that fits at the request's batch (models taking token ids)."""
    return _largest("seq", request, device, overrides, progress, cancelled)


def sweep(request: AnalysisRequest, device: DeviceInfo, parameter: str, values, overrides=None,
          on_point: Callable[[PlanPoint], None] | None = None, progress: Progress | None = None,
          cancelled: Callable[[], bool] | None = None) -> tuple[PlanPoint, ...]:
    """Trace the step at each value; `on_point` receives each point as soon as it is computed. A
    batch sweep of a request with a micro-batch below its batch sweeps the micro-batch, the
    accumulation steps held (the points say 'micro_batch')."""
    values = list(values)
    if parameter not in PARAMETERS:
        raise RequestError(f"cannot sweep {parameter!r}: choose one of {', '.join(PARAMETERS)}")
    if not values:
        raise RequestError(f"no {WORDS[parameter]} values to sweep")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise RequestError(f"{WORDS[parameter]} values must be positive integers, got {v!r}")
    report = progress or (lambda fraction, message: None)
    planner = _Planner(parameter, request, device, overrides, cancelled)
    points = []
    with shared_kernel_cache():
        for i, v in enumerate(values):
            report(i / len(values), f"{WORDS[parameter]} {v} ({i + 1} of {len(values)})")
            point = planner.point(v)
            points.append(point)
            if on_point is not None:
                on_point(point)
    report(1.0, "done")
    return tuple(points)


# The configurations `compare_variants` traces by default: the levers DESIGN.md names (data type
# and AMP, optimizer, training vs inference), each a change from float32 + Adam training.
VARIANTS = (
    ("float32, Adam", {}),
    ("AMP (float16 autocast), Adam", {"amp": True}),
    ("bfloat16 weights, Adam", {"dtype": "bfloat16"}),
    ("float32, SGD momentum", {"optimizer": "momentum"}),
    ("float32, SGD", {"optimizer": "sgd"}),
    ("float32, inference", {"mode": "inference", "optimizer": "none"}),
)


@dataclass(frozen=True)
class VariantPoint:
    """One configuration of the comparison: its label, the fit check's total and verdict."""

    label: str
    request: AnalysisRequest
    peak_bytes: int
    tensor_peak_bytes: int
    capacity_bytes: int
    state: str


def compare_variants(request: AnalysisRequest, device: DeviceInfo, variants=VARIANTS, overrides=None,
                     on_point: Callable[[VariantPoint], None] | None = None, progress: Progress | None = None,
                     cancelled: Callable[[], bool] | None = None) -> tuple[VariantPoint, ...]:
    """The effect of dtype/AMP, optimizer and training vs inference at the request's shapes: each
    variant is `request` with its changes (from float32 training), traced and fit-checked."""
    from .pipeline import analyze

    report = progress or (lambda fraction, message: None)
    base = request.replace(dtype="float32", amp=False, mode="train", optimizer="adam",
                           device="cuda" if device.kind != "host" else request.device)
    out = []
    with shared_kernel_cache():
        for i, (label, changes) in enumerate(variants):
            if cancelled is not None and cancelled():
                raise CancelledError("comparison cancelled")
            report(i / len(variants), f"{label} ({i + 1} of {len(variants)})")
            variant = base.replace(**changes)
            analysis = analyze(variant, cancelled=cancelled)
            fit = fit_check(analysis, device, overrides)
            point = VariantPoint(label, variant, fit.total_bytes, analysis.peak.total_bytes, fit.capacity_bytes,
                                 fit.state)
            out.append(point)
            if on_point is not None:
                on_point(point)
    report(1.0, "done")
    return tuple(out)


def parse_values(text: str) -> tuple[str, list[int]]:
    """'batch=1,2,4,...,512' -> ('batch', [1, 2, 4, ..., 512]): '...' continues the doubling (or
    the step) of the two values before it up to the one after it."""
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or name not in PARAMETERS:
        raise RequestError(f"cannot read sweep {text!r}: write batch=1,2,4,...,512 (or resolution= / seq=)")
    items = [s.strip() for s in rest.split(",") if s.strip()]
    values: list[int] = []
    for i, item in enumerate(items):
        if item == "...":
            if len(values) < 2 or i + 1 >= len(items) or items[i + 1] == "...":
                raise RequestError(f"in {text!r}: '...' needs two values before it and one after it")
            continue
        try:
            v = int(item)
        except ValueError:
            raise RequestError(f"in {text!r}: {item!r} is not an integer") from None
        if v <= 0:
            raise RequestError(f"in {text!r}: values must be positive, got {v}")
        if i > 0 and items[i - 1] == "...":
            a, b = values[-2], values[-1]
            nxt = _continue(a, b)
            while nxt < v:
                values.append(nxt)
                nxt = _continue(values[-2], values[-1])
        values.append(v)
    if not values:
        raise RequestError(f"no values in sweep {text!r}")
    return name, values


# ---- Private API
def _continue(a: int, b: int) -> int:
    if a > 0 and b % a == 0 and b // a > 1:
        return b * (b // a)
    if b > a:
        return b + (b - a)
    raise RequestError(f"cannot continue {a}, {b} with '...': the values must grow")


class _Planner:
    """Traces one model at several values of one parameter, keeping the model and kernel memo."""

    def __init__(self, parameter, request: AnalysisRequest, device: DeviceInfo, overrides, cancelled):
        self.parameter, self.device, self.overrides, self.cancelled = parameter, device, overrides, cancelled
        if device.kind != "host" and request.device != "cuda":
            request = request.replace(device="cuda")  # a GPU plan uses CUDA's rules (see TargetDevice)
        self.request = request
        # A python file runs the user's code: each trace then runs in a child process that can be
        # stopped (engine/isolated.py), as the CLI and the window run it; other models are built once.
        self.isolated = request.source_kind == "python"
        if self.isolated:
            from .isolated import analyze_isolated

            first = analyze_isolated(request, cancelled=cancelled)
            # Token ids are not visible in an Analysis; an embedding layer says the input is tokens.
            name, shape = first.model_name, first.input_shape[1:]
            integer_input = any(layer.kind == "embedding" for layer in first.layers)
            self.loaded = None
        else:
            from .sources import load_model

            self.loaded = load_model(request.model)
            name, shape = self.loaded.name, request.input_shape or self.loaded.input_shape
            integer_input = self.loaded.input_dtype is not None and not self.loaded.input_dtype.is_floating_point
        self.name = name
        if cancelled is not None and cancelled():
            raise CancelledError("planning cancelled")
        if shape is None:
            raise RequestError(f"{name}: cannot tell the input shape; pass --input (e.g. 3x224x224)")
        self.base_shape = tuple(shape)
        if parameter == "resolution" and len(self.base_shape) != 3:
            raise RequestError(f"{name}: resolution applies to image inputs (channels x H x W); "
                               f"this model takes {'x'.join(map(str, self.base_shape))}")
        if parameter == "seq" and (len(self.base_shape) != 1 or not integer_input):
            raise RequestError(f"{name}: sequence length applies to models taking token ids "
                               f"(input shape [seq]); this model takes {'x'.join(map(str, self.base_shape))}")
        # Accumulating: a batch search varies the micro-batch, the accumulation steps held fixed.
        self.steps = 1
        if parameter == "batch" and request.micro_batch is not None:
            self.steps = -(-request.batch // request.micro_batch)
            if self.steps > 1:
                self.parameter = "micro_batch"
        self.fits: dict[int, Fit] = {}
        self.analyses: dict[int, Analysis] = {}
        self.static_bytes: dict[int, int] = {}  # parameters + buffers + optimizer state at the peak
        self.points: list[PlanPoint] = []

    def base_value(self) -> int:
        """The request's own resolution or sequence length, where a search starts."""
        return self.base_shape[-1]

    def request_for(self, value: int) -> AnalysisRequest:
        if self.parameter == "micro_batch":
            return self.request.replace(batch=self.steps * value, micro_batch=value)
        if self.parameter == "batch":  # a micro-batch equal to the batch follows it (one step)
            return self.request.replace(batch=value, micro_batch=None)
        if self.parameter == "resolution":
            return self.request.replace(input_shape=(self.base_shape[0], value, value))
        return self.request.replace(input_shape=(value,))

    def point(self, value: int) -> PlanPoint:
        from .levers import without_savings
        from .pipeline import analyze_loaded

        if self.cancelled is not None and self.cancelled():
            raise CancelledError("planning cancelled")
        started = time.perf_counter()
        if self.isolated:
            from .isolated import analyze_isolated

            analysis = analyze_isolated(self.request_for(value), cancelled=self.cancelled)
        else:
            try:
                with without_savings():  # the levers' extra trace without them: not for every point
                    analysis = analyze_loaded(self.loaded, self.request_for(value), lambda f, m: None,
                                              self.cancelled, started)
            finally:
                for p in self.loaded.module.parameters():  # the next trace starts with grads at None
                    p.grad = None
        fit = fit_check(analysis, self.device, self.overrides)
        self.fits[value] = fit
        self.analyses[value] = analysis
        b = analysis.peak.breakdown
        self.static_bytes[value] = b["parameters"] + b["buffers"] + b["optimizer_state"]
        if self.steps > 1:  # the earlier micro-steps' gradients do not grow with the micro-batch
            self.static_bytes[value] += b["gradients"]
        point = PlanPoint(self.parameter, value, fit.total_bytes, analysis.peak.total_bytes, fit.capacity_bytes,
                          fit.state, time.perf_counter() - started, self.steps)
        self.points.append(point)
        return point


def _largest(parameter, request, device, overrides, progress, cancelled) -> Largest:
    started = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    word = WORDS[parameter]
    report(0.0, f"largest {word}: building the model")
    planner = _Planner(parameter, request, device, overrides, cancelled)
    word = WORDS[planner.parameter]
    cap = device.capacity_bytes
    limit = {"batch": MAX_BATCH // planner.steps, "resolution": MAX_RESOLUTION, "seq": MAX_SEQUENCE}[parameter]
    if parameter == "seq" and planner.loaded is not None:  # a Hugging Face config's max_position_embeddings
        from .sources.hf_config import sequence_limit

        limit = min(limit, sequence_limit(planner.loaded) or limit)
    smallest = {"batch": 1, "resolution": 32, "seq": 1}[parameter]
    start = smallest if parameter == "batch" else planner.base_value()
    with shared_kernel_cache():
        peaks: dict[int, int] = {}

        def trace(v: int) -> int:
            report(min(0.95, 0.05 + 0.15 * len(peaks)), f"largest {word}: tracing {word} {v}")
            peaks[v] = planner.point(v).peak_bytes
            return peaks[v]

        lo, hi = None, None  # lo fits; hi (when known) does not
        if trace(start) <= cap:
            lo = start
        else:
            hi = start
            if start > smallest and trace(smallest) <= cap:
                lo = smallest
        if lo is None:
            steps = f" ({planner.steps} accumulation steps)" if planner.steps > 1 else ""
            raise DoesNotFitError(
                f"{planner.name} does not fit even at {word} {smallest}{steps}: needs {format_bytes(peaks[smallest])} "
                f"({peaks[smallest]:,} bytes); {device.name} has {format_bytes(cap)}")
        search = _Bracket(planner, peaks, cap)
        while hi is None or hi > lo + 1:
            guess = min(search.next_guess(lo, hi), limit)
            if guess in peaks:  # only the limit can repeat: it fits there
                break
            fits = trace(guess) <= cap
            search.moved("lo" if fits else "hi")
            lo, hi = (guess, hi) if fits else (lo, guess)
    report(1.0, "done")
    return Largest(planner.parameter, lo, peaks[lo], peaks.get(lo + 1), cap, planner.fits[lo], planner.analyses[lo],
                   tuple(planner.points), time.perf_counter() - started, limit_reached=hi is None,
                   accumulation_steps=planner.steps)


class _Bracket:
    """Where to trace next: where the line through the traced points meets the capacity.

    Lines are drawn against the batch, the sequence length, or the *area* for a square resolution
    (activations grow with R^2), where the peak is close to affine. Before any trace has failed
    to fit, the line goes through the two largest traces (one batch trace: a slope estimated from
    it, `_first_slope`; one shape trace: double it). Then the line joins the bracket's ends
    [largest fitting, smallest not fitting] (regula falsi, kept strictly inside the bracket, so
    every trace shrinks it), with the Illinois rule: when the same end moves twice in a row, the
    other end's weight halves, so a bend in the curve cannot make the search creep from one side.
    A fitting end exactly at the capacity (the reserve is a step function, and a capacity can be
    one of its steps) gives the line no slope to follow: the bracket is then bisected.
    """

    def __init__(self, planner: _Planner, peaks: dict[int, int], cap: int):
        self.planner, self.peaks, self.cap = planner, peaks, cap
        self.weights = {"lo": 1.0, "hi": 1.0}
        self.last: str | None = None

    def x(self, v: int) -> int:
        return v * v if self.planner.parameter == "resolution" else v

    def next_guess(self, lo: int, hi: int | None) -> int:
        peaks, cap, x = self.peaks, self.cap, self.x
        if hi is not None:
            f_lo = (peaks[lo] - cap) * self.weights["lo"]  # <= 0
            f_hi = (peaks[hi] - cap) * self.weights["hi"]  # > 0
            if f_lo == 0:  # lo sits exactly at the capacity (a plateau of the reserve's steps): the
                target = (x(lo) + x(hi)) / 2  # secant would creep from it one value a trace; bisect
            else:
                target = x(lo) + (x(hi) - x(lo)) * -f_lo / (f_hi - f_lo)
            return min(max(_inverse(self.planner, target), lo + 1), hi - 1)
        known = sorted(peaks)
        if len(known) >= 2:
            a, b = known[-2], known[-1]
            slope = (peaks[b] - peaks[a]) / (x(b) - x(a))
        elif self.planner.parameter in ("batch", "micro_batch"):
            slope = _first_slope(self.planner, lo)
        else:
            return 2 * lo
        if slope <= 0:
            return lo * 16
        return max(_inverse(self.planner, x(lo) + (cap - peaks[lo]) / slope), lo + 1)

    def moved(self, end: str) -> None:
        """`end` ('lo' or 'hi') was just replaced by a new trace."""
        other = "hi" if end == "lo" else "lo"
        self.weights[end] = 1.0
        if self.last == end:
            self.weights[other] /= 2
        self.last = end


def _global_batch(parameter: str, value: int, steps: int) -> int | None:
    if parameter == "micro_batch":
        return steps * value
    return value if parameter == "batch" else None


def _inverse(planner: _Planner, target: float) -> int:
    if planner.parameter == "resolution":
        return math.isqrt(max(0, int(target)))
    return int(target)


def _first_slope(planner: _Planner, value: int) -> float:
    """Bytes per sample from one trace: what the peak holds beyond parameters, buffers and
    optimizer state grows with the batch. Gradients are counted as growing too, which
    over-estimates the slope: the first jump lands short, the next secant through two real points
    is close."""
    return max(1, planner.fits[value].line("tensors").bytes - planner.static_bytes[value]) / value
