"""The distributed flags of `python main.py analyze`, their JSON keys and their summary lines.

    analyze --model resnet50 --world-size 8 --strategy fsdp --json -
    analyze --model llama.yaml --world-size 64 --strategy zero2 --offload optimizer
    analyze --model resources/specs/tiny_transformer.yaml --world-size 4 --strategy tp --json -
"""
from __future__ import annotations

import argparse
import dataclasses

from .distributed.strategies import MIXED_DTYPES, OFFLOADS, STRATEGIES
from .units import format_bytes


def add_distributed_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("distributed (per-rank memory, traced with torch.distributed's fake backend)")
    group.add_argument("--strategy", default="single", choices=STRATEGIES,
                       help="single device, DDP, FSDP2 (full / no reshard after forward), ZeRO-1/2/3 or tensor "
                       "parallelism (tp: Linear layer pairs split column/row-wise)")
    group.add_argument("--world-size", type=int, default=None, metavar="N", help="number of ranks (default 1; 8 "
                       "when a strategy is given without it)")
    group.add_argument("--offload", default=None, choices=OFFLOADS, help="keep optimizer state (or parameter shards "
                       "too) in host memory")
    group.add_argument("--bucket-cap-mb", type=int, default=25, metavar="MB", help="DDP gradient bucket size (25)")
    group.add_argument("--gradient-as-bucket-view", action="store_true", help="DDP: gradients are views of its buckets")
    group.add_argument("--param-dtype", default=None, choices=MIXED_DTYPES, help="FSDP mixed precision: all-gather and "
                       "compute dtype")
    group.add_argument("--reduce-dtype", default=None, choices=MIXED_DTYPES, help="FSDP mixed precision: gradient "
                       "reduce-scatter dtype")


def distributed_fields(args: argparse.Namespace) -> dict:
    """AnalysisRequest fields from the flags (the request validates them)."""
    strategy = getattr(args, "strategy", "single")
    world_size = getattr(args, "world_size", None)
    if world_size is None:
        world_size = 1 if strategy == "single" else 8
    return {"strategy": strategy, "world_size": world_size, "offload": getattr(args, "offload", None),
            "bucket_cap_mb": getattr(args, "bucket_cap_mb", 25),
            "gradient_as_bucket_view": getattr(args, "gradient_as_bucket_view", False),
            "param_dtype": getattr(args, "param_dtype", None), "reduce_dtype": getattr(args, "reduce_dtype", None)}


def json_fields(analysis) -> dict:
    """The keys `analyze --json` gains (engine/report.py): see the report for their meaning."""
    r, d = analysis.request, analysis.distributed
    curve = analysis.timeline.curves["communication"]
    fields = {
        "strategy": r.strategy,
        "world_size": r.world_size,
        "per_rank_peak_bytes": list(d.per_rank_peak_bytes) if d else [analysis.peak.total_bytes],
        "communication": {
            "category": "communication",
            "peak_bytes": int(curve.max()) if len(curve) else 0,
            "at_peak_bytes": analysis.peak.breakdown["communication"],
        },
        "distributed": None,
    }
    if d is not None:
        fields["distributed"] = {
            "offload": d.offload,
            "bucket_cap_mb": d.bucket_cap_mb,
            "host_offload_bytes": d.host_offload_bytes,
            "max_peak_bytes": d.max_peak_bytes,
            "worst_rank": d.worst_rank,
            "ranks": [{"rank": t.rank, "ranks": list(t.ranks), "peak_bytes": t.peak_bytes,
                       "model_state": dict(t.model_state)} for t in d.ranks],
            "reference": {k: v for k, v in dataclasses.asdict(d.reference).items() if k != "explanation"}
            | {"explanation": list(d.reference.explanation)},
            "notes": list(d.notes),
            "tensor_parallel": None if d.tensor_parallel is None else
            {k: list(v) for k, v in dataclasses.asdict(d.tensor_parallel).items()},
        }
    return fields


def summary_lines(analysis) -> list[str]:
    """Lines the text summary prints for a distributed analysis (none on one device)."""
    d = analysis.distributed
    if d is None:
        return []
    lines = [f"distributed: {d.strategy} over {d.world_size} ranks: peak per rank {format_bytes(d.max_peak_bytes)} "
             f"(worst rank {d.worst_rank})"]
    for t in d.ranks:
        held = ", ".join(f"{k} {format_bytes(v)}" for k, v in t.model_state)
        who = f"rank {t.rank}" + (f" (and {len(t.ranks) - 1} like it)" if len(t.ranks) > 1 else "")
        lines.append(f"  {who}: peak {format_bytes(t.peak_bytes)}; holds {held}")
    lines.append(f"  communication buffers: {format_bytes(d.communication_at_peak_bytes)} at the peak, "
                 f"{format_bytes(d.communication_peak_bytes)} at most")
    if d.offload:
        lines.append(f"  offloaded to host memory: {format_bytes(d.host_offload_bytes)}")
    ref = d.reference
    if d.tensor_parallel is not None:  # ZeRO's formulas shard whole model states, not layers
        lines.append(f"  tensor parallel, split: {d.tensor_parallel.describe()}")
    else:
        lines.append(f"  DeepSpeed reference (model states, mixed-precision Adam K={ref.k}): ZeRO-1 "
                     f"{format_bytes(ref.zero1_bytes)}, ZeRO-2 {format_bytes(ref.zero2_bytes)}, ZeRO-3 "
                     f"{format_bytes(ref.zero3_bytes)}; MemLens model states "
                     f"{format_bytes(ref.memlens_model_state_bytes)}")
    lines += [f"  note: {n}" for n in d.notes]
    return lines
