"""Record, once, what a real GPU does with MemLens's steps; the CPU replays it on every test run.

Run on a machine with a CUDA GPU (8 minutes on an H200 with the default budget):
    python benchmarks/gpu_accuracy.py --out "$OUT"
writes `gpu_accuracy.json` (compact: a few MB) there; copy it to tests/data/gpu/ (named after the
GPU and date) and tests/engine/test_gpu_replay.py checks the allocator simulator and the traced
predictions against it. `--dry-run` runs the same code on the CPU with two small models and
no CUDA (what tests/engine/test_gpu_accuracy_dry.py runs); its output says `dry_run: true` and is
never a fixture.

Recorded per run: the GPU, compute capability, torch/CUDA/cuDNN/driver versions; the CUDA
context (NVML's per-process used memory and cudaMemGetInfo before and after initialisation, in a
fresh process); the cuBLAS/cuBLASLt workspaces (memory_allocated after a thread's first matrix
product, forward and backward, in a fresh process). Per case (at least 20 torchvision models, the
transformer spec, a GPT-2-style decoder (benchmarks/hf_decoder.py); train with Adam and SGD, inference; float32, AMP float16 with GradScaler, AMP
bfloat16): max_memory_allocated, max_memory_reserved, memory_allocated/reserved before the
measured step, the allocator's segments before it (snapshot, compact) and the step's allocator
trace (alloc/free sizes in order, compact). Cases run breadth first (every model's first
configuration, then the next), so a run cut short by the budget still covers every model.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

SPECS = os.path.join(ROOT, "resources", "specs")
MODELS = [  # (model, batch): steps of a second or less on a large GPU
    ("resnet18", 32), ("resnet34", 32), ("resnet50", 16), ("resnext50_32x4d", 16), ("wide_resnet50_2", 8),
    ("mobilenet_v2", 32), ("mobilenet_v3_small", 32), ("mobilenet_v3_large", 32), ("efficientnet_b0", 16),
    ("densenet121", 8), ("vgg11", 16), ("vgg16", 8), ("alexnet", 32), ("squeezenet1_1", 32),
    ("shufflenet_v2_x1_0", 32), ("mnasnet1_0", 32), ("regnet_y_400mf", 32), ("googlenet", 16),
    ("inception_v3", 8), ("convnext_tiny", 16), ("vit_b_16", 8), ("swin_t", 8),
    (os.path.join(SPECS, "tiny_transformer.yaml"), 8),
    (os.path.join(ROOT, "benchmarks", "hf_decoder.py") + ":build", 8),  # a GPT-2-style decoder from a config
]
DRY_MODELS = [("mobilenet_v3_small", 2), (os.path.join(SPECS, "tiny_transformer.yaml"), 2)]
RUNS = [("train", "adam"), ("train", "sgd"), ("inference", "none")]
PRECISIONS = ["float32", "amp_float16", "amp_bfloat16"]
DRY_CONFIGS = [("train", "adam", "float32"), ("inference", "none", "float32")]


# ---- The real GPU, or a CPU stand-in for --dry-run
class Cuda:
    """The few torch.cuda calls a measurement makes."""

    def __init__(self, torch):
        self.torch, self.cuda = torch, torch.cuda
        self.device = "cuda"

    def sync(self):
        self.cuda.synchronize()

    def empty_cache(self):
        self.cuda.empty_cache()

    def stats(self) -> dict:
        return {"allocated": self.cuda.memory_allocated(), "reserved": self.cuda.memory_reserved(),
                "max_allocated": self.cuda.max_memory_allocated(), "max_reserved": self.cuda.max_memory_reserved()}

    def reset_peaks(self):
        self.cuda.reset_peak_memory_stats()

    def start_history(self):
        self.cuda.memory._record_memory_history(enabled="all", context=None, stacks="python", max_entries=2_000_000)

    def stop_history(self):
        self.cuda.memory._record_memory_history(enabled=None)

    def snapshot(self) -> dict:
        return self.cuda.memory._snapshot()

    def describe(self) -> dict:
        t = self.torch
        props = t.cuda.get_device_properties(0)
        return {"gpu": props.name, "compute_capability": [props.major, props.minor],
                "total_memory": props.total_memory, "torch": t.__version__, "cuda": t.version.cuda,
                "cudnn": t.backends.cudnn.version(), "driver": _driver_version()}


class DryRun(Cuda):
    """--dry-run: the same code paths on the CPU; every figure it records is None."""

    def __init__(self, torch):
        self.torch = torch
        self.device = "cpu"

    def sync(self):
        pass

    def empty_cache(self):
        pass

    def stats(self) -> dict:
        return {"allocated": None, "reserved": None, "max_allocated": None, "max_reserved": None}

    def reset_peaks(self):
        pass

    def start_history(self):
        pass

    def stop_history(self):
        pass

    def snapshot(self) -> dict:
        return {"segments": [], "device_traces": [[]]}

    def describe(self) -> dict:
        return {"gpu": "dry run (CPU)", "compute_capability": None, "total_memory": None,
                "torch": self.torch.__version__, "cuda": None, "cudnn": None, "driver": None}


# ---- One case
def measure(gpu, model: str, batch: int, mode: str, optimizer: str, precision: str) -> dict:
    """One warm-up step, peaks reset, the measured step recorded; what the allocator did."""
    torch = gpu.torch
    from engine.request import AnalysisRequest
    from engine.step import build_scaler, run_step
    from engine.truth import build_real_step

    request = AnalysisRequest(model=model, batch=batch, mode=mode, optimizer=optimizer,
                              amp=precision == "amp_float16", device="cuda")
    step = build_real_step(request, gpu.device)
    scaler = build_scaler(request.amp, "cuda", mode, gpu.device)  # float16 AMP: a GradScaler, as engine/step.py

    def one_step():
        if precision != "amp_bfloat16":
            run_step(step.model, list(step.inputs), step.targets, step.optimizer, mode=mode, amp=request.amp,
                     device="cuda", tensors_on=gpu.device, scaler=scaler)
            return
        # bfloat16 AMP on CUDA: autocast without a scaler (the request has no such option yet)
        from engine.loss import compute_loss

        with torch.autocast(gpu.device, dtype=torch.bfloat16), torch.set_grad_enabled(mode == "train"):
            output = step.model(*step.inputs)
            loss = compute_loss(output, step.targets) if mode == "train" else None
        if loss is not None:
            loss.backward()
            step.optimizer.step()

    one_step()  # warm-up: optimizer state, workspaces, cached segments
    if step.optimizer is not None:
        step.optimizer.zero_grad(set_to_none=True)
    step.model.zero_grad(set_to_none=True)
    gpu.sync()
    from engine.allocator_replay import compact_segments, compact_trace

    before = gpu.stats()
    segments = compact_segments(gpu.snapshot()["segments"])
    gpu.reset_peaks()
    gpu.start_history()
    try:
        one_step()
        gpu.sync()
        snap = gpu.snapshot()
    finally:
        gpu.stop_history()
    after = gpu.stats()
    traces = snap.get("device_traces") or [[]]
    row = {"model": os.path.basename(model), "source": model if os.path.isabs(model) else None, "batch": batch,
           "mode": mode, "optimizer": optimizer, "precision": precision,
           "max_memory_allocated": after["max_allocated"], "max_memory_reserved": after["max_reserved"],
           "start_allocated": before["allocated"], "start_reserved": before["reserved"],
           "segments_before": segments, "trace": compact_trace(traces[0])}
    del step
    gpu.empty_cache()
    return row


# ---- Fresh-process figures: the context and the cuBLAS workspaces
CONTEXT_PROBE = r"""
import json, os, torch
out = {}
try:
    import pynvml
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    def used():
        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if p.pid == os.getpid():
                return p.usedGpuMemory
        return 0
    out["nvml_device_used_before"] = pynvml.nvmlDeviceGetMemoryInfo(handle).used
