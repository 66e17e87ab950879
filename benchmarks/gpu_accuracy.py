"""Record, once, what a real GPU does with MemLens's steps; the CPU replays it on every test run.

Run on a machine with a CUDA GPU (about 6 minutes on an H200 with the default budget):
    python benchmarks/gpu_accuracy.py --out "$OUT"
writes `gpu_accuracy.json` (compact: a few MB) there; copy it to tests/data/gpu/ (named after the
GPU and date) and tests/engine/test_gpu_replay.py checks the allocator simulator and the traced
predictions against it. `--dry-run` runs the same code on the CPU with two small models and
no CUDA (what tests/engine/test_gpu_accuracy_dry.py runs); its output says `dry_run: true` and is
never a fixture.

Recorded:
- the GPU, compute capability, torch/CUDA/cuDNN/driver versions;
- `fresh_process`: the CUDA context (NVML's per-process used memory and cudaMemGetInfo before and
  after initialisation) and the cuBLAS/cuBLASLt workspaces (memory_allocated after a thread's first
  matrix product, forward and backward), in a fresh process, with and without CUBLAS_WORKSPACE_CONFIG;
- `cases`: at least 20 torchvision models, the transformer spec, a GPT-2-style decoder
  (benchmarks/hf_decoder.py); train with Adam and SGD, inference; float32, AMP float16 with
  GradScaler, AMP bfloat16. Per case: max_memory_allocated, max_memory_reserved and
  memory_allocated/reserved before the measured step, the allocator's segments before it (snapshot,
  compact), the step's allocator trace (compact) and NVML's per-process used memory after it. Cases
  run breadth first over several worker processes (every model's first configuration, then the
  next), so a run cut short by the budget still covers every model;
- `fresh_cases`: a few models, each in a fresh process under several PYTORCH_CUDA_ALLOC_CONF
  settings, traced from the first allocation (the warm-up step and the measured step), with the
  peaks and NVML's per-process used memory at the end: the simulator replays these from nothing,
  and the device total (context + reserved) is checked against NVML;
- `conv_workspaces`: every distinct convolution of the torchvision models at its batch, run alone
  per dtype: the bytes cuDNN's heuristics take above the outputs, forward and backward, and the
  requests made and freed inside each call (`*_requests`: cuDNN's workspaces as asked for, where
  the block-level excess counts the allocator's unsplit remainders); a
  convolution whose input is channels-last (ConvNeXt's) is probed channels-last (cuDNN's NHWC
  kernels);
- `rnn_workspaces`: cuDNN's LSTMs and GRUs (RNN_SHAPES, per dtype, training and inference): the
  allocator's trace of one pass after a warm-up, for the RNN model MemLens does not have yet
  (engine/rnn_limits.py).

A lent GPU's session (about 15 minutes of device time, start-up included), in this order:
1. `python3 benchmarks/gpu_accuracy.py --fresh-all --workers 10 --budget 235 --out "$OUT"`: every
   case in its own process, as a user's job runs (the predictions' reference);
2. `python3 benchmarks/gpu_accuracy.py --budget 330 --out "$OUT"`: the probes (context, cuBLAS,
   convolutions, allocator settings);
3. here: copy each `gpu_accuracy.json` to `tests/data/gpu/<gpu>_<date>_fresh` and `..._probes`;
   `python benchmarks/gpu_conv_table.py tests/data/gpu/<gpu>_<date>_probes` (point its FRESH at
   the new fresh run) rebuilds resources/cuda/cudnn_conv_workspaces.json; then
   `python benchmarks/gpu_predict.py --run <fresh run> --markdown table.md` for docs/VALIDATION.md,
   and RUN/KNOWN_MISSES in tests/engine/test_gpu_predict.py.
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
    # a 2-layer LSTM tagger (a user's model): cuDNN's RNN kernels, which MemLens does not model yet
    (os.path.join(ROOT, "tests", "data", "user_models.py") + ":build_lstm", 32),
    # users' models the CPU truth found misses in (2026-11-29): attention over 1,024 tokens
    # (nn.MultiheadAttention's fused eval path, SDPA's GPU kernels) and a depthwise Conv1d over
    # transposed features (1-d convolutions off the cuDNN table, the input made contiguous)
    (os.path.join(ROOT, "tests", "data", "user_models.py") + ":build_self_attention", 8),
    (os.path.join(ROOT, "tests", "data", "user_models.py") + ":build_short_conv", 32),
]
DRY_MODELS = [("mobilenet_v3_small", 2), (os.path.join(SPECS, "tiny_transformer.yaml"), 2)]
RUNS = [("train", "adam"), ("train", "sgd"), ("inference", "none")]
PRECISIONS = ["float32", "amp_float16", "amp_bfloat16"]
DRY_CONFIGS = [("train", "adam", "float32"), ("inference", "none", "float32")]


FRESH_MODELS = ["resnet18", "resnet50", "vgg16", "densenet121", "mobilenet_v2", "vit_b_16", "tiny_transformer.yaml",
                "hf_decoder.py:build"]
FRESH_CONFS = ["", "expandable_segments:True", "max_split_size_mb:64", "roundup_power2_divisions:4"]
DRY_FRESH = [("tiny_transformer.yaml", "", "train", "adam", "float32")]
CONV_DTYPES = ["float32", "float16", "bfloat16"]
# What ran on the device before the measured step (schema 3; the 2026-11-28 recordings, schema 2,
# also ran a float32 no-grad forward in train mode first, to read the targets' shapes)
WARMUP_LIMIT = 16
HISTORY = (f"model and input, warm-up step (repeated while a float16 GradScaler skips it, at most {WARMUP_LIMIT}), "
           "measured step (engine/step.py run_step for every precision)")


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
        self.cuda.memory._record_memory_history(enabled="all", context=None, stacks="python", max_entries=4_000_000)

    def stop_history(self):
        self.cuda.memory._record_memory_history(enabled=None)

    def snapshot(self) -> dict:
        return self.cuda.memory._snapshot()

    def process_used(self) -> dict:
        """What the device says this process holds (NVML), and cudaMemGetInfo's used (all processes)."""
        free, total = self.cuda.mem_get_info()
        return {"nvml_process_used": _nvml_process_used(), "mem_get_info_used": total - free}

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

    def process_used(self) -> dict:
        return {"nvml_process_used": None, "mem_get_info_used": None}

    def describe(self) -> dict:
        return {"gpu": "dry run (CPU)", "compute_capability": None, "total_memory": None,
                "torch": self.torch.__version__, "cuda": None, "cudnn": None, "driver": None}


