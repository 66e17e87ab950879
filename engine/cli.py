"""`python main.py analyze ...`: the headless way to ask MemLens, printing a table or JSON."""
from __future__ import annotations

import argparse
import json
import sys

from .categories import CATEGORIES, DEVICES, DTYPES, MODES, OPTIMIZERS
from .errors import MemLensError
from .planning_cli import add_planning_arguments, planning_requested, run_planning
from .request import AnalysisRequest, parse_shape
from .units import format_bytes, format_count


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by `analyze` and the GUI launcher."""
    parser.add_argument("--model", default="vgg16", help="torchvision name, spec.yaml/.json, or file.py:function "
                        "(a python file is executed)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input", default=None, help="input shape without the batch, e.g. 3x224x224")
    parser.add_argument("--dtype", default="float32", choices=DTYPES)
    parser.add_argument("--amp", action="store_true", help="autocast (bfloat16 on cpu, float16 on cuda)")
    parser.add_argument("--mode", default="train", choices=MODES)
    parser.add_argument("--optimizer", default="adam", choices=OPTIMIZERS)
    parser.add_argument("--device", default="cpu", choices=DEVICES, help="target device whose allocator is modelled")
    parser.add_argument("--first-step", action="store_true", help="no optimizer state yet (created inside the step)")


def request_from_args(args: argparse.Namespace) -> AnalysisRequest:
    return AnalysisRequest(
        model=args.model, batch=args.batch,
        input_shape=parse_shape(args.input) if args.input else None,
        dtype=args.dtype, amp=args.amp, mode=args.mode,
        optimizer=args.optimizer if args.mode == "train" else "none",
        device=args.device, first_step=args.first_step,
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2, no traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"memlens: error: {message}\n")


def main(argv: list[str]) -> int:
    parser = _Parser(prog="main.py analyze", description="Trace one step and report its memory.")
    add_request_arguments(parser)
    parser.add_argument("--json", metavar="PATH", help="write the analysis as JSON to PATH ('-' for stdout)")
    add_planning_arguments(parser)  # engine/planning_cli.py: --gpu, --capacity, --max-batch, --sweep ...
    args = parser.parse_args(argv)
    try:
        request = request_from_args(args)
        if planning_requested(args):
            return run_planning(args, request)
        if request.source_kind == "python":
            print(f"note: executing python file {args.model.rpartition(':')[0]}", file=sys.stderr)
        from .pipeline import analyze
        from .report import analysis_to_dict

        analysis = analyze(request)
    except MemLensError as e:
        print(f"memlens: error: {e}", file=sys.stderr)
        return 1
    if args.json:
        text = json.dumps(analysis_to_dict(analysis), indent=1)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text)
    else:
        print(summary_text(analysis))
    return 0


def summary_text(a) -> str:
    r = a.request
    lines = [
        f"MemLens: {a.model_name} ({a.source}), input {'x'.join(map(str, a.input_shape))}, {r.dtype}"
        f"{' + AMP' if r.amp else ''}, {r.mode}"
        f"{', ' + r.optimizer if r.mode == 'train' else ''}"
        f"{', first step' if r.first_step and r.mode == 'train' else ''}, target {r.device}",
        f"parameters: {a.parameters:,} ({format_bytes(a.parameter_bytes)})",
        "",
        f"{'layer':<34} {'type':<18} {'output':<20} {'params':>9} {'out':>11} {'saved':>11}",
    ]
    for layer in a.layers:
        shape = "x".join(map(str, layer.output_shape))
        lines.append(
            f"{layer.name[:34]:<34} {layer.type[:18]:<18} {shape[:20]:<20} {format_count(layer.params):>9} "
            f"{format_bytes(layer.output_bytes):>11} {format_bytes(layer.saved_bytes):>11}"
        )
    p = a.peak
    lines += ["", f"traced peak: {format_bytes(p.total_bytes)} ({p.total_bytes:,} bytes) in the {p.phase} "
              f"at '{p.module}'"]
    for c in CATEGORIES:
        lines.append(f"  {c:<16} {format_bytes(p.breakdown[c]):>12}")
    t = a.textbook
    lines.append(f"textbook estimate: {format_bytes(t.peak_bytes)} = {t.formula}")
    for nm in a.not_modelled:
        lines.append(f"not modelled: {nm.label}: {nm.note}")
    for w in a.warnings:
        lines.append(f"warning: {w}")
    lines.append(f"analysed in {a.analysis_seconds:.2f} s ({a.engine})")
    return "\n".join(lines)
