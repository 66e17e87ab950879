"""Does it fit: the whole footprint of a step on a device, as labelled lines, against its capacity.

DESIGN.md, "the footprint on a device": traced tensor peak -> allocated peak (+ cuBLAS workspace,
+ cuDNN/library workspaces, + whole blocks beyond the bytes asked for) -> reserved peak (+ the
caching allocator's reserve above what is allocated) -> device total (+ CUDA context, + memory
other processes hold). Every line carries its bytes and where they come from (traced, simulated,
measured, a measured table, a default); lines that are not modelled exactly can be overridden by
the user, and no line is folded into another.

For a step traced for CUDA the cuBLAS/cuBLASLt workspaces are traced tensors (in the 'tensors'
line) and the allocator's lines are simulated (engine/cuda_allocator.py): 'rounding', the whole
blocks it hands out beyond the bytes asked for (max_memory_allocated counts block sizes), and
'reserve', the segments' peak above that. Over the capacity the simulation is rerun within it,
as the allocator releases its cached segments before it reports an out-of-memory: a warning
says when the step would still run that way. A trace for another device checked against a GPU
keeps the measured/default lines (`RESERVE_MODEL`, a seam).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .analysis import Analysis
from .devices import DeviceInfo
from .errors import RequestError
from .cuda_workspaces import cuda_overheads
from .units import format_bytes

TIGHT_HEADROOM_PCT = 10  # less than 10% of the capacity left: 'tight' (integers: exact at the boundary)
FITS, TIGHT, DOES_NOT_FIT = "fits", "tight", "does not fit"
EDITABLE = ("cublas", "workspace", "reserve", "context", "others")
ALLOCATED_LINES = ("tensors", "cublas", "workspace", "rounding")  # what max_memory_allocated counts
RESERVE_FRACTION = 0.05


@dataclass(frozen=True)
class FootprintLine:
    """One labelled part of what the process needs on the device."""

    key: str  # 'tensors', 'cublas', 'workspace', 'rounding', 'reserve', 'context', 'others'
    label: str
    bytes: int
    source: str  # 'traced', 'simulated', 'measured', 'measured table', 'default', 'user'
    note: str

    @property
    def editable(self) -> bool:
        return self.key in EDITABLE


@dataclass(frozen=True)
class Fit:
    """The fit check's answer: the lines, their total against the capacity, and the verdict."""

    device: DeviceInfo
    lines: tuple[FootprintLine, ...]
    warnings: tuple[str, ...] = ()

    @property
    def capacity_bytes(self) -> int:
        return self.device.capacity_bytes

    @property
    def total_bytes(self) -> int:
        return sum(line.bytes for line in self.lines)

    @property
    def headroom_bytes(self) -> int:
        return self.capacity_bytes - self.total_bytes

    @property
    def headroom_pct(self) -> float:
        return 100.0 * self.headroom_bytes / self.capacity_bytes

    @property
    def state(self) -> str:
        return verdict(self.total_bytes, self.capacity_bytes)

    def line(self, key: str) -> FootprintLine:
        return next(line for line in self.lines if line.key == key)

    def describe(self) -> str:
        """One line, e.g. 'fits on NVIDIA A100 80GB: 12.3 GiB of 80.0 GiB, 67.7 GiB (84.6%) headroom'."""
        where = f"{self.state} on {self.device.name}: {format_bytes(self.total_bytes)} of {format_bytes(self.capacity_bytes)}"
        if self.headroom_bytes >= 0:
            return f"{where}, {format_bytes(self.headroom_bytes)} ({self.headroom_pct:.1f}%) headroom"
        return f"{where}, {format_bytes(-self.headroom_bytes)} ({-self.headroom_pct:.1f}%) over"


ReserveModel = Callable[[Analysis, int], FootprintLine]


