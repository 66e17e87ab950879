"""Exports. Today: the JSON document the CLI writes (the contract other tools read)."""
from __future__ import annotations

import dataclasses

from .analysis import Analysis
from .categories import CATEGORIES
from .distributed_cli import json_fields

SCHEMA_VERSION = 1


def analysis_to_dict(a: Analysis, max_points: int = 2000) -> dict:
    r = a.request
    return {
        "schema": SCHEMA_VERSION,
        "model": a.model_name,
        "source": a.source,
        "request": dataclasses.asdict(r),
        "input_shape": list(a.input_shape),
        "parameters": a.parameters,
        "parameter_bytes": a.parameter_bytes,
        "peak_bytes": a.peak.total_bytes,
        "peak_breakdown": {c: a.peak.breakdown[c] for c in CATEGORIES},
        "peak_at": {"point": a.peak.point, "phase": a.peak.phase, "module": a.peak.module},
        "textbook": dataclasses.asdict(a.textbook),
        "layers": [
            {
                "name": layer.name, "type": layer.type, "kind": layer.kind,
                "output_shape": list(layer.output_shape), "params": layer.params,
                "param_bytes": layer.param_bytes, "output_bytes": layer.output_bytes,
                "saved_bytes": layer.saved_bytes, "textbook_bytes": layer.textbook_bytes,
            }
            for layer in a.layers
        ],
        "timeline": {
            "events": len(a.events),
            "phases": [{"phase": p, "start": s, "end": e} for p, s, e in a.timeline.phase_spans],
            **a.timeline.downsampled(max_points),
        },
        "not_modelled": [dataclasses.asdict(n) for n in a.not_modelled],
        "warnings": list(a.warnings),
        "analysis_seconds": a.analysis_seconds,
        "engine": a.engine,
        **json_fields(a),  # engine/distributed_cli.py: strategy, world_size, per_rank_peak_bytes, communication
    }
