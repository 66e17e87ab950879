"""The data-parallel strategies MemLens traces, and how ZeRO's stages map onto torch's own code.

Each strategy is traced by running torch's real implementation on fake tensors:

    single           one device, no wrapper (today's analysis)
    ddp              DistributedDataParallel: full parameters, gradients and optimizer state on
                     every rank, gradients all-reduced in buckets (`bucket_cap_mb`)
    fsdp             FSDP2 `fully_shard`, full sharding: parameters, gradients and optimizer state
                     sharded; each unit's parameters all-gathered before its forward and again
                     before its backward (reshard_after_forward=True)
    fsdp-no-reshard  FSDP2 with reshard_after_forward=False: unsharded parameters stay from the
                     forward until the backward is done with them
    zero1            DDP plus torch's ZeroRedundancyOptimizer: only the optimizer state is sharded
                     (each rank updates the parameters it owns, then broadcasts them)
    zero2            = fsdp-no-reshard (DeepSpeed's stage 2 shards optimizer state and gradients;
                     FSDP2 without resharding after forward holds full parameters through the step
                     and reduce-scatters gradients to shards, the same bytes where the peak is)
    zero3            = fsdp (stage 3 shards everything)
    tp               tensor parallelism (Megatron's column/row split of a transformer block's Linear
                     pairs, torch's parallelize_module; tensor_parallel.py): the split layers'
                     parameters, gradients and optimizer state are 1/N per rank, everything else
                     whole; every rank takes the same batch. Its world size must divide each
                     split layer's features (checked against the model, naming the layer)

ZeRO-1 has no FSDP equivalent (gradients are full and all-reduced), so it is modelled with
ZeroRedundancyOptimizer, the ZeRO-1 implementation torch ships.
"""
from __future__ import annotations

STRATEGIES = ("single", "ddp", "fsdp", "fsdp-no-reshard", "zero1", "zero2", "zero3", "tp")
OFFLOADS = ("optimizer", "params")
MAX_WORLD_SIZE = 1024
MIXED_DTYPES = ("float32", "float16", "bfloat16")

# zero2 and zero3 are FSDP under another name: the table says which FSDP they run.
FSDP_RESHARD = {"fsdp": True, "zero3": True, "fsdp-no-reshard": False, "zero2": False}
DDP_LIKE = ("ddp", "zero1")


def is_fsdp(strategy: str) -> bool:
    return strategy in FSDP_RESHARD


def is_tensor_parallel(strategy: str) -> bool:
    return strategy == "tp"


def is_distributed(strategy: str) -> bool:
    return strategy != "single"


def needs_power_of_two(strategy: str) -> bool:
    """Sharded strategies split every tensor's first dimension N ways: MemLens plans them for the
    power-of-two world sizes real clusters use, where shards divide evenly in practice."""
    return is_fsdp(strategy) or strategy == "zero1"


def check(strategy: str, world_size: int, offload: str | None, bucket_cap_mb, mode: str,
          param_dtype: str | None = None, reduce_dtype: str | None = None) -> str | None:
    """One line saying what is wrong with these distributed fields, or None."""
    if strategy not in STRATEGIES:
        return f"strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}"
    if isinstance(world_size, bool) or not isinstance(world_size, int):
        return f"world size must be an integer, got {world_size!r}"
    if not 1 <= world_size <= MAX_WORLD_SIZE:
        return f"world size must be between 1 and {MAX_WORLD_SIZE}, got {world_size}"
    if strategy == "single" and world_size != 1:
        return f"world size {world_size} needs a strategy (--strategy ddp, fsdp, zero1 ...); 'single' is one device"
    if needs_power_of_two(strategy) and world_size & (world_size - 1):
        return f"strategy {strategy} needs a power-of-two world size (1, 2, 4, 8 ...), got {world_size}"
    if offload is not None and offload not in OFFLOADS:
        return f"offload must be one of {', '.join(OFFLOADS)}; got {offload!r}"
    if offload is not None and mode != "train":
        return f"--offload {offload} moves optimizer state to the host, but {mode} mode runs no optimizer (use --mode train)"
    if offload is not None and strategy == "single":
        return f"--offload {offload} needs a distributed strategy (ddp, fsdp, zero1, zero2, zero3)"
    if offload is not None and strategy == "tp":
        return f"--offload {offload} is modelled for data-parallel strategies (ddp, fsdp, zero1 ...), not tp"
    if offload == "params" and not is_fsdp(strategy):
        return f"--offload params needs a sharded strategy (fsdp, fsdp-no-reshard, zero2, zero3), not {strategy}"
    if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not 0 < bucket_cap_mb <= 1024:
        return f"bucket size must be between 0 and 1024 MB, got {bucket_cap_mb!r}"
    for name, value in (("param dtype", param_dtype), ("reduce dtype", reduce_dtype)):
        if value is not None and value not in MIXED_DTYPES:
            return f"{name} must be one of {', '.join(MIXED_DTYPES)}; got {value!r}"
        if value is not None and not is_fsdp(strategy):
            return f"a {name} is FSDP2's mixed-precision policy: it needs fsdp, fsdp-no-reshard, zero2 or zero3"
    return None
