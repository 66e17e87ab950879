"""What a distributed analysis adds to `Analysis.distributed`: plain frozen data, no torch."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RankTrace:
    """One traced rank (rank 0, or a rank whose shards differ from it): its peak and a thinned
    total curve for the small multiples. `ranks` are all the ranks this trace stands for."""

    rank: int
    ranks: tuple[int, ...]
    peak_bytes: int
    model_state: tuple[tuple[str, int], ...]  # (category, bytes this rank holds)
    curve_points: tuple[int, ...]
    curve_bytes: tuple[int, ...]


@dataclass(frozen=True)
class Reference:
    """DeepSpeed's published model-state formulas (ZeRO paper, Rajbhandari et al. 2020, sec. 5),
    for Ψ parameters on N ranks, beside what MemLens traced for one rank."""

    psi: int
    world_size: int
    k: int  # optimizer-state bytes per parameter: 12 for mixed-precision Adam
    zero1_bytes: int  # 2Ψ + 2Ψ + KΨ/N
    zero2_bytes: int  # 2Ψ + (2+K)Ψ/N
    zero3_bytes: int  # (2+2+K)Ψ/N
    memlens_model_state_bytes: int  # parameters + gradients + optimizer state this rank holds
    explanation: tuple[str, ...]


@dataclass(frozen=True)
class TensorParallelSplit:
    """Tensor parallelism's plan (engine/distributed/tensor_parallel.py): module paths of the
    Linear layers split each way, and of what stays whole on every rank."""

    column: tuple[str, ...]  # output features split: weight rows and bias sliced
    row: tuple[str, ...]  # input features split: weight columns sliced, bias whole, output all-reduced
    whole_linear: tuple[str, ...]  # Linear layers outside any column/row pair: replicated
    fused_attention: tuple[str, ...]  # nn.MultiheadAttention modules (fused in_proj_weight): replicated

    def describe(self) -> str:
        """What was split, in one line, e.g. '4 Linear layers column-wise, 4 row-wise; whole on every
        rank: 2 fused attention, 1 Linear' (the notes name every layer)."""
        whole = [f"{len(self.fused_attention)} fused attention"] if self.fused_attention else []
        whole += [f"{len(self.whole_linear)} Linear"] if self.whole_linear else []
        layers = "Linear layer" if len(self.column) == 1 else "Linear layers"
        return (f"{len(self.column)} {layers} column-wise, {len(self.row)} row-wise"
                + (f"; whole on every rank: {', '.join(whole)}" if whole else ""))


@dataclass(frozen=True)
class DistributedSummary:
    strategy: str
    world_size: int
    offload: str | None
    bucket_cap_mb: int
    per_rank_peak_bytes: tuple[int, ...]  # index = rank
    ranks: tuple[RankTrace, ...]  # rank 0 first, then each rank that differs
    communication_peak_bytes: int  # most collective-buffer bytes live at once (rank 0)
    communication_at_peak_bytes: int  # collective-buffer bytes live at rank 0's peak
    host_offload_bytes: int  # offloaded state in host memory (not in the device peak)
    reference: Reference
    notes: tuple[str, ...]
    tensor_parallel: TensorParallelSplit | None = None  # strategy tp: which layers were split

    @property
    def max_peak_bytes(self) -> int:
        return max(self.per_rank_peak_bytes)

    @property
    def worst_rank(self) -> int:
        return self.per_rank_peak_bytes.index(self.max_peak_bytes)