except Exception as e:
    used = None
    out["nvml_error"] = str(e)
torch.cuda.init()
free0, total = torch.cuda.mem_get_info()
x = torch.ones(1, device="cuda")
torch.cuda.synchronize()
free1, _ = torch.cuda.mem_get_info()
out.update(mem_get_info_total=total, mem_get_info_free_after_init=free0, mem_get_info_free_after_first_tensor=free1,
           reserved_after_first_tensor=torch.cuda.memory_reserved())
if used is not None:
    out["nvml_process_used_after_first_tensor"] = used()
lin = torch.nn.Linear(256, 256).cuda()
a0 = torch.cuda.memory_allocated()
y = lin(torch.randn(64, 256, device="cuda"))
torch.cuda.synchronize()
a1 = torch.cuda.memory_allocated()
y.sum().backward()
torch.cuda.synchronize()
a2 = torch.cuda.memory_allocated()
grads = sum(p.grad.numel() * 4 for p in lin.parameters())
out.update(forward_workspace_bytes=a1 - a0 - 64 * 256 * 4, backward_growth_bytes=a2 - a1, grad_bytes=grads)
if used is not None:
    out["nvml_process_used_after_cublas"] = used()
print(json.dumps(out))
"""


def fresh_process_figures(dry_run: bool) -> dict:
    if dry_run:
        return {"dry_run": True}
    done = subprocess.run([sys.executable, "-c", CONTEXT_PROBE], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _driver_version():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlSystemGetDriverVersion()
    except Exception:  # noqa: BLE001 - the driver version is a nice-to-have
        return None


# ---- The run
def cases(dry_run: bool, models: list[str] | None) -> list[tuple]:
    """Breadth first: every model's first configuration, then every model's second, ..."""
    chosen = DRY_MODELS if dry_run else MODELS
    if models:
        chosen = [(m, b) for m, b in chosen if os.path.basename(m) in models]
    configs = DRY_CONFIGS if dry_run else [(mode, opt, p) for p in PRECISIONS for mode, opt in RUNS]
    return [(m, b, mode, opt, p) for mode, opt, p in configs for m, b in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for gpu_accuracy.json ($OUT)")
    parser.add_argument("--budget", type=float, default=420.0, help="seconds for the cases (default 420)")
    parser.add_argument("--dry-run", action="store_true", help="the code paths on the CPU, no figures")
    parser.add_argument("--models", nargs="*", help="only these models (names as listed)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_accuracy: no CUDA device (use --dry-run on a CPU)", file=sys.stderr)
        return 2
    gpu = DryRun(torch) if args.dry_run else Cuda(torch)
    fresh = fresh_process_figures(args.dry_run)
    document = {"schema": 1, "dry_run": args.dry_run,
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
                **gpu.describe(), "fresh_process": fresh, "cases": [], "skipped": []}
    todo = cases(args.dry_run, args.models)
    for i, (model, batch, mode, optimizer, precision) in enumerate(todo):
        if time.perf_counter() - started > args.budget:
            document["skipped"] = [[os.path.basename(c[0]), c[2], c[3], c[4]] for c in todo[i:]]
            break
        t = time.perf_counter()
        try:
            row = measure(gpu, model, batch, mode, optimizer, precision)
        except Exception as e:  # noqa: BLE001 - one failing case (an OOM) must not lose the run
            row = {"model": os.path.basename(model), "batch": batch, "mode": mode, "optimizer": optimizer,
                   "precision": precision, "error": f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"}
            gpu.empty_cache()
        row["seconds"] = round(time.perf_counter() - t, 3)
        document["cases"].append(row)
        print(f"[{time.perf_counter() - started:6.1f} s] {row['model']:<22} {mode:<9} {optimizer:<5} {precision:<13} "
              f"{row.get('error') or (row['max_memory_allocated'], row['max_memory_reserved'])}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "gpu_accuracy.json")
    with open(path, "w") as f:
        json.dump(document, f, separators=(",", ":"))
    print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB, {len(document['cases'])} cases, "
          f"{len(document['skipped'])} skipped, {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