def _nvml_process_used():
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if p.pid == os.getpid():
                return p.usedGpuMemory
        return 0
    except Exception:  # noqa: BLE001 - NVML may be absent or refuse per-process figures
        return None


def _driver_version():
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlSystemGetDriverVersion()
    except Exception:  # noqa: BLE001 - the driver version is a nice-to-have
        return None


def _source(name: str) -> str:
    """A case's model as MemLens loads it: a torchvision name, a spec path, or file.py:function."""
    for model, _ in MODELS:
        if os.path.basename(model) == name:
            return model
    return name


# ---- One case
def warm_up(one_step, scaler, limit: int = WARMUP_LIMIT) -> int:
    """Warm-up steps until one is not skipped; returns how many ran. A float16 GradScaler skips the
    optimizer's step when the scaled gradients overflow, which its initial scale (2^16) often makes
    them do, and halves its scale: a skipped step makes no optimizer state. MemLens predicts a step
    after one that did (the 2026-11-28 recording of alexnet float16 Adam measured the state's first
    step instead)."""
    for n in range(1, limit + 1):
        before = scaler.get_scale() if scaler is not None else None
        one_step()
        if scaler is None or scaler.get_scale() >= before:
            return n
    return limit


def measure(gpu, model: str, batch: int, mode: str, optimizer: str, precision: str, from_start: bool = False) -> dict:
    """One warm-up step, peaks reset, the measured step recorded; what the allocator did.
    `from_start` (a fresh process): the trace covers everything from the first allocation."""
    from engine.allocator_replay import compact_segment_events, compact_segments, compact_trace
    from engine.request import AnalysisRequest
    from engine.step import build_scaler, run_step
    from engine.truth import build_real_step

    if from_start:
        gpu.start_history()
    amp_dtype = {"amp_float16": "float16", "amp_bfloat16": "bfloat16"}.get(precision, "")
    request = AnalysisRequest(model=model, batch=batch, mode=mode, optimizer=optimizer, amp=bool(amp_dtype),
                              amp_dtype=amp_dtype, device="cuda")
    step = build_real_step(request, gpu.device, shapes_on_meta=True)  # nothing on the GPU before the first step
    # float16 AMP: a GradScaler; bfloat16: none (engine/step.py)
    scaler = build_scaler(request.amp, "cuda", mode, gpu.device, amp_dtype=amp_dtype)

    def one_step():  # the step MemLens traces (the 2026-11-28 recordings freed bfloat16's logits before backward)
        run_step(step.model, list(step.inputs), step.targets, step.optimizer, mode=mode, amp=request.amp,
                 device="cuda", tensors_on=gpu.device, scaler=scaler, amp_dtype=amp_dtype)

    warmups = warm_up(one_step, scaler)  # optimizer state, workspaces, cached segments
    if step.optimizer is not None:
        step.optimizer.zero_grad(set_to_none=True)
    step.model.zero_grad(set_to_none=True)
    gpu.sync()
    before = gpu.stats()
    whole = {"warmup_max_allocated": before["max_allocated"], "warmup_max_reserved": before["max_reserved"]}
    snap = gpu.snapshot()
    segments = compact_segments(snap["segments"])
    done_before = len((snap.get("device_traces") or [[]])[0]) if from_start else 0
    gpu.reset_peaks()
    if not from_start:
        gpu.start_history()
    try:
        one_step()
        gpu.sync()
        snap = gpu.snapshot()
    finally:
        gpu.stop_history()
    after = gpu.stats()
    used = gpu.process_used()
    entries = (snap.get("device_traces") or [[]])[0]
    row = {"model": os.path.basename(model), "source": model if os.path.isabs(model) else None, "batch": batch,
           "mode": mode, "optimizer": optimizer, "precision": precision, "fresh_process": from_start,
           "max_memory_allocated": after["max_allocated"], "max_memory_reserved": after["max_reserved"],
           "start_allocated": before["allocated"], "start_reserved": before["reserved"], "warmup_steps": warmups,
           "end_allocated": after["allocated"], "end_reserved": after["reserved"], **used,
           "segments_before": segments, "trace": compact_trace(entries[done_before:]),
           "segment_events": compact_segment_events(entries[done_before:])}
    if from_start:  # the whole process: the simulator replays it from nothing
        row.update(whole, whole_trace=compact_trace(entries), whole_segment_events=compact_segment_events(entries))
    del step
    gpu.empty_cache()
    return row


