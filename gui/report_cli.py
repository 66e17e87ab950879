"""`python main.py report --model NAME ... --pdf plan.pdf [--png page.png] [--csv layers.csv]
[--gpu "A100 80GB" | --capacity 24GiB]`: the capacity-plan report without a window.

It runs headless (Qt's offscreen platform when no display is set) and takes the same step flags
as `analyze` (engine/cli.py) and its device flags (engine/planning_cli.py). Exit codes as
`analyze`: 0 done, 1 a problem with the model or request, 2 bad arguments, 3 a bug, 130 Ctrl-C.
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    from engine.cli import DEFAULT_TIMEOUT_S, _Parser, _seconds, add_request_arguments, run_with_exit_codes

    parser = _Parser(prog="main.py report", description="Write the capacity-plan report (PDF) of one step.")
    add_request_arguments(parser)
    out = parser.add_argument_group("outputs (at least one)")
    out.add_argument("--pdf", metavar="PATH", help="the two-page capacity-plan report")
    out.add_argument("--png", metavar="PATH", help="the report's first page as a picture (150 dpi)")
    out.add_argument("--csv", metavar="PATH", help="the layer table as CSV (raw bytes)")
    out.add_argument("--json", metavar="PATH", help="the analysis as JSON (docs/SCHEMA.md)")
    plan = parser.add_argument_group("device")
    plan.add_argument("--gpu", metavar="NAME|INDEX", help='a catalog GPU ("A100 80GB") or a detected one (0)')
    plan.add_argument("--capacity", metavar="SIZE", help="a device capacity, e.g. 24GiB or 80GB")
    plan.add_argument("--overhead", metavar="LINE=SIZE", action="append", default=[],
                      help="replace a footprint line's default (cublas, workspace, reserve, context, others)")
    parser.add_argument("--page", choices=("A4", "Letter"), default="A4")
    parser.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help="stop an analysis that runs longer (0: never)")
    args = parser.parse_args(argv)
    if not (args.pdf or args.png or args.csv or args.json):
        parser.error("nothing to write: give --pdf, --png, --csv or --json")
    return run_with_exit_codes(lambda: _run(args))


def _run(args) -> int:
    import dataclasses
    import json

    from engine.choices import DEFAULTS
    from engine.cli import request_from_args, reproduce_command
    from engine.errors import MemLensError, RequestError
    from engine.planning_cli import _device, _overrides
    from engine.sources import check_source

    request = request_from_args(args)
    check_source(request.model)
    for flag in ("pdf", "png", "csv", "json"):  # a bad destination is reported before any tracing
        path = getattr(args, flag)
        if path and path != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise RequestError(f"--{flag} {path}: folder {os.path.dirname(os.path.abspath(path))} does not exist")
    device = _device(args) if (args.gpu or args.capacity) else None
    overrides = _overrides(args.overhead)
    if device is not None and device.kind != "host" and request.device != "cuda":
        print("note: planning for a GPU: tracing with --device cuda rules", file=sys.stderr)
        request = request.replace(device="cuda")
    if request.source_kind == "python":
        print(f"note: executing python file {args.model.rpartition(':')[0]}", file=sys.stderr)

    from engine.isolated import analyze_isolated
    from engine.layer_csv import write_layers_csv
    from engine.report import analysis_document, gather_report

    from .controller import companion_request

    analysis = analyze_isolated(request, timeout=args.timeout or None)
    other = companion_request(request, request.optimizer if request.mode == "train" else DEFAULTS["optimizer"])
    print(f"note: the same model in {other.mode}…", file=sys.stderr)
    try:
        companion, companion_note = analyze_isolated(other, timeout=args.timeout or None), ""
    except MemLensError as e:
        companion, companion_note = None, f"{other.mode} could not be analysed: {e}"
    outputs = [part for flag in ("pdf", "png", "csv", "json") if getattr(args, flag)
               for part in (f"--{flag}", getattr(args, flag))]
    data = gather_report(analysis, device, overrides, companion=companion,
                         command=reproduce_command(request, device, outputs=tuple(outputs)), progress=_echo)
    if companion is None:
        data = dataclasses.replace(data, companion_note=companion_note)
    try:
        if args.csv:
            write_layers_csv(analysis, args.csv)
        if args.json:
            text = json.dumps(analysis_document(analysis, data.fit), indent=1)
            if args.json == "-":
                print(text)
            else:
                with open(args.json, "w", encoding="utf-8") as f:
                    f.write(text + "\n")
    except OSError as e:
        raise RequestError(f"cannot write {e.filename}: {e.strerror}") from None
    if args.pdf or args.png:
        _write_pictures(args, data)
    verdict = data.fit.describe() if data.fit is not None else "no device chosen"
    print(f"{analysis.model_name}: peak {analysis.peak.total_bytes:,} bytes; {verdict}", file=sys.stderr)
    return 0


def _write_pictures(args, data) -> None:
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before the QApplication: no display needed
    import torch
    from PySide6.QtWidgets import QApplication

    from engine.errors import RequestError

    from .report_pdf import write_report_pdf, write_report_png

    app = QApplication.instance() or QApplication(sys.argv[:1])  # noqa: F841 (fonts need an application)
    options = {"torch_version": torch.__version__, "page_size": args.page}
    if args.pdf:
        try:
            pages = write_report_pdf(args.pdf, data, **options)
        except OSError as e:
            raise RequestError(f"--pdf {args.pdf}: {e}") from None
        print(f"wrote {args.pdf} ({pages} pages)", file=sys.stderr)
    if args.png and not write_report_png(args.png, data, **options):
        raise RequestError(f"--png {args.png}: could not write the picture")


def _echo(fraction: float, message: str) -> None:
    if message != "done":
        print(f"note: {message}…", file=sys.stderr)
