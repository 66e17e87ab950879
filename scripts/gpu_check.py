"""Predicted (device=cuda) vs measured `torch.cuda.max_memory_allocated` on a real GPU.

Run on a machine with a CUDA GPU: `python scripts/gpu_check.py [OUT_DIR]`. For each case it
traces the step with MemLens (nothing allocated), then runs the same step for real on the GPU:
one warm-up step (creates optimizer state, cuBLAS workspace), grads set to None, peak stats
reset, then the measured step. Prints and writes (OUT_DIR/gpu_check.json) both figures.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from engine import AnalysisRequest, analyze  # noqa: E402
from engine.step import run_step  # noqa: E402
from engine.truth import build_real_step  # noqa: E402

SPEC = os.path.join(os.path.dirname(__file__), "..", "resources", "specs", "tiny_transformer.yaml")
CASES = [
    ("resnet18", 32, "train", "adam", "float32"),
    ("resnet18", 32, "train", "sgd", "float32"),
    ("resnet18", 32, "inference", "none", "float32"),
    ("vgg11", 16, "train", "momentum", "float32"),
    ("mobilenet_v3_small", 32, "train", "adam", "float32"),
    ("resnet50", 16, "train", "adamw", "float32"),
    ("vit_b_16", 8, "train", "adamw", "float32"),
    ("vit_b_16", 8, "train", "adamw", "bfloat16"),
    ("densenet121", 8, "train", "adam", "float32"),
    (os.path.abspath(SPEC), 8, "train", "adam", "float32"),
    ("resnet18", 32, "train", "adam", "amp"),
    ("vit_b_16", 8, "train", "adamw", "amp"),
    ("resnet50", 16, "inference", "none", "amp"),
]


def measure(request: AnalysisRequest) -> tuple[int, int]:
    step = build_real_step(request, "cuda")
    model, (x,), targets, opt = step.model, step.inputs, step.targets, step.optimizer
    run_step(model, [x], targets, opt, mode=request.mode, amp=request.amp, device="cuda", tensors_on="cuda")  # warm-up
    if opt is not None:
        opt.zero_grad(set_to_none=True)
    model.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    run_step(model, [x], targets, opt, mode=request.mode, amp=request.amp, device="cuda", tensors_on="cuda")
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    del step, model, x, targets, opt
    torch.cuda.empty_cache()
    return start, peak


def main() -> int:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    rows = []
    for model, batch, mode, optimizer, dtype in CASES:
        amp = dtype == "amp"
        request = AnalysisRequest(model=model, batch=batch, mode=mode, optimizer=optimizer,
                                  dtype="float32" if amp else dtype, amp=amp, device="cuda")
        t = time.perf_counter()
        try:
            a = analyze(request)
            start, peak = measure(request)
        except Exception as e:
            print(f"{os.path.basename(model)} {mode} {optimizer}: FAILED {type(e).__name__}: {e}")
            rows.append({"model": os.path.basename(model), "error": str(e)})
            continue
        row = {
            "model": os.path.basename(model), "batch": batch, "mode": mode, "optimizer": optimizer, "dtype": dtype,
            "predicted_peak": a.peak.total_bytes, "measured_peak": peak,
            "predicted_start": int(a.timeline.total[0]), "measured_start": start,
            "error_pct": 100 * (a.peak.total_bytes - peak) / peak,
            "error_above_start_pct": 100 * ((a.peak.total_bytes - a.timeline.total[0]) - (peak - start)) / (peak - start),
            "seconds": time.perf_counter() - t,
        }
        rows.append(row)
        print(f"{row['model']:<22} {mode:<9} {optimizer:<8} {dtype:<8} predicted {a.peak.total_bytes / 2**20:9.1f} MiB "
              f"measured {peak / 2**20:9.1f} MiB  error {row['error_pct']:+6.2f}%  "
              f"(start {row['predicted_start'] / 2**20:.1f} vs {start / 2**20:.1f} MiB)", flush=True)
    with open(os.path.join(out_dir, "gpu_check.json"), "w") as f:
        json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
