"""Speed benchmark: MemLens analysis time against its targets and against torch's own MemTracker.

Run: `make bench` (or `.venv/bin/python benchmarks/speed.py [--quick]`).
Prints, for each case, MemLens's in-process analysis time (model build + trace, what the JSON
reports as analysis_seconds; imports excluded, first call and best of the warm calls), the
target, and for the reference cases torch's `MemTracker` under `FakeTensorMode` on the same step,
timed in the same run, with the ratio. Peak RSS of this process is printed at the end.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from engine import AnalysisRequest, analyze  # noqa: E402

SPEC_3B = os.path.join(os.path.dirname(__file__), "..", "resources", "specs", "transformer_3b.yaml")

# (label, request, target seconds)
CASES = [
    ("vgg16 b32 train adam", AnalysisRequest(model="vgg16", batch=32), 0.5),
    ("resnet50 b32 train adam", AnalysisRequest(model="resnet50", batch=32), 1.0),
    # a GPU target with float16 AMP: cuDNN's workspaces, the allocator simulated, MemLens's CUDA autocast
    ("resnet50 b32 train adam cuda amp", AnalysisRequest(model="resnet50", batch=32, device="cuda", amp=True), 2.0),
    ("densenet121 b2 train adam", AnalysisRequest(model="densenet121", batch=2), 4.0),
    ("vit_h_14 b1 train adam", AnalysisRequest(model="vit_h_14", batch=1), 10.0),
    ("transformer-3b b1 train adam", AnalysisRequest(model=os.path.abspath(SPEC_3B), batch=1), 20.0),
]
REFERENCE = {"vgg16 b32 train adam", "densenet121 b2 train adam", "resnet50 b32 train adam"}


def memtracker_seconds(name: str, batch: int) -> tuple[float, int | None, str]:
    """torch.distributed._tools.MemTracker under FakeTensorMode: the reference implementation."""
    import torchvision
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    start = time.perf_counter()
    try:
        with FakeTensorMode():
            model = torchvision.models.get_model(name, weights=None)
            opt = torch.optim.Adam(model.parameters(), foreach=False)
            x = torch.randn(batch, 3, 224, 224)
            y = torch.randint(0, 1000, (batch,))
            tracker = MemTracker()
            tracker.track_external(model, opt)
            with tracker:
                for _ in range(2):  # the first step creates the state; the second is steady state
                    loss = torch.nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                    tracker.reset_mod_stats()
            peak = tracker.get_tracker_snapshot("peak")
            total = max(dev.get("Total", 0) for dev in peak.values()) if peak else None
        return time.perf_counter() - start, total, "ok"
    except Exception as e:  # the reference fails on some models (data-dependent initialisers)
        return time.perf_counter() - start, None, f"failed: {type(e).__name__}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="skip vit_h_14, the 3B spec and the reference")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    print(f"{'case':<30} {'first':>7} {'warm':>7} {'target':>7}  {'ok':<4} {'MemTracker':>11} {'ratio':>7}")
    failures = 0
    for label, request, target in CASES:
        if args.quick and target > 5:
            continue
        first = analyze(request).analysis_seconds
        warm = min(analyze(request).analysis_seconds for _ in range(2))
        ok = warm <= target
        failures += not ok
        ref = ""
        if label in REFERENCE and not args.quick:
            ref_s, _, status = memtracker_seconds(request.model, request.batch)
            ref = f"{ref_s:>10.2f}s {ref_s / warm:>6.1f}x" if status == "ok" else f"  {status}"
        print(f"{label:<30} {first:>6.2f}s {warm:>6.2f}s {target:>6.1f}s  {'yes' if ok else 'NO':<4} {ref}", flush=True)
    rss_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS of this process: {rss_gib:.2f} GiB (target for the 3B spec: under 2 GiB)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
