"""Which accelerators this workstation has (torch.cuda, NVML, Apple MPS, host RAM via psutil), and
the catalog of accelerators users can plan for without owning them (resources/gpus.yaml).

Detection never raises: "no GPU", "no NVIDIA driver", "NVML library missing" are normal states,
reported as plain sentences in `Detection.notes`. Everything the hardware says goes through a few
query functions (`pynvml.nvml*`, `torch.cuda.*`, `torch.mps.*`, `psutil.virtual_memory`), which is
where tests substitute a fake GPU.
"""
from __future__ import annotations

import difflib
import functools
import os
import re
from dataclasses import dataclass, field

from .errors import RequestError

CATALOG_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "gpus.yaml")


@dataclass(frozen=True)
class DeviceInfo:
    """One device a plan can target: detected here, from the catalog, or a capacity the user typed.

    `capacity_bytes` is the device's total memory as its driver reports it. `other_processes_bytes`
    is what other processes hold on it now (detected NVIDIA devices only; None when unknown).
    """

    name: str
    capacity_bytes: int
    kind: str  # 'cuda' (torch sees it), 'nvml' (driver only), 'mps', 'host', 'catalog', 'custom'
    source: str  # where the capacity comes from, in words
    index: int | None = None  # device index for detected devices
    free_bytes: int | None = None
    other_processes_bytes: int | None = None
    compute_capability: tuple[int, int] | None = None
    driver_version: str | None = None
    vendor: str = "nvidia"
    aliases: tuple[str, ...] = ()
    approximate: bool = False  # e.g. Apple unified memory: a share of RAM, not a fixed size

    @property
    def label(self) -> str:
        if self.kind in ("cuda", "nvml"):
            return f"GPU {self.index}: {self.name}"
        return self.name


@dataclass(frozen=True)
class Detection:
    """What detection found. `accelerators` lists GPUs first (index order), then MPS."""

    accelerators: tuple[DeviceInfo, ...]
    host: DeviceInfo | None
    notes: tuple[str, ...] = field(default=())  # plain sentences: why there is no GPU, what is missing

    @property
    def has_cuda(self) -> bool:
        """A CUDA device torch can run on (what "Measure on this GPU" needs)."""
        return any(d.kind == "cuda" for d in self.accelerators)

    @property
    def summary(self) -> str:
        if self.accelerators:
            return ", ".join(d.label for d in self.accelerators)
        return "; ".join(self.notes) or "no GPU"


# ---- Public API
def detect() -> Detection:
    """Every accelerator torch, NVML and MPS report, plus host RAM. Never raises."""
    notes: list[str] = []
    nvml = _nvml_devices(notes)
    cuda = _cuda_devices(notes)
    accelerators: list[DeviceInfo] = []
    if cuda:
        for dev in cuda:
            match = _same_device(dev, nvml)
            if match is not None:
                dev = _merge(dev, match)
            accelerators.append(dev)
    else:
        accelerators.extend(nvml)
        if nvml:
            notes.append("torch cannot use these GPUs (no CUDA build or no usable CUDA runtime): "
                         "planning works, measuring does not")
    mps = _mps_device(notes)
    if mps is not None:
        accelerators.append(mps)
    if not accelerators:
        notes.insert(0, "no GPU")
    return Detection(tuple(accelerators), _host_ram(notes), tuple(notes))


@functools.lru_cache(maxsize=1)
def catalog() -> tuple[DeviceInfo, ...]:
    """The accelerators in resources/gpus.yaml, in file order."""
    return load_catalog(CATALOG_PATH)


def load_catalog(path: str) -> tuple[DeviceInfo, ...]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise RequestError(f"{path}: cannot read the GPU catalog: {e}") from None
    entries = data.get("gpus") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise RequestError(f"{path}: expected a 'gpus:' list")
    out = []
    for i, e in enumerate(entries):
        name = e.get("name") if isinstance(e, dict) else None
        capacity = e.get("capacity_bytes") if isinstance(e, dict) else None
        if not isinstance(name, str) or not isinstance(capacity, int) or isinstance(capacity, bool) or capacity <= 0:
            raise RequestError(f"{path}: entry {i + 1} needs a name and a positive integer capacity_bytes")
        if not e.get("source"):
            raise RequestError(f"{path}: entry '{name}' has no source note for its capacity")
        out.append(DeviceInfo(
            name=name, capacity_bytes=capacity, kind="catalog", source=str(e["source"]),
            vendor=str(e.get("vendor", "nvidia")), aliases=tuple(str(a) for a in e.get("aliases", ())),
            approximate=bool(e.get("approximate", False)),
        ))
    return tuple(out)


def find_gpu(name: str, entries: tuple[DeviceInfo, ...] | None = None) -> DeviceInfo:
    """A catalog entry by name or alias, ignoring case, spaces, dashes and vendor words.
    Unknown names raise a `RequestError` that suggests the closest names."""
    entries = catalog() if entries is None else entries
    key = _normal(name)
    if not key:
        raise RequestError("no GPU name given: e.g. --gpu \"A100 80GB\" or --gpu 0 for a detected device")
    by_key: dict[str, DeviceInfo] = {}
    for e in entries:
        for n in (e.name, *e.aliases):
            by_key.setdefault(_normal(n), e)
    if key in by_key:
        return by_key[key]
    close = difflib.get_close_matches(key, list(by_key), n=8, cutoff=0.5)
    names = list(dict.fromkeys(by_key[k].name for k in close))[:4]
    hint = f"; did you mean {', '.join(repr(n) for n in names)}?" if names else "; see resources/gpus.yaml for the list"
    raise RequestError(f"unknown GPU {name!r}{hint}")


