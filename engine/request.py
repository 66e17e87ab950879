"""What the user asks for: one frozen `AnalysisRequest`, validated before anything is built."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .categories import DEVICES, DTYPES, MODES, OPTIMIZERS
from .errors import RequestError

# A guard against typos like --batch 10000000000: larger requests are refused, not traced.
MAX_BATCH = 1_000_000
# 2^47 elements (1 PiB of float64): beyond any machine, far below where byte counts overflow.
MAX_INPUT_ELEMENTS = 2**47


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
    # Distributed (issue 12, engine/distributed/): the strategy, the number of ranks, what is
    # offloaded to the host, and DDP's bucket size. The defaults are one device, as before.
    strategy: str = "single"
    world_size: int = 1
    offload: str | None = None
    bucket_cap_mb: int = 25
    gradient_as_bucket_view: bool = False
    param_dtype: str | None = None  # FSDP2 mixed precision: all-gather and compute dtype (None: the parameters')
    reduce_dtype: str | None = None  # FSDP2 mixed precision: gradient reduce-scatter dtype

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
        # ---- Distributed (engine/distributed/strategies.py)
        from .distributed.strategies import check as check_distributed

        if (problem := check_distributed(self.strategy, self.world_size, self.offload, self.bucket_cap_mb,
                                         self.mode, self.param_dtype, self.reduce_dtype)) is not None:
            raise RequestError(problem)

    @property
    def ignored_optimizer(self) -> str | None:
        """A warning when an optimizer was asked for in inference mode, where none runs."""
        if self.mode == "inference" and self.optimizer != "none":
            return (f"optimizer '{self.optimizer}' ignored: inference runs no optimizer step "
                    "(choose --mode train to count its state)")
        return None

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
