"""How long the caching-allocator simulator takes on real steps (issue 7: well under a second).

Traces densenet201 and vit_b_16 training steps (Adam, batch 8) and a first step for CUDA, then
times `simulate` on their events with each allocator configuration, against the trace itself in
the same process. Times are CPU seconds of this process (time.process_time: the machine may be
shared). Run: `.venv/bin/python benchmarks/allocator_speed.py`.

Measured 2026-11-28 (2 shared cores, torch 2.14.1): densenet201 steady step (8,470 events, warm-up
and measured step replayed, plus the replay to the peak for its layout) 0.17-0.24 s CPU with every
configuration (trace: ~9 s); first step (10,285 events) 0.25 s; vit_b_16 (1,846 events) 0.07-0.11 s.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine import AnalysisRequest, analyze  # noqa: E402
from engine.alloc_conf import parse_alloc_conf  # noqa: E402
from engine.cuda_allocator import simulate  # noqa: E402

CONFS = ("", "expandable_segments:True", "max_split_size_mb:64,roundup_power2_divisions:4")


def main() -> int:
    for model in ("densenet201", "vit_b_16"):
        for first_step in (False, True):
            t = time.process_time()
            a = analyze(AnalysisRequest(model=model, batch=8, device="cuda", first_step=first_step))
            trace_s = time.process_time() - t
            initial = a.cuda.simulation.initial_bytes
            for text in CONFS:
                conf = parse_alloc_conf(text)
                t = time.process_time()
                sim = simulate(initial, a.events.nbytes, a.events.storage, conf, warmup=not first_step)
                seconds = time.process_time() - t
                print(f"{model:<12} {'first step' if first_step else 'steady':<10} {len(a.events):>6} events "
                      f"{text or 'defaults':<48} simulate {seconds:6.3f} s CPU (trace {trace_s:5.1f} s)  "
                      f"reserved {sim.peak_reserved_bytes / 2**20:8.1f} MiB allocated "
                      f"{sim.peak_allocated_bytes / 2**20:8.1f} MiB traced {a.peak.total_bytes / 2**20:8.1f} MiB",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
