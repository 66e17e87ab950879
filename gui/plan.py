"""A saved plan (`*.memlens`): everything a later session needs to put the same capacity plan back
on screen, as a small versioned JSON file. It stores what to analyse, never a result: reopening
re-traces with the torch installed then.

Format `memlens-plan` version 2 (version 1, `"format": "memlens-plan/1"`, still opens):

    {"format": "memlens-plan", "version": 2, "memlens": "0.1.0",
     "request": {AnalysisRequest fields; a file model relative to the plan's folder when near it},
     "companion_optimizer": "adam",
     "device": {"name", "kind", "capacity_bytes", "other_processes_bytes"} or null,
     "overrides": {footprint line key: bytes},
     "scenarios": [{"name", "request", "device", "overrides"}, ...]   (at most four),
     "view": {"lower_tab": "Scenarios", "left_tab": 0, "selected_layer": "", "baseline": 0}}

A plan file comes from elsewhere (a colleague's mail), so reading it is defensive: its size is
capped before it is read, its nesting is bounded, every field is checked, and a model that is a
Python file is reported (`Plan.python_files`) so the window can ask before executing it. Any
problem is one `PlanError` whose `problem` names it. Saving writes a temporary file beside the
target, fsyncs it and renames it over the target: the old plan survives any failure.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field

from engine.choices import source_kind
from engine.errors import MemLensError
from engine.request import AnalysisRequest
from engine.version import __version__

SUFFIX = ".memlens"
FORMAT = "memlens-plan"
VERSION = 2
LEGACY_FORMAT = "memlens-plan/1"  # the first plans: a request and the companion optimizer
MAX_PLAN_BYTES = 1 << 20  # a plan is a few kB; anything near a MiB is not one
MAX_DEPTH = 8  # the deepest honest plan nests 4 levels (scenarios > entry > request > input_shape)
MAX_SCENARIOS = 4
DEVICE_KINDS = ("cuda", "nvml", "mps", "host", "catalog", "custom")
# A file model this many folders above the plan is stored relative to it; further, absolute.
MAX_UP_LEVELS = 2


class PlanError(MemLensError):
    """A plan file that cannot be used: the message names the file and the problem; `problem` is
    one of 'unreadable', 'too large', 'empty', 'truncated', 'corrupt', 'too deeply nested',
    'not a plan', 'wrong version', 'invalid'."""

    def __init__(self, message: str = "", problem: str = "invalid"):
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True)
class DeviceChoice:
    """The device a plan was made for: enough to check the fit again (the catalog may be newer)."""

    name: str
    kind: str
    capacity_bytes: int
    other_processes_bytes: int | None = None

    @classmethod
    def of(cls, device) -> "DeviceChoice | None":
        if device is None:
            return None
        return cls(device.name, device.kind, int(device.capacity_bytes), device.other_processes_bytes)

    def device(self):
        """A `DeviceInfo` for the fit check."""
        from engine.devices import DeviceInfo

        return DeviceInfo(self.name, self.capacity_bytes, self.kind, "from the plan file",
                          other_processes_bytes=self.other_processes_bytes)


@dataclass(frozen=True)
class PinnedPlan:
    """A pinned scenario as a plan stores it: re-analysed when the plan is opened."""

    name: str
    request: AnalysisRequest
    device: DeviceChoice | None = None
    overrides: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class ViewState:
    """Which tabs were open and which layer was selected."""

    lower_tab: str = ""
    left_tab: int = 0
    selected_layer: str = ""
    baseline: int = 0


@dataclass(frozen=True)
class Plan:
    request: AnalysisRequest
    companion_optimizer: str
    device: DeviceChoice | None = None
    overrides: tuple[tuple[str, int], ...] = ()
    scenarios: tuple[PinnedPlan, ...] = ()
    view: ViewState = field(default_factory=ViewState)

    @property
    def python_files(self) -> tuple[str, ...]:
        """The Python files opening this plan would execute (the request's and the scenarios')."""
        models = [self.request.model, *(s.request.model for s in self.scenarios)]
        return tuple(dict.fromkeys(m.rpartition(":")[0] for m in models if source_kind(m) == "python"))


# ---- Public API
def request_to_json(request: AnalysisRequest) -> str:
    """The request as one JSON object (QSettings keeps the last one this way)."""
    return json.dumps(dataclasses.asdict(request))


def request_from_json(text: str, where: str = "settings") -> AnalysisRequest:
    """The inverse of `request_to_json`; PlanError (naming `where`) for anything else."""
    try:
        fields = json.loads(text)
    except (TypeError, ValueError) as e:
        raise PlanError(f"{where}: not a request (invalid JSON: {e})", "corrupt") from None
    return _request(fields, where)


def plan_to_dict(plan: Plan, folder: str) -> dict:
    """The JSON document, file models relative to `folder` (the plan's) where they are near it."""
    def request(r: AnalysisRequest) -> dict:
        return {**dataclasses.asdict(r), "model": _relative_model(r.model, folder),
                "input_shape": list(r.input_shape) if r.input_shape else None}

    def device(d: DeviceChoice | None):
        return None if d is None else dataclasses.asdict(d)

    return {"format": FORMAT, "version": VERSION, "memlens": __version__,
            "request": request(plan.request), "companion_optimizer": plan.companion_optimizer,
            "device": device(plan.device), "overrides": dict(plan.overrides),
            "scenarios": [{"name": s.name, "request": request(s.request), "device": device(s.device),
                           "overrides": dict(s.overrides)} for s in plan.scenarios],
            "view": dataclasses.asdict(plan.view)}


def save_plan(path: str, plan: Plan) -> None:
    """Write `plan` to `path` without ever leaving a half-written plan there: a temporary file in
    the same folder (a rename is atomic only within one file system), fsynced, renamed over the
    target. OSError when it cannot be written; the previous file is then untouched."""
    folder = os.path.dirname(os.path.abspath(path))
    text = json.dumps(plan_to_dict(plan, folder), indent=1) + "\n"
    fd, temporary = tempfile.mkstemp(prefix=".plan-", suffix=SUFFIX + ".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.chmod(temporary, _mode_for(path))
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def load_plan(path: str) -> Plan:
    """The plan in `path`, fully checked; PlanError names the file and what is wrong with it."""
    name = path
    text = _read_capped(path)
    if not text.strip():
        raise PlanError(f"{name}: the plan file is empty", "empty")
    try:
        document = json.loads(text)
    except RecursionError:
        raise PlanError(f"{name}: not a usable plan (JSON nested too deeply)", "too deeply nested") from None
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string"):  # the text ran out
            raise PlanError(f"{name}: the plan file is truncated (its JSON ends early, line {e.lineno})",
                            "truncated") from None
        raise PlanError(f"{name}: the plan file is corrupt (invalid JSON at line {e.lineno}, column {e.colno}: "
                        f"{e.msg})", "corrupt") from None
    depth = _depth(document)
    if depth > MAX_DEPTH:
        raise PlanError(f"{name}: not a usable plan (nested {depth} levels deep; a plan has at most {MAX_DEPTH})",
                        "too deeply nested")
    if not isinstance(document, dict) or document.get("format") not in (FORMAT, LEGACY_FORMAT):
        found = document.get("format") if isinstance(document, dict) else None
        if isinstance(found, str) and found.startswith(FORMAT + "/"):
            raise PlanError(f"{name}: plan format {found!r} is not one this MemLens reads "
                            f"({FORMAT} version 1 or {VERSION})", "wrong version")
        raise PlanError(f"{name}: not a MemLens plan (expected \"format\": \"{FORMAT}\")", "not a plan")
    if document["format"] == LEGACY_FORMAT:
        document = {**document, "version": 1}
    version = document.get("version")
    if version not in (1, VERSION) or isinstance(version, bool):
        raise PlanError(f"{name}: plan version {version!r} is not one this MemLens {__version__} reads "
                        f"(1 or {VERSION}); it was written by MemLens {document.get('memlens', '?')}",
                        "wrong version")
    folder = os.path.dirname(os.path.abspath(path))
    return _plan(document, folder, name)


# ---- Private API
def _read_capped(path: str) -> str:
    try:
        # Non-blocking: opening a FIFO named like a plan would otherwise wait for a writer forever.
        with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
            info = os.fstat(f.fileno())
            if not _is_regular(info):
                raise PlanError(f"{path}: not a plan file (not a regular file)", "unreadable")
            if info.st_size > MAX_PLAN_BYTES:
                raise PlanError(f"{path}: too large for a plan ({info.st_size:,} bytes; a plan is at most "
                                f"{MAX_PLAN_BYTES:,})", "too large")
            data = f.read(MAX_PLAN_BYTES + 1)  # the file may have grown since fstat
    except OSError as e:
        raise PlanError(f"{path}: cannot read the plan ({e.strerror})", "unreadable") from None
    if len(data) > MAX_PLAN_BYTES:
        raise PlanError(f"{path}: too large for a plan (more than {MAX_PLAN_BYTES:,} bytes)", "too large")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PlanError(f"{path}: the plan file is corrupt (not UTF-8 text at byte {e.start})", "corrupt") from None


def _is_regular(info) -> bool:
    import stat

    return stat.S_ISREG(info.st_mode)


def _depth(value) -> int:
    """How deep `value` nests (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in item if isinstance(child, (dict, list)))
    return deepest


def _plan(document: dict, folder: str, where: str) -> Plan:
    request = _request(document.get("request"), where, folder)
    optimizer = document.get("companion_optimizer") or request.optimizer
    from engine.categories import OPTIMIZERS

    if optimizer not in OPTIMIZERS:
        raise PlanError(f"{where}: companion_optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if document["version"] == 1:
        return Plan(request, optimizer)
    scenarios = document.get("scenarios", [])
    if not isinstance(scenarios, list):
        raise PlanError(f"{where}: \"scenarios\" must be a list")
    if len(scenarios) > MAX_SCENARIOS:
        raise PlanError(f"{where}: {len(scenarios)} pinned scenarios; at most {MAX_SCENARIOS} can be pinned")
    pinned, names = [], set()
    for i, entry in enumerate(scenarios):
        at = f"{where}: scenario {i + 1}"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise PlanError(f"{at}: needs a \"name\" (text) and a \"request\"")
        name = entry["name"].strip()
        if name in names or len(name) > 60:
            raise PlanError(f"{at}: the name {name[:60]!r} is {'used twice' if name in names else 'too long'}")
        names.add(name)
        pinned.append(PinnedPlan(name, _request(entry.get("request"), at, folder), _device(entry.get("device"), at),
                                 _overrides(entry.get("overrides"), at)))
    return Plan(request, optimizer, _device(document.get("device"), where), _overrides(document.get("overrides"), where),
                tuple(pinned), _view(document.get("view"), where))


def _request(fields, where: str, folder: str | None = None) -> AnalysisRequest:
    known = {f.name for f in dataclasses.fields(AnalysisRequest)}
    if not isinstance(fields, dict):
        raise PlanError(f"{where}: the request is not a JSON object")
    if set(fields) - known:
        raise PlanError(f"{where}: the request has unknown fields: {', '.join(sorted(set(fields) - known))}")
    if isinstance(fields.get("input_shape"), list):
        fields = {**fields, "input_shape": tuple(fields["input_shape"])}
    if folder is not None and isinstance(fields.get("model"), str):
        fields = {**fields, "model": _absolute_model(fields["model"], folder)}
    try:
        return AnalysisRequest(**fields)
    except (MemLensError, TypeError) as e:
        raise PlanError(f"{where}: {e}") from None


def _device(value, where: str) -> DeviceChoice | None:
    if value is None:
        return None
    ok = (isinstance(value, dict) and isinstance(value.get("name"), str) and value.get("kind") in DEVICE_KINDS
          and _is_count(value.get("capacity_bytes")) and value["capacity_bytes"] > 0
          and (value.get("other_processes_bytes") is None or _is_count(value["other_processes_bytes"])))
    if not ok or set(value) - {"name", "kind", "capacity_bytes", "other_processes_bytes"}:
        raise PlanError(f"{where}: \"device\" must be {{name, kind, capacity_bytes > 0, other_processes_bytes}}")
    return DeviceChoice(value["name"], value["kind"], value["capacity_bytes"], value.get("other_processes_bytes"))


def _overrides(value, where: str) -> tuple[tuple[str, int], ...]:
    from engine.footprint import EDITABLE

    value = value or {}
    if not isinstance(value, dict) or any(k not in EDITABLE or not _is_count(v) for k, v in value.items()):
        raise PlanError(f"{where}: \"overrides\" must map {', '.join(EDITABLE)} to byte counts")
    return tuple(sorted(value.items()))


def _view(value, where: str) -> ViewState:
    value = value or {}
    types = {"lower_tab": str, "left_tab": int, "selected_layer": str, "baseline": int}
    if not isinstance(value, dict) or any(k not in types or type(v) is not types[k] for k, v in value.items()):
        raise PlanError(f"{where}: \"view\" must hold lower_tab (text), left_tab (number), selected_layer (text), "
                        "baseline (number)")
    return ViewState(**value)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _split_model(model: str) -> tuple[str, str]:
    """(file, ':function' or '') for file models; ('', '') for torchvision names."""
    kind = source_kind(model)
    if kind == "python":
        path, _, fn = model.rpartition(":")
        return path, ":" + fn
    return (model, "") if kind == "spec" else ("", "")


def _relative_model(model: str, folder: str) -> str:
    path, rest = _split_model(model)
    if not path or not os.path.isabs(path):
        return model
    try:
        relative = os.path.relpath(path, folder)
    except ValueError:  # another drive (Windows)
        return model
    ups = relative.replace("\\", "/").split("/").count("..")
    return (relative + rest) if ups <= MAX_UP_LEVELS else model


def _absolute_model(model: str, folder: str) -> str:
    path, rest = _split_model(model)
    if not path or os.path.isabs(path):
        return model
    return os.path.normpath(os.path.join(folder, path)) + rest


def _mode_for(path: str) -> int:
    """The replaced plan's permissions, else rw-r--r-- (mkstemp's own 0600 would hide it)."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o644


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); where folders cannot be opened, the rename stands."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
