"""Apply torch's own data- and tensor-parallel wrappers to a model, the same way for the trace (fake tensors,
fake process group) and for the truth (real tensors, gloo): one function each, so the two cannot
drift apart.
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from .strategies import FSDP_RESHARD, is_fsdp, is_tensor_parallel


def shard_units(model: nn.Module) -> list[nn.Module]:
    """The modules FSDP wraps one by one before the root, as people wrap them by hand: the blocks
    of a repeated stack (a ModuleList's layers, a Sequential's identical children with parameters:
    transformer blocks, ResNet's BasicBlocks); a model without such a stack gets its direct
    children with parameters. Units never nest, and the root takes whatever is left."""
    units: list[nn.Module] = []
    taken: set[int] = set()

    def visit(module: nn.Module) -> None:
        children = [c for c in module.children() if any(True for _ in c.parameters())]
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(children) >= 2 and \
                len({type(c) for c in children}) == 1 and module is not model:
            units.extend(children)
            taken.update(id(c) for c in children)
            return
        for child in module.children():
            visit(child)

    visit(model)
    if not units:
        units = [c for c in model.children() if any(True for _ in c.parameters())]
    return units


def apply_fsdp(model: nn.Module, mesh, strategy: str, param_dtype=None, reduce_dtype=None) -> nn.Module:
    """FSDP2 `fully_shard` on each unit, then on the root (what the FSDP2 tutorial does)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    reshard = FSDP_RESHARD[strategy]
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=reduce_dtype)
    for unit in shard_units(model):
        fully_shard(unit, mesh=mesh, reshard_after_forward=reshard, mp_policy=policy)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard, mp_policy=policy)
    return model


def apply_tp(model: nn.Module, mesh, name: str = "model") -> nn.Module:
    """Tensor parallelism: the column/row plan found in the model, applied by parallelize_module."""
    from .tensor_parallel import apply_tensor_parallel, plan_tensor_parallel

    return apply_tensor_parallel(model, mesh, plan_tensor_parallel(model, mesh.size(), name))


def apply_ddp(model: nn.Module, bucket_cap_mb: float, gradient_as_bucket_view: bool, fake: bool) -> nn.Module:
    """DistributedDataParallel with its gradient buckets. Under the fake group the initial
    cross-rank checks (which read parameter values) are skipped, and the all-reduce completes at
    once through a comm hook that hands the bucket back, as the real all-reduce does."""
    ddp = nn.parallel.DistributedDataParallel(model, bucket_cap_mb=bucket_cap_mb,
                                              gradient_as_bucket_view=gradient_as_bucket_view,
                                              init_sync=not fake)
    if fake:
        ddp.register_comm_hook(dist.group.WORLD, _fake_allreduce_hook)
    return ddp


def apply(model: nn.Module, strategy: str, mesh, *, bucket_cap_mb: float = 25, gradient_as_bucket_view: bool = False,
          fake: bool = True, param_dtype=None, reduce_dtype=None) -> nn.Module:
    if is_fsdp(strategy):
        return apply_fsdp(model, mesh, strategy, param_dtype, reduce_dtype)
    if is_tensor_parallel(strategy):
        return apply_tp(model, mesh)
    return apply_ddp(model, bucket_cap_mb, gradient_as_bucket_view, fake)


def zero1_optimizer(optimizer):
    """ZeRO-1: the same optimizer, its state partitioned across ranks by torch's
    ZeroRedundancyOptimizer (each rank steps the parameters it owns, then broadcasts them)."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    if optimizer is None:
        return None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return ZeroRedundancyOptimizer(params, optimizer_class=type(optimizer), **optimizer.defaults)


def tp_optimizer(optimizer):
    """Tensor parallelism: the same optimizer with the split (DTensor) parameters and the whole
    ones in two param groups. torch's foreach optimizers (the CUDA default) refuse a mix of the
    two in one list op ("got mixed torch.Tensor and DTensor"); each group runs its own."""
    from torch.distributed.tensor import DTensor

    if optimizer is None:
        return None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = [{"params": g} for g in ([p for p in params if isinstance(p, DTensor)],
                                      [p for p in params if not isinstance(p, DTensor)]) if g]
    return type(optimizer)(groups, **optimizer.defaults)


def _fake_allreduce_hook(group, bucket):
    """The default all-reduce, issued on the fake group, resolving to the bucket it reduced
    (the fake backend's future carries no value, which DDP's C++ reducer rejects)."""
    tensor = bucket.buffer()
    dist.all_reduce(tensor, group=group)
    future = torch.futures.Future()
    future.set_result(tensor)
    return future
