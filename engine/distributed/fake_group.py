"""torch.distributed's fake backend as rank r of N, in this process, for the length of one trace.

The fake backend (torch.testing's FakeStore + backend "fake") completes every collective at once
without moving data: the wrappers run their real code (bucketing, sharding, all-gather and
reduce-scatter buffers), nothing crosses a process boundary. The group is torn down on exit, so
analyses repeat within one process (the GUI, the planner's sweeps) and in the CLI's forkserver
child; a group someone else initialised is refused rather than replaced.
"""
from __future__ import annotations

import contextlib

import torch.distributed as dist

from ..errors import UnsupportedError


@contextlib.contextmanager
def fake_process_group(rank: int, world_size: int):
    """The default process group as `rank` of `world_size`, and a 1-D CPU device mesh over it."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    if dist.is_initialized():
        raise UnsupportedError("torch.distributed is already initialised in this process: MemLens traces a "
                               "distributed step with its own fake process group (run it in a fresh process)")
    dist.init_process_group("fake", store=FakeStore(), rank=rank, world_size=world_size)
    try:
        # Made outside any FakeTensorMode: the mesh keeps its rank table as a real tensor.
        yield init_device_mesh("cpu", (world_size,))
    finally:
        dist.destroy_process_group()
