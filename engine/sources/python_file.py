"""Any nn.Module from a python file: `path/to/file.py:function`.

This *executes* the file (the CLI and GUI say so). The function is called with no arguments and
returns an `nn.Module`, or `(module, example_input)` where the example input's shape without its
first (batch) dimension and its dtype tell MemLens what to feed. Parameters created by the
function land on the meta device, so a huge model costs no memory.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import traceback

import torch
from torch import nn

from ..errors import MemLensError
from .empty_init import empty_weights
from .loaded import LoadedModel


def load_python(target: str) -> LoadedModel:
    path, _, func_name = target.rpartition(":")
    if not os.path.isfile(path):
        raise MemLensError(f"python file not found: {path}")
    if not func_name.isidentifier():
        raise MemLensError(f"{target}: expected file.py:function, got function name {func_name!r}")
    module_name = f"memlens_user_{abs(hash(os.path.abspath(path)))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    user = importlib.util.module_from_spec(spec)
    try:
        sys.modules[module_name] = user
        spec.loader.exec_module(user)
    except Exception as e:
        raise MemLensError(f"{path}:{_user_line(e, path)}: running the file failed: {type(e).__name__}: {e}") from None
    finally:
        sys.modules.pop(module_name, None)
    fn = getattr(user, func_name, None)
    if not callable(fn):
        available = sorted(n for n, v in vars(user).items() if callable(v) and not n.startswith("_"))
        raise MemLensError(f"{path}: no function '{func_name}' (callables there: {', '.join(available) or 'none'})")
    try:
        with empty_weights():
            result = fn()
    except Exception as e:
        raise MemLensError(f"{path}:{_user_line(e, path)}: {func_name}() failed: {type(e).__name__}: {e}") from None
    example = None
    if isinstance(result, tuple) and len(result) == 2:
        result, example = result
    if not isinstance(result, nn.Module):
        raise MemLensError(f"{target} returned {type(result).__name__}, expected an nn.Module "
                           "or (nn.Module, example_input)")
    model = result.to("meta")
    name = f"{os.path.basename(path)}:{func_name}"
    if example is None:
        return LoadedModel(module=model, name=name, source="python", input_shape=(), task="auto",
                           warnings=[])
    if not isinstance(example, torch.Tensor) or example.dim() < 1:
        raise MemLensError(f"{target}: the example input must be a tensor with a batch dimension")
    high = int(example.max()) + 1 if not example.is_floating_point() and example.numel() and example.device.type != "meta" else 2
    return LoadedModel(
        module=model, name=name, source="python", input_shape=tuple(example.shape[1:]),
        input_dtype=None if example.is_floating_point() else example.dtype, task="auto", input_high=high,
    )


def _user_line(e: Exception, path: str) -> str:
    """The line of the user's file where the error surfaced, or '?'."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if os.path.abspath(f.filename) == os.path.abspath(path)]
    if isinstance(e, SyntaxError) and e.lineno:
        return str(e.lineno)
    return str(frames[-1].lineno) if frames else "?"
