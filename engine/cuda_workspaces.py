"""How big torch makes its cuBLAS and cuBLASLt workspaces, and the measured tables of what else a
CUDA process holds (cuDNN workspaces, the context): `resources/cuda_overheads.yaml`. Torch-free,
so requests validate and the GUI starts without importing torch.

cuBLAS (aten/src/ATen/cuda/CublasHandlePool.cpp, torch 2.11 to 2.14):
- `getChosenWorkspaceSize`: CUBLAS_WORKSPACE_CONFIG is ':SIZE:COUNT' pairs (SIZE in KiB), summed
  as SIZE x COUNT; unset, ':4096:8' (32 MiB) on compute capability 9.0 (Hopper) and
  ':4096:2:16:8' (8 MiB + 128 KiB) on every other GPU.
- One workspace per (cuBLAS handle, stream), taken from the caching allocator at a thread's
  first cuBLAS call and kept. Handles are per thread, and autograd runs a CUDA backward in its
  own device thread: a training step holds two, the forward's and the backward's.
- cuBLASLt (an addmm with a bias vector, run as a Lt epilogue) gets a workspace of its own per
  handle: CUBLASLT_WORKSPACE_SIZE KiB, 1024 by default, capped at the cuBLAS size.
The H200 measurement (docs/VALIDATION.md, torch 2.11) reads 65.0 MiB held after training
steps: 32 MiB (forward thread) + 1 MiB (its cuBLASLt) + 32 MiB (autograd thread).
"""
from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from .errors import RequestError

KIB, MIB = 2**10, 2**20
HOPPER = (9, 0)
DEFAULT_ARCH = HOPPER  # what the H200 measurements were taken on; --cuda-arch changes it
CUBLAS_DEFAULT_HOPPER = 4096 * 8 * KIB  # ':4096:8'
CUBLAS_DEFAULT_OTHER = 4096 * 2 * KIB + 16 * 8 * KIB  # ':4096:2:16:8'
CUBLASLT_DEFAULT_KIB = 1024
TABLE_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources",
                          "cuda_overheads.yaml")


# A trace for another device checked against a GPU: the cuBLAS workspaces as measured on an H200
# (torch 2.11, docs/VALIDATION.md): 65.0 MiB held after training steps = 32 + 32 + 1 MiB (two
# threads' cuBLAS workspaces and one cuBLASLt workspace).
CUBLAS_WORKSPACE_BYTES = 65 * MIB


@dataclass(frozen=True)
class Overhead:
    """Memory a process needs on the device beyond its traced tensors: one labelled fit-check line.

    `source` is one of 'measured table', 'default' (both user-editable in the fit check); `note`
    says where the figure comes from.
    """

    key: str
    label: str
    bytes: int
    source: str
    note: str


@dataclass(frozen=True)
class TableEntry:
    """One figure of the overhead tables: its bytes, and whether it was measured or is a default."""

    bytes: int
    source: str  # 'measured table' or 'default'
    note: str


# ---- Public API
def parse_cublas_workspace_config(text: str) -> int | None:
    """CUBLAS_WORKSPACE_CONFIG ':4096:8' -> bytes (None when empty: the architecture's default)."""
    if not text or not text.strip():
        return None
    pairs = re.findall(r":([0-9]+):([0-9]+)", text)
    if not pairs:
        raise RequestError(f"CUBLAS_WORKSPACE_CONFIG {text.strip()!r}: expected ':SIZE:COUNT' pairs (SIZE in KiB), "
                           "e.g. ':4096:8' (torch would warn and use its default)")
    return sum(int(size) * KIB * int(count) for size, count in pairs)


def parse_cublaslt_workspace_size(text: str) -> int | None:
    """CUBLASLT_WORKSPACE_SIZE '2048' (KiB) -> bytes (None when empty: 1024 KiB)."""
    if not text or not text.strip():
        return None
    if not text.strip().isdigit():
        raise RequestError(f"CUBLASLT_WORKSPACE_SIZE {text.strip()!r}: expected a whole number of KiB, e.g. 1024")
    return int(text.strip()) * KIB


def parse_arch(text: str) -> tuple[int, int]:
    """'9.0' / 'sm_90' / '90' -> (9, 0)."""
    word = text.strip().lower().removeprefix("sm_").removeprefix("sm")
    match = re.fullmatch(r"(\d+)\.(\d)|(\d+)(\d)", word)
    if match is None:
        raise RequestError(f"compute capability {text!r}: expected e.g. 9.0, 8.6 or sm_90")
    major, minor = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
    return int(major), int(minor)


def cublas_bytes(config: str = "", arch: tuple[int, int] | None = None) -> int:
    """One cuBLAS workspace (per handle and stream) on `arch` under CUBLAS_WORKSPACE_CONFIG `config`."""
    chosen = parse_cublas_workspace_config(config)
    if chosen is not None:
        return chosen
    return CUBLAS_DEFAULT_HOPPER if (arch or DEFAULT_ARCH) == HOPPER else CUBLAS_DEFAULT_OTHER


