"""Where a model comes from: a torchvision name, a YAML/JSON layer spec, a python callable, or a
Hugging Face config.json (engine/sources/hf_config.py).

`source_kind` and `check_source` need no torch (the CLI reports a missing file in a fraction of
a second); everything that builds a model imports it on first use.
"""
from __future__ import annotations

import importlib
import os

from ..choices import source_kind
from ..errors import MemLensError


def check_source(model: str) -> None:
    """What can be checked before torch is imported: files exist, specs read and expand sanely."""
    kind = source_kind(model)
    if kind == "spec":
        from .spec_document import check_spec_file

        check_spec_file(model)
    elif kind == "hf":
        from .hf_config import read_config

        read_config(model)
    elif kind == "python":
        path, _, func_name = model.rpartition(":")
        if not os.path.isfile(path):
            raise MemLensError(f"python file not found: {path}")
        if not func_name.isidentifier():
            raise MemLensError(f"{model}: expected file.py:function, got function name {func_name!r}")


def load_model(model: str, cancelled=None):
    """-> LoadedModel, built on the meta device. A spec's build stops when `cancelled()`."""
    kind = source_kind(model)
    if kind == "python":
        from .python_file import load_python

        return load_python(model)
    if kind == "spec":
        from .spec import load_spec

        return load_spec(model, cancelled)
    if kind == "hf":
        from .hf_config import load_hf_config

        return load_hf_config(model)
    from .torchvision_models import load_torchvision

    return load_torchvision(model.strip())


_LAZY = {"LoadedModel": "loaded", "catalog": "torchvision_models"}


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


__all__ = ["LoadedModel", "catalog", "check_source", "load_model", "source_kind"]
