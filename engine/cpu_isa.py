"""Which instruction set oneDNN runs on this CPU: the kernels it picks, and with them the scratch
buffers a convolution takes, differ by ISA (measured: docs/VALIDATION.md, engine/cpu_kernels.py).

oneDNN dispatches on the CPU's flags, capped by the `ONEDNN_MAX_CPU_ISA` environment variable
(read once, when the library first runs). ATen's own kernels follow `ATEN_CPU_CAPABILITY`
instead, which `torch.backends.cpu.get_cpu_capability()` reports; the two can differ, so the
convolution model asks this module, not ATen.
"""
from __future__ import annotations

import functools
import os

# Families whose convolution kernels allocate alike, lowest first.
SSE41, AVX2, AVX512, AVX512_BF16, AMX = "sse41", "avx2", "avx512", "avx512_bf16", "amx"
FAMILIES = (SSE41, AVX2, AVX512, AVX512_BF16, AMX)

# ONEDNN_MAX_CPU_ISA values (oneDNN 3.x names and their aliases) -> the highest family allowed.
_CAPS = {
    "SSE41": SSE41, "AVX": SSE41, "AVX2": AVX2, "AVX2_VNNI": AVX2, "AVX2_VNNI_2": AVX2,
    "AVX512_CORE": AVX512, "AVX512_CORE_VNNI": AVX512, "AVX512_CORE_BF16": AVX512_BF16,
    "AVX512_CORE_FP16": AVX512_BF16, "AVX10_1_512": AVX512_BF16,
    "AVX512_CORE_AMX": AMX, "AVX10_1_512_AMX": AMX, "AVX512_CORE_AMX_FP16": AMX,
    "AVX10_1_512_AMX_FP16": AMX, "AVX10_2_512": AMX, "AVX10_2_512_AMX_2": AMX,
    "ALL": AMX, "DEFAULT": AMX,
}


def family_from(flags: set[str], max_isa: str | None) -> str:
    """The oneDNN family for a CPU with `flags` (as /proc/cpuinfo spells them) under a cap."""
    if {"amx_bf16", "amx_tile", "avx512_bf16"} <= flags:
        hardware = AMX
    elif {"avx512_bf16", "avx512f", "avx512bw", "avx512vl"} <= flags:
        hardware = AVX512_BF16
    elif {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        hardware = AVX512
    elif "avx2" in flags:
        hardware = AVX2
    else:
        hardware = SSE41
    cap = _CAPS.get((max_isa or "ALL").strip().upper(), AMX)
    return min(hardware, cap, key=FAMILIES.index)


@functools.lru_cache(maxsize=1)
def onednn_family() -> str:
    """This process's oneDNN family (CPU flags capped by ONEDNN_MAX_CPU_ISA)."""
    return family_from(cpu_flags(), os.environ.get("ONEDNN_MAX_CPU_ISA"))


@functools.lru_cache(maxsize=1)
def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    # No /proc (macOS, Windows): fall back on what ATen detected.
    import torch

    capability = torch.backends.cpu.get_cpu_capability().upper()
    if "AVX512" in capability:
        return {"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"}
    return {"avx2"} if "AVX2" in capability else set()


def channel_block() -> int:
    """oneDNN's channel block for float32 blocked layouts: 16 with AVX-512, 8 below."""
    return 16 if onednn_family() in (AVX512, AVX512_BF16, AMX) else 8
