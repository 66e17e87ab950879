"""The choices a user makes, stated once and importable without torch: which kind of source a
model string names, the request defaults the CLI and the GUI start from, and the optimizers.

`engine.sources`, the CLI and the GUI's panel, menus and drop handling all read these; none of
them spells out a suffix or a default again.
"""
from __future__ import annotations

from .categories import DEVICES, DTYPES, MODES, OPTIMIZERS

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
SOURCE_KINDS = ("torchvision", "spec", "python")
SOURCE_LABELS = {"torchvision": "torchvision", "spec": "spec file", "python": "python file (executed)"}

# What `memlens` analyses when nothing is asked for: the article's worked example.
DEFAULTS = {"model": "vgg16", "batch": 32, "input_shape": None, "dtype": "float32", "amp": False,
            "mode": "train", "optimizer": "adam", "device": "cpu", "first_step": False}

OPTIMIZER_HELP = {"none": "no optimizer step (gradients only)", "sgd": "plain SGD: no state",
                  "momentum": "SGD with momentum: one buffer per parameter",
                  "adam": "Adam: two buffers per parameter", "adamw": "AdamW: two buffers per parameter"}

__all__ = ["DEFAULTS", "DEVICES", "DTYPES", "MODES", "OPTIMIZERS", "OPTIMIZER_HELP", "SOURCE_KINDS",
           "SOURCE_LABELS", "SPEC_SUFFIXES", "is_file_source", "source_kind"]


def source_kind(model: str) -> str:
    """'python' for file.py:function, 'spec' for .yaml/.yml/.json, else 'torchvision'."""
    path, sep, _ = model.rpartition(":")
    if sep and path.endswith(".py"):
        return "python"
    if model.lower().endswith(SPEC_SUFFIXES):
        return "spec"
    return "torchvision"


def is_file_source(model: str) -> bool:
    """A spec or python file (worth remembering as a recent file), not a torchvision name."""
    return source_kind(model) != "torchvision"
