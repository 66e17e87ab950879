"""Record every storage allocation and free of one step, on meta tensors (no data, no memory).

A `TorchDispatchMode` sees each op's outputs: an output whose storage it has not seen is an
allocation; a weak reference on that storage tells when it dies (a free). Storages live before the
step (parameters, buffers, optimizer state, inputs) are registered up front, so in-place updates
of them are not mistaken for allocations. Module hooks say which layer runs; during backward the
autograd node being executed carries the layer that created it (tagged in its metadata during the
forward). `saved_tensors_hooks` mark what autograd keeps for backward.

A checkpointed forward (engine/checkpointing.py) runs again in the backward phase: its module
calls are matched to the forward calls they repeat (the n-th call of a module under the same
parent call), so the recomputation is attributed to the original layers and never adds a layer;
what it keeps until backward uses it counts as activations.

Categories are settled after the step, per storage: saved for backward and born in the forward ->
activations; ends up as a `.grad` -> gradients; ends up in the optimizer's state ->
optimizer_state; anything else born in the step -> temporaries.
"""
from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .categories import CATEGORIES, PHASES
from .cpu_kernels import kernel_script, output_layout
from .errors import CancelledError
from .meta_cache import kernel_cache
from .target import target_for

_CAT = {c: i for i, c in enumerate(CATEGORIES)}
_PHASE = {p: i for i, p in enumerate(PHASES)}
_META_KEY = "memlens_module"
aten = torch.ops.aten

@dataclass
class LayerCall:
    """One forward call of a module, filled in by the hooks."""

    order: int  # position of the pre-hook among all calls
    name: str
    module: nn.Module
    start_point: int
    end_point: int = -1
    leaf: bool = True  # no child module ran inside it
    output_shape: tuple[int, ...] = ()
    output_bytes: int = 0
    code: int = 0  # index into the recorder's module names
    parent: int = -1  # order of the call it ran inside (-1: top level)


@dataclass
class RawTrace:
    """What the recorder saw, before curves and tables are derived (engine/timeline.py)."""

    nbytes: np.ndarray
    storage: np.ndarray
    category: np.ndarray
    module: np.ndarray
    phase: np.ndarray
    modules: tuple[str, ...]
    initial: dict[str, int]  # live bytes per category before the first event
    storage_category: dict[int, str]
    storage_call: dict[int, int]  # serial -> index into calls (-1: outside any layer)
    calls: list[LayerCall]
    phase_starts: list[tuple[str, int]]  # (phase, event index where it begins)
    op_count: int = 0
    warnings: list[str] = field(default_factory=list)
    initial_storages: dict[int, int] = field(default_factory=dict)  # serial -> bytes live at the start, in order
    # serial -> event index where a first step makes it (a library workspace at its first call;
    # optimizer state at the optimizer's first step); absent: made before any step
    initial_made_at: dict[int, int] = field(default_factory=dict)


