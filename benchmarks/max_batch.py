"""Max-batch benchmark: the largest batch of resnet50 (train, Adam, float32) on 24 GiB.

Run: `.venv/bin/python benchmarks/max_batch.py [--json PATH]`.
Targets (issue 6): at most 6 traces and under 5 s in process (imports excluded: the search from
building the model to the answer, as `Largest.seconds` and the CLI's JSON report it). Prints and
writes the answer, each trace (batch, peak, seconds), the total time and whether both targets
hold; exits 1 when one does not. A second, warm search in the same process is timed too.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import engine.pipeline  # noqa: E402,F401  (imports are not part of the search's time)
from engine import AnalysisRequest  # noqa: E402
from engine.devices import custom_device  # noqa: E402
from engine.planner import max_batch  # noqa: E402
from engine.units import format_bytes, parse_bytes  # noqa: E402

MAX_TRACES = 6
MAX_SECONDS = 5.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    request = AnalysisRequest(model="resnet50", batch=32, mode="train", optimizer="adam", device="cuda")
    device = custom_device(parse_bytes("24 GiB"))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; resnet50 train adam float32 on 24 GiB")
    runs = []
    for label in ("first", "warm"):
        started = time.perf_counter()
        found = max_batch(request, device)
        wall = time.perf_counter() - started
        runs.append({
            "run": label, "max_batch": found.value, "peak_bytes_at_max": found.peak_bytes,
            "peak_bytes_at_max_plus_one": found.next_peak_bytes, "capacity_bytes": found.capacity_bytes,
            "traces": found.traces, "seconds": round(wall, 3),
            "points": [{"batch": p.value, "peak_bytes": p.peak_bytes, "seconds": round(p.seconds, 3)}
                       for p in found.points],
        })
        print(f"{label}: largest batch {found.value} ({format_bytes(found.peak_bytes)}; batch {found.value + 1} needs "
              f"{format_bytes(found.next_peak_bytes)}), {found.traces} traces, {wall:.2f} s")
        for p in found.points:
            print(f"    batch {p.value:>5}: {format_bytes(p.peak_bytes):>10} {p.state:<13} {p.seconds:.2f} s")
    first = runs[0]
    ok = first["traces"] <= MAX_TRACES and first["seconds"] < MAX_SECONDS
    print(f"targets: <= {MAX_TRACES} traces, < {MAX_SECONDS:.0f} s (first search): {'met' if ok else 'NOT MET'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch": torch.__version__, "cpus": os.cpu_count(), "max_traces": MAX_TRACES,
                       "max_seconds": MAX_SECONDS, "targets_met": ok, "runs": runs}, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
