"""The last finished analysis, kept on disk so the next launch shows real numbers in well under
2 s instead of waiting 7-8 s for torch to import.

An `Analysis` is plain frozen dataclasses over numpy columns, so it is written without torch or
pickle: numpy arrays go into one `.npz` as they are, everything else into a JSON document inside
it (compressed). The file is used only when its key matches: the MemLens version, the installed
torch version (read from its package metadata, not by importing it), the request, and the size
and modification time of a spec or python file the request names. Anything unreadable is a miss.

Location: `$MEMLENS_CACHE_DIR`, else the platform's user cache folder + `memlens`.
"""
from __future__ import annotations

import dataclasses
import importlib
import io
import json
import os
import sys
import tempfile
from importlib import metadata

import numpy as np

from engine.choices import HF_CONFIG_NAME, source_kind
from engine.version import __version__

ENV_VAR = "MEMLENS_CACHE_DIR"
FILE_NAME = "last_analysis.npz"


# ---- Public API
def cache_dir() -> str:
    if os.environ.get(ENV_VAR):
        return os.environ[ENV_VAR]
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA", os.path.expanduser("~"))
    elif sys.platform == "darwin":
        base = os.path.expanduser("~/Library/Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "memlens")


def cache_key(request) -> dict:
    """What must match for a stored analysis to be the one a fresh run would produce."""
    files = {}
    if source_kind(request.model) != "torchvision":
        path = request.model.rpartition(":")[0] if source_kind(request.model) == "python" else request.model
        if os.path.isdir(path):  # a Hugging Face model folder: its config.json is what changes
            path = os.path.join(path, HF_CONFIG_NAME)
        try:
            st = os.stat(path)
            files[os.path.abspath(path)] = [st.st_size, st.st_mtime_ns]
        except OSError:
            files[os.path.abspath(path)] = None
    return {"memlens": __version__, "torch": _torch_version(), "request": _encode(request, {}, "request"),
            "files": files}


def save(analysis, directory: str | None = None) -> str:
    """Write `analysis` as the last analysis (atomically: a reader never sees half a file)."""
    directory = directory or cache_dir()
    os.makedirs(directory, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    document = {"key": cache_key(analysis.request), "analysis": _encode(analysis, arrays, "a")}
    arrays["__json__"] = np.frombuffer(json.dumps(document).encode(), dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(buffer.getvalue())
    path = os.path.join(directory, FILE_NAME)
    os.replace(tmp, path)
    return path


def load(request, directory: str | None = None):
    """The stored analysis of `request`, or None (no file, another request, stale, unreadable)."""
    path = os.path.join(directory or cache_dir(), FILE_NAME)
    try:
        with np.load(path, allow_pickle=False) as data:
            document = json.loads(bytes(data["__json__"]).decode())
            if document.get("key") != cache_key(request):
                return None
            return _decode(document["analysis"], data)
    except Exception:  # noqa: BLE001 - a cache that cannot be read is a miss, never an error
        return None


# ---- Private API
def _torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return "none"


def _encode(value, arrays: dict, path: str):
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        cls = type(value)
        return {"__dc__": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _encode(getattr(value, f.name), arrays, f"{path}.{f.name}")
                           for f in dataclasses.fields(value) if f.init}}
    if isinstance(value, np.ndarray):
        arrays[path] = value
        return {"__nd__": path}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, arrays, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {"__dict__": [[_encode(k, arrays, path), _encode(v, arrays, f"{path}.{k}")] for k, v in value.items()]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} at {path}")


def _decode(value, arrays):
    if isinstance(value, list):
        return [_decode(v, arrays) for v in value]
    if not isinstance(value, dict):
        return value
    if "__nd__" in value:
        return arrays[value["__nd__"]]
    if "__tuple__" in value:
        return tuple(_decode(v, arrays) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in value["__dict__"]}
    module, _, name = value["__dc__"].partition(":")
    if module != "engine" and not module.startswith("engine."):
        raise ValueError(f"not an engine class: {value['__dc__']}")
    cls = importlib.import_module(module)
    for part in name.split("."):
        cls = getattr(cls, part)
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"not a dataclass: {value['__dc__']}")
    return cls(**{k: _decode(v, arrays) for k, v in value["fields"].items()})