class StepRecorder(TorchDispatchMode):
    """Dispatch mode + hooks that turn a step into allocation/free events."""

    def __init__(
        self,
        model: nn.Module,
        device: str,
        cancelled: Callable[[], bool] | None = None,
        on_layer: Callable[[int], None] | None = None,
    ):
        super().__init__()
        self.device = device
        self.target = target_for(device)
        self.cancelled = cancelled
        self.on_layer = on_layer
        self.names = {id(m): n or type(m).__name__ for n, m in model.named_modules()}
        self.root = model
        self.call_counts: dict[str, int] = {}
        # Event columns (python lists while recording: appends are cheap).
        self.ev_nbytes: list[int] = []
        self.ev_serial: list[int] = []
        self.ev_module: list[int] = []
        self.ev_phase: list[int] = []
        self.modules: list[str] = ["(step)"]
        self.module_codes: dict[str, int] = {"(step)": 0}
        # Storage bookkeeping.
        self.live: dict[int, tuple[int, int, weakref.ref]] = {}  # id(storage) -> serial, bytes, ref
        self.next_serial = 0
        self.category_of: dict[int, str] = {}  # fixed categories (pre-registered or decided)
        self.saved: set[int] = set()
        self.alloc_phase: dict[int, int] = {}
        self.alloc_call: dict[int, int] = {}
        self.initial = {c: 0 for c in CATEGORIES}
        self.initial_storages: dict[int, int] = {}
        self.initial_made_at: dict[int, int] = {}
        # Module stack.
        self.calls: list[LayerCall] = []
        self.stack: list[LayerCall] = []
        self.loss_module = self._code("loss")
        self.optimizer_module = self._code("optimizer")
        self.phase = _PHASE["forward"]
        self.phase_starts: list[tuple[str, int]] = []
        self.op_count = 0
        self.current_op = None
        self.closed = False
        self.kernels = kernel_cache()
        # Kernels' own buffers around their outputs: oneDNN's on a CPU (engine/cpu_kernels.py); a
        # CUDA trace sets cuDNN's convolution workspaces (engine/cudnn_workspaces.py).
        self.kernel_scripts = kernel_script if self.target.kernel_scratch else None
        self._handles = []
        # Recomputation (activation checkpointing): forward calls by parent, and the open regions.
        self.children: dict[int, list[LayerCall]] = {}
        self.regions: list[_Region] = []
        # The autograd node whose apply has returned: ops under it now are the engine's own
        # accumulation of gradients into the next nodes' input buffers (see _accumulates_in_place).
        self.done_node = None

    # ---- Public API
    def register_existing(self, tensor: torch.Tensor, category: str, on_device: bool = True) -> None:
        """A storage that is live before the step starts (counted in the initial state)."""
        tracked = self._track(tensor, on_device)
        if tracked is None:
            return
        serial, nbytes = tracked
        self.category_of[serial] = category
        self.alloc_phase[serial] = -1
        self.initial[category] += nbytes
        self.initial_storages[serial] = nbytes  # the allocator simulator replays them one by one

    def forget_existing(self, tensor: torch.Tensor) -> None:
        """Undo `register_existing` for a storage the step never touched (nor will free)."""
        entry = self.live.pop(id(tensor.untyped_storage()), None)
        if entry is not None:
            serial, nbytes, _ = entry
            self.initial[self.category_of[serial]] -= nbytes
            self.initial_storages.pop(serial, None)

    def set_phase(self, phase: str) -> None:
        self.phase = _PHASE[phase]
        self.phase_starts.append((phase, len(self.ev_nbytes)))

    def storage_serial(self, tensor: torch.Tensor) -> int | None:
        entry = self.live.get(id(tensor.untyped_storage()))
        return entry[0] if entry else None

    def mark_category(self, tensor: torch.Tensor, category: str) -> None:
        serial = self.storage_serial(tensor)
        if serial is not None and self.alloc_phase.get(serial, -1) >= 0:
            self.category_of[serial] = category

    def checkpoint_region(self) -> LayerCall | None:
        """The forward call a checkpointed forward starts in (engine/checkpointing.py)."""
        return self.stack[-1] if self.stack and self.phase == _PHASE["forward"] else None

    def rng_state_stand_in(self) -> torch.Tensor | None:
        """torch.utils.checkpoint copies the CPU generator's state at each call (5,056 bytes, made
        outside the dispatcher, so unseen): a meta stand-in of that size for a CPU target. On a GPU
        target the copies are host memory."""
        if self.device != "cpu":
            return None
        return torch.empty(torch.default_generator.get_state().nbytes, dtype=torch.uint8, device="meta")

    @contextlib.contextmanager
    def recomputing(self, call: LayerCall | None, _rng_state=None):
        """Backward runs `call`'s forward again: attribute it to the original layers."""
        region = _Region(call, len(self.stack), self.next_serial)
        self.regions.append(region)
        try:
            yield
        finally:
            del self.stack[region.depth:]  # an early stop leaves calls open
            self._close_region()

    def library_alloc(self, nbytes: int) -> int:
        """A buffer a library allocates inside an op and keeps (a cuBLAS workspace): a temporary
        born now, never freed in the step. Returns its serial."""
        serial = self._new_serial()
        self._scratch_alloc(serial, nbytes)
        return serial

    def kernel_scratch(self, *nbytes: int) -> None:
        """Buffers a kernel takes after its outputs and gives back, last first, before the op
        returns (a CUDA reduction's partial results and semaphores: engine/reduction_scratch.py)."""
        held = [(self._new_serial(), self.target.block_bytes(n)) for n in nbytes]
        for serial, n in held:
            self._scratch_alloc(serial, n)
        for serial, n in reversed(held):
            self._event(-n, serial)

    def add_initial(self, nbytes: int, category: str) -> int:
        """A storage live from the start that no tensor here stands for (made by an earlier step)."""
        serial = self._new_serial()
        self.category_of[serial] = category
        self.alloc_phase[serial] = -1
        self.initial[category] += nbytes
        self.initial_storages[serial] = nbytes
        self.initial_made_at[serial] = len(self.ev_nbytes)  # a first step would make it here
        return serial

    def current_module(self) -> str:
        return self.modules[self._module_code()]

    def install_hooks(self):
        reg = nn.modules.module
        self._handles = [
            reg.register_module_forward_pre_hook(self._pre_hook),
            reg.register_module_forward_hook(self._post_hook),
        ]
        self._saved_hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda x: x)
        self._saved_hooks.__enter__()

    def remove_hooks(self):
        for h in self._handles:
            h.remove()
        self._handles = []
        self._saved_hooks.__exit__(None, None, None)

    def finish(self, warnings: list[str]) -> RawTrace:
        """Stop listening and settle every storage's category."""
        self.closed = True
        n = len(self.ev_nbytes)
        serial = np.asarray(self.ev_serial, dtype=np.int64)
        categories: dict[int, str] = {}
        for s in set(self.ev_serial):
            cat = self.category_of.get(s)
            if cat is None:
                born_forward = self.alloc_phase.get(s) == _PHASE["forward"]
                cat = "activations" if (s in self.saved and born_forward) else "temporaries"
            categories[s] = cat
        cat_codes = np.fromiter((_CAT[categories[s]] for s in self.ev_serial), dtype=np.int8, count=n)
        return RawTrace(
            nbytes=np.asarray(self.ev_nbytes, dtype=np.int64),
            storage=serial,
            category=cat_codes,
            module=np.asarray(self.ev_module, dtype=np.int32),
            phase=np.asarray(self.ev_phase, dtype=np.int8),
            modules=tuple(self.modules),
            initial=dict(self.initial),
            storage_category=categories,
            storage_call=dict(self.alloc_call),
            calls=self.calls,
            phase_starts=self.phase_starts,
            op_count=self.op_count,
            warnings=warnings,
            initial_storages=dict(self.initial_storages),
            initial_made_at=self._made_at(),
        )

    def _made_at(self) -> dict[int, int]:
        """Where a first step makes each starting storage: optimizer state at the optimizer's
        first step (its state is created lazily there), library workspaces at their first call."""
        made = dict(self.initial_made_at)
        starts = dict(self.phase_starts)
        if "optimizer" in starts:
            for serial in self.initial_storages:
                if self.category_of.get(serial) == "optimizer_state" and serial not in made:
                    made[serial] = starts["optimizer"]
        return made

    # ---- Dispatch
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.current_op = func
        self.op_count += 1
        if self.cancelled is not None and not (self.op_count & 63) and self.cancelled():
            raise CancelledError("analysis cancelled")
        if self.regions and self.regions[-1].implicit and not torch.is_grad_enabled():
            del self.stack[self.regions[-1].depth:]  # backward is past a recomputation it saw no end of
            self._close_region()
        in_place = func is aten.add.Tensor and self._accumulates_in_place(args, kwargs)
        script = self.kernel_scripts(func, args) if self.kernel_scripts is not None else None
        out = self.kernels.call(func, args, kwargs or {})
        # Where a kernel's output strides differ from its meta kernel's (engine/cpu_kernels.py): a
        # convolution with a channels-last input or weight writes channels-last, oneDNN's and cuDNN's alike.
        out = output_layout(func, args, out)
        if script is not None:
            self._replay(script, out)
        if isinstance(out, torch.Tensor):
            if not (in_place and self._adopt(out, args[0])):
                self._on_output(out)
        elif isinstance(out, (tuple, list)):
            for t in out:
                if isinstance(t, torch.Tensor):
                    self._on_output(t)
                elif isinstance(t, (tuple, list)):
                    for u in t:
                        if isinstance(u, torch.Tensor):
                            self._on_output(u)
        return out

    # ---- Private API
    def _new_serial(self) -> int:
        self.next_serial += 1
        return self.next_serial

    def _code(self, name: str) -> int:
        code = self.module_codes.get(name)
        if code is None:
            code = self.module_codes[name] = len(self.modules)
            self.modules.append(name)
        return code

    def _module_code(self) -> int:
        if self.phase == _PHASE["backward"] and self.stack:  # a recomputed forward
            return self.stack[-1].code
        if self.phase == _PHASE["backward"] and self.regions and self.regions[-1].call is not None:
            return self.regions[-1].call.code
        if self.phase == _PHASE["backward"]:
            node = torch._C._current_autograd_node()
            if node is not None:
                # Nodes no module output leads to were made by the loss.
                return node.metadata.get(_META_KEY, self.loss_module)
            return 0
        if self.stack:
            return self.stack[-1].code
        return self.loss_module if self.phase == _PHASE["forward"] else self.optimizer_module

    def _track(self, t: torch.Tensor, on_device: bool = True) -> tuple[int, int] | None:
        """Start following `t`'s storage until it dies: (serial, bytes), or None if already known."""
        st = t.untyped_storage()
        key = id(st)
        if key in self.live:
            return None
        serial = self._new_serial()
        nbytes = self.target.block_bytes(st.nbytes()) if on_device else 0
        self.live[key] = (serial, nbytes, weakref.ref(st, self._freed_callback(key)))
        return serial, nbytes

    def _on_output(self, t: torch.Tensor) -> None:
        tracked = self._track(t)
        if tracked is None:
            return
        serial, nbytes = tracked
        self.alloc_phase[serial] = self.phase
        if self.stack and self.phase == _PHASE["forward"]:
            self.alloc_call[serial] = self.stack[-1].order
        if nbytes:  # zero-byte tensors get no allocation
            self._event(nbytes, serial)

    def _replay(self, script, out) -> None:
        """Replay a kernel's internal buffers around its outputs (engine/cpu_kernels.py)."""
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        held: dict[str, tuple[int, int]] = {}
        for step in script:
            if step[0] == "alloc":
                if step[2]:  # a script's sizes as requested: the target's allocator rounds them
                    held[step[1]] = (self._new_serial(), self.target.block_bytes(step[2]))
                    self._scratch_alloc(*held[step[1]])
            elif step[0] == "free":
                if step[1] in held:
                    serial, nbytes = held.pop(step[1])
                    self._event(-nbytes, serial)
            elif isinstance(outputs[step[1]], torch.Tensor):
                if len(step) > 2:  # a kernel's workspace, larger than its meta tensor
                    outputs[step[1]].untyped_storage().resize_(step[2])
                self._on_output(outputs[step[1]])

    def _scratch_alloc(self, serial: int, nbytes: int) -> None:
        self.alloc_phase[serial] = self.phase
        self.category_of[serial] = "temporaries"
        self._event(nbytes, serial)

    def _node_starts(self, grad_outputs):
        self.done_node = None

    def _node_done(self, grad_inputs, grad_outputs):
        self.done_node = torch._C._current_autograd_node()

    def _accumulates_in_place(self, args, kwargs) -> bool:
        """Whether this add is autograd's accumulation into an input buffer, done in place.

        A node's several gradients for one input are summed as they arrive (InputBuffer::add,
        torch/csrc/autograd/input_buffer.cpp): `old.add_(new)` when autograd holds the only
        reference to the earlier sum and its storage, which is dense and a plain tensor, else
        `old + new`. Any TorchDispatchMode makes every tensor look like a subclass there, so
        under the trace autograd always takes the second branch: without this the trace would
        hold one extra gradient wherever a tensor feeds several layers (a fan-out: +26% on a
        layer read by three heads). The add follows the producing node's post-hook, under that
        node; the storage's own references are the tensor's and its Python object's."""
        if self.phase != _PHASE["backward"] or torch.is_grad_enabled() or kwargs or len(args) != 2:
            return False
        node = torch._C._current_autograd_node()
        if node is None or node is not self.done_node:
            return False
        old, new = args
        if not (isinstance(old, torch.Tensor) and isinstance(new, torch.Tensor)) or old.shape != new.shape \
                or old.dtype != new.dtype or not old.is_contiguous():
            return False
        return torch._C._storage_Use_Count(old.untyped_storage()._cdata) <= 2

    def _adopt(self, out: torch.Tensor, old: torch.Tensor) -> bool:
        """`out` takes over `old`'s storage, as `old.add_(new)` would have written into it: no
        allocation now, and the storage is freed when `out` dies (not when `old` does)."""
        old_key, new_storage = id(old.untyped_storage()), out.untyped_storage()
        entry = self.live.get(old_key)
        if entry is None or id(new_storage) in self.live:
            return False
        del self.live[old_key]
        serial, nbytes, _ = entry
        self.live[id(new_storage)] = (serial, nbytes, weakref.ref(new_storage, self._freed_callback(id(new_storage))))
        return True

    def _freed_callback(self, key: int):
        def freed(_ref):
            entry = self.live.pop(key, None)
            if entry is None or self.closed:
                return
            serial, nbytes, _ = entry
            if nbytes:
                self._event(-nbytes, serial)

        return freed

    def _event(self, nbytes: int, serial: int) -> None:
        self.ev_nbytes.append(nbytes)
        self.ev_serial.append(serial)
        self.ev_module.append(self._module_code())
        self.ev_phase.append(self.phase)

    def _pack(self, t: torch.Tensor):
        entry = self.live.get(id(t.untyped_storage()))
        if entry is not None:
            self.saved.add(entry[0])
        return t

    def _pre_hook(self, module, args):
        name = self.names.get(id(module))
        if name is None:
            return None
        if self.phase != _PHASE["forward"]:
            self._recomputed_call(module)
            return None
        if self.stack:
            self.stack[-1].leaf = False
        if name in self.call_counts and self.stack:
            name = _path_via(self.stack[-1], module, self.stack[-1].module is self.root) or name
        count = self.call_counts.get(name, 0) + 1
        self.call_counts[name] = count
        display = name if count == 1 else f"{name}#{count}"
        call = LayerCall(order=len(self.calls), name=display, module=module, start_point=len(self.ev_nbytes),
                         parent=self.stack[-1].order if self.stack else -1)
        call.code = self._code(display)
        self.children.setdefault(call.parent, []).append(call)
        self.calls.append(call)
        self.stack.append(call)
        if self.cancelled is not None and self.cancelled():
            raise CancelledError("analysis cancelled")
        return None

    def _post_hook(self, module, args, output):
        if not self.stack or self.stack[-1].module is not module:
            return None
        call = self.stack.pop()
        if self.phase != _PHASE["forward"]:  # a recomputed call: its forward record stands
            if self.regions and self.regions[-1].implicit and len(self.stack) <= self.regions[-1].depth:
                self._close_region()
            return None
        call.end_point = len(self.ev_nbytes)
        tensors = _tensors(output)
        if self.phase == _PHASE["forward"] and torch.is_grad_enabled():
            for node in _tag_graph(tensors, call.code):
                node.register_prehook(self._node_starts)
                node.register_hook(self._node_done)
        if tensors:
            call.output_shape = tuple(tensors[0].shape)
            call.output_bytes = sum(t.numel() * t.element_size() for t in tensors)
        if call.leaf and self.on_layer is not None:
            self.on_layer(call.order)
        return None


    def _close_region(self) -> None:
        region = self.regions.pop()
        for serial, _, _ in self.live.values():  # still held after it: saved again for backward
            if serial > region.first_serial:
                self.category_of.setdefault(serial, "activations")

    def _recomputed_call(self, module) -> None:
        """Push the forward call a recomputed module call repeats: the next call of `module` under
        the same parent call (the checkpointed region's call at the top of the recomputation)."""
        if not self.regions:  # a checkpoint the model makes itself: its region starts here
            self.regions.append(_Region(self._call_of_node(), len(self.stack), self.next_serial, implicit=True))
        region = self.regions[-1]
        parent = self.stack[-1] if len(self.stack) > region.depth else region.call
        siblings = self.children.get(parent.order if parent is not None else -1, [])
        key = (parent.order if parent is not None else -1, id(module))
        seen = region.cursor.get(key, 0)
        matches = [c for c in siblings if c.module is module]
        if not matches:  # not a child of that call in the forward: its first call anywhere
            matches = [c for c in self.calls if c.module is module][:1]
        if not matches:
            return
        region.cursor[key] = seen + 1
        self.stack.append(matches[min(seen, len(matches) - 1)])

    def _call_of_node(self) -> LayerCall | None:
        """The forward call whose autograd node backward is running (the region of a checkpoint
        the model makes itself): the call that owns the node's layer."""
        node = torch._C._current_autograd_node()
        code = node.metadata.get(_META_KEY) if node is not None else None
        call = next((c for c in self.calls if c.code == code), None)
        while call is not None and call.leaf and call.parent >= 0:
            call = self.calls[call.parent]
        return call


