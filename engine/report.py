"""The JSON document `analyze --json` writes and File ▸ Export saves: the contract other tools read.
Every key is documented in docs/SCHEMA.md and checked by the schema in engine/json_schema.py."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .analysis import Analysis
from .categories import CATEGORIES
from .distributed_cli import json_fields as distributed_json_fields
from .lever_fields import json_fields

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
        **_footprint_json(a, max_points),  # issue 7: peak_reserved_bytes, footprint, allocator
        **json_fields(a),  # engine/levers.py: checkpoint, frozen_parameters, micro_batch ...
        **distributed_json_fields(a),  # engine/distributed_cli.py: strategy, world_size, per_rank_peak_bytes, communication
    }


def fit_to_dict(fit) -> dict:
    """The fit check on a device (engine/footprint.py `Fit`) as the document's "fit" key."""
    return {
        "capacity_bytes": fit.capacity_bytes, "total_bytes": fit.total_bytes, "state": fit.state,
        "headroom_bytes": fit.headroom_bytes, "headroom_pct": round(fit.headroom_pct, 3),
        "lines": [{"key": x.key, "label": x.label, "bytes": x.bytes, "source": x.source, "note": x.note}
                  for x in fit.lines],
        "warnings": list(fit.warnings),
    }


def analysis_document(analysis: Analysis, fit=None) -> dict:
    """What `analyze --json` writes: the analysis, and the fit check when a device was chosen."""
    doc = analysis_to_dict(analysis)
    if fit is not None:
        doc["fit"] = fit_to_dict(fit)
    return doc


# ---- The capacity-plan report's data (gui/report_pdf.py draws it; the CLI and the window gather it)
@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything the capacity-plan report shows, computed by the engine; `*_note` says why a
    section is missing (no device chosen, does not fit even at batch 1, companion failed)."""

    analysis: Analysis
    companion: Analysis | None = None  # the same model and batch in the other mode
    companion_note: str = ""
    fit: object = None  # engine.footprint.Fit on the chosen device
    largest: object = None  # engine.planner.Largest (batch)
    largest_note: str = ""
    command: str = ""  # the CLI command that reproduces the report


def gather_report(analysis: Analysis, device=None, overrides=None, companion_request=None, *, companion=None,
                  largest=None, command: str = "", progress=None, cancelled=None) -> ReportData:
    """Complete what the report needs around `analysis`: the fit on `device`, the largest batch
    there and the companion analysis (`companion_request`), reusing `companion` / `largest` when
    the caller already has them. A section that cannot be computed gets a one-line note instead."""
    from .errors import CancelledError, MemLensError
    from .footprint import fit_check
    from .pipeline import analyze
    from .planner import max_batch

    report = progress or (lambda fraction, message: None)
    fit, largest_note, companion_note = None, "", ""
    if device is None:
        largest_note = "no device chosen: pick a GPU or a capacity (--gpu \"A100 80GB\", --capacity 24GiB)"
    else:
        fit = fit_check(analysis, device, overrides)
        if largest is None:
            report(0.0, f"largest batch on {device.name}")
            try:
                largest = max_batch(analysis.request, device, overrides, cancelled=cancelled)
            except CancelledError:
                raise
            except MemLensError as e:
                largest_note = str(e)
    if companion is None and companion_request is not None:
        report(0.6, f"the same model in {companion_request.mode}")
        try:
            companion = analyze(companion_request, cancelled=cancelled)
        except CancelledError:
            raise
        except MemLensError as e:
            companion_note = f"{companion_request.mode} could not be analysed: {e}"
    elif companion is None:
        companion_note = "the other mode was not analysed"
    report(1.0, "done")
    return ReportData(analysis, companion, companion_note, fit, largest, largest_note, command)


def _footprint_json(a: Analysis, max_points: int) -> dict:
    from .footprint import json_fields  # imports torch (via the target rules): only when writing

    return json_fields(a, max_points)
