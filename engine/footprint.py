"""Does it fit: the whole footprint of a step on a device, as labelled lines, against its capacity.

DESIGN.md, "the footprint on a device": traced tensor peak -> allocated peak (+ cuBLAS workspace,
+ cuDNN/library workspaces) -> reserved peak (+ the caching allocator's reserve above what is
allocated) -> device total (+ CUDA context, + memory other processes hold). Every line carries its
bytes and where they come from (traced, simulated, measured, a measured table, a default); lines
that are not modelled exactly can be overridden by the user, and no line is folded into another.

The allocator reserve is a placeholder default until the allocator simulator replaces it: pass
`reserve=` (a `ReserveModel`) to `fit_check`, or set `RESERVE_MODEL`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

from .analysis import Analysis
from .devices import DeviceInfo
from .errors import RequestError
from .target import target_for
from .units import format_bytes

TIGHT_HEADROOM_PCT = 10  # less than 10% of the capacity left: 'tight' (integers: exact at the boundary)
FITS, TIGHT, DOES_NOT_FIT = "fits", "tight", "does not fit"
EDITABLE = ("cublas", "workspace", "reserve", "context", "others")
RESERVE_FRACTION = 0.05


@dataclass(frozen=True)
class FootprintLine:
    """One labelled part of what the process needs on the device."""

    key: str  # 'tensors', 'cublas', 'workspace', 'reserve', 'context', 'others'
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
    """Placeholder until the caching-allocator simulator: a fixed share of the allocated peak."""
    return FootprintLine(
        "reserve", "allocator reserve above allocated", int(allocated_bytes * RESERVE_FRACTION), "default",
        f"{RESERVE_FRACTION:.0%} of the allocated peak: segment rounding and fragmentation "
        "(max_memory_reserved - max_memory_allocated); a placeholder, not yet simulated or measured - edit it",
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
    overheads = {o.key: FootprintLine(o.key, o.label, o.bytes, o.source, o.note)
                 for o in target_for("cuda" if gpu else "cpu").overheads(any(layer.kind == "conv" for layer in analysis.layers))}
    allocated = [FootprintLine("tensors", "traced tensor peak", analysis.peak.total_bytes, "traced",
                               f"the most bytes live in the step ({analysis.peak.phase}, at '{analysis.peak.module}')")]
    allocated += [_override(overheads[k], overrides) for k in ("cublas", "workspace") if k in overheads]
    lines = list(allocated)
    if gpu:
        lines.append(_override((reserve or RESERVE_MODEL)(analysis, sum(line.bytes for line in allocated)), overrides))
        lines.append(_override(overheads["context"], overrides))
        lines.append(_override(_others_line(device), overrides))
    warnings = []
    if gpu and analysis.request.device != "cuda":
        warnings.append(f"traced for the {analysis.request.device}: trace with --device cuda for a GPU's "
                        "rounding and optimizer implementation")
    return Fit(device, tuple(lines), tuple(warnings))


# ---- Private API
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
