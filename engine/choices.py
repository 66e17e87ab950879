"""The choices a user makes, stated once and importable without torch: which kind of source a
model string names, the request defaults the CLI and the GUI start from, and the optimizers.

`engine.sources`, the CLI and the GUI's panel, menus and drop handling all read these; none of
them spells out a suffix or a default again.
"""
from __future__ import annotations

import json
import os

from .categories import DEVICES, DTYPES, MODES, OPTIMIZERS

SPEC_SUFFIXES = (".yaml", ".yml", ".json")
SOURCE_KINDS = ("torchvision", "spec", "python", "hf")
SOURCE_LABELS = {"torchvision": "torchvision", "spec": "spec file", "python": "python file (executed)",
                 "hf": "Hugging Face config"}
# A Hugging Face model folder names its architecture in this file (engine/sources/hf_config.py).
HF_CONFIG_NAME = "config.json"

# What `memlens` analyses when nothing is asked for: the article's worked example.
DEFAULTS = {"model": "vgg16", "batch": 32, "input_shape": None, "dtype": "float32", "amp": False,
            "mode": "train", "optimizer": "adam", "device": "cpu", "first_step": False}

OPTIMIZER_HELP = {"none": "no optimizer step (gradients only)", "sgd": "plain SGD: no state",
                  "momentum": "SGD with momentum: one buffer per parameter",
                  "adam": "Adam: two buffers per parameter", "adamw": "AdamW: two buffers per parameter"}

__all__ = ["DEFAULTS", "DEVICES", "DTYPES", "MODES", "OPTIMIZERS", "OPTIMIZER_HELP", "SOURCE_KINDS",
           "SOURCE_LABELS", "SPEC_SUFFIXES", "HF_CONFIG_NAME", "is_file_source", "source_kind"]


def source_kind(model: str) -> str:
    """'python' for file.py:function; 'hf' for a Hugging Face config (a file named config.json,
    a .json file whose top level names a `model_type`, or a folder); 'spec' for other
    .yaml/.yml/.json paths; else 'torchvision'."""
    path, sep, _ = model.rpartition(":")
    if sep and path.endswith(".py"):
        return "python"
    if os.path.basename(model) == HF_CONFIG_NAME:
        return "hf"
    if model.lower().endswith(".json") and _names_model_type(model):
        return "hf"
    if model.lower().endswith(SPEC_SUFFIXES):
        return "spec"
    if os.path.isdir(model):  # a Hugging Face model folder (engine/sources/hf_config.py says if not)
        return "hf"
    return "torchvision"


def _names_model_type(path: str) -> bool:
    """A transformers config is a JSON object with a `model_type`; a layer spec has none. Files
    above 1 MiB are no config (real ones are a few KiB) and are left to the spec reader."""
    try:
        if os.path.getsize(path) > 1 << 20:
            return False
        with open(path, encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(document, dict) and "model_type" in document and "layers" not in document


def is_file_source(model: str) -> bool:
    """A spec or python file (worth remembering as a recent file), not a torchvision name."""
    return source_kind(model) != "torchvision"
