"""CUDA reductions split across thread blocks take a global buffer of partial results and a
semaphore array from the caching allocator (Reduce.cuh), freed before the op returns: a trace for
CUDA takes them where the recorded H200 step took them, with the same sizes."""
import collections
import os
import sys

import torch

from conftest import ROOT
from engine import analyze
from engine.reduction_scratch import reduce_scratch

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from gpu_accuracy import load_document  # noqa: E402
from gpu_predict import request_for  # noqa: E402

from engine.allocator_replay import decode_trace  # noqa: E402

RECORDED = load_document(os.path.join(ROOT, "tests", "data", "gpu", "h200_2026-11-28_fresh", "gpu_accuracy.json"))


def meta(*shape):
    return torch.empty(*shape, device="meta")


def test_a_bias_gradient_over_many_tokens_is_summed_across_blocks():
    """1,024 tokens x 1,000 outputs, summed over the tokens: 16 blocks per output, each keeping
    32 x 4 partial sums per output (8,192,000 bytes), and one semaphore per column of blocks."""
    assert reduce_scratch(meta(1024, 1000), [0], meta(1, 1000)) == (8_192_000, 32)
    assert reduce_scratch(meta(1024, 256), [0], meta(1, 256)) == (2_097_152, 8)


def test_short_reductions_and_reductions_along_rows_stay_in_their_blocks():
    assert reduce_scratch(meta(8, 1000), [0], meta(1, 1000)) is None  # a batch of 8: one block suffices
    assert reduce_scratch(meta(1024, 1000), [1], meta(1024)) is None  # 1,024 outputs fill the GPU
    assert reduce_scratch(meta(8, 64, 56, 56), [0, 2, 3], meta(64)) is None
    assert reduce_scratch(torch.empty(1024, 1000, dtype=torch.long, device="meta"), [0], meta(1000)) is None


def test_the_traced_step_takes_the_recorded_reduction_buffers():
    """tiny_transformer.yaml, batch 8, SGD, float32: the bias gradients of the vocabulary head
    (8,192,000 B), the MLPs (8,388,608), the attention input projections (6,291,456) and the
    256-wide layers (2,097,152), each with its 512-byte semaphore block; the peak is at the
    first of them."""
    case = next(c for c in RECORDED["cases"] if (c["model"], c["mode"], c["optimizer"], c["precision"])
                == ("tiny_transformer.yaml", "train", "sgd", "float32"))
    sizes, _ = decode_trace(case["trace"])
    buffers = (8_192_000, 8_388_608, 6_291_456, 2_097_152)
    recorded = collections.Counter(int(s) for s in sizes.tolist() if s in buffers)
    assert recorded == {8_192_000: 1, 8_388_608: 2, 6_291_456: 2, 2_097_152: 4}
    analysis = analyze(request_for(case, tuple(RECORDED["compute_capability"])))
    traced = collections.Counter(int(n) for n in analysis.events.nbytes.tolist() if n > 0)
    for size, count in recorded.items():
        assert traced[size] == count, size
    measured = case["max_memory_allocated"]
    assert abs(analysis.peak.total_bytes - measured) <= 0.005 * measured  # -1.8% without them


def test_multi_head_attentions_input_projection_adds_its_bias_in_place_as_on_the_gpu():
    """The first encoder layer's forward, event by event as the H200 recorded it: layer norm
    (output, mean, rstd), the transposed input copied for the projection, its product, the packed
    q/k/v made contiguous, the product freed, attention's output and log-sum-exp. ATen's linear
    adds the bias in place; under a dispatch mode it would add out of place (engine/eager_composites.py)."""
    case = next(c for c in RECORDED["cases"] if (c["model"], c["mode"], c["optimizer"], c["precision"])
                == ("tiny_transformer.yaml", "train", "sgd", "float32"))
    sizes, addresses = decode_trace(case["trace"])
    held, recorded = {}, []
    for size, address in zip(sizes.tolist()[:10], addresses.tolist()[:10]):
        if size > 0:
            held[address] = -(-size // 512) * 512
            recorded.append(held[address])
        else:
            recorded.append(-held.pop(address))
    analysis = analyze(request_for(case, tuple(RECORDED["compute_capability"])))
    assert analysis.events.nbytes[:10].tolist() == recorded
