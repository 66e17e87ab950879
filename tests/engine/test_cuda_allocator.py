"""The caching-allocator simulator against torch's rules (c10/cuda/CUDACachingAllocator.cpp), on
event sequences whose segment layout can be worked out by hand; each test names its rule. Then
properties over random sequences, and the traced events of real models.

No GPU here: these follow the allocator's source, not a measurement (tests/engine/test_gpu_replay.py
replays recorded GPU figures when there are some).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.alloc_conf import parse_alloc_conf
from engine.cuda_allocator import MIB, CachingAllocator, OutOfMemory, round_size, simulate
from engine.errors import RequestError
from engine.target import target_for

EXPANDABLE = parse_alloc_conf("expandable_segments:True")


def layout(allocator):
    return [(s.pool, s.total_bytes, [size for size, _ in s.blocks]) for s in allocator.layout()]


# ---- round_size
def test_round_size_rounds_to_512_bytes_with_512_the_least():
    """kMinBlockSize: every request is at least 512 B and a multiple of it."""
    assert [round_size(n) for n in (1, 511, 512, 513, 1000)] == [512, 512, 512, 1024, 1024]


def test_roundup_power2_divisions_rounds_to_a_quarter_of_the_power_of_two():
    """roundup_power2_next_division: 1,200,000 B lies in [1 MiB, 2 MiB); four divisions are
    1 MiB, 1.25 MiB, 1.5 MiB, 1.75 MiB, so it takes 1.25 MiB. A power of two stays."""
    conf = parse_alloc_conf("roundup_power2_divisions:4")
    assert round_size(1_200_000, conf) == 1_310_720
    assert round_size(2 * MIB, conf) == 2 * MIB
    assert round_size(1_200_000) == 1_200_128  # without the option: 512-byte rounding


def test_roundup_power2_divisions_per_interval():
    """'[1:2,4:8]': key K (MiB) sets the divisions of sizes in [K, 2K) MiB (AllocatorConfig's
    index = log2 K): two in [1, 2) MiB, eight in [4, 8) MiB, none in between."""
    conf = parse_alloc_conf("roundup_power2_divisions:[1:2,4:8]")
    assert round_size(1_200_000, conf) == 3 * MIB // 2
    assert round_size(5 * MIB + 1, conf) == 5 * MIB + MIB // 2
    assert round_size(5 * MIB // 2 + 1, conf) == 5 * MIB // 2 + 512


def test_roundup_power2_divisions_greater_than_overwrites_the_last_interval_too():
    """torch fills '>' from the last named interval on, that interval included (its code, not
    its documentation): '[1:2,>:8]' gives eight divisions to [1, 2) MiB as well."""
    assert parse_alloc_conf("roundup_power2_divisions:[1:2,>:8]").roundup_power2_divisions == (8,) * 16


@given(st.integers(1, 2**34), st.sampled_from(["", "roundup_power2_divisions:4", "roundup_power2_divisions:16",
                                               "roundup_power2_divisions:[1:2,64:4,>:8]"]))
def test_the_tracers_512_byte_rounding_is_not_a_second_rounding(nbytes, conf_text):
    """The tracer hands the simulator 512-byte-rounded sizes: rounding again gives what rounding
    the requested size once gives, whatever the configuration."""
    conf = parse_alloc_conf(conf_text)
    assert round_size(target_for("cuda").block_bytes(nbytes), conf) == round_size(nbytes, conf)


# ---- pools and segments
def test_small_requests_share_a_2_mib_segment():
    """kSmallSize/kSmallBuffer: requests up to 1 MiB are carved from 2 MiB segments."""
    a = CachingAllocator()
    a.malloc(1, 1000)
    a.malloc(2, 1000)
    a.malloc(3, MIB)
    assert layout(a) == [("small", 2 * MIB, [1024, 1024, MIB, MIB - 2048])]
    assert (a.reserved_bytes, a.allocated_bytes) == (2 * MIB, MIB + 2048)


def test_requests_below_10_mib_share_20_mib_segments():
    """kLargeBuffer: 3 MiB requests are split from 20 MiB segments; the seventh does not fit in
    the 2 MiB left and opens a second segment."""
    a = CachingAllocator()
    for key in range(7):
        a.malloc(key, 3 * MIB)
    assert layout(a) == [("large", 20 * MIB, [3 * MIB] * 6 + [2 * MIB]), ("large", 20 * MIB, [3 * MIB, 17 * MIB])]
    assert a.reserved_bytes == 40 * MIB


def test_requests_from_10_mib_get_their_size_rounded_to_2_mib():
    """kRoundLarge and should_split: 11 MiB gets a 12 MiB segment; the 1 MiB left is not more
    than kSmallSize, so it is not split off and counts as allocated (torch adds block sizes)."""
    a = CachingAllocator()
    a.malloc(1, 11 * MIB)
    assert layout(a) == [("large", 12 * MIB, [12 * MIB])]
    assert a.allocated_bytes == 12 * MIB


def test_a_remainder_over_1_mib_is_split_off():
    """should_split: 10.5 MiB in a 12 MiB segment leaves 1.5 MiB, which is split off."""
    a = CachingAllocator()
    a.malloc(1, 21 * MIB // 2)
    assert layout(a) == [("large", 12 * MIB, [21 * MIB // 2, 3 * MIB // 2])]
    assert a.allocated_bytes == 21 * MIB // 2


def test_best_fit_takes_the_smallest_cached_block_that_fits():
    """get_free_block: of the cached 12 MiB and 14 MiB segments, an 11 MiB request takes the
    12 MiB one; no new segment."""
    a = CachingAllocator()
    a.malloc(1, 14 * MIB)
    a.malloc(2, 12 * MIB)
    a.free(1)
    a.free(2)
    a.malloc(3, 11 * MIB)
    assert a.live[3].size == 12 * MIB
    assert a.reserved_bytes == 26 * MIB


def test_freed_neighbours_merge_and_serve_a_larger_request():
    """free_block/try_merge_blocks: six freed 3 MiB blocks merge back into the 20 MiB segment,
    which then serves a 19 MiB request without a new cudaMalloc."""
    a = CachingAllocator()
    for key in range(6):
        a.malloc(key, 3 * MIB)
    for key in (0, 2, 1, 5, 3, 4):
        a.free(key)
    assert layout(a) == [("large", 20 * MIB, [20 * MIB])]
    a.malloc(9, 19 * MIB)
    assert (a.reserved_bytes, a.cuda_mallocs) == (20 * MIB, 1)


def test_a_cached_block_is_split_for_a_smaller_request():
    """should_split (no max_split_size): a 30 MiB request takes a cached 60 MiB segment and the
    30 MiB left is split off."""
    a = CachingAllocator()
    a.malloc(1, 60 * MIB)
    a.free(1)
    a.malloc(2, 30 * MIB)
    assert layout(a) == [("large", 60 * MIB, [30 * MIB, 30 * MIB])]


def test_max_split_size_keeps_oversize_blocks_whole():
    """max_split_size_mb:40: a request below 40 MiB never takes the cached 60 MiB block (a new
    segment instead); a 45 MiB request takes it whole (not split), since 60 < 45 + 20."""
    a = CachingAllocator(parse_alloc_conf("max_split_size_mb:40"))
    a.malloc(1, 60 * MIB)
    a.free(1)
    a.malloc(2, 30 * MIB)
    assert a.reserved_bytes == 90 * MIB
    a.malloc(3, 45 * MIB)
    assert a.live[3].size == 60 * MIB and a.reserved_bytes == 90 * MIB


def test_max_split_size_limits_how_much_larger_an_oversize_block_may_be():
    """get_free_block: a 41 MiB request does not take a cached 62 MiB block (62 >= 41 + 20)."""
    a = CachingAllocator(parse_alloc_conf("max_split_size_mb:40"))
    a.malloc(1, 62 * MIB)
    a.free(1)
    a.malloc(2, 41 * MIB)
    assert a.reserved_bytes == (62 + 42) * MIB


def test_at_the_capacity_cached_segments_are_released_and_the_allocation_retried():
    """release_cached_blocks: under a 50 MiB capacity, a 40 MiB request with a cached 30 MiB
    segment frees that segment and succeeds; unlimited, both would stay reserved."""
    for capacity, reserved, flushes in ((50 * MIB, 40 * MIB, 1), (None, 70 * MIB, 0)):
        a = CachingAllocator(capacity_bytes=capacity)
        a.malloc(1, 30 * MIB)
        a.free(1)
        a.malloc(2, 40 * MIB)
        assert (a.reserved_bytes, a.retries) == (reserved, flushes)


def test_past_the_capacity_with_nothing_cached_is_out_of_memory():
    a = CachingAllocator(capacity_bytes=50 * MIB)
    a.malloc(1, 30 * MIB)
    with pytest.raises(OutOfMemory):
        a.malloc(2, 40 * MIB)


# ---- expandable segments
def test_expandable_segments_grow_one_segment_in_20_mib_pages():
    """Note [Expandable Segments]: three 3 MiB requests map one 20 MiB page; a 25 MiB request
    uses the 11 MiB free at the end and maps one more page (40 MiB reserved, where separate
    segments would reserve 20 + 26 = 46 MiB)."""
    a = CachingAllocator(EXPANDABLE)
    for key in range(3):
        a.malloc(key, 3 * MIB)
    assert a.reserved_bytes == 20 * MIB
    a.malloc(3, 25 * MIB)
    assert a.reserved_bytes == 40 * MIB
    assert layout(a) == [("large", 40 * MIB, [3 * MIB] * 3 + [25 * MIB, 6 * MIB])]
    plain = CachingAllocator()
    for key in range(3):
        plain.malloc(key, 3 * MIB)
    plain.malloc(3, 25 * MIB)
    assert plain.reserved_bytes == 46 * MIB


def test_expandable_small_pool_maps_2_mib_pages():
    a = CachingAllocator(EXPANDABLE)
    a.malloc(1, 512)
    assert layout(a) == [("small", 2 * MIB, [512, 2 * MIB - 512])]


def test_expandable_segments_return_free_pages_on_empty_cache():
    """release_blocks/unmap_block: only whole free pages go back; the page still holding a
    block stays mapped."""
    a = CachingAllocator(EXPANDABLE)
    a.malloc(1, 15 * MIB)
    a.malloc(2, 15 * MIB)
    a.free(2)
    a.empty_cache()
    assert a.reserved_bytes == 20 * MIB  # the first page holds key 1; the second page is free
    a.free(1)
    a.empty_cache()
    assert a.reserved_bytes == 0 and a.layout() == ()


# ---- properties
CONFS = ["", "expandable_segments:True", "max_split_size_mb:20", "max_split_size_mb:64,roundup_power2_divisions:4",
         "expandable_segments:True,roundup_power2_divisions:[1:2,>:8]"]
SIZES = st.one_of(st.integers(1, 1 << 20), st.integers(1 << 20, 12 << 20), st.integers(12 << 20, 200 << 20))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(CONFS), st.lists(st.tuples(st.booleans(), SIZES, st.integers(0, 10**6)), max_size=120))
def test_reserved_covers_allocated_in_whole_2_mib_units_and_empties_to_nothing(conf_text, ops):
    a = CachingAllocator(parse_alloc_conf(conf_text))
    live: list[int] = []
    for key, (alloc, size, pick) in enumerate(ops):
        if alloc or not live:
            a.malloc(key, size)
            live.append(key)
        else:
            a.free(live.pop(pick % len(live)))
        assert a.reserved_bytes >= a.allocated_bytes >= 0
        assert a.reserved_bytes % (2 * MIB) == 0
        assert sum(s.total_bytes for s in a.layout()) == a.reserved_bytes
    for key in live:
        a.free(key)
    assert a.allocated_bytes == 0
    a.empty_cache()
    assert a.reserved_bytes == 0 and a.layout() == ()


# ---- PYTORCH_CUDA_ALLOC_CONF
def test_alloc_conf_reads_the_documented_options():
    conf = parse_alloc_conf("expandable_segments:True, max_split_size_mb:128,roundup_power2_divisions:4")
    assert conf.expandable_segments and conf.max_split_size == 128 * MIB
    assert conf.divisions(5 * MIB) == 4 and conf.warnings == ()


def test_alloc_conf_names_what_it_does_not_model():
    conf = parse_alloc_conf("backend:cudaMallocAsync,garbage_collection_threshold:0.6")
    assert len(conf.warnings) == 2
    assert "cudaMallocAsync is not modelled" in conf.warnings[0]
    assert "garbage_collection_threshold" in conf.warnings[1]


@pytest.mark.parametrize("text, says", [
    ("expandable_segments:yes", "takes True or False, got 'yes'"),
    ("max_split_size_mb:10", "must be >= 20"),
    ("max_split_size_mb:abc", "whole number"),
    ("roundup_power2_divisions:3", "power of 2"),
    ("roundup_power2_divisions:[3:2]", "powers of 2"),
    ("roundup_power2_divisions:[1:2", "missing ']'"),
    ("max_split_size_mb", "expected ':' after 'max_split_size_mb'"),
    ("expandable_segment:True", "unknown option 'expandable_segment'"),
    ("backend:magic", "unknown allocator backend 'magic'"),
    ("expandable_segments:True;max_split_size_mb:64", "takes True or False"),
    ("garbage_collection_threshold:1.5", "between 0 and 1"),
])
def test_alloc_conf_refuses_bad_strings_in_one_line(text, says):
    with pytest.raises(RequestError) as error:
        parse_alloc_conf(text)
    message = str(error.value)
    assert says in message and "PYTORCH_CUDA_ALLOC_CONF" in message and "\n" not in message


# ---- traced steps
def test_simulating_a_traced_step_requests_exactly_the_traced_peak(cuda_resnet18):
    """Fed the same events, the bytes requested at once peak where the trace peaks; block sizes
    (unsplit remainders) and segments only add."""
    a = cuda_resnet18
    sim = simulate(_initial(a), a.events.nbytes, a.events.storage, warmup=False)
    assert sim.peak_requested_bytes == a.peak.total_bytes
    assert sim.peak_reserved_bytes >= sim.peak_allocated_bytes >= a.peak.total_bytes
    assert np.all(sim.reserved >= sim.allocated)
    assert np.all(sim.allocated >= a.timeline.total)


def test_a_warmed_up_step_reuses_its_cached_segments(cuda_resnet18):
    """The measured step runs after a warm-up: its segments are cached, so it creates (almost) none."""
    a = cuda_resnet18
    cold = simulate(_initial(a), a.events.nbytes, a.events.storage, warmup=False)
    warm = simulate(_initial(a), a.events.nbytes, a.events.storage, warmup=True)
    assert warm.cuda_mallocs < cold.cuda_mallocs
    assert warm.peak_requested_bytes == a.peak.total_bytes
    assert warm.peak_reserved_bytes <= cold.peak_reserved_bytes + 20 * MIB


def _initial(analysis):
    return analysis.cuda.simulation.initial_bytes


@pytest.fixture(scope="module")
def cuda_resnet18():
    from engine import AnalysisRequest, analyze

    return analyze(AnalysisRequest(model="resnet18", batch=2, device="cuda", optimizer="sgd"))
