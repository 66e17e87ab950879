"""Activation checkpointing as training runs it, and what "a block" is.

A checkpointed module's forward runs under `torch.utils.checkpoint.checkpoint(use_reentrant=False)`:
its insides keep nothing for backward (only the block's inputs are kept), and backward runs the
forward again when it first needs one of them. The same wrapper runs on meta tensors (the trace)
and on real ones (the measured truth), so the two cannot differ.

A **block** (the unit the presets count and the diagram offers) is defined once, here:
walking down from the root through containers (nn.Sequential, nn.ModuleList, nn.ModuleDict), the
children of a container that are neither containers nor leaves are blocks (ResNet's BasicBlocks,
ViT's encoder layers, a spec's transformer layers). A model with none falls back to its sequential
stages, containers that hold only leaves (VGG's `features` and `classifier`); failing that, to the
root's children that have children.
"""
from __future__ import annotations

import contextlib
import difflib
from typing import Callable

from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

from .errors import RequestError
from .lever_fields import preset_step

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


# ---- Public API
def blocks(model: nn.Module) -> tuple[str, ...]:
    """The model's blocks, in registration order (see the module docstring)."""
    found: list[str] = []

    def walk(prefix: str, module: nn.Module) -> None:
        inside_container = isinstance(module, CONTAINERS)
        for name, child in module.named_children():
            path = f"{prefix}.{name}" if prefix else name
            has_children = any(True for _ in child.children())
            if inside_container and has_children and not isinstance(child, CONTAINERS):
                found.append(path)
            elif has_children:
                walk(path, child)

    walk("", model)
    if found:
        return tuple(found)
    stages = [name for name, m in model.named_modules()
              if name and isinstance(m, CONTAINERS) and any(True for _ in m.children())
              and not any(any(True for _ in c.children()) for c in m.children())]
    if stages:
        return tuple(stages)
    return tuple(name for name, m in model.named_children() if any(True for _ in m.children()))


def resolve(model: nn.Module, spec: tuple[str, ...], model_name: str) -> tuple[str, ...]:
    """Module paths to checkpoint: a preset expanded over the model's blocks, or names checked
    against the model (unknown names get close suggestions; nesting is refused)."""
    if not spec:
        return ()
    if len(spec) == 1 and (step := preset_step(spec[0])) is not None:
        found = blocks(model)
        if not found:
            raise RequestError(f"--checkpoint {spec[0]}: {model_name} has no blocks (modules grouping other "
                               "modules); name the modules to checkpoint instead")
        return found[::step]
    modules = dict(model.named_modules())
    for name in spec:
        if name not in modules or not name:
            close = difflib.get_close_matches(name, [n for n in modules if n], n=3, cutoff=0.5)
            hint = f"; close names: {', '.join(close)}" if close else f"; blocks: {', '.join(blocks(model)[:6])}"
            raise RequestError(f"--checkpoint {name!r}: {model_name} has no module of that name{hint}")
    for name in spec:
        for other in spec:
            if other != name and name.startswith(other + "."):
                raise RequestError(f"--checkpoint {name!r} is inside {other!r}, which is checkpointed already")
    return tuple(dict.fromkeys(spec))


@contextlib.contextmanager
def checkpointed(model: nn.Module, names: tuple[str, ...]):
    """Run the named modules' forwards under non-reentrant checkpointing while the block is open."""
    undo = wrap(model, names)
    try:
        yield
    finally:
        undo()


def wrap(model: nn.Module, names: tuple[str, ...]) -> Callable[[], None]:
    """Run the named modules' forwards under non-reentrant checkpointing; returns the undo."""
    modules = dict(model.named_modules())
    wrapped = []
    for name in names:
        module = modules[name]
        own = module.__dict__.get("forward")
        wrapped.append((module, own))
        module.forward = _CheckpointedForward(module, own)

    def undo() -> None:
        for module, own in reversed(wrapped):
            if own is None:
                del module.forward
            else:
                module.forward = own

    return undo


# ---- Private API
class _CheckpointedForward:
    """A checkpointed module's forward: an object holding its module rather than a closure, so that
    a deep copy of the model (each distributed rank's, engine/distributed/plan.py) runs its copy."""

    def __init__(self, module: nn.Module, own: Callable | None):
        self.module, self.own = module, own  # `own`: an instance-level forward the module had

    def __call__(self, *args, **kwargs):
        forward = self.own if self.own is not None else type(self.module).forward.__get__(self.module)
        return _run_checkpointed(forward, *args, **kwargs)


def _run_checkpointed(forward: Callable, *args, **kwargs):
    from torch.utils.checkpoint import checkpoint

    from .target import active_cuda_autocast

    listener = _listener()
    region = listener.checkpoint_region() if listener is not None else None
    # torch keeps the RNG state for the recomputation as long as the checkpoint's frame, which
    # holds this function: a stand-in held here lives exactly as long.
    rng_state = listener.rng_state_stand_in() if listener is not None else None
    # torch re-enters torch.autocast for the recomputation, not the trace's own CUDA autocast
    # (a torch function mode, engine/target.py): re-enter it here, or backward recomputes in float32.
    autocast = active_cuda_autocast()
    calls = [0]

    def body(*a, **k):
        calls[0] += 1
        if calls[0] == 1 or listener is None:  # the forward itself
            return forward(*a, **k)
        with listener.recomputing(region, rng_state), autocast or contextlib.nullcontext():
            return forward(*a, **k)  # backward running it again

    return checkpoint(body, *args, use_reentrant=False, **kwargs)


def _listener():
    """The active recorder (engine/tracer.py) that wants to know when a forward is recomputed;
    None in a real step."""
    for mode in reversed(_get_current_dispatch_mode_stack()):
        if hasattr(mode, "recomputing"):
            return mode
    return None
