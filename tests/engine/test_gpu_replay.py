"""Recorded GPU runs (tests/data/gpu/*.json, written by benchmarks/gpu_accuracy.py on a real GPU)
replayed on the CPU: the measured allocator trace through the simulator, from the measured state,
must reproduce max_memory_reserved within 3% and max_memory_allocated within 2% (issue 7).

Until a GPU session records a file, only the replay machinery is checked, on a snapshot worked
out by hand; the recorded-data test is skipped and says so.
"""
import glob
import json
import os

import pytest

from conftest import ROOT
from engine.allocator_replay import allocator_from_segments, compact_trace, replay

MIB = 2**20
RECORDED = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "gpu", "*.json")))


def test_a_replay_starts_from_the_recorded_segments():
    """A 20 MiB segment holding one live 3 MiB block: a 5 MiB request fits in its free 17 MiB
    (no new segment); freeing the recorded block merges it back (torch's free_block)."""
    segments = [{"pool": "large", "address": 0x7F0000000000, "expandable": False,
                 "blocks": [[3 * MIB, True], [17 * MIB, False]]}]
    a = allocator_from_segments(segments)
    assert (a.reserved_bytes, a.allocated_bytes) == (20 * MIB, 3 * MIB)
    trace = compact_trace([
        {"action": "alloc", "addr": 0x7F0000300000, "size": 5 * MIB},
        {"action": "free_requested", "addr": 0x7F0000000000, "size": 3 * MIB},
        {"action": "free_completed", "addr": 0x7F0000000000, "size": 3 * MIB},
        {"action": "alloc", "addr": 0x7F0000800000, "size": 30 * MIB},
    ])
    b = replay(segments, trace)
    assert b.peak_allocated_bytes == 35 * MIB and b.peak_reserved_bytes == 50 * MIB
    assert [s.total_bytes for s in b.layout()] == [20 * MIB, 30 * MIB]


def _cases():
    for path in RECORDED:
        with open(path) as f:
            document = json.load(f)
        assert not document.get("dry_run"), f"{path}: a dry run is not a recording"
        for case in document["cases"]:
            if "error" not in case and case.get("segments_before") is not None:
                yield pytest.param(case, id=f"{os.path.basename(path)}:{case['model']}:{case['mode']}:"
                                            f"{case['optimizer']}:{case['precision']}")


@pytest.mark.skipif(not RECORDED, reason="no recorded GPU run in tests/data/gpu yet: run "
                                         "benchmarks/gpu_accuracy.py on a GPU and copy its JSON there")
@pytest.mark.parametrize("case", list(_cases()) if RECORDED else [])
def test_the_simulator_reproduces_the_recorded_reserved_and_allocated_peaks(case):
    a = replay(case["segments_before"], case["trace"])
    reserved, allocated = case["max_memory_reserved"], case["max_memory_allocated"]
    assert abs(a.peak_reserved_bytes - reserved) <= 0.03 * reserved, (a.peak_reserved_bytes, reserved)
    assert abs(a.peak_allocated_bytes - allocated) <= 0.02 * allocated, (a.peak_allocated_bytes, allocated)
