"""The loss of a training step, and the targets it needs (created before the step, as inputs).

Rules, the same in the trace and in the real step it is checked against:
- a float output of shape (B, C): cross-entropy against integer classes (B,);
- (B, C, H, W): per-pixel cross-entropy against (B, H, W) (segmentation; classes on dim 1);
- (B, S, V): token cross-entropy over the last dimension against (B, S) (language models);
  a causal language model (task 'causal_lm': Hugging Face configs) predicts the *next* token:
  its targets are the input ids shifted left by one, the last position ignored (-100), and the
  logits are upcast to float32 first, as transformers' `ForCausalLMLoss` does (a copy of the
  logits under bfloat16/AMP, nothing in float32). Shifting the labels rather than slicing the
  logits is what transformers does too: no (B, S-1, V) copy.
- anything else: mean squared error against a target of the output's shape.
Several outputs (inception's aux logits, segmentation's 'aux', tuples) add their losses up.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def output_tensors(output) -> list[torch.Tensor]:
    """The float tensors in a model's output, in a stable order (dicts by key order)."""
    if isinstance(output, torch.Tensor):
        return [output] if output.is_floating_point() else []
    if isinstance(output, dict):
        return [t for v in output.values() for t in output_tensors(v)]
    if isinstance(output, (list, tuple)):
        return [t for v in output for t in output_tensors(v)]
    return []


def target_spec(shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]]:
    """How to supervise an output of this shape: ('classes', target shape) or ('mse', shape)."""
    if len(shape) == 2:
        return "classes", (shape[0],)
    if len(shape) == 4:
        return "classes", (shape[0], shape[2], shape[3])
    if len(shape) == 3:
        return "classes", (shape[0], shape[1])
    return "mse", tuple(shape)


# The label transformers' losses skip (cross_entropy's default ignore_index).
IGNORE_INDEX = -100


def make_targets(shapes: list[tuple[int, ...]], dtype: torch.dtype, device: str = "cpu",
                 task: str = "auto") -> dict[tuple, torch.Tensor]:
    """One target tensor per distinct (kind, shape); outputs of the same shape share it."""
    targets: dict[tuple, torch.Tensor] = {}
    for shape in shapes:
        kind, tshape = target_spec(shape)
        if task == "causal_lm" and len(shape) == 3:
            key = ("next_tokens", tshape)
            if key not in targets:  # the shifted ids; the last position has no next token
                targets[key] = torch.zeros(tshape, dtype=torch.long, device=device)
                targets[key][:, -1] = IGNORE_INDEX
            continue
        key = (kind, tshape)
        if key not in targets:
            if kind == "classes":
                targets[key] = torch.zeros(tshape, dtype=torch.long, device=device)
            else:
                targets[key] = torch.zeros(tshape, dtype=dtype, device=device)
    return targets


def compute_loss(output, targets: dict[tuple, torch.Tensor]) -> torch.Tensor:
    loss = None
    for out in output_tensors(output):
        kind, tshape = target_spec(tuple(out.shape))
        if ("next_tokens", tshape) in targets and out.dim() == 3:
            term = F.cross_entropy(out.float().flatten(0, 1), targets[("next_tokens", tshape)].flatten(),
                                   ignore_index=IGNORE_INDEX)
            loss = term if loss is None else loss + term
            continue
        target = targets[(kind, tshape)]
        if kind == "mse":
            term = F.mse_loss(out, target)
        elif out.dim() == 3:
            term = F.cross_entropy(out.flatten(0, 1), target.flatten())
        else:
            term = F.cross_entropy(out, target)
        loss = term if loss is None else loss + term
    return loss
