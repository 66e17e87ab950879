"""Recorded GPU runs (tests/data/gpu/<run>/gpu_accuracy.json, written by benchmarks/gpu_accuracy.py
on a real GPU) replayed on the CPU: the allocator simulator against what torch's caching allocator
did (issue 7).

- Every case of a run in fresh processes (`--fresh-all`), replayed from nothing through the
  whole process (model, warm-up step, measured step): max_memory_reserved within 3%,
  max_memory_allocated within 2%, under torch's defaults and under PYTORCH_CUDA_ALLOC_CONF's
  expandable_segments, max_split_size_mb and roundup_power2_divisions.
- The measured step alone, replayed from the allocator's recorded segments (the snapshot before it).
"""
import glob
import os
import sys

import pytest

from conftest import ROOT
from engine.allocator_replay import allocator_from_segments, compact_trace, replay, replay_process

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from gpu_accuracy import load_document  # noqa: E402

MIB = 2**20
RUNS = sorted(glob.glob(os.path.join(ROOT, "tests", "data", "gpu", "*", "gpu_accuracy.json")))
DOCUMENTS = {os.path.basename(os.path.dirname(path)): load_document(path) for path in RUNS}


def _id(run, case):
    conf = f":{case['alloc_conf']}" if case.get("alloc_conf") else ""
    return f"{run}:{case['model']}:{case['mode']}:{case['optimizer']}:{case['precision']}{conf}"


def _whole_process_cases():
    for run, document in DOCUMENTS.items():
        for case in document["cases"] + document.get("fresh_cases", []):
            if "whole_trace" in case or ("trace" in case and case.get("segments_before") is None):
                yield pytest.param(case, id=_id(run, case))


def _step_cases():
    for run, document in DOCUMENTS.items():
        for case in document["cases"]:
            if case.get("segments_before") is not None:
                yield pytest.param(case, id=_id(run, case))


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


def test_the_recordings_are_real_gpu_runs_covering_the_issue():
    """At least 20 torchvision models, train (Adam, SGD) and inference, float32 and both AMPs,
    each in a fresh process; and the allocator options the simulator models."""
    assert DOCUMENTS, "no recorded GPU run in tests/data/gpu"
    fresh = [d for d in DOCUMENTS.values() if d.get("fresh_all")]
    assert fresh and all(not d["dry_run"] and d["compute_capability"] for d in DOCUMENTS.values())
    cases = fresh[0]["cases"]
    assert len({c["model"] for c in cases if "." not in c["model"]}) >= 20
    assert {(c["mode"], c["optimizer"], c["precision"]) for c in cases} >= {
        (m, o, p) for m, o in (("train", "adam"), ("train", "sgd"), ("inference", "none"))
        for p in ("float32", "amp_float16", "amp_bfloat16")}
    confs = {c.get("alloc_conf", "") for d in DOCUMENTS.values() for c in d.get("fresh_cases", [])}
    assert {"expandable_segments:True", "max_split_size_mb:64", "roundup_power2_divisions:4"} <= confs


@pytest.mark.parametrize("case", list(_whole_process_cases()))
def test_the_simulator_reproduces_a_whole_process_from_nothing(case):
    a = replay_process(case)
    reserved = max(case["warmup_max_reserved"], case["max_memory_reserved"])
    allocated = max(case["warmup_max_allocated"], case["max_memory_allocated"])
    assert abs(a.peak_reserved_bytes - reserved) <= 0.03 * reserved, (a.peak_reserved_bytes, reserved)
    assert abs(a.peak_allocated_bytes - allocated) <= 0.02 * allocated, (a.peak_allocated_bytes, allocated)


@pytest.mark.parametrize("case", list(_step_cases()))
def test_the_simulator_reproduces_a_measured_step_from_its_recorded_segments(case):
    a = replay(case["segments_before"], case["trace"], case.get("alloc_conf", ""))
    reserved, allocated = case["max_memory_reserved"], case["max_memory_allocated"]
    assert abs(a.peak_reserved_bytes - reserved) <= 0.03 * reserved, (a.peak_reserved_bytes, reserved)
    assert abs(a.peak_allocated_bytes - allocated) <= 0.02 * allocated, (a.peak_allocated_bytes, allocated)
