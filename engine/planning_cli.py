"""The planning flags of `python main.py analyze`: the fit check on a device, the largest batch /
resolution / sequence that fits, and sweeps, printed as text or written as CSV / JSON rows.

    analyze --model resnet50 --gpu "A100 80GB"                 # fit check of the request
    analyze --model resnet50 --max-batch --capacity 24GiB --json -
    analyze --model resnet50 --sweep batch=1,2,4,...,512 --csv peaks.csv
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys

from .errors import RequestError
from .units import format_bytes, parse_bytes


def add_planning_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("capacity planning")
    group.add_argument("--capacity", metavar="SIZE", help="device capacity to plan for, e.g. 24GiB or 80GB")
    group.add_argument("--gpu", metavar="NAME|INDEX", help='a catalog GPU ("A100 80GB") or a detected one (0)')
    group.add_argument("--max-batch", action="store_true", help="find the largest batch that fits")
    group.add_argument("--max-resolution", action="store_true", help="the largest square input that fits at --batch")
    group.add_argument("--max-seq", action="store_true", help="the longest token sequence that fits at --batch")
    group.add_argument("--sweep", metavar="PARAM=VALUES", help="e.g. batch=1,2,4,...,512 (or resolution= / seq=)")
    group.add_argument("--csv", metavar="PATH", help="write sweep rows as CSV to PATH ('-' for stdout)")
    group.add_argument("--overhead", metavar="LINE=SIZE", action="append", default=[],
                       help="replace a footprint line's default: cublas, workspace, reserve, context, others "
                            "(e.g. context=300MiB); repeatable")


def planning_requested(args: argparse.Namespace) -> bool:
    return bool(args.capacity or args.gpu or args.max_batch or args.max_resolution or args.max_seq or args.sweep)


def run_planning(args: argparse.Namespace, request) -> int:
    """Run what the flags ask for; a `MemLensError` propagates to the caller's one-line message."""
    from .footprint import fit_check
    from .pipeline import analyze
    from .planner import max_batch, max_resolution, max_sequence, parse_values, sweep

    device = _device(args)
    overrides = _overrides(args.overhead)
    if device.kind != "host" and request.device != "cuda":
        print("note: planning for a GPU: tracing with --device cuda rules", file=sys.stderr)
        request = request.replace(device="cuda")
    searches = [(flag, fn) for flag, fn in (("max_batch", max_batch), ("max_resolution", max_resolution),
                                             ("max_seq", max_sequence)) if getattr(args, flag)]
    if len(searches) + bool(args.sweep) > 1:
        raise RequestError("choose one of --max-batch, --max-resolution, --max-seq, --sweep")
    if args.sweep:
        parameter, values = parse_values(args.sweep)
        points = sweep(request, device, parameter, values, overrides, on_point=_echo if args.csv != "-" else None)
        _write_sweep(args, device, points)
        return 0
    if searches:
        flag, search = searches[0]
        found = search(request, device, overrides)
        if args.json:  # the analysis at the answer, plus the search's keys
            from .report import analysis_to_dict

            doc = {**analysis_to_dict(found.analysis), **_largest_dict(found, flag), "device": device.name,
                   "fit": _fit_dict(found.fit)}
            _write(args.json, json.dumps(doc, indent=1))
        else:
            print(_largest_text(found, device))
        return 0
    analysis = analyze(request)
    fit = fit_check(analysis, device, overrides)
    if args.json:
        from .report import analysis_to_dict

        _write(args.json, json.dumps({**analysis_to_dict(analysis), "fit": _fit_dict(fit)}, indent=1))
    else:
        from .cli import summary_text

        print(summary_text(analysis))
        print(fit_text(fit))
    return 0


def fit_text(fit) -> str:
    lines = [f"footprint on {fit.device.name} ({format_bytes(fit.capacity_bytes)}, {fit.device.source}):"]
    for line in fit.lines:
        lines.append(f"  {line.label:<42} {format_bytes(line.bytes):>11}  {line.source}")
    lines.append(f"  {'total':<42} {format_bytes(fit.total_bytes):>11}")
    lines.append(fit.describe())
    lines += [f"warning: {w}" for w in fit.warnings]
    return "\n".join(lines)


