"""Per-rank memory under DDP, FSDP2 and ZeRO, traced by running torch.distributed's own wrappers
on fake tensors under its fake process group (issue 12). Imports nothing heavy until used."""
from __future__ import annotations

from .strategies import OFFLOADS, STRATEGIES


def analyze_distributed(*args, **kwargs):
    from .plan import analyze_distributed as run

    return run(*args, **kwargs)


__all__ = ["OFFLOADS", "STRATEGIES", "analyze_distributed"]
