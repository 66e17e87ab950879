"""Attention as a CPU runs it: the flash kernel's own buffers (engine/cpu_attention.py) against the
allocator's events of the same op run for real here (torch.profiler), and the kernel choice asked
of small stand-ins (engine/target.py) against the choice for the full-size tensors."""
import random

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from engine.cpu_attention import attention_script
from engine.target import _stand_ins

aten = torch.ops.aten
FORWARD = aten._scaled_dot_product_flash_attention_for_cpu.default
BACKWARD = aten._scaled_dot_product_flash_attention_for_cpu_backward.default


def measured(op):
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = op()
    del out
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    return [e.nbytes() for e in events]


def scripted(script, outputs):
    held, events = {}, []
    for step in script:
        if step[0] == "alloc":
            held[step[1]] = step[2]
            events.append(step[2])
        elif step[0] == "free":
            events.append(-held.pop(step[1]))
        else:
            events.append(outputs[step[1]])
    return events


def nbytes(t):
    return t.numel() * t.element_size()


# (batch, heads, query length, key length, head size): each query split (32, 64, 256 rows), a key
# length below the 512-key tile, ViT-B's 197 tokens.
SHAPES = [(2, 4, 100, 100, 16), (2, 4, 300, 300, 64), (8, 4, 1024, 1024, 16), (2, 4, 1024, 77, 64),
          (1, 12, 197, 197, 64)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_the_forward_takes_per_thread_tiles_after_its_outputs(shape, dtype):
    b, h, lq, lk, e = shape
    q, k, v = torch.randn(b, h, lq, e, dtype=dtype), torch.randn(b, h, lk, e, dtype=dtype), torch.randn(b, h, lk, e, dtype=dtype)
    out, lse = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)
    expected = scripted(attention_script(FORWARD, (q, k, v, 0.0, False)), (nbytes(out), nbytes(lse)))
    assert measured(lambda: aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)) == expected


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("layout", ["heads first", "sequence first"])
def test_the_backward_copies_a_gradient_laid_out_heads_first_and_takes_its_tiles(shape, layout):
    b, h, lq, lk, e = shape
    q, k, v = torch.randn(b, h, lq, e), torch.randn(b, h, lk, e), torch.randn(b, h, lk, e)
    out, lse = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)
    # heads first: what a .contiguous() upstream leaves; sequence first: the gradient of
    # y.transpose(1, 2).reshape(b, t, d), as a model that merges its heads passes it back.
    grad = torch.randn(b, h, lq, e) if layout == "heads first" else torch.randn(b, lq, h, e).transpose(1, 2)
    args = (grad, q, k, v, out, lse, 0.0, False)
    script = attention_script(BACKWARD, args)
    expected = scripted(script, (nbytes(q), nbytes(k), nbytes(v)))
    assert measured(lambda: aten._scaled_dot_product_flash_attention_for_cpu_backward(*args)) == expected
    assert (("alloc", "gradient copy", nbytes(grad)) in script) == (layout == "heads first")


def test_the_kernel_choice_of_the_stand_ins_is_the_choice_for_the_real_tensors():
    """Random shapes, layouts, masks, dtypes, grouped-query heads and flags: torch's CPU choice (flash or math) for
    full-size tensors and for the stand-ins MemLens asks instead (no real memory taken)."""
    rng = random.Random(7)
    choices = set()
    for _ in range(400):
        b, h = rng.choice([1, 2, 8]), rng.choice([1, 2, 4, 12])
        lq = rng.choice([1, 7, 64, 197])
        lk = rng.choice([lq, 1, 77, 64])
        e = rng.choice([8, 16, 64, 80, 256])
        dtype = rng.choice([torch.float32, torch.bfloat16, torch.float16])
        grad = rng.random() < 0.5

        def make(length, width, layout):
            if layout == 0:
                t = torch.empty(b, h, length, width, dtype=dtype)
            elif layout == 1:
                t = torch.empty(b, length, h, width, dtype=dtype).transpose(1, 2)
            else:
                t = torch.empty(b, h, width, length, dtype=dtype).transpose(2, 3)  # last stride not 1
            return t.requires_grad_(grad)

        q = make(lq, e, rng.randrange(3))
        h_kv, gqa = h, rng.random() < 0.3  # grouped-query attention: fewer key/value heads, or not dividing
        if gqa:
            h = rng.choice([4, 6, 12])
            q, h_kv = make(lq, e, rng.randrange(3)), rng.choice([1, 2, 3, 4, 5])
        k = torch.empty(b, h_kv, lk, e, dtype=dtype).requires_grad_(grad)
        v = torch.empty(b, h_kv, lk, rng.choice([e, 32]), dtype=dtype).requires_grad_(grad)
        shape = rng.choice([None, (lq, lk), (b, 1, lq, lk), (1, h, lq, lk), (lq, 1), (b, h, lq, lk), (2, 1, lq, lk)])
        mask = None if shape is None else torch.empty(shape, dtype=rng.choice([torch.bool, dtype]))
        dropout, causal = rng.choice([0.0, 0.0, 0.1]), mask is None and rng.random() < 0.3
        try:
            real = torch._fused_sdp_choice(q, k, v, mask, dropout, causal, enable_gqa=gqa)
        except RuntimeError as e:
            real = type(e)
        try:
            stand_in = torch._fused_sdp_choice(*_stand_ins(q, k, v, mask), dropout, causal, enable_gqa=gqa)
        except RuntimeError as e:
            stand_in = type(e)
        assert stand_in == real, (b, h, h_kv, lq, lk, e, dtype, q.stride(), shape, dropout, causal, gqa)
        choices.add(real)
    assert len(choices) >= 2  # both answers came up