def cublaslt_bytes(size_kib: str = "", config: str = "", arch: tuple[int, int] | None = None) -> int:
    """One cuBLASLt workspace: CUBLASLT_WORKSPACE_SIZE, capped at the cuBLAS workspace."""
    chosen = parse_cublaslt_workspace_size(size_kib)
    return min(CUBLASLT_DEFAULT_KIB * KIB if chosen is None else chosen, cublas_bytes(config, arch))


def context_bytes(arch: tuple[int, int] | None = None, torch_version: str = "", cublas_threads: int = 2,
                  cudnn_threads: int = 0) -> TableEntry:
    """What the process holds outside torch's allocator: the CUDA context, plus a cuBLAS handle's
    kernels per thread that runs a matrix product and a cuDNN handle's per thread that runs a
    convolution (a training step: the forward's thread and autograd's), from the tables."""
    base = _lookup("context", arch, torch_version)
    cublas = _lookup("cublas_handle", arch, torch_version)
    cudnn = _lookup("cudnn_handle", arch, torch_version)
    total = base.bytes + cublas_threads * cublas.bytes + cudnn_threads * cudnn.bytes
    parts = [f"context {base.bytes // MIB} MiB"]
    if cublas_threads:
        parts.append(f"{cublas_threads} cuBLAS handle(s) x {cublas.bytes // MIB} MiB")
    if cudnn_threads:
        parts.append(f"{cudnn_threads} cuDNN handle(s) x {cudnn.bytes // MIB} MiB")
    sources = {base.source, *(e.source for n, e in ((cublas_threads, cublas), (cudnn_threads, cudnn)) if n)}
    source = "measured table" if sources == {"measured table"} else "default"
    return TableEntry(total, source, " + ".join(parts) + "; " + base.note)


def cudnn_workspace_bytes(arch: tuple[int, int] | None = None, torch_version: str = "",
                          convolutions: bool = True) -> TableEntry:
    """The largest cuDNN/library scratch above the traced peak in a step, from the table."""
    return _lookup("cudnn_workspace" if convolutions else "library_workspace", arch, torch_version)


def cuda_overheads(has_convolutions: bool = True, arch: tuple[int, int] | None = None, cublas_threads: int = 2,
                   cudnn_threads: int | None = None, torch_version: str | None = None) -> tuple[Overhead, ...]:
    """What a CUDA process needs beyond its tensors, from the tables (resources/cuda_overheads.yaml)
    or their documented defaults, for `torch_version` (default: the installed torch, read without
    importing it). The threads that run matrix products and convolutions each hold a library
    handle (a training step: two)."""
    version = installed_torch_version() if torch_version is None else torch_version
    workspace = cudnn_workspace_bytes(arch, version, has_convolutions)
    if cudnn_threads is None:
        cudnn_threads = cublas_threads if has_convolutions else 0
    context = context_bytes(arch, version, cublas_threads, cudnn_threads)
    return (
        Overhead("cublas", "cuBLAS/cuBLASLt workspace", CUBLAS_WORKSPACE_BYTES, "measured table",
                 "taken from the caching allocator at the first matrix product and kept: 65.0 MiB measured "
                 "on an H200 after training steps (docs/VALIDATION.md); traced instead with --device cuda"),
        Overhead("workspace", "cuDNN and library workspaces in the step", workspace.bytes, workspace.source,
                 "transient scratch above the traced peak: " + workspace.note),
        Overhead("context", "CUDA context and library handles", context.bytes, context.source,
                 "driver, kernels and library handles, outside PyTorch's allocator: " + context.note),
    )


@functools.lru_cache(maxsize=1)
def installed_torch_version() -> str:
    """torch's version: from the imported module, else its installed metadata. The CLI's own
    process renders the footprint of an analysis traced in a child, and never imports torch."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.__version__
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return ""


# ---- Private API
def _lookup(table: str, arch: tuple[int, int] | None, torch_version: str) -> TableEntry:
    arch = arch or DEFAULT_ARCH
    rows = _tables()[table]
    version = ".".join(torch_version.split("+")[0].split(".")[:2])
    exact = [r for r in rows if tuple(r["arch"]) == arch and str(r["torch"]) == version]
    same_arch = [r for r in rows if tuple(r["arch"]) == arch]
    row = (exact or same_arch or [r for r in rows if r["arch"] == "default"])[0]
    source = "measured table" if row["status"] == "measured" and exact else "default"
    note = row["note"]
    if row["status"] == "measured" and not exact:
        note = f"extrapolated from {row['note']} (not measured for compute capability " \
               f"{arch[0]}.{arch[1]}, torch {version or '?'})"
    return TableEntry(int(row["bytes"]), source, note)


@functools.lru_cache(maxsize=1)
def _tables() -> dict:
    import yaml

    with open(TABLE_PATH, encoding="utf-8") as f:
        return yaml.safe_load(f)