def proportional_reserve(analysis: Analysis, allocated_bytes: int) -> FootprintLine:
    """For a trace made for another device (no simulated allocator): a fixed share of the allocated peak."""
    return FootprintLine(
        "reserve", "allocator reserve above allocated", int(allocated_bytes * RESERVE_FRACTION), "default",
        f"{RESERVE_FRACTION:.0%} of the allocated peak: segment rounding and fragmentation "
        "(max_memory_reserved - max_memory_allocated); a default: trace with --device cuda to simulate it, or edit it",
    )


RESERVE_MODEL: ReserveModel = proportional_reserve


# ---- Public API
def verdict(total_bytes: int, capacity_bytes: int) -> str:
    """fits (>= 10% headroom), tight (0 to < 10%), does not fit (over capacity)."""
    headroom = capacity_bytes - total_bytes
    if headroom < 0:
        return DOES_NOT_FIT
    return FITS if 100 * headroom >= TIGHT_HEADROOM_PCT * capacity_bytes else TIGHT


def fit_check(analysis: Analysis, device: DeviceInfo, overrides: Mapping[str, int] | None = None,
              reserve: ReserveModel | None = None) -> Fit:
    """Every line the step needs on `device`; `overrides` replaces editable lines' bytes by key."""
    overrides = dict(overrides or {})
    for key, value in overrides.items():
        if key not in EDITABLE:
            raise RequestError(f"cannot override footprint line {key!r}: editable lines are {', '.join(EDITABLE)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RequestError(f"footprint line {key!r} must be a byte count >= 0, got {value!r}")
    gpu = device.kind != "host"
    lines = footprint_lines(analysis, gpu, overrides, reserve)
    warnings: list[str] = []
    if gpu:
        lines.append(_override(_others_line(device), overrides))
        squeezed = _within_capacity(analysis, lines, device.capacity_bytes)
        if squeezed is not None:
            warnings.append(squeezed)
    if gpu and analysis.request.device != "cuda":
        warnings.append(f"traced for the {analysis.request.device}: trace with --device cuda for a GPU's "
                        "rounding and optimizer implementation")
    arch = device.compute_capability
    if gpu and analysis.cuda is not None and arch is not None and tuple(arch) != analysis.cuda.arch:
        warnings.append(f"traced for compute capability {analysis.cuda.arch[0]}.{analysis.cuda.arch[1]}, "
                        f"{device.name} has {arch[0]}.{arch[1]}: trace with --cuda-arch {arch[0]}.{arch[1]} "
                        "for its cuBLAS workspace size")
    return Fit(device, tuple(lines), tuple(warnings))


def footprint_lines(analysis: Analysis, gpu: bool = True, overrides: Mapping[str, int] | None = None,
                    reserve: ReserveModel | None = None) -> list[FootprintLine]:
    """The lines that do not depend on which device: tensors, workspaces, rounding, reserve, context."""
    overrides = dict(overrides or {})
    cuda = analysis.cuda
    convolutions = any(layer.kind == "conv" for layer in analysis.layers)
    overheads = {o.key: FootprintLine(o.key, o.label, o.bytes, o.source, o.note)
                 for o in (cuda_overheads(convolutions, _arch(analysis), *_library_threads(analysis, convolutions))
                           if gpu else ())}
    note = f"the most bytes live in the step ({analysis.peak.phase}, at '{analysis.peak.module}')"
    if cuda is not None and cuda.workspaces:
        note += (f"; includes the cuBLAS/cuBLASLt workspaces ({format_bytes(cuda.workspace_bytes)}: "
                 + ", ".join(f"{w.label} {format_bytes(w.bytes)}" for w in cuda.workspaces) + ")")
    if cuda is not None and cuda.convolutions is not None:
        note += "; " + cuda.convolutions.describe()
    if cuda is not None:  # traced: cuBLAS's at each thread's first matrix product, cuDNN's per convolution
        overheads.pop("cublas", None)
        overheads.pop("workspace", None)
    allocated = [FootprintLine("tensors", "traced tensor peak", analysis.peak.total_bytes, "traced", note)]
    allocated += [_override(overheads[k], overrides) for k in ("cublas", "workspace") if k in overheads]
    lines = list(allocated)
    if gpu:
        if cuda is not None and reserve is None:
            lines.append(simulated_rounding(analysis, cuda.simulation))
            lines.append(_override(simulated_reserve(analysis, cuda.simulation), overrides))
        else:
            lines.append(_override((reserve or RESERVE_MODEL)(analysis, sum(line.bytes for line in allocated)), overrides))
        lines.append(_override(overheads["context"], overrides))
    return lines


def simulated_rounding(analysis: Analysis, simulation) -> FootprintLine:
    """Whole blocks beyond the bytes asked for, at the allocated peak: torch's max_memory_allocated
    counts block sizes, and a block is handed out unsplit when too little would remain."""
    s = simulation
    note = (f"simulated: max_memory_allocated {format_bytes(s.peak_allocated_bytes)} counts whole blocks; "
            "the allocator does not split a large-pool block when 1 MiB or less would remain, nor a "
            "small-pool block when less than 512 B would, and hands the whole block out")
    return FootprintLine("rounding", "allocator block rounding (allocated)",
                         max(0, s.peak_allocated_bytes - analysis.peak.total_bytes), "simulated", note)


def simulated_reserve(analysis: Analysis, simulation) -> FootprintLine:
    """The reserve line from the simulated allocator: max_memory_reserved minus max_memory_allocated."""
    s = simulation
    note = (f"simulated caching allocator ({'PYTORCH_CUDA_ALLOC_CONF=' + s.conf if s.conf else 'default settings'}"
            f"{', after a warm-up step' if s.warmup else ', first step'}): segments peak at "
            f"{format_bytes(s.peak_reserved_bytes)} (max_memory_reserved), blocks at "
            f"{format_bytes(s.peak_allocated_bytes)} (max_memory_allocated); the rest is segment slack and "
            f"cached free blocks ({s.fragmentation_at_peak:.0%} of the segments free at the peak)")
    allocated = max(s.peak_allocated_bytes, analysis.peak.total_bytes)
    return FootprintLine("reserve", "allocator reserve above allocated",
                         max(0, s.peak_reserved_bytes - allocated), "simulated", note)


# ---- Private API
def _library_threads(analysis: Analysis, convolutions: bool) -> tuple[int, int]:
    """Threads holding a cuBLAS and a cuDNN handle: as traced for CUDA, else the forward's thread
    and, in training, autograd's."""
    cuda = analysis.cuda
    if cuda is not None:
        cublas = sum(w.label.startswith("cuBLAS workspace") for w in cuda.workspaces)
        return cublas, cuda.convolutions.threads if cuda.convolutions is not None else 0
    threads = 2 if analysis.request.mode == "train" else 1
    return threads, threads if convolutions else 0


def _arch(analysis: Analysis):
    return analysis.cuda.arch if analysis.cuda is not None else None


def _within_capacity(analysis: Analysis, lines: list[FootprintLine], capacity: int) -> str | None:
    """Over the capacity with a simulated reserve: rerun the allocator within what the other
    lines leave it, as torch frees its cached segments and retries before an out-of-memory. The
    verdict stays on the unpressured reserve (what max_memory_reserved reads, and a total that
    grows smoothly with the batch); this says when the step would still run, flushing its cache."""
    total = sum(line.bytes for line in lines)
    reserve = next((line for line in lines if line.key == "reserve"), None)
    if total <= capacity or analysis.cuda is None or reserve is None or reserve.source != "simulated":
        return None
    from .cuda_allocator import simulate_trace

    room = capacity - sum(line.bytes for line in lines if line.key not in ("tensors", "rounding", "reserve"))
    if room <= 0:
        return None
    sim = simulate_trace(analysis.cuda.simulation.initial_bytes, analysis.events.nbytes, analysis.events.storage,
                         analysis.request.alloc_conf, analysis.request.first_step, capacity_bytes=room,
                         made_at=analysis.cuda.simulation.initial_made_at or None)
    if sim.oom_point is not None:
        return None
    return (f"over the capacity by {format_bytes(total - capacity)}, yet the simulated allocator stays within it by "
            f"releasing its cached segments {sim.cache_flushes} time(s) per step (reserved peak "
            f"{format_bytes(sim.peak_reserved_bytes)}): it would run, with slower steps")


def _others_line(device: DeviceInfo) -> FootprintLine:
    if device.other_processes_bytes is not None:
        return FootprintLine("others", "other processes on the device", device.other_processes_bytes, "measured",
                             "held now by other processes, read through NVML")
    return FootprintLine("others", "other processes on the device", 0, "default",
                         "assumed idle (not a detected device): enter what other processes hold")


def _override(line: FootprintLine, overrides: dict[str, int]) -> FootprintLine:
    if line.key not in overrides:
        return line
    return FootprintLine(line.key, line.label, overrides[line.key], "user",
                         f"entered by the user (default {format_bytes(line.bytes)}: {line.note})")


# ---- JSON (engine/report.py)
def json_fields(analysis: Analysis, max_points: int = 2000) -> dict:
    """`peak_reserved_bytes`, the device-free `footprint` lines and, for CUDA traces, `allocator`."""
    cuda = analysis.cuda
    gpu = analysis.request.device == "cuda"
    fields = {
        "peak_reserved_bytes": cuda.simulation.peak_reserved_bytes if cuda is not None else None,
        "footprint": [{"key": line.key, "label": line.label, "bytes": line.bytes, "source": line.source,
                       "note": line.note} for line in footprint_lines(analysis, gpu)],
    }
    if cuda is not None:
        s = cuda.simulation
        picks = analysis.timeline.peak_points(max_points=max_points)
        fields["allocator"] = {
            "alloc_conf": s.conf, "warmup": s.warmup, "compute_capability": list(cuda.arch),
            "peak_allocated_bytes": s.peak_allocated_bytes, "peak_reserved_bytes": s.peak_reserved_bytes,
            "peak_point": s.peak_point, "fragmentation_at_peak": round(s.fragmentation_at_peak, 6),
            "segments_at_peak": [{"pool": g.pool, "bytes": g.total_bytes, "allocated_bytes": g.allocated_bytes,
                                  "blocks": len(g.blocks), "expandable": g.expandable} for g in s.segments_at_peak],
            "cuda_mallocs": s.cuda_mallocs,
            "workspaces": [{"label": w.label, "bytes": w.bytes, "made": w.made} for w in cuda.workspaces],
            "convolution_workspaces": None if cuda.convolutions is None else {
                "table": cuda.convolutions.table, "recorded": cuda.convolutions.recorded,
                "scaled": cuda.convolutions.scaled, "estimated": cuda.convolutions.estimated,
                "largest_bytes": cuda.convolutions.largest_bytes, "largest_at": cuda.convolutions.largest_at},
            "timeline": {"point": picks.tolist(), "reserved": s.reserved[picks].tolist(),
                         "allocated": s.allocated[picks].tolist()},
        }
    return fields


def footprint_text(analysis: Analysis) -> list[str]:
    """The CLI's footprint lines: what a GPU must hold for this step, line by line, with sources."""
    if analysis.request.device != "cuda":
        return []
    lines = footprint_lines(analysis, True)
    out = ["footprint on the device (without other processes):"]
    out += [f"  {line.label:<42} {format_bytes(line.bytes):>12}  ({line.source})" for line in lines]
    out.append(f"  {'total':<42} {format_bytes(sum(line.bytes for line in lines)):>12}")
    cuda = analysis.cuda
    if cuda is not None:
        s = cuda.simulation
        out.append(f"  simulated max_memory_allocated {format_bytes(s.peak_allocated_bytes)}, max_memory_reserved "
                   f"{format_bytes(s.peak_reserved_bytes)} ({len(s.segments_at_peak)} segments at the peak, "
                   f"{s.fragmentation_at_peak:.0%} of them free)")
    return out
