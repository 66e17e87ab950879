"""What the user asks for: one frozen `AnalysisRequest`, validated before anything is built."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .categories import DEVICES, DTYPES, MODES, OPTIMIZERS
from .errors import RequestError
from .lever_fields import check_kv_cache, check_request_levers

# A guard against typos like --batch 10000000000: larger requests are refused, not traced.
MAX_BATCH = 1_000_000
# 2^47 elements (1 PiB of float64): beyond any machine, far below where byte counts overflow.
MAX_INPUT_ELEMENTS = 2**47
# AnalysisRequest.amp_dtype: "" means the target's default.
AMP_DTYPES = ("", "float16", "bfloat16")


@dataclass(frozen=True)
class AnalysisRequest:
    """One analysis: which model, and the step to trace.

    `model` is a torchvision name (`vgg16`), a spec file (`net.yaml`/`.json`) or a python callable
    (`path/to/file.py:function`). `input_shape` excludes the batch dimension; None means the
    model's natural default (224x224 images, 299 for inception_v3, 520 for segmentation ...).
    """

    model: str = "vgg16"
    batch: int = 32
    input_shape: tuple[int, ...] | None = None
    dtype: str = "float32"
    amp: bool = False
    mode: str = "train"
    optimizer: str | None = None  # None: adam when training, none for inference
    device: str = "cpu"
    first_step: bool = False
    # LoRA adapters on a Hugging Face model (engine/lora.py): rank 0 means none. alpha None means
    # twice the rank; targets () means peft's defaults for the architecture (q_proj,v_proj ...).
    lora_rank: int = 0
    lora_alpha: float | None = None
    lora_targets: tuple[str, ...] = ()
    # Levers (engine/levers.py): checkpointed modules or one preset word, freeze patterns, micro-batch.
    checkpoint: tuple[str, ...] = ()
    freeze: tuple[str, ...] = ()
    micro_batch: int | None = None
    # CUDA memory model (issue 7): the environment torch reads, and the target GPU's architecture.
    alloc_conf: str = ""  # PYTORCH_CUDA_ALLOC_CONF
    cublas_workspace_config: str = ""  # CUBLAS_WORKSPACE_CONFIG, e.g. ':4096:8'
    cublaslt_workspace_size: str = ""  # CUBLASLT_WORKSPACE_SIZE in KiB
    cuda_arch: tuple[int, int] | None = None  # compute capability; None: 9.0 (Hopper)
    # Distributed (issue 12, engine/distributed/): the strategy, the number of ranks, what is
    # offloaded to the host, and DDP's bucket size. The defaults are one device, as before.
    strategy: str = "single"
    world_size: int = 1
    offload: str | None = None
    bucket_cap_mb: int = 25
    gradient_as_bucket_view: bool = False
    param_dtype: str | None = None  # FSDP2 mixed precision: all-gather and compute dtype (None: the parameters')
    reduce_dtype: str | None = None  # FSDP2 mixed precision: gradient reduce-scatter dtype
    # AMP's autocast dtype: "" is the target's default (float16 on CUDA, bfloat16 on the CPU).
    # float16 on CUDA trains with a GradScaler; bfloat16 needs none (engine/step.py).
    amp_dtype: str = ""
    # Inference of a Hugging Face language model that keeps its KV cache (a prefill for generation,
    # transformers' use_cache; engine/lora.py prepare_for_request). Off: one forward, no cache.
    kv_cache: bool = False

    def __post_init__(self):
        if not isinstance(self.model, str) or not self.model.strip():
            raise RequestError("no model given: pass a torchvision name, a spec file or file.py:function")
        if isinstance(self.batch, bool) or not isinstance(self.batch, int) or self.batch <= 0:
            raise RequestError(f"batch must be a positive integer, got {self.batch!r}")
        if self.batch > MAX_BATCH:
            raise RequestError(f"batch {self.batch} is larger than the supported maximum {MAX_BATCH}")
        if self.input_shape is not None:
            shape = tuple(self.input_shape)
            if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape):
                raise RequestError(f"input shape must be positive integers, got {self.input_shape!r}")
            object.__setattr__(self, "input_shape", shape)
            elements = self.batch * math.prod(shape)
            if elements > MAX_INPUT_ELEMENTS:
                raise RequestError(f"an input of {self.batch} x {' x '.join(map(str, shape))} = {elements:.3g} elements "
                                   f"is larger than MemLens can trace (at most {MAX_INPUT_ELEMENTS:.3g})")
        if self.optimizer is None:
            object.__setattr__(self, "optimizer", "adam" if self.mode == "train" else "none")
        for field, allowed in (("dtype", DTYPES), ("mode", MODES), ("optimizer", OPTIMIZERS), ("device", DEVICES)):
            value = getattr(self, field)
            if value not in allowed:
                raise RequestError(f"{field} must be one of {', '.join(allowed)}; got {value!r}")
        if self.amp and self.dtype != "float32":
            raise RequestError("AMP keeps float32 weights and autocasts the math: use --amp with --dtype float32")
        if self.amp_dtype not in AMP_DTYPES:
            raise RequestError(f"AMP dtype must be float16 or bfloat16 (or empty for the device's default); "
                               f"got {self.amp_dtype!r}")
        # ---- CUDA memory model (issue 7): refuse what torch would refuse, in one line
        from .alloc_conf import parse_alloc_conf
        from .cuda_workspaces import parse_cublas_workspace_config, parse_cublaslt_workspace_size

        parse_alloc_conf(self.alloc_conf)
        parse_cublas_workspace_config(self.cublas_workspace_config)
        parse_cublaslt_workspace_size(self.cublaslt_workspace_size)
        if self.cuda_arch is not None:
            arch = tuple(self.cuda_arch)
            if len(arch) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in arch):
                raise RequestError(f"compute capability must be two whole numbers (major, minor), got {self.cuda_arch!r}")
            object.__setattr__(self, "cuda_arch", arch)
        # ---- Levers: checkpointing, freezing, gradient accumulation (checked against the model in engine/levers.py)
        check_request_levers(self)
        self._check_lora()
        check_kv_cache(self)
        # ---- Distributed (engine/distributed/strategies.py)
        from .distributed.strategies import check as check_distributed

        if (problem := check_distributed(self.strategy, self.world_size, self.offload, self.bucket_cap_mb,
                                         self.mode, self.param_dtype, self.reduce_dtype)) is not None:
            raise RequestError(problem)

    def _check_lora(self) -> None:
        """LoRA (Hugging Face models): a rank >= 0, a positive alpha, module names; only on an HF config."""
        rank = self.lora_rank
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise RequestError(f"LoRA rank must be a positive integer (0: no LoRA), got {rank!r}")
        targets = self.lora_targets
        if isinstance(targets, str) or not all(isinstance(t, str) and t.strip() for t in targets):
            raise RequestError(f"LoRA targets must be module names such as q_proj,v_proj; got {targets!r}")
        object.__setattr__(self, "lora_targets", tuple(t.strip() for t in targets))
        alpha = self.lora_alpha
        if alpha is not None and (isinstance(alpha, bool) or not isinstance(alpha, (int, float))
                                  or not math.isfinite(alpha) or alpha <= 0):
            raise RequestError(f"LoRA alpha must be a positive number, got {alpha!r}")
        if rank == 0:
            if alpha is not None or self.lora_targets:
                raise RequestError("LoRA alpha and targets need a LoRA rank (--lora-rank 8)")
            return
        if self.source_kind != "hf":
            raise RequestError(f"LoRA applies to Hugging Face models (a config.json or a folder holding one); "
                               f"'{self.model}' is a {self.source_kind} model")

    @property
    def ignored_optimizer(self) -> str | None:
        """A warning when an optimizer was asked for in inference mode, where none runs."""
        if self.mode == "inference" and self.optimizer != "none":
            return (f"optimizer '{self.optimizer}' ignored: inference runs no optimizer step "
                    "(choose --mode train to count its state)")
        return None

    @property
    def autocast_dtype(self) -> str | None:
        """The dtype AMP autocasts to ('float16' or 'bfloat16'), None without AMP."""
        if not self.amp:
            return None
        from .target import target_for

        return self.amp_dtype or str(target_for(self.device).amp_dtype).removeprefix("torch.")

    @property
    def source_kind(self) -> str:
        from .choices import source_kind

        return source_kind(self.model)

    def replace(self, **changes) -> "AnalysisRequest":
        return dataclasses.replace(self, **changes)


def parse_shape(text: str) -> tuple[int, ...]:
    """'3x224x224' (or '3,224,224') -> (3, 224, 224); anything else is a RequestError."""
    parts = text.replace(",", "x").replace("X", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise RequestError(f"malformed input shape {text!r}: expected e.g. 3x224x224") from None
    if any(d <= 0 for d in shape):
        raise RequestError(f"malformed input shape {text!r}: every dimension must be positive")
    return shape
