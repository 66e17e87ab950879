"""`TargetDevice`: every rule that depends on the device a step is traced *for* (not the meta/fake
device it is traced *on*), in one place: the allocator's rounding, foreach vs for-loop optimizers,
the AMP dtype, which attention kernel runs, which CPU kernel scratch is replayed, and the memory a
process needs beyond its tensors (CUDA context, library workspaces), with where each figure comes from.
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from .analysis import NotModelled
from .cuda_allocator import LibraryWorkspace
from .cuda_workspaces import cuda_overheads

aten = torch.ops.aten
# Kernel choices, numbered as torch._fused_sdp_choice returns them.
MATH, FLASH, EFFICIENT = 0, 1, 2


@dataclass(frozen=True)
class TargetDevice:
    """The device a step is planned for. Use `target_for('cpu' | 'cuda')`."""

    name: str
    block_bytes_multiple: int  # allocator rounding of each block (CUDA: 512 B, kMinBlockSize)
    foreach_optimizers: bool  # torch's default implementation on this device
    amp_dtype: torch.dtype  # autocast dtype for AMP
    kernel_scratch: bool  # replay CPU kernels' internal buffers (engine/cpu_kernels.py)
    host_step_counters: bool  # Adam's scalar step counters live on the host (no `capturable`)

    # ---- Public API
    def block_bytes(self, nbytes: int) -> int:
        """Bytes the allocator hands out for a storage of `nbytes`; zero-byte tensors get no block."""
        m = self.block_bytes_multiple
        return -(-nbytes // m) * m if nbytes > 0 else nbytes

    def on_device(self, state_key: str, tensor: torch.Tensor) -> bool:
        """Whether an optimizer state tensor occupies device memory."""
        return not (self.host_step_counters and state_key == "step" and tensor.dim() == 0)

    def attention_choice(self, q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa) -> int:
        """The scaled-dot-product kernel this device would run (see engine/attention.py).
        - cpu: torch's own CPU choice, computed on empty CPU tensors of the same shapes and flags.
        - cuda: flash attention for float16/bfloat16 without a mask, memory-efficient attention
          otherwise (torch's preference order on a recent GPU); math when neither applies."""
        if self.name == "cpu":
            from torch.utils._python_dispatch import _disable_current_modes

            with _disable_current_modes():  # stand-ins of no size the trace must not count
                return torch._fused_sdp_choice(*_stand_ins(q, k, v, attn_mask), dropout_p, is_causal,
                                               scale=scale, enable_gqa=enable_gqa)
        if enable_gqa or q.dim() != 4 or q.shape[-1] > 256 or q.shape[-1] % 8:
            return MATH
        if q.dtype in (torch.float16, torch.bfloat16) and attn_mask is None:
            return FLASH
        return EFFICIENT

    def attention(self, choice: int, query, key, value, attn_mask, dropout_p, is_causal, scale):
        """Run the chosen fused kernel on meta tensors; None means the math path (the caller's)."""
        if choice == FLASH and self.name == "cpu":
            return aten._scaled_dot_product_flash_attention_for_cpu(
                query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale)[0]
        if choice == FLASH:
            return aten._scaled_dot_product_flash_attention(query, key, value, dropout_p, is_causal, scale=scale)[0]
        if choice == EFFICIENT and self.name == "cuda":
            needs_lse = query.requires_grad or key.requires_grad or value.requires_grad
            return aten._scaled_dot_product_efficient_attention(
                query, key, value, attn_mask, needs_lse and torch.is_grad_enabled(), dropout_p, is_causal, scale=scale)[0]
        return None

    def not_modelled(self) -> tuple[NotModelled, ...]:
        """The analysis's labelled lines for what the trace does not include."""
        if self.name == "cpu":
            # Convolution, matrix-product and LSTM scratch is replayed (engine/cpu_kernels.py,
            # cpu_lstm.py); these two are what is left, both shape- and thread-dependent.
            return (
                NotModelled("oneDNN per-thread scratchpads (AMX/brgemm)", None,
                            "the per-thread scratchpads of oneDNN's AMX/brgemm kernels (tiles, a few hundred "
                            "KiB per convolution; bfloat16 matrix products on CPUs with native bfloat16) and "
                            "of the transposed and strided input-gradient convolution kernels"),
                NotModelled("AVX2 small-channel weight-gradient reductions", None,
                            "on AVX2, oneDNN reduces a small-channel convolution's weight gradient across "
                            "threads in per-thread buffers"),
            )
        by_key = {o.key: o for o in cuda_overheads(torch_version=torch.__version__)}
        # The cuBLAS and cuDNN workspaces are traced and the allocator's reserve simulated (issue 7).
        return (
            NotModelled("CUDA context", None, by_key["context"].note + " (not in max_memory_allocated)"),
            NotModelled("cuDNN workspaces off the recorded table", None,
                        "a convolution not in the table recorded on a GPU (resources/cuda/cudnn_conv_workspaces.json) "
                        "takes an estimate: the recorded ratio of workspace to output for its kind; the analysis "
                        "counts how many did"),
        )


CPU = TargetDevice("cpu", block_bytes_multiple=1, foreach_optimizers=False, amp_dtype=torch.bfloat16,
                   kernel_scratch=True, host_step_counters=False)
CUDA = TargetDevice("cuda", block_bytes_multiple=512, foreach_optimizers=True, amp_dtype=torch.float16,
                    kernel_scratch=False, host_step_counters=True)
_TARGETS = {"cpu": CPU, "cuda": CUDA}


def target_for(device: str) -> TargetDevice:
    return _TARGETS[device]


# ---- cuBLAS workspaces while tracing for CUDA (sizes: engine/cuda_workspaces.py)
_CUBLAS_OPS = {aten.mm, aten.addmm, aten.bmm, aten.baddbmm, aten.addbmm, aten.addmv, aten.mv, aten.dot,
               aten.vdot, aten._addmm_activation}
_LT_OPS = {aten.addmm, aten._addmm_activation}
_LT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


class CublasWorkspaces(TorchDispatchMode):
    """Enter inside a `StepRecorder`: at each thread's first cuBLAS call, the workspaces torch
    makes there. A first step records them as allocations at that op; a steady-state step (an
    earlier step made them) counts them live from the start. The forward, the loss and the
    optimizer run in the caller's thread; the backward in autograd's CUDA device thread."""

    def __init__(self, recorder, request):
        super().__init__()
        from .cuda_workspaces import DEFAULT_ARCH, cublas_bytes, cublaslt_bytes

        self.recorder = recorder
        self.first_step = request.first_step
        arch = request.cuda_arch or DEFAULT_ARCH
        self.sizes = {"cuBLAS": cublas_bytes(request.cublas_workspace_config, arch),
                      "cuBLASLt": cublaslt_bytes(request.cublaslt_workspace_size, request.cublas_workspace_config, arch)}
        self.made: list[LibraryWorkspace] = []
        self._seen: set[tuple[str, str]] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        packet = func.overloadpacket
        if packet in _CUBLAS_OPS:
            thread = "autograd thread" if self.recorder.phase == 1 else "main thread"
            self._need("cuBLAS", thread)
            if packet in _LT_OPS and _uses_lt(args, kwargs or {}):
                self._need("cuBLASLt", thread)  # the Lt handle is the cuBLAS one: both workspaces
        return out

    def _need(self, library: str, thread: str) -> None:
        if (library, thread) in self._seen:
            return
        self._seen.add((library, thread))
        nbytes = self.sizes[library]
        if self.first_step:
            self.recorder.library_alloc(nbytes)
            made = self.recorder.current_module()
        else:
            self.recorder.add_initial(nbytes, "temporaries")
            made = "an earlier step"
        self.made.append(LibraryWorkspace(f"{library} workspace ({thread})", nbytes, made))


def _uses_lt(args, kwargs) -> bool:
    """addmm runs as a cuBLASLt epilogue with a bias vector of the output's width (Blas.cpp)."""
    bias, mat1, mat2 = args[0], args[1], args[2]
    return (bias.dim() == 1 and mat1.dim() == 2 and mat2.dim() == 2 and bias.shape[0] == mat2.shape[1]
            and bias.dtype in _LT_DTYPES and mat1.shape[0] > 1 and mat2.shape[0] > 1 and mat2.shape[1] > 1
            and kwargs.get("beta", 1) == 1)


# ---- CUDA's autocast while tracing on CPU tensors (aten/src/ATen/autocast_mode.h, torch 2.14)
_CUDA_LOWER = frozenset("""_convolution conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d conv_transpose3d
    convolution prelu addmm addmv addr matmul __matmul__ __rmatmul__ einsum mm mv linalg_vecdot linear addbmm baddbmm
    bmm chain_matmul linalg_multi_dot _thnn_fused_lstm_cell _thnn_fused_gru_cell lstm_cell gru_cell rnn_tanh_cell
    rnn_relu_cell _scaled_dot_product_flash_attention scaled_dot_product_attention""".split())
_CUDA_FP32 = frozenset("""acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan pow __pow__
    softplus layer_norm native_layer_norm group_norm frobenius_norm nuclear_norm cosine_similarity poisson_nll_loss
    cosine_embedding_loss nll_loss nll_loss2d hinge_embedding_loss kl_div l1_loss smooth_l1_loss
    huber_loss mse_loss margin_ranking_loss multilabel_margin_loss soft_margin_loss triplet_margin_loss
    multi_margin_loss binary_cross_entropy_with_logits dist pdist cdist renorm logsumexp upsample_nearest1d
    _upsample_nearest_exact1d upsample_nearest2d _upsample_nearest_exact2d upsample_nearest3d _upsample_nearest_exact3d
    upsample_linear1d upsample_bilinear2d _upsample_bilinear2d_aa upsample_trilinear3d upsample_bicubic2d
    _upsample_bicubic2d_aa""".split())
_CUDA_FP32_SET_OPT_DTYPE = frozenset("prod softmax log_softmax cumprod cumsum linalg_vector_norm linalg_matrix_norm sum".split())
_CUDA_PROMOTE = frozenset("addcdiv addcmul atan2 bilinear cross dot vdot grid_sampler index_put tensordot scatter_add".split())


def _stand_ins(q, k, v, mask):
    """Small real CPU tensors that torch's CPU kernel choice (sdp_utils_cpp.cpp) answers for as it
    would for the traced ones: the same dtypes, heads and head sizes (grouped-query attention asks
    whether one count of heads divides the other), gradients and unit-stride last dimensions; the
    batch and sequence lengths mapped to small ones, the same for equal lengths and 1 kept 1 (the
    checks compare them with each other and with 1, never with a bound). Full-size copies would
    cost the tracing process the attention's real memory."""
    kept = {-1, -3}  # head size, heads: (batch, heads, sequence, head size); a mask's heads are its -3

    def mapped(t, keep):
        return [] if t is None else [int(s) for i, s in enumerate(t.shape, -t.dim()) if i not in keep and s != 1]

    lengths = sorted({*mapped(q, kept), *mapped(k, kept), *mapped(v, kept), *mapped(mask, {-3})})
    small = {s: 2 + i for i, s in enumerate(lengths)}

    def stand_in(t, keep):
        if t is None:
            return None
        shape = [int(s) if i in keep or s == 1 else small[int(s)] for i, s in enumerate(t.shape, -t.dim())]
        if t.dim() and t.stride(-1) != 1 and t.shape[-1] > 1:
            out = torch.empty(*shape[:-1], 2 * shape[-1], dtype=t.dtype)[..., ::2]
        else:
            out = torch.empty(shape, dtype=t.dtype)
        return out.requires_grad_(t.requires_grad)

    return stand_in(q, kept), stand_in(k, kept), stand_in(v, kept), stand_in(mask, {-3})


class CudaAutocast(torch.overrides.TorchFunctionMode):
    """CUDA's autocast policy applied to CPU tensors: what `torch.autocast("cuda")` casts, by
    torch function, instead of the CPU autocast's lists (CPU keeps layer_norm, group_norm, softmax,
    exp, sum ... in the low precision, where CUDA runs them in float32).

    Like autocast (autocast_mode.cpp cached_cast), the low-precision copy of a float32 leaf that
    requires grad (a parameter; not a view) is made once and kept until the outermost autocast
    region ends, also under no_grad: an inference forward holds a copy of every weight it used."""

    def __init__(self, dtype: torch.dtype = torch.float16):
        super().__init__()
        self.dtype = dtype
        self.cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._depth = 0  # the mode re-enters itself around composites (see __torch_function__)

    def __enter__(self):
        self._depth += 1
        return super().__enter__()

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            self.cache.clear()  # autocast drops its cache when the outermost region ends
        return super().__exit__(*exc)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        name = getattr(func, "__name__", "")
        if name == "cross_entropy_loss" and (loss := self._cross_entropy(*args, **kwargs)) is not None:
            return loss
        if name in _CUDA_LOWER:
            args, kwargs = self._cast(args, self.dtype), self._cast(kwargs, self.dtype)
        elif name in _CUDA_FP32:
            args, kwargs = self._cast(args, torch.float32), self._cast(kwargs, torch.float32)
        elif name in _CUDA_FP32_SET_OPT_DTYPE:
            if kwargs.get("dtype") is None and any(_eligible(t) and t.dtype != torch.float32 for t in _flat(args)):
                kwargs["dtype"] = torch.float32
        elif name in _CUDA_PROMOTE:
            widest = max((t.dtype for t in _flat(args) if _eligible(t)), key=lambda d: torch.finfo(d).bits, default=None)
            if widest is not None:
                args, kwargs = self._cast(args, widest), self._cast(kwargs, widest)
        elif getattr(func, "__module__", None) == "torch.nn.functional" and inspect.isfunction(func):
            # A composite (cross_entropy, multi_head_attention_forward ...): autocast acts on the
            # ops inside it, which this mode sees only if it stays on while the body runs.
            with composite_body(), self:
                return func(*args, **kwargs)
        return func(*args, **kwargs)

    def _cross_entropy(self, x, target, weight=None, reduction=1, ignore_index=-100, label_smoothing=0.0):
        """cross_entropy_loss has no autocast rule: ATen's composite takes the log-softmax in the
        input's own dtype (explicitly, so autocast keeps it) and nll_loss, on the float32 list,
        casts that to float32 (recorded on an H200: a float16 and a float32 copy of the logits).
        None (the float32 cast of the whole loss) for soft targets and label smoothing."""
        if label_smoothing or target.is_floating_point() or not _eligible(x):
            return None
        log_probs = torch.log_softmax(x, 0 if x.dim() == 1 else 1, dtype=x.dtype)
        return torch._C._nn.nll_loss_nd(self._cast(log_probs, torch.float32), target, self._cast(weight, torch.float32),
                                        reduction, ignore_index)

    def _cast(self, value, dtype):
        if isinstance(value, torch.Tensor):
            if not _eligible(value) or value.dtype == dtype:
                return value
            cacheable = (dtype == self.dtype and value.dtype == torch.float32 and value.requires_grad
                         and value.is_leaf and not value._is_view())
            if not cacheable:
                return value.to(dtype)
            if id(value) not in self.cache:  # the source is kept too: its id stays its own
                self.cache[id(value)] = (value, value.to(dtype))
            return self.cache[id(value)][1]
        if isinstance(value, (list, tuple)):
            return type(value)(self._cast(v, dtype) for v in value)
        if isinstance(value, dict):
            return {k: self._cast(v, dtype) for k, v in value.items()}
        return value


def active_cuda_autocast() -> "CudaAutocast | None":
    """The trace's CUDA autocast mode when the code runs under it (CUDA AMP on CPU tensors):
    attention, checkpointing and the fused encoder layer each ask, as torch's kernels would ask
    whether CUDA autocast is on."""
    from torch.overrides import _get_current_function_mode_stack

    return next((m for m in reversed(_get_current_function_mode_stack()) if isinstance(m, CudaAutocast)), None)


@contextlib.contextmanager
def composite_body():
    """torch.nn.functional's own has_torch_function checks answer False meanwhile, so its
    functions run their bodies instead of handing themselves back to the mode (no recursion)."""
    import torch.nn.functional as F

    names = ("has_torch_function", "has_torch_function_unary", "has_torch_function_variadic")
    saved = {n: getattr(F, n) for n in names}
    for n in names:
        setattr(F, n, lambda *args: False)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(F, n, f)


def _eligible(t) -> bool:
    return isinstance(t, torch.Tensor) and t.is_floating_point() and t.dtype != torch.float64


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        else:
            yield a