@dataclass
class _Region:
    """A forward being recomputed in the backward phase."""

    call: LayerCall | None  # the forward call it repeats (its module calls are matched under it)
    depth: int  # the call stack's depth when it began
    first_serial: int  # storages with a higher serial were made by the recomputation
    implicit: bool = False
    cursor: dict = field(default_factory=dict)  # (parent order, module id) -> calls matched so far


def _path_via(caller: LayerCall, module: nn.Module, caller_is_root: bool) -> str | None:
    """A module shared by several parents (one activation object in every block) is named after
    its first parent; a later call is named by the parent that makes it (`blocks.3.act`, not
    `blocks.0.act#4`). None when the caller does not hold the module itself."""
    for attr, child in caller.module.named_children():
        if child is module:
            return attr if caller_is_root else f"{caller.name.split('#')[0]}.{attr}"
    return None


def _tag_graph(tensors: list[torch.Tensor], code: int) -> list:
    """Tag the autograd nodes a module's output depends on, and no module has claimed yet.

    Post-hooks run innermost first, so each node ends up with the innermost module that made
    it; during backward the node being executed names the layer its memory belongs to. (Tagging
    in `__torch_dispatch__` is not possible: autograd attaches grad_fn after dispatch returns.)
    """
    stack = [t.grad_fn for t in tensors if t.grad_fn is not None]
    tagged = []
    while stack:
        node = stack.pop()
        meta = node.metadata
        if _META_KEY in meta:
            continue
        meta[_META_KEY] = code
        tagged.append(node)
        stack.extend(fn for fn, _ in node.next_functions if fn is not None)
    return tagged


def _tensors(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, dict):
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [t for o in output for t in _tensors(o)]
    return []
