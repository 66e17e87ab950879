"""The JSON Schema of `analyze --json` (and of File ▸ Export ▸ Analysis as JSON), strict enough that
an undocumented key fails, plus the small validator the tests and users' scripts can run on it.

docs/SCHEMA.md explains every key in words; this is the same contract in a form a machine checks.
It uses JSON Schema keywords (draft 2020-12: type, properties, required, additionalProperties,
items, enum, const, minimum), so a full validator such as `jsonschema` reads it too; the one here
implements just those keywords (MemLens does not depend on `jsonschema`).

A new key: add it to `analysis_to_dict` (engine/report.py), here, and to docs/SCHEMA.md. Adding
keys keeps `schema` at its version; renaming or removing one, or changing its meaning, bumps it.
"""
from __future__ import annotations

from .categories import CATEGORIES, DEVICES, DTYPES, LAYER_KINDS, MODES, OPTIMIZERS, PHASES
from .report import SCHEMA_VERSION
from .request import AMP_DTYPES

_INT = {"type": "integer"}
_BYTES = {"type": "integer", "minimum": 0}
_COUNT = {"type": "integer", "minimum": 0}
_STR = {"type": "string"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}


def _object(properties: dict, optional: tuple[str, ...] = ()) -> dict:
    """A closed object: every property required except `optional`, and nothing else allowed."""
    return {"type": "object", "properties": properties,
            "required": [k for k in properties if k not in optional], "additionalProperties": False}


def _array(items: dict) -> dict:
    return {"type": "array", "items": items}


_REQUEST = _object({
    "model": _STR, "batch": {"type": "integer", "minimum": 1},
    "input_shape": {"type": ["array", "null"], "items": {"type": "integer", "minimum": 1}},
    "dtype": {"enum": list(DTYPES)}, "amp": _BOOL, "mode": {"enum": list(MODES)},
    "optimizer": {"enum": list(OPTIMIZERS)}, "device": {"enum": list(DEVICES)}, "first_step": _BOOL,
    # Hugging Face LoRA (engine/lora.py)
    "lora_rank": _COUNT, "lora_alpha": {"type": ["number", "null"]}, "lora_targets": _array(_STR),
    # levers (engine/levers.py)
    "checkpoint": _array(_STR), "freeze": _array(_STR), "micro_batch": {"type": ["integer", "null"], "minimum": 1},
    # the CUDA memory model (engine/cuda_cli.py)
    "alloc_conf": _STR, "cublas_workspace_config": _STR, "cublaslt_workspace_size": _STR,
    "cuda_arch": {"type": ["array", "null"], "items": _COUNT},
    # distributed (engine/distributed/)
    "strategy": _STR, "world_size": {"type": "integer", "minimum": 1},
    "offload": {"type": ["string", "null"]}, "bucket_cap_mb": _COUNT, "gradient_as_bucket_view": _BOOL,
    "param_dtype": {"type": ["string", "null"]}, "reduce_dtype": {"type": ["string", "null"]},
    "amp_dtype": {"enum": list(AMP_DTYPES)},  # AMP's autocast dtype ("": the device's default)
    "kv_cache": _BOOL,  # Hugging Face inference keeping its KV cache (engine/lora.py)
})

_LINE = _object({"key": _STR, "label": _STR, "bytes": _BYTES, "source": _STR, "note": _STR})

_LAYER = _object({
    "name": _STR, "type": _STR, "kind": {"enum": list(LAYER_KINDS)},
    "output_shape": _array({"type": "integer", "minimum": 0}), "params": _COUNT, "param_bytes": _BYTES,
    "output_bytes": _BYTES, "saved_bytes": _BYTES, "textbook_bytes": _BYTES,
})

_TIMELINE = _object({
    "events": _COUNT,
    "phases": _array(_object({"phase": {"enum": list(PHASES)}, "start": _COUNT, "end": _COUNT})),
    "point": _array(_COUNT),
    **{c: _array(_BYTES) for c in CATEGORIES},
    "total": _array(_BYTES),
})

_FIT = _object({
    "capacity_bytes": _BYTES, "total_bytes": _BYTES, "state": {"enum": ["fits", "tight", "does not fit"]},
    "headroom_bytes": _INT, "headroom_pct": _NUM,
    "lines": _array(_LINE),
    "warnings": _array(_STR),
})

# The CUDA memory model's keys (engine/footprint.py json_fields; `allocator` only for CUDA traces).
_CUDA = {
    "peak_reserved_bytes": {"type": ["integer", "null"], "minimum": 0},
    "footprint": _array(_LINE),
    "allocator": {"type": "object"},  # the simulator's summary: see docs/SCHEMA.md
}

