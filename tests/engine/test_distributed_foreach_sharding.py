"""The foreach sharding shortcuts (engine/distributed/foreach_sharding.py) change how fast DTensor
propagates a foreach op's sharding, never what it decides: the same output placements, shapes and
local shards, and the same FSDP trace to the byte, with and without them.

DTensor caches sharding decisions per process (in Python and in C++): each run here starts with
empty caches, or the second run would replay the first one's decisions instead of making its own.
"""
import contextlib
import os

import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.distributed import plan
from engine.distributed.fake_group import fake_process_group
from engine.distributed.foreach_sharding import linear_foreach_sharding

WORLD = 4
# 12 DTensors of 3 distinct global (shape, dtype): what a stack of identical blocks looks like.
SHAPES = [((8, 4), torch.float32), ((8,), torch.float32), ((4, 4), torch.bfloat16)] * 4


def _placements(kind: str) -> list:
    """One placement per element of SHAPES: equal shapes placed differently must not share a strategy."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor.placement_types import _StridedShard

    other = {"mixed": Shard(1), "strided": _StridedShard(0, split_factor=2)}[kind]
    cycle = [Shard(0), Replicate(), Shard(0), other, Replicate(), Shard(0)]
    return [cycle[i % len(cycle)] if shape[0] > 1 and (len(shape) > 1 or cycle[i % len(cycle)] != Shard(1))
            else Replicate() for i, (shape, _) in enumerate(SHAPES)]


def _clear_sharding_caches() -> None:
    from torch.distributed.tensor.debug import _clear_sharding_prop_cache

    _clear_sharding_prop_cache()


def _local(shape, placement) -> tuple[int, ...]:
    """The local shard of a global shape (every dimension of SHAPES divides by WORLD)."""
    dim = getattr(placement, "dim", None)
    return tuple(d // WORLD if i == dim else d for i, d in enumerate(shape))


def _foreach_results(kind: str, shortcuts: bool):
    """Run an Adam-like sequence of foreach ops on DTensors; describe every output and input."""
    from torch.distributed.tensor import DTensor

    _clear_sharding_caches()
    with fake_process_group(0, WORLD) as mesh, FakeTensorMode():
        def dtensors():
            return [DTensor.from_local(torch.empty(_local(shape, p), dtype=dtype), mesh, [p], run_check=False)
                    for (shape, dtype), p in zip(SHAPES, _placements(kind))]

        params, grads = dtensors(), dtensors()
        with linear_foreach_sharding() if shortcuts else contextlib.nullcontext():
            torch._foreach_mul_(grads, 0.5)
            squares = torch._foreach_mul(grads, grads)
            roots = torch._foreach_sqrt(squares)
            torch._foreach_add_(roots, 1e-8)
            torch._foreach_addcdiv_(params, grads, roots, value=-0.1)
            torch._foreach_lerp_(squares, grads, 0.1)
            # Equal shapes placed differently (mixed: DTensor redistributes; a _StridedShard's
            # redistribution reads data that fake tensors lack, so there the placements match).
            shift = {"mixed": 3, "strided": 6}[kind]
            sums = torch._foreach_add(params, squares[shift:] + squares[:shift])
        return [(tuple(t.placements), tuple(t.shape), t.stride(), t.dtype, tuple(t.to_local().shape),
                 t._spec.shard_order, t._spec.use_strided_shard_as_shard_order)
                for t in (*params, *grads, *squares, *roots, *sums)]


@pytest.mark.parametrize("kind", ["mixed", "strided"])
def test_foreach_ops_shard_the_same_with_and_without_the_shortcuts(kind):
    assert len(set(map(str, _placements(kind)))) == 3
    assert _foreach_results(kind, shortcuts=True) == _foreach_results(kind, shortcuts=False)


def test_each_distinct_element_is_expanded_once():
    """12 DTensors of 3 distinct shapes: torch's per-element expansion sees 3 elements."""
    from torch.distributed.tensor import DTensor, Shard
    from torch.distributed.tensor import _sharding_prop as prop

    _clear_sharding_caches()
    seen: list[int] = []
    original = prop._expand_single_dim_strategy_to_mesh

    def counting(mesh, op_schema, info, meta):
        lists = [a for a in op_schema.args_schema if type(a).__name__ == "TupleStrategy"]
        if lists:
            seen.append(len(lists[0].children))
        return original(mesh, op_schema, info, meta)

    prop._expand_single_dim_strategy_to_mesh = counting
    try:
        with fake_process_group(0, WORLD) as mesh, FakeTensorMode():
            ts = [DTensor.from_local(torch.empty(_local(s, Shard(0)), dtype=d), mesh, [Shard(0)], run_check=False)
                  for s, d in SHAPES]
            with linear_foreach_sharding():
                out = torch._foreach_mul(ts, 2.0)
    finally:
        prop._expand_single_dim_strategy_to_mesh = original
    assert seen == [3]
    assert [(tuple(t.shape), t.dtype) for t in out] == SHAPES
    assert prop._expand_single_dim_strategy_to_mesh is original  # the context put torch's own back


def test_fsdp_trace_is_identical_with_and_without_the_shortcuts(monkeypatch):
    request = AnalysisRequest(model=os.path.join(SPECS, "tiny_transformer.yaml"), batch=2, strategy="fsdp",
                              world_size=4)
    _clear_sharding_caches()
    fast = analyze(request)
    monkeypatch.setattr(plan, "linear_foreach_sharding", contextlib.nullcontext)
    _clear_sharding_caches()
    slow = analyze(request)
    for column in ("nbytes", "storage", "category", "module", "phase"):
        assert np.array_equal(getattr(fast.events, column), getattr(slow.events, column)), column
    assert fast.distributed.per_rank_peak_bytes == slow.distributed.per_rank_peak_bytes
    assert np.array_equal(fast.timeline.total, slow.timeline.total)


@pytest.mark.parametrize("strided_input", [True, False])
def test_the_strided_shard_flag_is_fixed_up_as_torch_does(strided_input):
    """torch's fix-up makes a strategy's _StridedShard specs follow the inputs' flag; with the
    shortcut it still does when an input holds a _StridedShard, and nothing happens otherwise."""
    from torch.distributed.tensor import Shard
    from torch.distributed.tensor import _sharding_prop as prop
    from torch.distributed.tensor._dtensor_spec import DTensorSpec, TensorMeta
    from torch.distributed.tensor._op_schema import OpSchema, OpSpec, OpStrategy
    from torch.distributed.tensor.placement_types import _StridedShard

    meta = TensorMeta(torch.Size([8, 4]), (4, 1), torch.float32)
    strided = (_StridedShard(0, split_factor=2),)

    def fixed_up(shortcut: bool) -> bool:
        with fake_process_group(0, WORLD) as mesh:
            given = DTensorSpec(mesh, strided if strided_input else (Shard(0),), tensor_meta=meta,
                                use_strided_shard_as_shard_order=True)
            out = DTensorSpec(mesh, strided, tensor_meta=meta, use_strided_shard_as_shard_order=False)
            schema = OpSchema(torch.ops.aten.mul.Tensor, (given, given), {})
            with linear_foreach_sharding() if shortcut else contextlib.nullcontext():
                prop._propagate_use_strided_shard_flag(OpStrategy([OpSpec(out)]), schema)
            return out.use_strided_shard_as_shard_order

    assert fixed_up(shortcut=True) == fixed_up(shortcut=False) == strided_input
