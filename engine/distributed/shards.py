"""Shard arithmetic, from parameter shapes alone: what each rank holds under each strategy.

Written independently of the wrappers, so the trace (which runs the wrappers) can be checked
against it to the byte, and so the ranks whose shards differ can be found without tracing all N:
- FSDP2 splits dim 0 like `torch.chunk`: c = ceil(d0 / N) rows per rank; every rank allocates the
  padded c rows for its parameter and gradient shards, while the optimizer state follows the
  rank's real rows (fewer, or none, on the last ranks when N does not divide d0).
- ZeRO-1 (ZeroRedundancyOptimizer) gives each parameter, largest first, to the rank holding the
  fewest elements so far (the lowest such rank on ties).
- Tensor parallelism (tp) slices each split layer's weight along one dimension (column-wise:
  output features, dim 0, and the bias; row-wise: input features, dim 1, the bias whole) into N
  equal parts (the plan refuses features N does not divide); the rest is whole on every rank.
- Adam keeps two tensors of the parameter's shape and dtype plus a 4-byte step counter (on the
  host for CUDA targets); SGD with momentum one tensor; plain SGD nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .strategies import is_fsdp, is_tensor_parallel


@dataclass(frozen=True)
class ParamSpec:
    shape: tuple[int, ...]
    itemsize: int
    trainable: bool
    split_dim: int | None = None  # tp: the dimension sliced N ways (None: whole)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def param_specs(module, itemsize: int, split_dims: dict[int, int] | None = None) -> list[ParamSpec]:
    """Each distinct parameter once (tied weights count once), in registration order;
    `split_dims`: id(parameter) -> the dimension tensor parallelism slices."""
    seen, out = set(), []
    for p in module.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            out.append(ParamSpec(tuple(p.shape), itemsize if p.is_floating_point() else p.element_size(),
                                 p.requires_grad, (split_dims or {}).get(id(p))))
    return out


def chunk_rows(d0: int, world_size: int, rank: int) -> tuple[int, int]:
    """(padded rows every rank allocates, rows this rank really holds) for FSDP's dim-0 split."""
    padded = -(-d0 // world_size)
    return padded, min(padded, max(0, d0 - rank * padded))


def zero1_owner(specs: list[ParamSpec], world_size: int) -> list[int]:
    """The rank that owns each trainable parameter's optimizer state (-1: frozen)."""
    sizes = [0] * world_size
    owner = [-1] * len(specs)
    trainable = [i for i, s in enumerate(specs) if s.trainable]
    for i in sorted(trainable, key=lambda i: specs[i].numel, reverse=True):  # stable, as torch's sort
        rank = sizes.index(min(sizes))
        owner[i] = rank
        sizes[rank] += specs[i].numel
    return owner


def state_bytes(numel: int, itemsize: int, optimizer: str, step_bytes: int) -> int:
    if optimizer in ("adam", "adamw"):
        return 2 * numel * itemsize + step_bytes
    if optimizer == "momentum":
        return numel * itemsize
    return 0


def model_state(specs: list[ParamSpec], strategy: str, world_size: int, rank: int, optimizer: str,
                step_bytes: int = 4) -> dict[str, int]:
    """Bytes of parameters, gradients and optimizer state rank `rank` holds after a step."""
    params = grads = state = 0
    owner = zero1_owner(specs, world_size) if strategy == "zero1" else None
    for i, s in enumerate(specs):
        rest = s.numel // s.shape[0] if s.shape and s.shape[0] else 0
        if is_fsdp(strategy) and s.shape:
            padded, real = chunk_rows(s.shape[0], world_size, rank)
            params += padded * rest * s.itemsize
            if s.trainable:
                grads += padded * rest * s.itemsize
                state += state_bytes(real * rest, s.itemsize, optimizer, step_bytes)
            continue
        numel = s.numel // world_size if is_tensor_parallel(strategy) and s.split_dim is not None else s.numel
        params += numel * s.itemsize
        if s.trainable:
            grads += numel * s.itemsize
            if owner is None or owner[i] == rank:
                state += state_bytes(numel, s.itemsize, optimizer, step_bytes)
    return {"parameters": params, "gradients": grads, "optimizer_state": state}


def rank_signature(specs: list[ParamSpec], strategy: str, world_size: int, rank: int) -> tuple:
    """Ranks with equal signatures hold equal shards, so they trace to the same timeline."""
    if is_fsdp(strategy):
        return tuple(chunk_rows(s.shape[0], world_size, rank)[1] if s.shape else 0 for s in specs)
    if strategy == "zero1":
        owner = zero1_owner(specs, world_size)
        return tuple(sorted(specs[i].shape for i, o in enumerate(owner) if o == rank))
    return ()
