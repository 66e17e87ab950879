"""Any nn.Module from a python file: `path/to/file.py:function`.

This *executes* the file (the CLI and GUI say so). The function is called with no arguments and
returns an `nn.Module`, or `(module, example_input)` where the example input's shape without its
first (batch) dimension and its dtype tell MemLens what to feed. Parameters created by the
function land on the meta device, so a huge model costs no memory.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import traceback

import torch
from torch import nn

from ..errors import MemLensError
from .empty_init import empty_weights, has_lazy, materialize_lazy
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
        with _user_code():
            spec.loader.exec_module(user)
    except BaseException as e:  # sys.exit() or KeyboardInterrupt in the file must not escape
        raise MemLensError(f"{path}:{_user_line(e, path)}: running the file failed: {_describe(e)}") from None
    finally:
        sys.modules.pop(module_name, None)
    fn = getattr(user, func_name, None)
    if not callable(fn):
        available = sorted(n for n, v in vars(user).items() if callable(v) and not n.startswith("_"))
        raise MemLensError(f"{path}: no function '{func_name}' (callables there: {', '.join(available) or 'none'})")
    try:
        with _user_code(), empty_weights():
            result = fn()
    except BaseException as e:
        raise MemLensError(f"{path}:{_user_line(e, path)}: {func_name}() failed: {_describe(e)}") from None
    example = None
    if isinstance(result, tuple) and len(result) == 2:
        result, example = result
    if not isinstance(result, nn.Module):
        raise MemLensError(f"{target} returned {type(result).__name__}, expected an nn.Module "
                           "or (nn.Module, example_input)")
    name = f"{os.path.basename(path)}:{func_name}"
    if example is not None and (not isinstance(example, torch.Tensor) or example.dim() < 1):
        raise MemLensError(f"{target}: the example input must be a tensor with a batch dimension, "
                           f"got {_what(example)}")
    try:
        model = result.to("meta")
        if has_lazy(model):
            if example is None:
                raise MemLensError(f"{target}: the model has lazy layers (nn.Lazy...), which are sized by "
                                   "their first input: return (model, example_input)")
            with _user_code():
                materialize_lazy(model, example)
    except MemLensError:
        raise
    except BaseException as e:  # the first forward of lazy layers runs the user's code
        raise MemLensError(f"{target}: preparing the model failed: {_describe(e)}") from None
    if example is None:  # no example: the request must say the input shape
        return LoadedModel(module=model, name=name, source="python", input_shape=None, task="auto",
                           warnings=[])
    high = int(example.max()) + 1 if not example.is_floating_point() and example.numel() and example.device.type != "meta" else 2
    return LoadedModel(
        module=model, name=name, source="python", input_shape=tuple(example.shape[1:]),
        input_dtype=None if example.is_floating_point() else example.dtype, task="auto", input_high=high,
    )


@contextlib.contextmanager
def _user_code():
    """While the user's code runs its prints go to stderr: `--json -` keeps stdout valid JSON."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _describe(e: BaseException) -> str:
    """One line for anything the user's code raised, sys.exit() included."""
    if isinstance(e, SystemExit):
        return f"the model file called sys.exit({e.code!r})"
    if isinstance(e, KeyboardInterrupt):
        return "the model file raised KeyboardInterrupt"
    first = str(e).strip().splitlines()
    return f"{type(e).__name__}: {first[0]}" if first else type(e).__name__


def _what(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _user_line(e: BaseException, path: str) -> str:
    """The line of the user's file where the error surfaced, or '?'."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if os.path.abspath(f.filename) == os.path.abspath(path)]
    if isinstance(e, SyntaxError) and e.lineno:
        return str(e.lineno)
    return str(frames[-1].lineno) if frames else "?"
