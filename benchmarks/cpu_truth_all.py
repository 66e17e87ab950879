"""Every torchvision classification model against a measured CPU step: a real training step
(batch 2, Adam) and a real inference pass, each traced by MemLens and measured by the allocator
(engine/truth.py). Target: within 2% (docs/VALIDATION.md).

Run: `.venv/bin/python benchmarks/cpu_truth_all.py [--models a,b] [--mode train|inference|both]`
Restrict the instruction set as for the truth tests, e.g. `ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2`. Native resolution, except the largest models (SMALLER); a model whose
traced peak exceeds half the memory available now is skipped and listed as such.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from engine import AnalysisRequest, analyze  # noqa: E402
from engine.cpu_isa import onednn_family  # noqa: E402
from engine.sources.torchvision_models import catalog  # noqa: E402
from engine.truth import measure_cpu_step  # noqa: E402

TOLERANCE = 0.02
# The six with the largest activations at their native resolution take a smaller one here.
SMALLER = {
    "efficientnet_v2_l": (3, 224, 224),
    "efficientnet_v2_m": (3, 224, 224),
    "efficientnet_b7": (3, 224, 224),
    "efficientnet_b6": (3, 224, 224),
    "regnet_y_128gf": (3, 160, 160),
    "regnet_y_32gf": (3, 160, 160),
}
MODES = {"train": "adam", "inference": "none"}


def available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62


def run(name: str, mode: str) -> tuple[str, int | None, int | None, float | None]:
    request = AnalysisRequest(model=name, batch=2, mode=mode, optimizer=MODES[mode], input_shape=SMALLER.get(name))
    traced = analyze(request).peak.total_bytes
    if traced > available_bytes() // 2:
        return "skipped (memory)", traced, None, None
    measured = measure_cpu_step(request).peak_bytes
    gc.collect()
    return "", traced, measured, (traced - measured) / measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated names (default: every classification model)")
    parser.add_argument("--mode", choices=["train", "inference", "both"], default="both")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else catalog()["classification"]
    modes = list(MODES) if args.mode == "both" else [args.mode]
    print(f"oneDNN family {onednn_family()}, ATen {torch.backends.cpu.get_cpu_capability()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'model':28s} {'mode':9s} {'traced':>14s} {'measured':>14s} {'error':>8s}  note")
    errors: list[float] = []
    skipped = 0
    for name in names:
        for mode in modes:
            start = time.perf_counter()
            try:
                note, traced, measured, error = run(name, mode)
            except Exception as e:  # a model that cannot run here is reported, not fatal
                note, traced, measured, error = f"error: {type(e).__name__}: {str(e)[:80]}", None, None, None
            if error is None:
                skipped += 1
            else:
                errors.append(error)
                note = (note or ("" if abs(error) < TOLERANCE else "OUTSIDE 2%")) + f" {time.perf_counter() - start:.0f}s"
            print(f"{name:28s} {mode:9s} {traced or 0:>14,d} {measured or 0:>14,d} "
                  f"{'' if error is None else f'{error:+.2%}':>8s}  {note}", flush=True)
    if errors:
        print(f"\n{len(errors)} measured, {skipped} skipped: {sum(abs(e) < TOLERANCE for e in errors)} within 2%, "
              f"{sum(abs(e) < 0.01 for e in errors)} within 1%, worst {max(errors, key=abs):+.2%}")


if __name__ == "__main__":
    main()