# ---- Private API
def _device(args):
    from .devices import custom_device, resolve_device

    if args.capacity and args.gpu:
        raise RequestError("give either --capacity or --gpu, not both")
    if args.capacity:
        return custom_device(parse_bytes(args.capacity))
    if args.gpu:
        return resolve_device(args.gpu)
    raise RequestError("planning needs a device: --capacity 24GiB, --gpu \"A100 80GB\" or --gpu 0")


def _overrides(items: list[str]) -> dict[str, int]:
    out = {}
    for item in items:
        key, sep, size = item.partition("=")
        if not sep:
            raise RequestError(f"--overhead {item!r}: write LINE=SIZE, e.g. context=300MiB")
        out[key.strip()] = 0 if size.strip() == "0" else parse_bytes(size)
    return out


def _largest_dict(found, flag: str) -> dict:
    """With accumulation, `max_batch` is the global batch and `max_micro_batch` what was searched."""
    accumulating = found.parameter == "micro_batch"
    points = [{"value": p.batch if accumulating else p.value, "peak_bytes": p.peak_bytes}
              | ({"micro_batch": p.value} if accumulating else {}) for p in found.points]
    return {
        flag: found.batch if accumulating else found.value,  # max_batch, max_resolution or max_seq
        **({"max_micro_batch": found.value, "accumulation_steps": found.accumulation_steps} if accumulating else {}),
        "peak_bytes_at_max": found.peak_bytes,
        "peak_bytes_at_max_plus_one": found.next_peak_bytes,
        "capacity_bytes": found.capacity_bytes,
        "limit_reached": found.limit_reached,
        "traces": found.traces,
        "seconds": round(found.seconds, 3),
        "points": points,
    }


def _fit_dict(fit) -> dict:
    from .report import fit_to_dict  # one writer for the "fit" key (the GUI's JSON export uses it too)

    return fit_to_dict(fit)


def _largest_text(found, device) -> str:
    if found.parameter == "micro_batch":
        head = (f"largest batch on {device.name} ({format_bytes(device.capacity_bytes)}): {found.batch} = "
                f"micro-batch {found.value} × {found.accumulation_steps} accumulation steps (held fixed)")
    else:
        head = f"largest {_WORDS_TEXT[found.parameter]} on {device.name} ({format_bytes(device.capacity_bytes)}): {found.value}"
    lines = [head, f"  peak at {found.value_text()}: {format_bytes(found.peak_bytes)} ({found.peak_bytes:,} bytes)"]
    if found.next_peak_bytes is not None:
        lines.append(f"  peak at {found.value_text(found.value + 1)}: {format_bytes(found.next_peak_bytes)} "
                     f"({found.next_peak_bytes:,} bytes)")
    if found.limit_reached:
        lines.append(f"  still fits at the search limit ({found.value})")
    lines.append(fit_text(found.fit))
    lines.append(f"{found.traces} traces, {found.seconds:.2f} s")
    return "\n".join(lines)


_WORDS_TEXT = {"batch": "batch", "resolution": "resolution", "seq": "sequence length"}
SWEEP_COLUMNS = ("parameter", "value", "peak_bytes", "tensor_peak_bytes", "capacity_bytes", "state")


def _echo(point) -> None:
    print(f"{point.parameter} {point.value}: {format_bytes(point.peak_bytes)} ({point.state})", file=sys.stderr)


def _write_sweep(args, device, points) -> None:
    rows = [{c: getattr(p, c) for c in SWEEP_COLUMNS} for p in points]
    if args.json:
        _write(args.json, json.dumps({"device": device.name, "capacity_bytes": device.capacity_bytes,
                                      "rows": rows}, indent=1))
    if args.csv or not args.json:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=SWEEP_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        _write(args.csv or "-", buffer.getvalue().rstrip("\n"))


def _write(path: str, text: str) -> None:
    if path == "-":
        print(text)
        return
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError as e:
        raise RequestError(f"cannot write {path}: {e.strerror}") from None
