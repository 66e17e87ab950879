"""DTensor's sharding propagation for foreach ops, made cheap while a trace runs.

Why: FSDP2's optimizer step is a handful of `_foreach_*` ops over every parameter's DTensor
(965 of them in the 70B spec); torch 2.14 propagates their sharding element by element in
Python, which was three quarters of a 64-rank 70B trace. Two changes, neither altering a
result (the per-rank traces are identical to the byte with and without them):

- `_propagate_use_strided_shard_flag(child, op_schema)` runs once per list element and each call
  scans the whole schema's argument specs for a `_StridedShard` (quadratic in the parameter
  count). The scan's answer is computed once per op schema; torch's function runs as before
  whenever the inputs hold a `_StridedShard` and is skipped when they hold none, where it does
  nothing (its `_use_strided is None` return).
- The per-element strategies of one foreach op are expanded once per distinct element: elements
  whose argument specs (`DTensorSpec` equality: mesh, placements, shape, stride, dtype: torch's
  own sharding-cache key) and output metadata are equal get the same strategy, as torch's
  sharding cache gives them for ordinary ops. The 80 blocks of a transformer share ~12 shapes.
"""
from __future__ import annotations

import contextlib
import dataclasses

_FOREACH = ("aten::_foreach_", "aten::_amp_foreach_", "aten::_fused_")  # torch's test for a foreach expansion


@contextlib.contextmanager
def linear_foreach_sharding():
    from torch.distributed.tensor import _sharding_prop as prop

    flag, expand = prop._propagate_use_strided_shard_flag, prop._expand_single_dim_strategy_to_mesh
    prop._propagate_use_strided_shard_flag = _strided_flag_once_per_schema(flag, prop._StridedShard)
    prop._expand_single_dim_strategy_to_mesh = _expand_distinct_elements(expand)
    try:
        yield
    finally:
        prop._propagate_use_strided_shard_flag, prop._expand_single_dim_strategy_to_mesh = flag, expand


# ---- Private API
def _strided_flag_once_per_schema(original, strided):
    last: list = [None, False]  # the op schema last asked about, and whether its inputs hold a _StridedShard

    def propagate(op_strategy, op_schema) -> None:
        if last[0] is not op_schema:
            last[:] = op_schema, any(isinstance(p, strided) for spec in op_schema.args_spec for p in spec.placements)
        if last[1]:
            original(op_strategy, op_schema)

    return propagate


def _expand_distinct_elements(original):
    from torch.distributed.tensor._op_schema import OpStrategy, TupleStrategy

    def expand(mesh, op_schema, strategy_info, output_tensor_meta):
        lists = {i: a for i, a in enumerate(op_schema.args_schema) if isinstance(a, TupleStrategy)}
        if not lists or not op_schema.op.name().startswith(_FOREACH) or \
                any(isinstance(v, TupleStrategy) for v in op_schema.kwargs_schema.values()):
            return original(mesh, op_schema, strategy_info, output_tensor_meta)
        n = len(next(iter(lists.values())).children)
        children = [a.children for a in lists.values()]
        if any(len(c) != n or not all(isinstance(s, OpStrategy) for s in c) for c in children):
            return original(mesh, op_schema, strategy_info, output_tensor_meta)
        keys = [(tuple(_strategy_key(c[j]) for c in children),
                 output_tensor_meta[j] if output_tensor_meta is not None else None) for j in range(n)]
        slot: dict = {}
        for j, key in enumerate(keys):
            slot.setdefault(key, j)
        if len(slot) == n:
            return original(mesh, op_schema, strategy_info, output_tensor_meta)
        firsts = list(slot.values())
        args = tuple(TupleStrategy([a.children[j] for j in firsts]) if i in lists else a
                     for i, a in enumerate(op_schema.args_schema))
        distinct = dataclasses.replace(op_schema, args_schema=args)
        metas = None if output_tensor_meta is None else [output_tensor_meta[j] for j in firsts]
        expanded = original(mesh, distinct, strategy_info, metas)
        position = {key: k for k, key in enumerate(slot)}

        def strategy(op, args_schema, kwargs_schema):
            made = expanded(op, distinct.args_meta, distinct.kwargs_meta).children
            return TupleStrategy([made[position[key]] for key in keys])

        return strategy

    return expand


def _strategy_key(strategy) -> tuple:
    return tuple((spec.output_specs, spec.input_specs) for spec in strategy.strategies)