# The levers' keys (engine/lever_fields.py json_fields; `checkpoint_search` with --checkpoint fit).
_LEVERS = {
    "model_blocks": _array(_STR),
    "checkpoint": {"type": ["object", "null"], "properties": {
        "blocks": _array(_STR), "baseline_peak_bytes": _BYTES, "saved_bytes": _INT, "recompute_flops": _COUNT,
        "step_flops": _COUNT, "recompute_pct": _NUM}, "additionalProperties": False},
    "frozen_parameters": _COUNT,
    "frozen_tensors": _COUNT,
    "trainable_parameters": _COUNT,
    "lora_adapter_parameters": _COUNT,
    "without_levers_peak_bytes": {"type": ["integer", "null"], "minimum": 0},
    "micro_batch": {"type": ["object", "null"], "properties": {
        "size": _COUNT, "steps": _COUNT, "last_size": _COUNT, "accumulated_gradient_bytes": _BYTES},
        "additionalProperties": False},
    "checkpoint_search": {"type": "object"},
}

# The distributed keys (engine/distributed_cli.py json_fields).
_DISTRIBUTED = {
    "strategy": _STR,
    "world_size": {"type": "integer", "minimum": 1},
    "per_rank_peak_bytes": _array(_BYTES),
    "communication": _object({"category": _STR, "peak_bytes": _BYTES, "at_peak_bytes": _BYTES}),
    "distributed": {"type": ["object", "null"]},  # per-rank figures and the ZeRO reference: docs/SCHEMA.md
}

# The keys `analyze --max-batch / --max-resolution / --max-seq --json` adds (engine/planning_cli.py).
_LARGEST = {
    "max_batch": {"type": "integer", "minimum": 1},
    "max_resolution": {"type": "integer", "minimum": 1},
    "max_seq": {"type": "integer", "minimum": 1},
    "max_micro_batch": {"type": "integer", "minimum": 1},  # --max-batch with --micro-batch below --batch
    "accumulation_steps": {"type": "integer", "minimum": 2},
    "peak_bytes_at_max": _BYTES,
    "peak_bytes_at_max_plus_one": {"type": ["integer", "null"], "minimum": 0},
    "capacity_bytes": _BYTES,
    "limit_reached": _BOOL,
    "traces": _COUNT,
    "seconds": {"type": "number", "minimum": 0},
    "points": _array(_object({"value": {"type": "integer", "minimum": 1}, "micro_batch": {"type": "integer", "minimum": 1},
                              "peak_bytes": _BYTES}, optional=("micro_batch",))),
    "device": _STR,
}

ANALYSIS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "MemLens analysis",
    **_object({
        "schema": {"const": SCHEMA_VERSION},
        "model": _STR,
        "source": _STR,
        "request": _REQUEST,
        "input_shape": _array({"type": "integer", "minimum": 1}),
        "parameters": _COUNT,
        "parameter_bytes": _BYTES,
        "peak_bytes": _BYTES,
        "peak_breakdown": _object({c: _BYTES for c in CATEGORIES}),
        "peak_at": _object({"point": _COUNT, "phase": {"enum": list(PHASES)}, "module": _STR}),
        "textbook": _object({"parameters_bytes": _BYTES, "gradients_bytes": _BYTES, "optimizer_bytes": _BYTES,
                             "feature_map_bytes": _BYTES, "peak_bytes": _BYTES, "formula": _STR}),
        "layers": _array(_LAYER),
        "timeline": _TIMELINE,
        "not_modelled": _array(_object({"label": _STR, "bytes": {"type": ["integer", "null"], "minimum": 0},
                                        "note": _STR})),
        "warnings": _array(_STR),
        "analysis_seconds": {"type": "number", "minimum": 0},
        "engine": _STR,
        "fit": _FIT,  # with --gpu / --capacity
        **_LARGEST,
        **_CUDA,
        **_LEVERS,
        **_DISTRIBUTED,
    }, optional=("fit", *_LARGEST, "allocator", "checkpoint_search")),
}


# ---- Public API
def validate(document, schema: dict = ANALYSIS_SCHEMA) -> list[str]:
    """Every way `document` breaks `schema`, as 'where: what' lines (empty: it conforms)."""
    errors: list[str] = []
    _check(document, schema, "$", errors)
    return errors


# ---- Private API
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value, name: str) -> bool:
    if name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[name])


def _check(value, schema: dict, where: str, errors: list[str]) -> None:
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: expected {schema['const']!r}, got {value!r}")
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
        return
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is(value, t) for t in types):
            errors.append(f"{where}: expected {' or '.join(types)}, got {type(value).__name__}")
            return
    if "minimum" in schema and _is(value, "number") and value < schema["minimum"]:
        errors.append(f"{where}: {value} is below the minimum {schema['minimum']}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                errors.append(f"{where}: missing key {key!r}")
        for key, item in value.items():
            if key in properties:
                _check(item, properties[key], f"{where}.{key}", errors)
            elif schema.get("additionalProperties") is False:
                errors.append(f"{where}: undocumented key {key!r}")
            elif isinstance(schema.get("additionalProperties"), dict):
                _check(item, schema["additionalProperties"], f"{where}.{key}", errors)
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(item, schema["items"], f"{where}[{i}]", errors)
