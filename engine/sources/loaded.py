"""What every model source hands the tracer."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class LoadedModel:
    """A model built on the meta device plus what the tracer needs to feed it.

    `task` picks the loss and targets (see engine/loss.py): 'classification' (integer class per
    sample), 'segmentation' (integer class per pixel), or 'auto' (decided from the output).
    """

    module: nn.Module
    name: str
    source: str  # 'torchvision', 'spec', 'python'
    input_shape: tuple[int, ...] | None  # without the batch dimension; () for one number per
    # sample; None when unknown (a python model without an example input)
    input_dtype: torch.dtype | None = None  # None: the request's dtype (float inputs)
    task: str = "auto"
    input_high: int = 2  # exclusive upper bound for integer inputs (token ids)
    warnings: list[str] = field(default_factory=list)
