"""DeepSpeed's published ZeRO model-state formulas, written from the ZeRO paper (Rajbhandari et
al., "ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", 2020, section 5.1 and
figure 1) and DeepSpeed's memory-requirements documentation, not imported from DeepSpeed:

    mixed-precision Adam keeps 2Ψ bytes of fp16 parameters, 2Ψ of fp16 gradients and KΨ of
    optimizer state (fp32 master parameters, momentum, variance: K = 12)
    DDP      (2 + 2 + K)Ψ          ZeRO-1   2Ψ + 2Ψ + KΨ/N
    ZeRO-2   2Ψ + (2 + K)Ψ/N       ZeRO-3   (2 + 2 + K)Ψ/N

They count model states only. The traced figure differs because it is a different question:
the rank's peak, with activations, DDP buckets, all-gathered parameters and reduce-scatter
buffers in flight, and the dtypes of this request (float32 Adam: 4 + 4 + 8 bytes per parameter).
"""
from __future__ import annotations

from ..units import format_bytes
from .summary import Reference

K_MIXED_ADAM = 12


def deepspeed_reference(psi: int, world_size: int, model_state_bytes: int, peak_bytes: int,
                        communication_bytes: int, activation_bytes: int) -> Reference:
    n, k = world_size, K_MIXED_ADAM
    zero1 = 4 * psi + k * psi // n
    zero2 = 2 * psi + (2 + k) * psi // n
    zero3 = (4 + k) * psi // n
    explanation = (
        f"DeepSpeed's formulas count model states only, for mixed-precision Adam (K={k}): "
        f"ZeRO-2 2Ψ+(2+K)Ψ/N = {format_bytes(zero2)}, ZeRO-3 (2+2+K)Ψ/N = {format_bytes(zero3)} for Ψ={psi:,}, N={n}",
        f"MemLens traced this rank's model states at {format_bytes(model_state_bytes)} in this request's dtypes",
        f"the rank's peak {format_bytes(peak_bytes)} adds what the formulas leave out: activations "
        f"{format_bytes(activation_bytes)} and collective buffers {format_bytes(communication_bytes)} "
        "(DDP buckets, all-gathered parameters, reduce-scatter inputs) at the peak",
    )
    return Reference(psi=psi, world_size=n, k=k, zero1_bytes=zero1, zero2_bytes=zero2, zero3_bytes=zero3,
                     memlens_model_state_bytes=model_state_bytes, explanation=explanation)
