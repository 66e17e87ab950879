"""Scale benchmark for the distributed trace (issue 12): a 69-billion-parameter Llama-2-70B-like
spec under FSDP over 64 ranks, one rank traced, in a fresh process. Targets: under 30 s and under
2 GB peak RSS (the whole process: torch, the fake model, the trace). Wall and CPU seconds are
both printed: on a machine shared with other work the CPU time is what the trace costs.

Run: `.venv/bin/python benchmarks/dist_scale.py [--world-size 64] [--strategy fsdp] [--seq 4096]`
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SPEC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "resources", "specs", "llama2_70b_like.yaml")
TARGET_SECONDS = 30.0
TARGET_RSS_BYTES = 2 * 1024**3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-size", type=int, default=64)
    parser.add_argument("--strategy", default="fsdp")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=4096)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--device", default="cuda", help="target whose rules are modelled (cuda: SDPA kernels)")
    args = parser.parse_args()

    from engine import AnalysisRequest, analyze
    from engine.units import format_bytes

    request = AnalysisRequest(model=os.path.abspath(SPEC), batch=args.batch, input_shape=(args.seq,), dtype=args.dtype,
                              device=args.device, strategy=args.strategy, world_size=args.world_size)
    started, cpu_started = time.perf_counter(), time.process_time()
    analysis = analyze(request)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    d = analysis.distributed
    print(f"{analysis.model_name}: {analysis.parameters:,} parameters, {args.dtype}, batch {args.batch} x {args.seq} "
          f"tokens, {args.strategy} over {args.world_size} ranks, target {args.device}")
    print(f"  peak per rank {format_bytes(d.max_peak_bytes)} ({d.max_peak_bytes:,} B); holds "
          + ", ".join(f"{k} {format_bytes(v)}" for k, v in d.ranks[0].model_state))
    print(f"  DeepSpeed ZeRO-3 model states (K=12): {format_bytes(d.reference.zero3_bytes)}; "
          f"communication at the peak {format_bytes(d.communication_at_peak_bytes)}")
    print(f"  {len(analysis.events):,} events; traced in {seconds:.1f} s wall, {cpu_seconds:.1f} s CPU "
          f"(target {TARGET_SECONDS:g} s; on a shared machine the CPU time is the figure to read), "
          f"peak RSS {format_bytes(rss)} (target {format_bytes(TARGET_RSS_BYTES)})")
    ok = min(seconds, cpu_seconds) < TARGET_SECONDS and rss < TARGET_RSS_BYTES
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