def resolve_device(spec: str, detection: Detection | None = None) -> DeviceInfo:
    """`--gpu` as the CLI takes it: a detected device index ('0') or a catalog name ('A100 80GB')."""
    text = str(spec).strip()
    if text.isdigit():
        detection = detect() if detection is None else detection
        gpus = [d for d in detection.accelerators if d.index is not None]
        for d in gpus:
            if d.index == int(text):
                return d
        why = detection.summary if not gpus else f"detected: {', '.join(d.label for d in gpus)}"
        raise RequestError(f"no detected GPU {text} on this machine ({why}); name a catalog GPU instead, "
                           "e.g. --gpu \"RTX 4090\"")
    return find_gpu(text)


def custom_device(capacity_bytes: int, label: str = "") -> DeviceInfo:
    from .units import format_bytes

    return DeviceInfo(name=label or f"custom {format_bytes(capacity_bytes)}", capacity_bytes=capacity_bytes,
                      kind="custom", source="entered by the user", vendor="")


# ---- Private API
def _normal(name: str) -> str:
    text = name.lower()
    text = re.sub(r"\b(nvidia|geforce|tesla|amd|instinct)\b", " ", text)
    return re.sub(r"[\s_\-]+", "", text)


def _nvml_devices(notes: list[str]) -> list[DeviceInfo]:
    try:
        import pynvml
    except ImportError:
        notes.append("NVML library missing: the nvidia-ml-py package is not installed")
        return []
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        notes.append("no NVIDIA driver: the NVML library (libnvidia-ml) is missing")
        return []
    except pynvml.NVMLError_DriverNotLoaded:
        notes.append("no NVIDIA driver loaded (NVML: driver not loaded)")
        return []
    except pynvml.NVMLError as e:
        notes.append(f"NVML unavailable: {e}")
        return []
    devices = []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            devices.append(DeviceInfo(
                name=_text(pynvml.nvmlDeviceGetName(handle)), capacity_bytes=int(memory.total), kind="nvml",
                source="NVML total memory", index=i, free_bytes=int(memory.free),
                other_processes_bytes=_others(pynvml, handle, int(memory.used)), driver_version=driver,
            ))
        if not devices:
            notes.append(f"NVIDIA driver {driver} present but no GPU found")
    except pynvml.NVMLError as e:
        notes.append(f"NVML query failed: {e}")
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass
    return devices


def _others(pynvml, handle, used: int) -> int:
    """Bytes other processes hold: NVML's per-process figures when it gives them (not inside some
    containers), else the device's whole used memory, which then also counts the driver's share."""
    try:
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
    except pynvml.NVMLError:
        return used
    sizes = [p.usedGpuMemory for p in procs if p.pid != os.getpid()]
    if any(s is None for s in sizes):
        return used
    return int(sum(sizes))


def _cuda_devices(notes: list[str]) -> list[DeviceInfo]:
    import torch

    try:
        if torch.version.cuda is None:
            notes.append("this torch build has no CUDA support")
            return []
        if not torch.cuda.is_available():
            notes.append(f"torch (CUDA {torch.version.cuda}) finds no usable GPU")
            return []
        devices = []
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            free, total = torch.cuda.mem_get_info(i)
            devices.append(DeviceInfo(
                name=props.name, capacity_bytes=int(total), kind="cuda", source="torch.cuda.mem_get_info total",
                index=i, free_bytes=int(free), compute_capability=(props.major, props.minor),
            ))
        return devices
    except Exception as e:  # a broken driver/runtime pair: report it, never crash the app
        notes.append(f"torch.cuda query failed: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}")
        return []


def _same_device(dev: DeviceInfo, nvml: list[DeviceInfo]) -> DeviceInfo | None:
    """NVML's entry for a torch device. Indices agree only when both enumerate the same GPUs, so
    the name and total must agree too (CUDA_VISIBLE_DEVICES or CUDA_DEVICE_ORDER can reorder)."""
    for n in nvml:
        if n.index == dev.index and n.name == dev.name and n.capacity_bytes == dev.capacity_bytes:
            return n
    return None


def _merge(dev: DeviceInfo, nvml: DeviceInfo) -> DeviceInfo:
    from dataclasses import replace

    return replace(dev, driver_version=nvml.driver_version, other_processes_bytes=nvml.other_processes_bytes,
                   source=f"{dev.source}; other processes from NVML")


def _mps_device(notes: list[str]) -> DeviceInfo | None:
    import torch

    try:
        if not torch.backends.mps.is_available():
            return None
        capacity = int(torch.mps.recommended_max_memory())
    except Exception as e:
        notes.append(f"Apple MPS query failed: {e}")
        return None
    return DeviceInfo(name="Apple GPU (MPS)", capacity_bytes=capacity, kind="mps", vendor="apple",
                      source="torch.mps.recommended_max_memory (a share of unified memory)", approximate=True)


def _host_ram(notes: list[str]) -> DeviceInfo | None:
    try:
        import psutil

        vm = psutil.virtual_memory()
    except Exception as e:
        notes.append(f"host RAM unknown: {e}")
        return None
    return DeviceInfo(name="host RAM", capacity_bytes=int(vm.total), kind="host", source="psutil.virtual_memory",
                      free_bytes=int(vm.available), vendor="")


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
