"""One rank's trace (`Plan`, the hooks engine/pipeline.py calls) and the distributed analysis
(`analyze_distributed`): rank 0 traced under a fake process group, plus each rank whose shards
differ from it, summarised per rank.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses

from ..errors import UnsupportedError
from ..step import optimizer_state_tensors
from ..target import target_for
from .fake_group import fake_process_group
from .foreach_sharding import linear_foreach_sharding
from .recorder import DistributedRecorder, local
from .reference import deepspeed_reference
from .shards import model_state, param_specs, rank_signature
from .strategies import is_fsdp, is_tensor_parallel
from .tensor_parallel import plan_notes, plan_tensor_parallel, split_dims
from .summary import DistributedSummary, RankTrace

# Ranks traced at most: rank 0 and the ranks holding the most and the least model state. Others
# (ZeRO-1 gives every rank its own partition) are derived from rank 0 by their model-state bytes.
MAX_TRACED_RANKS = 3
_CURVE_POINTS = 400


class Plan:
    """The hooks of one rank's trace: a fresh copy of the model, the wrapper, ZeRO-1's optimizer,
    the recorder that understands collectives, and what the rank holds after the step."""

    def __init__(self, request, rank: int, mesh, tensor_parallel=None):
        self.request, self.rank, self.mesh = request, rank, mesh
        self.tensor_parallel = tensor_parallel  # strategy tp: the column/row split (TensorParallelSplit)
        self.held: dict[str, int] = {}
        self.host_bytes = 0

    def materialize(self, module, tensor_mode, dtype):
        """A copy of the meta-built model as fake CPU tensors, sharded for FSDP or split for tp.

        Wrapping changes a module in place (FSDP2 swaps its class and parameters), so each trace
        wraps its own copy (cheap: meta tensors hold no data). FSDP2 shards the *meta* model and
        is then materialised with `to_empty` under the fake mode (FSDP2's meta-device flow):
        splitting meta tensors is ~50x faster than splitting fake ones, which dominated 64-way
        sharding of a 70B model (torch.chunk into 64 fake views per parameter). Tensor
        parallelism slices the meta model the same way.
        """
        from .tensor_parallel import apply_tensor_parallel
        from .wrap import apply_fsdp
        from ..sources.empty_init import to_fake
        from ..step import cast_floating

        model = copy.deepcopy(module)
        r = self.request
        if is_fsdp(r.strategy):
            model = apply_fsdp(cast_floating(model, dtype), self.mesh, r.strategy, _dtype(r.param_dtype),
                               _dtype(r.reduce_dtype))
        elif is_tensor_parallel(r.strategy):
            model = apply_tensor_parallel(cast_floating(model, dtype), self.mesh, self.tensor_parallel)
        else:
            return to_fake(model, tensor_mode, dtype)
        allowed, tensor_mode.allow_non_fake_inputs = tensor_mode.allow_non_fake_inputs, True  # meta in, fake out
        try:
            with tensor_mode:
                model.to_empty(device="cpu")
        finally:
            tensor_mode.allow_non_fake_inputs = allowed
        return model

    def wrap(self, model, tensor_mode):
        """DDP around the fake model (FSDP and tp were applied by `materialize`)."""
        from .wrap import apply_ddp

        if is_fsdp(self.request.strategy) or is_tensor_parallel(self.request.strategy):
            return model
        r = self.request
        with tensor_mode:
            return apply_ddp(model, r.bucket_cap_mb, r.gradient_as_bucket_view, fake=True)

    def after_probe(self, model):
        """Reshard after the no-grad forward that found the output shapes: FSDP2 without reshard
        after forward leaves each unit's parameters gathered until a backward it will not get,
        and a step starting so would skip its own forward all-gathers (a training loop's step
        starts sharded: the previous backward resharded)."""
        from torch.distributed.fsdp import FSDPModule

        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.reshard()

    def wrap_optimizer(self, optimizer):
        from .wrap import tp_optimizer, zero1_optimizer

        if is_tensor_parallel(self.request.strategy):
            return tp_optimizer(optimizer)
        return zero1_optimizer(optimizer) if self.request.strategy == "zero1" else optimizer

    def recorder(self, model, device, cancelled=None, on_layer=None):
        bucket = "gradients" if self.request.gradient_as_bucket_view else "communication"
        return DistributedRecorder(model, device, cancelled, on_layer, bucket_category=bucket,
                                   offload=self.request.offload)

    @contextlib.contextmanager
    def tracing(self, recorder):
        """FSDP2: its storage resizes reported to the recorder; FSDP2 and tp: their DTensor foreach
        ops in linear time."""
        if is_tensor_parallel(self.request.strategy):
            with linear_foreach_sharding(), mha_fast_path_off():
                yield
            return
        if not is_fsdp(self.request.strategy):
            yield
            return
        with recorder.fsdp_storage_hooks(), linear_foreach_sharding():
            yield

    def finish(self, analysis, recorder, model, optimizer):
        """Read what this rank holds (unique local storages) while the step's objects live."""
        on_device = target_for(self.request.device).on_device
        params = [p for p in model.parameters()]
        self.held = {
            "parameters": _unique_bytes(local(p) for p in params),
            "gradients": _unique_bytes(local(p.grad) for p in params if p.grad is not None),
            "optimizer_state": _unique_bytes(local(t) for k, t in optimizer_state_tensors(optimizer) if on_device(k, t)),
        }
        self.host_bytes = recorder.host_bytes
        return analysis


def analyze_distributed(loaded, request, report, cancelled, started, trace):
    """Trace rank 0 (and each rank that differs) of `request.world_size` and summarise per rank."""
    n, strategy = request.world_size, request.strategy
    tensor_parallel = dims = None
    if is_tensor_parallel(strategy):  # refused here, in one line naming the layer, before any trace
        tensor_parallel = plan_tensor_parallel(loaded.module, n, loaded.name)
        dims = split_dims(loaded.module, tensor_parallel)
    specs = param_specs(loaded.module, _itemsize(request), dims)
    if not specs and strategy != "single":
        raise UnsupportedError(f"{loaded.name}: strategy {strategy} shards and reduces parameters, but the model has "
                               "none (choose --strategy single)")
    step_bytes = 4 if request.device == "cpu" else 0
    optimizer = request.optimizer if request.mode == "train" else "none"
    states = [model_state(specs, strategy, n, r, optimizer, step_bytes) for r in range(n)]
    groups: dict[tuple, list[int]] = {}
    for r in range(n):
        groups.setdefault(rank_signature(specs, strategy, n, r), []).append(r)
    traced = _ranks_to_trace(groups, states)
    results: list[tuple[int, object, Plan]] = []
    for i, rank in enumerate(traced):
        def scaled(fraction, message, i=i):
            report((i + fraction) / len(traced), f"rank {rank}: {message}" if len(traced) > 1 else message)
        with fake_process_group(rank, n) as mesh:
            plan = Plan(request, rank, mesh, tensor_parallel)
            results.append((rank, trace(loaded, request, scaled, cancelled, started, plan), plan))
    return _summarised(request, results, groups, states, tensor_parallel)


# ---- Private API
def _ranks_to_trace(groups: dict[tuple, list[int]], states: list[dict]) -> list[int]:
    firsts = [ranks[0] for ranks in groups.values()]
    if len(firsts) <= MAX_TRACED_RANKS:
        return firsts
    total = [sum(s.values()) for s in states]
    picks = [0, max(firsts, key=lambda r: total[r]), min(firsts, key=lambda r: total[r])]
    return list(dict.fromkeys(picks))


def _summarised(request, results, groups, states, tensor_parallel=None):
    """The analysis of the traced rank with the highest peak (rank 0 unless another holds more), so
    the fit check and the largest batch plan for the fullest GPU, with every rank summarised."""
    rank0, analysis0, plan0 = max(results, key=lambda r: (r[1].peak.total_bytes, -r[0]))
    n = request.world_size
    peaks: list[int | None] = [None] * n
    traces = []
    for rank, analysis, plan in results:
        group = next(ranks for ranks in groups.values() if rank in ranks)
        for r in group:
            peaks[r] = analysis.peak.total_bytes
        picks = analysis.timeline.peak_points(max_points=_CURVE_POINTS)
        traces.append(RankTrace(rank=rank, ranks=tuple(group), peak_bytes=analysis.peak.total_bytes,
                                model_state=tuple(plan.held.items()), curve_points=tuple(int(p) for p in picks),
                                curve_bytes=tuple(int(b) for b in analysis.timeline.total[picks])))
    notes = list(_strategy_notes(request))
    if tensor_parallel is not None:
        notes += plan_notes(tensor_parallel, n)
    derived = [r for r in range(n) if peaks[r] is None]
    base = sum(states[rank0].values())
    for r in derived:
        peaks[r] = analysis0.peak.total_bytes + sum(states[r].values()) - base
    if derived:
        notes.append(f"{len(derived)} of {n} ranks not traced: their peaks are rank {rank0}'s plus the difference "
                     "in model-state bytes their shards hold")
    if rank0 != 0:
        notes.append(f"the timeline shows rank {rank0}, the traced rank with the highest peak")
    comm = analysis0.timeline.curves["communication"]
    breakdown = analysis0.peak.breakdown
    held = sum(plan0.held.values())
    reference = deepspeed_reference(analysis0.parameters, n, held, analysis0.peak.total_bytes,
                                    breakdown["communication"], breakdown["activations"])
    summary = DistributedSummary(
        strategy=request.strategy, world_size=n, offload=request.offload, bucket_cap_mb=request.bucket_cap_mb,
        per_rank_peak_bytes=tuple(int(p) for p in peaks), ranks=tuple(traces),
        communication_peak_bytes=int(comm.max()) if len(comm) else 0,
        communication_at_peak_bytes=int(breakdown["communication"]),
        host_offload_bytes=int(plan0.host_bytes), reference=reference, notes=tuple(notes),
        tensor_parallel=tensor_parallel)
    return dataclasses.replace(analysis0, distributed=summary)


def _strategy_notes(request) -> list[str]:
    notes = {
        "zero1": "ZeRO-1 traced as DDP + torch's ZeroRedundancyOptimizer (optimizer state sharded)",
        "zero2": "ZeRO-2 traced as FSDP2 fully_shard(reshard_after_forward=False): gradients and optimizer "
                 "state sharded, full parameters held from forward through backward",
        "zero3": "ZeRO-3 traced as FSDP2 fully_shard (full sharding)",
    }
    out = [notes[request.strategy]] if request.strategy in notes else []
    if request.offload:
        out.append(f"--offload {request.offload}: "
                   + ("optimizer state and the optimizer step live in host memory" if request.offload == "optimizer"
                      else "parameter shards, their gradients and optimizer state live in host memory; "
                           "all-gathered parameters are on the device"))
    return out


@contextlib.contextmanager
def mha_fast_path_off():
    """Tensor parallelism: nn.TransformerEncoderLayer's no-grad fast path hands its weights to one
    fused kernel (torch._transformer_encoder_layer_fwd), past parallelize_module's hooks, and fails
    on the split ones; DTensor weights do not turn it off (they define no __torch_function__), so
    tp runs it as torch.backends.mha.set_fastpath_enabled(False) would, the layers one by one."""
    import torch

    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


def _dtype(name):
    from ..step import torch_dtype

    return None if name is None else torch_dtype(name)


def _itemsize(request) -> int:
    return {"float32": 4, "float16": 2, "bfloat16": 2}[request.dtype]


def _unique_bytes(tensors) -> int:
    seen: dict[int, int] = {}
    for t in tensors:
        st = t.untyped_storage()
        seen[id(st)] = st.nbytes()
    return sum(seen.values())
