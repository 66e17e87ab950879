"""cuDNN's convolution workspaces on a CUDA target, per convolution, as its heuristics pick them.

A convolution on a GPU takes a workspace from the caching allocator for the length of the
kernel: often larger than the output (ResNet-18's first convolution at batch 32 takes 117 MiB
forward, 128 MiB backward), so it decides many steps' peaks. Which algorithm cuDNN picks, hence
how much, depends on the GPU, cuDNN and the exact shape; nothing on a CPU can derive it. So
it is measured once on a GPU (benchmarks/gpu_accuracy.py, every distinct convolution of 22
torchvision models, three dtypes) and shipped as a table (resources/cuda/cudnn_conv_workspaces.json,
built by benchmarks/gpu_conv_table.py). A traced convolution takes its workspace:
- `recorded`: the same convolution at the same batch is in the table;
- `scaled`: the same convolution at another batch, scaled linearly with the batch (the kernels
  cuDNN's heuristics pick tile the batch);
- `estimated`: no such convolution: the median ratio of workspace to output bytes over the
  recorded convolutions of its kind (depthwise, grouped, 1x1, k x k), dtype and direction.
A convolution whose input or weight is channels-last runs cuDNN's NHWC kernels, as ATen picks
(`cudnn_conv_suggest_memory_format`; a depthwise one runs on cuDNN only then, else on ATen's own
kernel without a workspace): it takes the table's channels-last rows, read from recorded steps
(ConvNeXt's blocks). One not among them takes its kind's channels-last ratio, else the NCHW
figure, counted as estimated.
An input that is not dense in the layout cuDNN runs is copied before the convolution and freed
after it, as on a CPU (engine/cpu_kernels.py `input_copy_bytes`; ATen's `input.contiguous(format)`,
recorded on the H200 for ShuffleNetV2's channel halves, forward and backward where the weight's
gradient is wanted). The table's GPU, torch and cuDNN are named in every note; another
GPU gets the table as an extrapolation, and the footprint says so.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

import numpy as np
import torch

from .aten_copies import aten_script
from .cpu_kernels import around_copy, either_channels_last, input_copy_bytes
from .cuda_allocator import ConvWorkspaces

aten = torch.ops.aten
TABLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "resources", "cuda",
                     "cudnn_conv_workspaces.json")
DIRECTIONS = ("forward", "backward", "backward_weight_only")
_DTYPES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


@dataclass(frozen=True)
class _Table:
    describe: str
    exact: dict  # (dtype, n, c, h, w, out, kh, kw, sh, sw, ph, pw, dh, dw, groups) -> (fwd, bwd, bwd_weight, bwd_data)
    by_shape: dict  # the same key without n -> (n, (fwd, bwd, bwd_weight, bwd_data)); bwd_data may be None
    ratios: dict  # (dtype, kind, direction) -> median workspace / output bytes


# ---- Public API
class CudnnWorkspaces:
    """The tracer's kernel scripts for a CUDA target (engine/tracer.py `kernel_scripts`): each
    convolution's outputs, then its workspace, allocated and freed inside the op; and cuDNN's
    batch norm in eval mode, which returns no saved statistics (`_batch_norm_eval`)."""

    def __init__(self, recorder):
        self.recorder = recorder
        self.table = load_table()
        self.counts = {"recorded": 0, "scaled": 0, "estimated": 0}
        self.largest = (0, "")
        self.threads: set[str] = set()

    def __call__(self, func, args):
        if func is aten.native_batch_norm.default:
            return _batch_norm_eval(args)
        if func is aten.convolution.default:
            x, weight, stride, padding, dilation, transposed, groups = args[0], args[1], args[3], args[4], args[5], \
                args[6], args[8]
            out_shape = _output_shape(x.shape, weight.shape, stride, padding, dilation, transposed, args[7], groups)
            nbytes = self._lookup(x, weight, stride, padding, dilation, groups, transposed, _layout(x, weight),
                                  "forward", _numel(out_shape) * x.element_size())
            steps = [("out", 0), ("alloc", "workspace", _block(nbytes)), ("free", "workspace")]
            return around_copy(input_copy_bytes(x, weight), steps)
        if func is aten.convolution_backward.default:
            # cuDNN runs the input's gradient (its output, then its workspace), then the weight's
            # (likewise), then the bias's. The table holds the excess of the whole backward and of
            # the weight's alone; the input's workspace is what the whole one's peak leaves room for.
            grad, x, weight, stride, padding, dilation, transposed, groups, mask = (
                args[0], args[1], args[2], args[4], args[5], args[6], args[7], args[9], args[10])
            grad_bytes = grad.numel() * grad.element_size()
            layout = _layout(x, weight)
            geometry = (x, weight, stride, padding, dilation, groups, transposed, layout)
            filter_bytes = self._lookup(*geometry, "backward_weight_only", grad_bytes, count=not mask[0])
            steps = [("out", 1), ("alloc", "filter", _block(filter_bytes)), ("free", "filter"), ("out", 2)]
            if not mask[0]:
                return around_copy(input_copy_bytes(x, weight), steps) if mask[1] else steps
            whole = self._lookup(*geometry, "backward", grad_bytes)
            weight_bytes = _block(weight.numel() * weight.element_size())
            bias_bytes = _block(weight.shape[0] * weight.element_size()) if mask[2] else 0
            data_bytes = data_workspace_bytes(self.table, x.shape, x.dtype, weight.shape, stride, padding, dilation,
                                              groups, transposed, layout)
            if data_bytes is None:  # not seen in a recorded step: what the whole backward's peak leaves room for
                data_bytes = whole + weight_bytes + bias_bytes if whole > filter_bytes else filter_bytes
            steps = [("out", 0), ("alloc", "data", _block(data_bytes)), ("free", "data"), *steps]
            return around_copy(input_copy_bytes(x, weight), steps) if mask[1] else steps
        return aten_script(func, args)  # ATen's own copies (engine/aten_copies.py), as on a CPU

    def summary(self) -> ConvWorkspaces | None:
        if not sum(self.counts.values()):
            return None
        return ConvWorkspaces(self.table.describe, self.counts["recorded"], self.counts["scaled"],
                              self.counts["estimated"], *self.largest, len(self.threads))

    def _lookup(self, x, weight, stride, padding, dilation, groups, transposed, layout, direction, output_bytes,
                count: bool = True) -> int:
        nbytes, source = workspace_bytes(self.table, x.shape, x.dtype, weight.shape, stride, padding, dilation,
                                         groups, transposed, direction, output_bytes, layout)
        if not count:
            return nbytes
        self.counts[source] += 1
        self.threads.add("autograd" if self.recorder.phase == 1 else "main")  # autograd's device thread
        if nbytes > self.largest[0]:
            self.largest = (nbytes, f"{self.recorder.current_module()} ({direction.replace('_', ' ')})")
        return nbytes


def _batch_norm_eval(args):
    """Batch norm in eval mode as a GPU runs it (ATen's _batch_norm_impl_index): cuDNN takes it
    when neither input nor weight is bfloat16 (and a float16 input has float32 weights, as under
    AMP), the input has 3+ dimensions and a batch of at most 65,535; it returns empty saved
    statistics where the meta kernel (and the native CUDA kernel) make two of the channels'
    size (measured on the H200: none in float32 and float16, a pair of blocks per layer in
    bfloat16). None: the meta kernel's outputs as they are."""
    x, weight, bias, mean, var, training = args[:6]
    takes_cudnn = (not training and weight is not None and bias is not None and mean is not None
                   and var is not None and x.dim() >= 3 and x.shape[0] <= 65535
                   and torch.bfloat16 not in (x.dtype, weight.dtype)
                   and (x.dtype != torch.float16 or weight.dtype == torch.float32))
    return [("out", 0), ("out", 1, 0), ("out", 2, 0)] if takes_cudnn else None


def workspace_bytes(table: _Table, x_shape, dtype, w_shape, stride, padding, dilation, groups, transposed,
                    direction: str, output_bytes: int, layout: str = "nchw") -> tuple[int, str]:
    """(bytes, source) for one convolution: 'recorded', 'scaled' or 'estimated' (module docstring)."""
    name = _name(dtype, layout)
    column = DIRECTIONS.index(direction)
    if len(x_shape) == 4 and not transposed:
        n, c, h, w = (int(v) for v in x_shape)
        shape = _shape_key(name, c, h, w, w_shape, stride, padding, dilation, groups)
        hit = table.by_shape.get(shape)
        if hit is not None:
            recorded_n, values = hit
            exact = table.exact.get((name, n, *shape[1:]))
            if exact is not None:
                return exact[column], "recorded"
            return int(values[column] * n / recorded_n), "scaled"
    kind = _kind(int(x_shape[1]), int(w_shape[0]), groups, tuple(int(k) for k in w_shape[2:]))
    if layout != "nchw":  # channels-last off the table: its kind's NHWC ratio, else the NCHW figure
        ratio = table.ratios.get((name, kind, direction))
        if ratio is not None:
            return int(ratio * output_bytes), "estimated"
        nbytes, _ = workspace_bytes(table, x_shape, dtype, w_shape, stride, padding, dilation, groups, transposed,
                                    direction, output_bytes)
        return nbytes, "estimated"
    ratio = table.ratios.get((name, kind, direction), table.ratios.get(("float32", kind, direction), 0.0))
    return int(ratio * output_bytes), "estimated"


def data_workspace_bytes(table: _Table, x_shape, dtype, w_shape, stride, padding, dilation, groups,
                         transposed, layout: str = "nchw") -> int | None:
    """The input-gradient pass's own workspace where a recorded step showed it (the table's
    `backward_data`, read by benchmarks/gpu_conv_table.py), scaled by the batch; else None."""
    if len(x_shape) != 4 or transposed:
        return None
    n, c, h, w = (int(v) for v in x_shape)
    shape = _shape_key(_name(dtype, layout), c, h, w, w_shape, stride, padding, dilation, groups)
    exact = table.exact.get((shape[0], n, *shape[1:]))
    if exact is not None and exact[3] is not None:
        return exact[3]
    hit = table.by_shape.get(shape)
    if hit is None or hit[1][3] is None:
        return None
    return int(hit[1][3] * n / hit[0])


def channels_last(x, weight) -> bool:
    """Whether cuDNN runs this 2-d convolution channels-last (ATen's `cudnn_conv_suggest_memory_format`:
    the input or the weight is channels-last); its output is channels-last then too."""
    return weight.dim() == 4 and either_channels_last(x, weight)


@functools.lru_cache(maxsize=1)
def load_table(path: str = TABLE) -> _Table:
    with open(path) as f:
        raw = json.load(f)
    columns = raw["columns"]
    exact, by_shape, samples = {}, {}, {}
    for row in raw["rows"]:
        record = dict(zip(columns, row))
        record["dtype"] = _name(record["dtype"], record.get("layout", "nchw"))
        data = record.get("backward_data")
        values = (*(int(record[d]) for d in DIRECTIONS), None if data is None else int(data))
        key = tuple(record[k] for k in columns[:15])
        exact[key] = values
        by_shape.setdefault((key[0], *key[2:]), (record["n"], values))
        kind = _kind(record["c"], record["out"], record["groups"], (record["kh"], record["kw"]))
        h_out = (record["h"] + 2 * record["ph"] - record["dh"] * (record["kh"] - 1) - 1) // record["sh"] + 1
        w_out = (record["w"] + 2 * record["pw"] - record["dw"] * (record["kw"] - 1) - 1) // record["sw"] + 1
        elem = 4 if record["dtype"].startswith("float32") else 2
        out_bytes = record["n"] * record["out"] * h_out * w_out * elem
        for d, v in zip(DIRECTIONS, values[:3]):
            samples.setdefault((record["dtype"], kind, d), []).append(v / out_bytes)
    ratios = {k: float(np.median(v)) for k, v in samples.items()}
    arch = raw["compute_capability"]
    describe = f"{raw['gpu']}, compute capability {arch[0]}.{arch[1]}, torch {raw['torch']}, cuDNN {raw['cudnn']}"
    return _Table(describe, exact, by_shape, ratios)


# ---- Private API
def _name(dtype, layout: str) -> str:
    """The table's dtype key, with the layout: 'float32' (NCHW) or 'float32/nhwc'."""
    name = dtype if isinstance(dtype, str) else _DTYPES.get(dtype, "float32")
    return name if layout == "nchw" else f"{name}/{layout}"


def _layout(x, weight) -> str:
    return "nhwc" if channels_last(x, weight) else "nchw"


def _shape_key(name, c, h, w, w_shape, stride, padding, dilation, groups) -> tuple:
    """The table's key without the batch: dtype, input C/H/W, output channels, kernel, stride,
    padding, dilation, groups."""
    return (name, c, h, w, int(w_shape[0]), int(w_shape[2]), int(w_shape[3]), *map(int, stride),
            *map(int, padding), *map(int, dilation), int(groups))


def _kind(c_in: int, c_out: int, groups: int, kernel: tuple[int, ...]) -> str:
    if groups > 1 and groups == c_in:
        return "depthwise"
    if groups > 1:
        return "grouped"
    return "1x1" if all(k == 1 for k in kernel) else "kxk"


def _output_shape(x_shape, w_shape, stride, padding, dilation, transposed, output_padding, groups) -> tuple[int, ...]:
    spatial = []
    for i, size in enumerate(x_shape[2:]):
        k = w_shape[2 + i]
        if transposed:
            spatial.append((size - 1) * stride[i] - 2 * padding[i] + dilation[i] * (k - 1) + output_padding[i] + 1)
        else:
            spatial.append((size + 2 * padding[i] - dilation[i] * (k - 1) - 1) // stride[i] + 1)
    channels = w_shape[1] * groups if transposed else w_shape[0]
    return (x_shape[0], channels, *spatial)


def _block(nbytes: int) -> int:
    """The caching allocator's 512-byte rounding (0 stays 0: no workspace, no allocation)."""
    return -(-nbytes // 512) * 512


def _numel(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out
