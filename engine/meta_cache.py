"""A memo of meta-kernel results: the same functional op on the same tensor metadata gives an
output of the same shape, strides and dtype, so the (python, often slow) meta kernel runs once
per distinct call and later calls get a fresh `empty_strided` meta tensor.

Only functional ops are memoised (no mutation, outputs alias nothing, by their schema and, for
the few that alias undeclared, by their storage), so in-place updates and views still run their kernels and keep sharing storage exactly as they would. A result is kept
only if re-creating it gives the same storage size, so byte counts cannot change.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch

_MISS = object()


class MetaKernelCache:
    def __init__(self):
        self._results: dict = {}
        self._functional: dict = {}
        self._inplace: dict = {}
        self._checked: set = set()  # in-place calls whose arguments passed the kernel's checks

    def call(self, func, args, kwargs):
        if self._is_inplace(func):
            return self._call_inplace(func, args, kwargs)
        key = self._key(func, args, kwargs)
        if key is not None:
            hit = self._results.get(key, _MISS)
            if hit is not _MISS and hit is not None:
                return _rebuild(hit)
        out = func(*args, **kwargs)
        if key is not None and key not in self._results:
            self._results[key] = None if _aliases_an_input(out, args) else _describe(out)
        return out

    def _call_inplace(self, func, args, kwargs):
        """An in-place op (`add_`, `_foreach_mul_`) on meta tensors only checks its arguments and
        returns `self` (or nothing): once it has passed for some metadata, it passes again. Half
        of a resnet50 trace is Adam's foreach updates, the same at every batch size."""
        try:
            key = (func, _freeze(args), _freeze(tuple(sorted(kwargs.items()))) if kwargs else ())
            hash(key)
        except (_Unkeyable, TypeError):
            return func(*args, **kwargs)
        if key in self._checked:
            return args[0] if func._schema.returns else None
        out = func(*args, **kwargs)
        self._checked.add(key)
        return out

    def _is_inplace(self, func) -> bool:
        """In-place ops that change no metadata: named `op_`, returning `self` or nothing, not an
        out= overload, not an in-place view (`unsqueeze_`, `transpose_`) nor a resize or set."""
        known = self._inplace.get(func)
        if known is None:
            schema = func._schema
            name = schema.name.split("::")[-1]
            returns = schema.returns
            known = (name.endswith("_") and "out" not in schema.overload_name
                     and torch.Tag.inplace_view not in func.tags
                     and not any(word in name for word in ("resize", "set_", "as_strided"))
                     and bool(schema.arguments) and schema.arguments[0].alias_info is not None
                     and schema.arguments[0].alias_info.is_write
                     and sum(1 for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write) == 1
                     and (not returns or (len(returns) == 1 and returns[0].alias_info is not None
                                          and returns[0].alias_info.before_set == schema.arguments[0].alias_info.before_set)))
            self._inplace[func] = known
        return known

    def _is_functional(self, func) -> bool:
        known = self._functional.get(func)
        if known is None:
            schema = func._schema
            known = (not schema.is_mutable and bool(schema.returns)
                     and all(r.alias_info is None for r in schema.returns)
                     and all(str(r.type) in ("Tensor", "Tensor[]") for r in schema.returns))
            self._functional[func] = known
        return known

    def _key(self, func, args, kwargs):
        if not self._is_functional(func):
            return None
        try:
            key = (func, _freeze(args), _freeze(tuple(sorted(kwargs.items()))) if kwargs else ())
            hash(key)
        except _Unkeyable:
            return None
        except TypeError:
            return None
        return key


class _Unkeyable(Exception):
    pass


def _freeze(value):
    if isinstance(value, torch.Tensor):
        if value.device.type != "meta":
            raise _Unkeyable
        return ("T", tuple(value.shape), value.stride(), value.dtype, value.storage_offset())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, (int, float, bool, str, type(None), torch.dtype, torch.device, torch.layout,
                          torch.memory_format)):
        return (type(value), value)
    raise _Unkeyable


def _aliases_an_input(out, args) -> bool:
    """Whether an output shares an input's storage: `_unsafe_view` (what `reshape` and `matmul`
    return) is a view its schema does not declare, and a rebuilt copy would count its bytes again
    (swin_t inference +1.8%)."""
    outs = [out] if isinstance(out, torch.Tensor) else [t for t in out if isinstance(t, torch.Tensor)] \
        if isinstance(out, (list, tuple)) else []
    inputs = {id(a.untyped_storage()) for a in args if isinstance(a, torch.Tensor)}
    return any(id(t.untyped_storage()) in inputs for t in outs)


def _describe(out):
    """What it takes to rebuild `out`, or None when it cannot be rebuilt exactly."""
    tensors = [out] if isinstance(out, torch.Tensor) else list(out) if isinstance(out, (list, tuple)) else None
    if not tensors or not all(isinstance(t, torch.Tensor) and t.device.type == "meta" for t in tensors):
        return None
    desc = []
    for t in tensors:
        if t.storage_offset() != 0:
            return None
        rebuilt = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
        if rebuilt.untyped_storage().nbytes() != t.untyped_storage().nbytes():
            return None
        desc.append((tuple(t.shape), t.stride(), t.dtype))
    if len({id(t.untyped_storage()) for t in tensors}) != len(tensors):
        return None  # outputs sharing one storage
    return (isinstance(out, torch.Tensor), type(out), desc)


def _rebuild(hit):
    single, kind, desc = hit
    tensors = [torch.empty_strided(shape, stride, dtype=dtype, device="meta") for shape, stride, dtype in desc]
    if single:
        return tensors[0]
    return kind(tensors) if kind is list else tuple(tensors)


# A memo shared by every trace inside `shared_kernel_cache()`: the planner traces one model at
# several batch sizes, and the ops that do not depend on the batch (the whole optimizer step,
# half of a resnet50 trace) then run their meta kernels once. A context variable keeps it to the
# thread (the worker) that opened it.
_SHARED: contextvars.ContextVar[MetaKernelCache | None] = contextvars.ContextVar("memlens_kernel_cache", default=None)


@contextlib.contextmanager
def shared_kernel_cache():
    token = _SHARED.set(MetaKernelCache())
    try:
        yield
    finally:
        _SHARED.reset(token)


def kernel_cache() -> MetaKernelCache:
    """The shared memo when one is open, else a fresh one for this trace."""
    return _SHARED.get() or MetaKernelCache()
