"""Recorded GPU runs, replayed on the CPU: the allocator state before a measured step (torch's
memory snapshot `segments`) and the step's allocator trace (`device_traces`), stored compactly by
benchmarks/gpu_accuracy.py under tests/data/gpu/. Replaying the measured trace through the
simulator from the measured state checks the simulator alone, against max_memory_reserved; the
traced prediction is checked separately (tests/engine/test_gpu_replay.py).
"""
from __future__ import annotations

import base64
import zlib

import numpy as np

from .alloc_conf import AllocConf, parse_alloc_conf
from .cuda_allocator import CachingAllocator, _Block


# ---- Public API: compact forms (what the recording script writes)
def compact_segments(segments: list[dict]) -> list[dict]:
    """torch.cuda.memory._snapshot()['segments'] -> [{pool, address, expandable, blocks: [[size, allocated]]}]."""
    out = []
    for seg in sorted(segments, key=lambda s: s["address"]):
        out.append({
            "pool": seg.get("segment_type", "large"), "address": int(seg["address"]),
            "expandable": bool(seg.get("is_expandable", False)),
            "blocks": [[int(b["size"]), b["state"] != "inactive"] for b in seg["blocks"]],
        })
    return out


def compact_trace(entries: list[dict]) -> dict:
    """A device trace -> signed sizes (+requested on alloc, -1 on free) per address, zlib+base64."""
    pairs = []
    for e in entries:
        if e["action"] == "alloc":
            pairs.append((int(e["size"]), int(e["addr"])))
        elif e["action"] == "free_completed":
            pairs.append((-max(1, int(e["size"])), int(e["addr"])))
    array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return {"events": len(pairs), "encoding": "zlib-base64 int64 (size, address) rows",
            "data": base64.b64encode(zlib.compress(array.tobytes(), 9)).decode()}


SEGMENT_ACTIONS = ("segment_alloc", "segment_free", "segment_map", "segment_unmap")


def compact_segment_events(entries: list[dict]) -> dict:
    """The device trace's segment events (cudaMalloc/cudaFree, expandable maps/unmaps) -> rows of
    (action index in SEGMENT_ACTIONS, size, address), zlib+base64: the layout the simulator must match."""
    rows = [(SEGMENT_ACTIONS.index(e["action"]), int(e["size"]), int(e["addr"]))
            for e in entries if e["action"] in SEGMENT_ACTIONS]
    array = np.asarray(rows, dtype=np.int64).reshape(-1, 3)
    return {"events": len(rows), "encoding": "zlib-base64 int64 (action, size, address) rows",
            "actions": list(SEGMENT_ACTIONS), "data": base64.b64encode(zlib.compress(array.tobytes(), 9)).decode()}


def decode_segment_events(compact: dict) -> np.ndarray:
    """(action, size, address) rows back from `compact_segment_events`."""
    return np.frombuffer(zlib.decompress(base64.b64decode(compact["data"])), dtype=np.int64).reshape(-1, 3).copy()


def decode_trace(compact: dict) -> tuple[np.ndarray, np.ndarray]:
    """(signed sizes, addresses) back from `compact_trace`."""
    array = np.frombuffer(zlib.decompress(base64.b64decode(compact["data"])), dtype=np.int64).reshape(-1, 2)
    return array[:, 0].copy(), array[:, 1].copy()


# ---- Public API: replay
def allocator_from_segments(segments: list[dict], conf: AllocConf | str = "") -> CachingAllocator:
    """A simulated allocator in the recorded state: the same segments, the same blocks allocated
    (keyed by their address, as the trace names them) and free."""
    conf = parse_alloc_conf(conf) if isinstance(conf, str) else conf
    if any(seg["expandable"] for seg in segments):
        raise ValueError("replaying expandable segments from a snapshot is not supported")
    a = CachingAllocator(conf)
    for seg in segments:
        small = seg["pool"] == "small"
        segment = a._new_segment()
        total = sum(size for size, _ in seg["blocks"])
        a.segments[segment] = total
        a.reserved_bytes += total
        previous, address = None, seg["address"]
        for size, allocated in seg["blocks"]:
            block = _Block(address, size, small, segment)
            block.prev = previous
            if previous is not None:
                previous.next = block
            if allocated:
                block.allocated = True
                a.live[address] = block
                a.allocated_bytes += size
            else:
                a.pools[small].insert(block)
            previous, address = block, address + size
    a.reset_peak()
    return a


def replay(segments: list[dict], compact: dict, conf: AllocConf | str = "") -> CachingAllocator:
    """Run a recorded step's trace through the simulator from the recorded state; read its
    `peak_reserved_bytes` / `peak_allocated_bytes` afterwards."""
    return _run_trace(allocator_from_segments(segments, conf), compact)


def replay_process(case: dict) -> CachingAllocator:
    """A case recorded in a fresh process (benchmarks/gpu_accuracy.py), replayed from nothing
    under its PYTORCH_CUDA_ALLOC_CONF: the model, the warm-up step and the measured step."""
    a = CachingAllocator(parse_alloc_conf(case.get("alloc_conf", "")))
    events = case.get("whole_segment_events") or case.get("segment_events")
    if events is not None:
        a.segment_address = _recorded_addresses(decode_segment_events(events))
    return _run_trace(a, case.get("whole_trace") or case["trace"])


def _run_trace(a: CachingAllocator, compact: dict) -> CachingAllocator:
    """Each recorded allocation and completed free, in order (a free of a block from before the
    recorded state is skipped)."""
    sizes, addresses = decode_trace(compact)
    for size, address in zip(sizes.tolist(), addresses.tolist()):
        if size > 0:
            a.malloc(address, size)
        elif address in a.live:
            a.free(address)
    return a


def _recorded_addresses(rows):
    """cudaMalloc's addresses in the recorded order, handed out while the sizes agree."""
    recorded = [(int(size), int(address)) for action, size, address in rows.tolist()
                if SEGMENT_ACTIONS[action] == "segment_alloc"]
    position = [0]

    def next_address(nbytes: int):
        i = position[0]
        if i < len(recorded) and recorded[i][0] == nbytes:
            position[0] += 1
            return recorded[i][1]
        return None

    return next_address
