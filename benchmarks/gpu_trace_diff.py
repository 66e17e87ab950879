"""Where a traced CUDA step and a recorded one differ: the allocations one makes and the other does
not (a workspace or an ATen copy the trace misses, a kernel's different temporaries), with the
module the traced step was in at that point.

    python benchmarks/gpu_trace_diff.py MODEL MODE OPTIMIZER PRECISION [RUN_FOLDER]
    e.g. python benchmarks/gpu_trace_diff.py vit_b_16 train sgd float32

The two event streams (signed 512-byte blocks) are aligned as difflib aligns them; what is left
after blocks that only moved are paired off is what the trace lacks or has too many of.
"""
from __future__ import annotations

import collections
import difflib
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
DEFAULT_RUN = os.path.join(ROOT, "tests", "data", "gpu", "h200_2026-11-28_fresh")


def unmatched(case: dict, arch: tuple[int, int]) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(traced only, recorded only): the allocations (block bytes, module) of the measured step that
    the other side does not make, after pairing off those that only moved."""
    from gpu_predict import request_for

    from engine.allocator_replay import decode_trace
    from engine.categories import PHASES
    from engine.pipeline import analyze

    events = analyze(request_for(case, arch)).events
    block, traced, where, made = (lambda n: -(-n // 512) * 512), [], [], {}
    for n, key, module, phase in zip(events.nbytes.tolist(), events.storage.tolist(), events.module.tolist(),
                                     events.phase.tolist()):
        made.setdefault(key, block(n))
        traced.append(block(n) if n > 0 else -made.pop(key, 0))
        where.append(f"{events.modules[module]} ({PHASES[phase]})")
    sizes, addresses = decode_trace(case["trace"])
    recorded, live = [], {}
    for n, address in zip(sizes.tolist(), addresses.tolist()):
        if n > 0:
            live[address] = block(n)
        recorded.append(block(n) if n > 0 else -live.pop(address, 0))
    only_traced, only_recorded = [], []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, traced, recorded, autojunk=False).get_opcodes():
        if op != "equal":
            only_traced += [(n, where[i]) for i, n in enumerate(traced[i1:i2], i1) if n > 0]
            at = where[min(i1, len(where) - 1)]
            only_recorded += [(n, at) for n in recorded[j1:j2] if n > 0]
    moved = collections.Counter(n for n, _ in only_traced) & collections.Counter(n for n, _ in only_recorded)
    return _less(only_traced, moved), _less(only_recorded, moved)


def _less(allocations, moved: collections.Counter) -> list[tuple[int, str]]:
    left, out = collections.Counter(moved), []
    for n, at in allocations:
        if left[n]:
            left[n] -= 1
        else:
            out.append((n, at))
    return out


def main(argv: list[str]) -> int:
    from gpu_accuracy import load_document

    model, mode, optimizer, precision = argv[:4]
    document = load_document(os.path.join(argv[4] if len(argv) > 4 else DEFAULT_RUN, "gpu_accuracy.json"))
    case = next(c for c in document["cases"] if (c["model"], c["mode"], c["optimizer"], c["precision"])
                == (model, mode, optimizer, precision))
    for title, allocations in zip(("traced, not recorded", "recorded, not traced"),
                                  unmatched(case, tuple(document["compute_capability"]))):
        total = sum(n for n, _ in allocations)
        print(f"{title}: {len(allocations)} allocations, {total / 2**20:,.1f} MiB")
        for (n, at), count in collections.Counter(allocations).most_common(12):
            print(f"  {n:>12,} B x {count:<3} first at {at}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