# ---- Fresh-process figures: the context and the cuBLAS workspaces
CONTEXT_PROBE = r"""
import json, os, torch
out = {"CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}
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
h = torch.randn(64, 256, device="cuda", dtype=torch.float16)
w = torch.randn(256, 256, device="cuda", dtype=torch.float16)
a3 = torch.cuda.memory_allocated()
z = h @ w
torch.cuda.synchronize()
out["half_matmul_growth_bytes"] = torch.cuda.memory_allocated() - a3 - z.numel() * 2
free2, _ = torch.cuda.mem_get_info()
out["mem_get_info_free_after_cublas"] = free2
out["reserved_after_cublas"] = torch.cuda.memory_reserved()
if used is not None:
    out["nvml_process_used_after_cublas"] = used()
print(json.dumps(out))
"""


def fresh_process_figures(dry_run: bool) -> dict:
    if dry_run:
        return {"dry_run": True}
    out = {}
    for name, env in (("default", {}), ("cublas_4096_8", {"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}),
                      ("cublas_16_8", {"CUBLAS_WORKSPACE_CONFIG": ":16:8"})):
        done = subprocess.run([sys.executable, "-c", CONTEXT_PROBE], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **env})
        if done.returncode != 0:
            out[name] = {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        else:
            out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**out["default"], "variants": out}


# ---- cuDNN's convolution workspaces, one convolution at a time
def distinct_convolutions(models: list[tuple[str, int]]) -> list[dict]:
    """Every distinct Conv2d call (its arguments, input shape and layout) of the torchvision
    models at their batch, found on the meta device. A convolution whose input is channels-last
    (ConvNeXt's, after a permute) runs cuDNN's NHWC kernels: its layout is 'nhwc', and the meta
    forward writes its output channels-last, as the GPU does (engine/cpu_kernels.py output_layout)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from engine.cpu_kernels import output_layout
    from engine.cudnn_workspaces import channels_last
    from engine.sources import load_model

    class Layouts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            return output_layout(func, args, func(*args, **(kwargs or {})))

    seen, out = set(), []
    for name, batch in models:
        if os.sep in name or ":" in name:
            continue
        try:
            loaded = load_model(name)  # on the meta device, as MemLens loads it
        except Exception:  # noqa: BLE001 - a model that will not load here has no convolutions to probe
            continue
        model = loaded.module
        found = []

        def hook(module, args, found=found):
            x = args[0]
            found.append((tuple(x.shape), module.in_channels, module.out_channels, tuple(module.kernel_size),
                          tuple(module.stride), tuple(module.padding) if not isinstance(module.padding, str)
                          else module.padding, tuple(module.dilation), module.groups, module.bias is not None,
                          "nhwc" if channels_last(x, module.weight) else "nchw"))

        handles = [m.register_forward_pre_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        try:
            with torch.no_grad(), Layouts():
                model.eval()(torch.empty(batch, *loaded.input_shape, device="meta"))
        except Exception:  # noqa: BLE001 - keep the convolutions found so far
            pass
        for h in handles:
            h.remove()
        for key in found:
            if key not in seen:
                seen.add(key)
                out.append({"model": name, "input": list(key[0]), "in": key[1], "out": key[2], "kernel": list(key[3]),
                            "stride": list(key[4]), "padding": key[5] if isinstance(key[5], str) else list(key[5]),
                            "dilation": list(key[6]), "groups": key[7], "bias": key[8], "layout": key[9]})
    return out


def conv_workspaces(gpu, convs: list[dict], dtypes: list[str], deadline: float) -> list[dict]:
    """For each convolution and dtype: the bytes above the outputs at the peak of the forward, of
    the backward with and without the input's gradient (cuDNN's workspaces, as its heuristics pick)."""
    torch = gpu.torch
    rows = []
    for dtype_name in dtypes:
        dtype = getattr(torch, dtype_name)
        for conv in convs:
            if time.time() > deadline:
                return rows
            row = {**conv, "dtype": dtype_name}
            try:
                row.update(_one_conv(gpu, conv, dtype))
            except Exception as e:  # noqa: BLE001
                row["error"] = _error(e)
            rows.append(row)
            gpu.empty_cache()
    return rows


def _one_conv(gpu, conv: dict, dtype) -> dict:
    torch = gpu.torch
    dev = gpu.device
    layout = torch.channels_last if conv.get("layout") == "nhwc" else torch.contiguous_format
    x = torch.randn(conv["input"], device=dev, dtype=dtype).to(memory_format=layout)
    w = torch.randn(conv["out"], conv["in"] // conv["groups"], *conv["kernel"], device=dev, dtype=dtype)
    b = torch.randn(conv["out"], device=dev, dtype=dtype) if conv["bias"] else None
    padding = conv["padding"]
    args = (conv["stride"], padding, conv["dilation"], conv["groups"])

    requests = {}

    def extra(fn, key):
        """The block-level excess at the peak, and (`requests`) cuDNN's exact requests: the
        allocations made and freed inside the call, in order (the excess counts the blocks the
        allocator hands out, unsplit remainders included)."""
        gpu.sync()
        base = torch.cuda.memory_allocated() if dev == "cuda" else 0
        gpu.reset_peaks()
        outs, entries = _recorded(gpu, fn)
        peak = torch.cuda.max_memory_allocated() if dev == "cuda" else 0
        kept = sum(_rounded(o) for o in outs if o is not None)
        requests[f"{key}_requests"] = _freed_inside(entries)
        return peak - base - kept, outs

    fwd, (y,) = extra(lambda: (torch.nn.functional.conv2d(x, w, b, *args),), "forward")
    gy = torch.randn_like(y)  # the output's layout: channels-last after a channels-last input
    del y
    if isinstance(padding, str):  # convolution_backward wants numbers
        padding = [(k - 1) * d // 2 for k, d in zip(conv["kernel"], conv["dilation"])]
    bias_sizes = [conv["out"]] if conv["bias"] else None
    out = {"forward": fwd, "output_bytes": gy.numel() * gy.element_size()}
    for key, mask in (("backward", [True, True, conv["bias"]]), ("backward_weight_only", [False, True, conv["bias"]])):
        ws, outs = extra(lambda mask=mask: torch.ops.aten.convolution_backward(
            gy, x, w, bias_sizes, conv["stride"], padding, conv["dilation"], False, [0, 0], conv["groups"], mask), key)
        out[key] = ws
        del outs
    return {**out, **requests}


def _freed_inside(entries: list[dict]) -> list[int]:
    """The sizes of the allocations a recorded call made and freed again (its workspaces), in order."""
    made = {}
    freed = []
    for e in entries:
        if e["action"] == "alloc":
            made[e["addr"]] = int(e["size"])
        elif e["action"] == "free_completed" and e["addr"] in made:
            freed.append(made.pop(e["addr"]))
    return freed


# cuDNN's RNNs (nn.LSTM, nn.GRU on a GPU): the trace does not model them yet (engine/rnn_limits.py).
# (cell, layers, bidirectional, steps, batch, inputs, hidden): shapes to fit cuDNN's workspace and
# reserve against, each run per dtype, in training (forward + backward) and inference.
RNN_SHAPES = [
    ("LSTM", 1, False, 20, 32, 64, 128), ("LSTM", 2, False, 20, 32, 64, 128), ("LSTM", 2, True, 20, 32, 64, 128),
    ("LSTM", 1, False, 64, 32, 64, 128), ("LSTM", 1, False, 20, 8, 64, 128), ("LSTM", 1, False, 20, 32, 256, 128),
    ("LSTM", 1, False, 20, 32, 64, 512), ("LSTM", 2, True, 50, 16, 300, 256), ("LSTM", 3, False, 35, 20, 650, 650),
    ("GRU", 1, False, 20, 32, 64, 128), ("GRU", 2, True, 20, 32, 64, 96), ("GRU", 1, False, 64, 32, 256, 512),
]
DRY_RNN_SHAPES = RNN_SHAPES[:2]


def rnn_workspaces(gpu, shapes, dtypes: list[str], deadline: float) -> list[dict]:
    """For each recurrent layer shape, dtype and mode: the allocator's trace of one forward (and,
    training, backward) after a warm-up, so the outputs, cuDNN's reserve and workspace and the
    gradients are there as exact requests (compact, engine/allocator_replay.py)."""
    torch = gpu.torch
    rows = []
    for dtype_name in dtypes:
        for cell, layers, bidirectional, steps, batch, inputs, hidden in shapes:
            for mode in ("train", "inference"):
                if time.time() > deadline:
                    return rows
                row = {"rnn": cell, "layers": layers, "bidirectional": bidirectional, "steps": steps,
                       "batch": batch, "inputs": inputs, "hidden": hidden, "dtype": dtype_name, "mode": mode}
                try:
                    row.update(_one_rnn(gpu, getattr(torch.nn, cell), row, getattr(torch, dtype_name)))
                except Exception as e:  # noqa: BLE001
                    row["error"] = _error(e)
                rows.append(row)
                gpu.empty_cache()
    return rows


def _one_rnn(gpu, kind, row: dict, dtype) -> dict:
    from engine.allocator_replay import compact_trace

    torch = gpu.torch
    layer = kind(row["inputs"], row["hidden"], num_layers=row["layers"], bidirectional=row["bidirectional"],
                 batch_first=True).to(device=gpu.device, dtype=dtype)
    layer.train(row["mode"] == "train")
    x = torch.randn(row["batch"], row["steps"], row["inputs"], device=gpu.device, dtype=dtype,
                    requires_grad=row["mode"] == "train")

    def once():
        if row["mode"] == "train":
            out, _ = layer(x)
            out.sum().backward()
            layer.zero_grad(set_to_none=True)
            x.grad = None
        else:
            with torch.no_grad():
                layer(x)

    once()  # cuDNN's plans and any first-call buffers
    gpu.sync()
    before = gpu.stats()
    gpu.reset_peaks()
    _, entries = _recorded(gpu, once)
    return {"start_allocated": before["allocated"], "max_memory_allocated": gpu.stats()["max_allocated"],
            "trace": compact_trace(entries)}


def _recorded(gpu, fn):
    """`fn()` under the allocator's history: (its result, the device trace's entries)."""
    gpu.start_history()
    try:
        result = fn()
        gpu.sync()
        snap = gpu.snapshot()
    finally:
        gpu.stop_history()
    return result, (snap.get("device_traces") or [[]])[0]


def _error(e: BaseException) -> str:
    """A failed case's or probe's row: the exception's type and first line."""
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def _rounded(t) -> int:
    """The caching allocator's block for a tensor: 512-byte rounding."""
    n = t.untyped_storage().nbytes()
    return max(512, (n + 511) // 512 * 512)


# ---- Worker processes
def cases(dry_run: bool, models: list[str] | None) -> list[tuple]:
    """Breadth first: every model's first configuration, then every model's second, ..."""
    chosen = DRY_MODELS if dry_run else MODELS
    if models:
        chosen = [(m, b) for m, b in chosen if os.path.basename(m) in models]
    configs = DRY_CONFIGS if dry_run else [(mode, opt, p) for p in PRECISIONS for mode, opt in RUNS]
    return [(m, b, mode, opt, p) for mode, opt, p in configs for m, b in chosen]


def fresh_cases(dry_run: bool, models: list[str] | None) -> list[tuple]:
    """(model, PYTORCH_CUDA_ALLOC_CONF, mode, optimizer, precision), each run in its own process."""
    if dry_run:
        todo = DRY_FRESH
    else:
        todo = [(m, conf, "train", "adam", "float32") for conf in FRESH_CONFS for m in FRESH_MODELS]
        todo += [(m, "", "train", "adam", "amp_float16") for m in FRESH_MODELS]
    return [c for c in todo if not models or c[0] in models]


def _batch_of(name: str) -> int:
    for model, batch in MODELS + DRY_MODELS:
        if os.path.basename(model) == name:
            return batch
    raise KeyError(name)


def run_worker(job: dict) -> None:
    """One worker process: its share of the cases (or one fresh case, or the convolutions),
    each row appended to a JSON-lines file as it finishes so a run stopped at its budget keeps them."""
    import torch

    gpu = DryRun(torch) if job["dry_run"] else Cuda(torch)
    deadline = job["deadline"]
    with open(job["rows"], "a") as f:
        def write(row):
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
            f.flush()

        if job["kind"] == "convs":
            convs = distinct_convolutions(DRY_MODELS if job["dry_run"] else MODELS)
            dtypes = ["float32"] if job["dry_run"] else CONV_DTYPES
            for row in rnn_workspaces(gpu, DRY_RNN_SHAPES if job["dry_run"] else RNN_SHAPES, dtypes, deadline):
                write(row)  # first: a few seconds, then the convolutions to the deadline
            for row in conv_workspaces(gpu, convs[:3] if job["dry_run"] else convs, dtypes, deadline):
                write(row)
            return
        for model, batch, mode, optimizer, precision in job["cases"]:
            if time.time() > deadline:
                write({"skipped": [model, mode, optimizer, precision]})
                continue
            t = time.perf_counter()
            try:
                row = measure(gpu, _source(model) if job["kind"] == "fresh" else model, batch, mode, optimizer,
                              precision, from_start=job["kind"] == "fresh")
            except Exception as e:  # noqa: BLE001 - one failing case (an OOM) must not lose the run
                import traceback

                row = {"model": os.path.basename(model), "batch": batch, "mode": mode, "optimizer": optimizer,
                       "precision": precision, "error": _error(e),
                       "traceback": traceback.format_exc()[-1500:]}
                gpu.empty_cache()
            row["seconds"] = round(time.perf_counter() - t, 3)
            if job["kind"] == "fresh":
                row["alloc_conf"] = os.environ.get("PYTORCH_CUDA_ALLOC_CONF", "")
            write(row)
            print(f"[{job['name']}] {row['model']:<22} {mode:<9} {optimizer:<5} {precision:<13} "
                  f"{row.get('alloc_conf', '')} {row.get('error') or (row['max_memory_allocated'], row['max_memory_reserved'])}",
                  flush=True)


def _spawn(job: dict, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--job", json.dumps(job)],
                            env={**os.environ, "OMP_NUM_THREADS": "3", **(env or {})})


def _rows(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_document(document: dict, out: str, chunk_bytes: int = 12_000_000) -> str:
    """gpu_accuracy.json, its cases in files of at most `chunk_bytes` beside it (gpu_cases_N.json,
    listed under `case_files`), so no file is too large to copy back from the GPU machine."""
    os.makedirs(out, exist_ok=True)
    chunks, current, size = [], [], 0
    for case in document["cases"]:
        n = len(json.dumps(case, separators=(",", ":")))
        if current and size + n > chunk_bytes:
            chunks.append(current)
            current, size = [], 0
        current.append(case)
        size += n
    if current:
        chunks.append(current)
    names = [f"gpu_cases_{i + 1}.json" for i in range(len(chunks))]
    for name, chunk in zip(names, chunks):
        with open(os.path.join(out, name), "w") as f:
            json.dump({"cases": chunk}, f, separators=(",", ":"))
    path = os.path.join(out, "gpu_accuracy.json")
    with open(path, "w") as f:
        json.dump({**document, "cases": [], "case_count": len(document["cases"]), "case_files": names}, f,
                  separators=(",", ":"))
    return path


def load_document(path: str) -> dict:
    """gpu_accuracy.json with its cases read back from the files beside it."""
    with open(path) as f:
        document = json.load(f)
    cases = list(document.get("cases", []))
    for name in document.get("case_files", []):
        with open(os.path.join(os.path.dirname(path), name)) as f:
            cases += json.load(f)["cases"]
    return {**document, "cases": cases}


def run_fresh_all(args, gpu, started: float) -> int:
    """Each case in a fresh process, `--workers` side by side: no case sees another's workspaces
    or cached segments, and NVML's per-process figure is the case's device total."""
    import tempfile

    deadline = time.time() + args.budget
    work = tempfile.mkdtemp(prefix="gpu_accuracy_")
    todo = cases(args.dry_run, args.models)
    running: list[subprocess.Popen] = []
    document = {"schema": 3, "dry_run": args.dry_run, "fresh_all": True, "history": HISTORY,
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"), **gpu.describe(),
                "cases": [], "skipped": []}
    for n, (model, batch, mode, opt, precision) in enumerate(todo):
        while len(running) >= max(1, args.workers):
            running = [p for p in running if p.poll() is None]
            time.sleep(0.05)
        if time.time() > deadline:
            document["skipped"].append([os.path.basename(model), mode, opt, precision])
            continue
        job = {"kind": "fresh", "name": f"c{n}", "dry_run": args.dry_run, "deadline": deadline,
               "rows": os.path.join(work, f"case-{n}.jsonl"), "cases": [[model, batch, mode, opt, precision]]}
        running.append(_spawn(job))
    for p in running:
        try:
            p.wait(timeout=max(1.0, deadline + 40 - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
    for n in range(len(todo)):
        for row in _rows(os.path.join(work, f"case-{n}.jsonl")):
            (document["skipped"].append(row["skipped"]) if "skipped" in row else document["cases"].append(row))
    path = write_document(document, args.out)
    errors = sum("error" in c for c in document["cases"])
    print(f"wrote {path}: {len(document['cases'])} cases, {errors} errors, {len(document['skipped'])} skipped, "
          f"{time.perf_counter() - started:.0f} s")
    return 0


# ---- The run
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "."), help="folder for gpu_accuracy.json ($OUT)")
    parser.add_argument("--budget", type=float, default=330.0, help="seconds for the cases (default 330)")
    parser.add_argument("--workers", type=int, default=4, help="processes measuring cases side by side (default 4)")
    parser.add_argument("--dry-run", action="store_true", help="the code paths on the CPU, no figures")
    parser.add_argument("--models", nargs="*", help="only these models (names as listed)")
    parser.add_argument("--fresh-all", action="store_true",
                        help="every case in its own process (as a user's job runs), --workers at a time; no probes")
    parser.add_argument("--job", help=argparse.SUPPRESS)  # a worker process's share (internal)
    args = parser.parse_args(argv)
    if args.job:
        run_worker(json.loads(args.job))
        return 0
    started = time.perf_counter()
    import tempfile

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_accuracy: no CUDA device (use --dry-run on a CPU)", file=sys.stderr)
        return 2
    gpu = DryRun(torch) if args.dry_run else Cuda(torch)
    if args.fresh_all:
        return run_fresh_all(args, gpu, started)
    fresh = fresh_process_figures(args.dry_run)
    print(f"[{time.perf_counter() - started:6.1f} s] fresh process: {json.dumps(fresh)[:400]}", flush=True)
    document = {"schema": 3, "dry_run": args.dry_run, "history": HISTORY,
                "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
                **gpu.describe(), "fresh_process": fresh, "cases": [], "skipped": [], "fresh_cases": [],
                "conv_workspaces": []}
    deadline = time.time() + args.budget  # wall-clock: the workers read the same clock
    work = tempfile.mkdtemp(prefix="gpu_accuracy_")
    todo = cases(args.dry_run, args.models)
    workers = max(1, args.workers if not args.dry_run else 1)
    procs = []
    for k in range(workers):
        job = {"kind": "cases", "name": f"w{k}", "dry_run": args.dry_run, "deadline": deadline,
               "rows": os.path.join(work, f"cases-{k}.jsonl"), "cases": [list(c) for c in todo[k::workers]]}
        procs.append(_spawn(job))
    convs_job = {"kind": "convs", "name": "convs", "dry_run": args.dry_run, "deadline": deadline - 20,
                 "rows": os.path.join(work, "convs.jsonl")}
    procs.append(_spawn(convs_job))
    # fresh processes, one at a time beside the workers
    for n, (model, conf, mode, opt, precision) in enumerate(fresh_cases(args.dry_run, args.models)):
        if time.time() > deadline - 15:
            document["skipped"].append([model, mode, opt, precision, conf])
            continue
        job = {"kind": "fresh", "name": f"f{n}", "dry_run": args.dry_run, "deadline": deadline,
               "rows": os.path.join(work, "fresh.jsonl"), "cases": [[model, _batch_of(model), mode, opt, precision]]}
        p = _spawn(job, {"PYTORCH_CUDA_ALLOC_CONF": conf} if conf else None)
        try:
            p.wait(timeout=max(1.0, deadline + 30 - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=max(1.0, deadline + 45 - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
    for k in range(workers):
        for row in _rows(os.path.join(work, f"cases-{k}.jsonl")):
            (document["skipped"].append(row["skipped"]) if "skipped" in row else document["cases"].append(row))
    document["fresh_cases"] = [r for r in _rows(os.path.join(work, "fresh.jsonl")) if "skipped" not in r]
    probes = _rows(os.path.join(work, "convs.jsonl"))
    document["conv_workspaces"] = [r for r in probes if "rnn" not in r]
    document["rnn_workspaces"] = [r for r in probes if "rnn" in r]
    path = write_document(document, args.out)
    errors = sum("error" in c for c in document["cases"] + document["fresh_cases"])
    total = sum(os.path.getsize(os.path.join(args.out, n)) for n in os.listdir(args.out) if n.endswith(".json"))
    print(f"wrote {path} ({total / 1e6:.2f} MB in all, {len(document['cases'])} cases, "
          f"{len(document['fresh_cases'])} fresh cases, {len(document['conv_workspaces'])} convolutions, "
          f"{errors} errors, {len(document['skipped'])} skipped, {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
