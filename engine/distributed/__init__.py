"""Per-rank memory under DDP, FSDP2 and ZeRO, traced by running torch.distributed's own wrappers
on fake tensors under its fake process group (issue 12). Imports nothing heavy until used.

Why fake CPU tensors and not meta ones (checked on torch 2.14): FSDP2 refuses to run a step
with parameters on the meta device, and DDP's constructor reads parameter values to compare
them across ranks (`init_sync=False` skips that; the fake backend's all-reduce future carries
no value, so a comm hook hands DDP its bucket back). FSDP2 shards the meta model and is then
materialised as fake tensors with `to_empty` (plan.py). Files:

    strategies  names, ZeRO-1/2/3 mapping, request checks     fake_group  the fake process group
    wrap        DDP / FSDP2 / ZeroRedundancyOptimizer            recorder    collectives -> events
    shards      per-rank bytes from shapes alone                 plan        traces and summary
    reference   DeepSpeed's published formulas                   sweep       peak vs world size
    summary     the plain data in Analysis.distributed           truth       real gloo ranks
"""
from __future__ import annotations

from .strategies import OFFLOADS, STRATEGIES


def analyze_distributed(*args, **kwargs):
    from .plan import analyze_distributed as run

    return run(*args, **kwargs)


__all__ = ["OFFLOADS", "STRATEGIES", "analyze_distributed"]
