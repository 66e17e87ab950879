"""The meta-kernel memo (engine/meta_cache.py) must never change what shares storage: a rebuilt
output is a new storage, so only outputs that alias nothing may be rebuilt."""
import torch

from engine.meta_cache import MetaKernelCache

aten = torch.ops.aten


def test_an_undeclared_view_still_shares_its_input_storage_on_a_repeated_call():
    # `_unsafe_view` (what reshape and matmul return) aliases its input, though its schema says not.
    cache = MetaKernelCache()
    for _ in range(2):
        x = torch.empty(8, 6, device="meta")
        y = cache.call(aten._unsafe_view.default, (x, [48]), {})
        assert y.untyped_storage() is x.untyped_storage()


def test_a_functional_op_is_memoised_with_the_same_metadata():
    cache = MetaKernelCache()
    x = torch.empty(4, 5, device="meta").t()
    first = cache.call(aten.clone.default, (x,), {})
    again = cache.call(aten.clone.default, (x,), {})
    assert again is not first and again.untyped_storage() is not first.untyped_storage()
    assert (again.shape, again.stride(), again.dtype) == (first.shape, first.stride(), first.dtype)
    assert len(cache._results) == 1
