"""A saved plan: the request on screen and the optimizer chosen for comparisons, as a small JSON
file (`*.memlens`) a later session reopens with File ▸ Open. It stores what to analyse, never a
result: reopening re-traces with the torch installed then.
"""
from __future__ import annotations

import dataclasses
import json

from engine.errors import MemLensError
from engine.request import AnalysisRequest
from engine.version import __version__

SUFFIX = ".memlens"
FORMAT = "memlens-plan/1"


class PlanError(MemLensError):
    """A plan file that cannot be read (the message names the file)."""


def request_to_json(request: AnalysisRequest) -> str:
    """The request as one JSON object (QSettings keeps the last one this way)."""
    return json.dumps(dataclasses.asdict(request))


def request_from_json(text: str, where: str = "settings") -> AnalysisRequest:
    """The inverse of `request_to_json`; PlanError (naming `where`) for anything else."""
    try:
        fields = json.loads(text)
    except (TypeError, ValueError) as e:
        raise PlanError(f"{where}: not a request (invalid JSON: {e})") from None
    return _request(fields, where)


def save_plan(path: str, request: AnalysisRequest, companion_optimizer: str) -> None:
    document = {"format": FORMAT, "memlens": __version__, "request": dataclasses.asdict(request),
                "companion_optimizer": companion_optimizer}
    with open(path, "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


def load_plan(path: str) -> tuple[AnalysisRequest, str]:
    """(request, companion optimizer) from a plan file; PlanError says what is wrong and where."""
    try:
        with open(path) as f:
            document = json.load(f)
    except OSError as e:
        raise PlanError(f"{path}: cannot read the plan ({e.strerror})") from None
    except ValueError as e:
        raise PlanError(f"{path}: not a MemLens plan (invalid JSON: {e})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PlanError(f"{path}: not a MemLens plan (expected \"format\": \"{FORMAT}\")")
    request = _request(document.get("request"), path)
    return request, str(document.get("companion_optimizer") or request.optimizer)


def _request(fields, where: str) -> AnalysisRequest:
    known = {f.name for f in dataclasses.fields(AnalysisRequest)}
    if not isinstance(fields, dict):
        raise PlanError(f"{where}: the request is not a JSON object")
    if set(fields) - known:
        raise PlanError(f"{where}: the request has unknown fields: {', '.join(sorted(set(fields) - known))}")
    if isinstance(fields.get("input_shape"), list):
        fields = {**fields, "input_shape": tuple(fields["input_shape"])}
    try:
        return AnalysisRequest(**fields)
    except (MemLensError, TypeError) as e:
        raise PlanError(f"{where}: {e}") from None
