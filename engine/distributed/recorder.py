"""The step recorder, taught what a distributed step does to memory.

- DTensors (FSDP2's sharded parameters, their gradients and optimizer state) are accounted by
  their local shard: that is what the rank holds.
- Collectives (`c10d::*` ops: all-gather, reduce-scatter, all-reduce, broadcast; and the
  `_c10d_functional::*` ones DTensor issues for tensor parallelism: all-reduce, wait) are seen in
  the dispatcher like any op; every buffer born in the step that one of them reads or writes is a
  `communication` buffer (flat all-gather outputs, reduce-scatter inputs), unless it ends up as
  a gradient or optimizer state.
- FSDP2 frees and re-allocates each unsharded parameter by resizing its storage to 0 and back
  (`alloc_storage`/`free_storage`), which no weak reference sees: those two functions report to
  the recorder while it runs, and the unsharded parameters count as `communication` (what the
  rank holds beyond its shard because of the all-gather).
- DDP's buckets are made by its C++ reducer before the step; the first in-place write the
  recorder sees into a storage it never saw is one of them, live from the start.
- Offloaded storages (`--offload`) live in host memory: their events leave the device timeline
  after the step, and their bytes are reported as a separate host line.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from ..categories import CATEGORIES
from ..tracer import StepRecorder

_CAT = {c: i for i, c in enumerate(CATEGORIES)}
_C10D = torch.ops.c10d
_COLLECTIVES = ("c10d", "_c10d_functional")  # in-place process-group ops; DTensor's functional ones
# The full-size argument of each collective gloo stages ((output, input) -> which one), and how often.
_GLOO_STAGED = {_C10D._allgather_base_.default: (0, 2), _C10D._reduce_scatter_base_.default: (1, 1)}


def local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard; any other tensor itself."""
    inner = getattr(t, "_local_tensor", None)
    return inner if isinstance(inner, torch.Tensor) else t


class DistributedRecorder(StepRecorder):
    def __init__(self, model, device, cancelled=None, on_layer=None, *, bucket_category: str = "communication",
                 offload: str | None = None):
        super().__init__(model, device, cancelled, on_layer)
        self.bucket_category = bucket_category
        self.offload = offload
        self.host_bytes = 0

    # ---- Public API
    def register_existing(self, tensor, category, on_device=True):
        super().register_existing(local(tensor), category, on_device)

    def forget_existing(self, tensor):
        super().forget_existing(local(tensor))

    def storage_serial(self, tensor):
        return super().storage_serial(local(tensor))

    def mark_category(self, tensor, category):
        super().mark_category(local(tensor), category)

    @contextlib.contextmanager
    def fsdp_storage_hooks(self):
        """While tracing, FSDP2's storage resizes report to this recorder."""
        from torch.distributed.fsdp._fully_shard import _fsdp_param, _fsdp_param_group

        alloc, free = _fsdp_param.alloc_storage, _fsdp_param.free_storage

        def alloc_storage(tensor):
            before = tensor.untyped_storage().size()
            alloc(tensor)
            if before == 0 and tensor.untyped_storage().size():
                self._storage_regrown(tensor)

        def free_storage(tensor):
            if tensor.untyped_storage().size():
                self._storage_emptied(tensor)
            free(tensor)

        _fsdp_param.alloc_storage = _fsdp_param_group.alloc_storage = alloc_storage
        _fsdp_param.free_storage = free_storage
        try:
            yield
        finally:
            _fsdp_param.alloc_storage = _fsdp_param_group.alloc_storage = alloc
            _fsdp_param.free_storage = free

    def finish(self, warnings):
        raw = super().finish(warnings)
        if self.offload is None:
            return raw
        return self._offloaded(raw)

    # ---- Dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace in _COLLECTIVES:
            for t in _flat_tensors(args):
                self._mark_communication(local(t))
            if self.device == "cpu" and func in _GLOO_STAGED:
                self._gloo_staging(args[_GLOO_STAGED[func][0]], _GLOO_STAGED[func][1])
        elif func._schema.is_mutable and args and isinstance(args[0], torch.Tensor):
            self._adopt_existing(local(args[0]))
        return super().__torch_dispatch__(func, types, args, kwargs)

    # ---- Private API
    def _on_output(self, t):
        super()._on_output(local(t))

    def _mark_communication(self, t: torch.Tensor) -> None:
        entry = self.live.get(id(t.untyped_storage()))
        if entry is None:
            self._adopt_existing(t)
        elif self.alloc_phase.get(entry[0], -1) >= 0 and entry[0] not in self.category_of:
            self.category_of[entry[0]] = "communication"

    def _adopt_existing(self, t: torch.Tensor) -> None:
        """A storage written in place that the recorder never saw was made before the step by C++
        code outside it (DDP's reducer buckets): live from the start."""
        if id(t.untyped_storage()) not in self.live and t.untyped_storage().nbytes():
            super().register_existing(t, self.bucket_category)

    def _gloo_staging(self, full: torch.Tensor, times: int) -> None:
        """gloo (the CPU backend) stages an all-gather's output through a full-size flat buffer
        twice, one after the other, and a reduce-scatter's input once (measured: +n -n +n -n
        around an all-gather, +n -n around a reduce-scatter); NCCL on CUDA works in place, so
        only CPU targets get them."""
        nbytes = self.target.block_bytes(full.untyped_storage().nbytes())
        for _ in range(times):
            serial = self._new_serial()
            self.alloc_phase[serial] = self.phase
            self.category_of[serial] = "communication"
            self._event(nbytes, serial)
            self._event(-nbytes, serial)

    def _storage_emptied(self, t: torch.Tensor) -> None:
        entry = self.live.pop(id(t.untyped_storage()), None)
        if entry is not None:
            serial, nbytes, _ = entry
            self.category_of.setdefault(serial, "communication")
            if nbytes:
                self._event(-nbytes, serial)

    def _storage_regrown(self, t: torch.Tensor) -> None:
        self._on_output(t)
        serial = self.storage_serial(t)
        if serial is not None:
            self.category_of[serial] = "communication"

    def _offloaded(self, raw):
        """Drop host-resident storages from the device timeline: optimizer state (and, with
        params offload, the parameter shards and their gradients) and the optimizer step's
        temporaries, which run on the host with them."""
        host = {"optimizer_state"} | ({"parameters", "gradients"} if self.offload == "params" else set())
        keep = np.ones(len(raw.nbytes), dtype=bool)
        optimizer_phase = 2
        for code in (_CAT[c] for c in host):
            keep &= raw.category != code
        keep &= ~((raw.phase == optimizer_phase) & (raw.category == _CAT["temporaries"]))
        self.host_bytes = sum(raw.initial[c] for c in host)  # the offloaded state, held on the host
        initial = {c: (0 if c in host else b) for c, b in raw.initial.items()}
        raw.nbytes, raw.storage, raw.category = raw.nbytes[keep], raw.storage[keep], raw.category[keep]
        raw.module, raw.phase = raw.module[keep], raw.phase[keep]
        raw.initial = initial
        kept = np.flatnonzero(keep)  # an old event index maps to the number of kept events before it
        raw.phase_starts = [(p, int(np.searchsorted(kept, i))) for p, i in raw.phase_starts]
        for call in raw.calls:
            call.start_point = int(np.searchsorted(kept, call.start_point))
            call.end_point = int(np.searchsorted(kept, call.end_point)) if call.end_point >= 0 else -1
        return raw


def _flat_tensors(args):
    for a in args:
        if isinstance(a, torch.Tensor):
            yield a
        elif isinstance(a, (list, tuple)):
            yield from _flat_tensors(a)
