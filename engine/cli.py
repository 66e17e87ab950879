"""`python main.py analyze ...`: the headless way to ask MemLens, printing a table or JSON."""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

from .categories import CATEGORIES
from .distributed_cli import add_distributed_arguments, distributed_fields
from .distributed_cli import summary_lines as distributed_lines
from .choices import DEFAULTS, DEVICES, DTYPES, MODES, OPTIMIZERS
from .errors import MemLensError, RequestError
from .hf_cli import add_hf_arguments, hf_request_fields
from .isolated import analyze_isolated
from .cuda_cli import add_cuda_arguments, cuda_request_fields
from .levers_cli import add_levers_arguments, fit_requested, levers_fields, run_fit
from .planning_cli import add_planning_arguments, planning_requested, run_planning
from .request import AMP_DTYPES, AnalysisRequest, parse_shape
from .sources import check_source
from .layer_csv import layers_text
from .units import format_bytes


def add_request_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by `analyze` and the GUI launcher."""
    parser.add_argument("--model", default=DEFAULTS["model"], help="torchvision name, spec.yaml/.json, or file.py:function "
                        "(a python file is executed)")
    parser.add_argument("--batch", type=int, default=DEFAULTS["batch"])
    parser.add_argument("--input", default=None, help="input shape without the batch, e.g. 3x224x224")
    parser.add_argument("--dtype", default=DEFAULTS["dtype"], choices=DTYPES)
    parser.add_argument("--amp", action="store_true", help="autocast (bfloat16 on cpu, float16 on cuda)")
    parser.add_argument("--amp-dtype", default="", choices=AMP_DTYPES[1:],
                        help="with --amp: the autocast dtype (default: the device's); float16 on cuda trains "
                        "with a GradScaler, bfloat16 without one")
    parser.add_argument("--mode", default=DEFAULTS["mode"], choices=MODES)
    parser.add_argument("--optimizer", default=None, choices=OPTIMIZERS,
                        help=f"default: {DEFAULTS['optimizer']} when training (ignored, with a warning, for inference)")
    parser.add_argument("--device", default=DEFAULTS["device"], choices=DEVICES,
                        help="target device whose allocator is modelled")
    parser.add_argument("--first-step", action="store_true", help="no optimizer state yet (created inside the step)")
    add_hf_arguments(parser)  # engine/hf_cli.py: --seq, --lora-rank, --lora-alpha, --lora-targets
    add_levers_arguments(parser)  # engine/levers_cli.py: --checkpoint, --freeze, --micro-batch


def request_from_args(args: argparse.Namespace) -> AnalysisRequest:
    if args.amp_dtype and not args.amp:
        raise RequestError(f"--amp-dtype {args.amp_dtype} needs --amp (autocast over float32 weights)")
    fields = {"input_shape": parse_shape(args.input) if args.input else None, **hf_request_fields(args)}
    return AnalysisRequest(
        model=args.model, batch=args.batch,
        dtype=args.dtype, amp=args.amp, amp_dtype=args.amp_dtype, mode=args.mode,
        optimizer=args.optimizer,
        device=args.device, first_step=args.first_step, **fields,
        **levers_fields(args),  # engine/levers_cli.py: --checkpoint, --freeze, --micro-batch
        **distributed_fields(args),  # engine/distributed_cli.py
    )


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own errors: one line, exit 2, no traceback
        self.exit(2, f"memlens: error: {message} (see --help)\n")


# A python file that never returns is stopped after this long; a 3-billion-parameter spec
# analyses in under a minute here, so 10 minutes only ever stops a model that hangs.
DEFAULT_TIMEOUT_S = 600.0


def main(argv: list[str]) -> int:
    """Exit codes: 0 done, 1 a problem with the model or request, 2 bad arguments, 3 a bug in
    MemLens, 130 Ctrl-C. Errors are one line on stderr."""
    parser = _Parser(prog="main.py analyze", description="Trace one step and report its memory.")
    add_request_arguments(parser)
    parser.add_argument("--json", metavar="PATH", help="write the analysis as JSON to PATH ('-' for stdout)")
    parser.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help=f"stop an analysis that runs longer (default {DEFAULT_TIMEOUT_S:g}; 0: never): "
                        "a python file that never returns is stopped, not waited on")
    add_planning_arguments(parser)  # engine/planning_cli.py: --gpu, --capacity, --max-batch, --sweep ...
    add_cuda_arguments(parser)  # engine/cuda_cli.py: --alloc-conf, --cublas-workspace-config, --cuda-arch ...
    add_distributed_arguments(parser)  # engine/distributed_cli.py: --strategy, --world-size, --offload ...
    return run_with_exit_codes(lambda: _run(parser.parse_args(argv)))


def run_with_exit_codes(run) -> int:
    """Run a command's body and turn what it raises into one stderr line and the exit code
    `main` documents (shared by `analyze` and `report`)."""
    try:
        return run()
    except KeyboardInterrupt:
        print("memlens: interrupted", file=sys.stderr)
        return 130
    except MemLensError as e:
        print(f"memlens: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `... --json - | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # a bug in MemLens: still one line, and a code that says so
        first = (str(e).strip().splitlines() or [""])[0]
        print(f"memlens: internal error: {type(e).__name__}: {first} (please report it)", file=sys.stderr)
        return 3


def _run(args) -> int:
    # Everything that needs no torch comes first: a bad request or file is reported at once.
    request = request_from_args(args).replace(**cuda_request_fields(args))
    check_source(request.model)
    if fit_requested(args):  # --checkpoint fit: a search against --gpu/--capacity
        return run_fit(args, request)
    if planning_requested(args):
        return run_planning(args, request)
    output = _JsonOutput(args.json) if args.json else None
    try:
        if request.source_kind == "python":
            print(f"note: executing python file {args.model.rpartition(':')[0]}", file=sys.stderr)
        if request.ignored_optimizer and args.json:  # the summary lists it with the other warnings
            print(f"memlens: warning: {request.ignored_optimizer}", file=sys.stderr)
        analysis = analyze_isolated(request, timeout=args.timeout or None)
        from .report import analysis_to_dict

        if output is not None:
            output.write(json.dumps(analysis_to_dict(analysis), indent=1))
        else:
            print(summary_text(analysis))
    finally:
        if output is not None:
            output.discard()
    return 0


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


class _JsonOutput:
    """Where `--json` writes. The destination is checked before the analysis (a temporary file
    is created next to it) and replaced atomically after: a failure leaves no half-written file."""

    def __init__(self, path: str):
        self.path, self.temp = path, None
        if path == "-":
            return
        if os.path.exists(path) and not os.path.isdir(path) and not os.path.isfile(path):
            # /dev/null, a named pipe: written in place (replacing a device node would be wrong)
            if not os.access(path, os.W_OK):
                raise RequestError(f"--json {path}: not writable")
            return
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path):
            raise RequestError(f"--json {path}: is a folder; name a file in it")
        if not os.path.isdir(folder):
            raise RequestError(f"--json {path}: folder {folder} does not exist")
        try:
            fd, self.temp = tempfile.mkstemp(prefix=".memlens-", suffix=".json.tmp", dir=folder)
            os.close(fd)
        except OSError as e:
            raise RequestError(f"--json {path}: cannot write in {folder}: {e.strerror}") from None

    def write(self, text: str) -> None:
        if self.path == "-":
            print(text)
            return
        if self.temp is None:
            try:
                with open(self.path, "w", encoding="utf-8") as f:
                    f.write(text)
            except OSError as e:
                raise RequestError(f"--json {self.path}: writing failed: {e.strerror}") from None
            return
        try:
            with open(self.temp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(self.temp, self.path)
            self.temp = None
        except OSError as e:
            raise RequestError(f"--json {self.path}: writing failed: {e.strerror}") from None

    def discard(self) -> None:
        if self.temp is not None:
            try:
                os.unlink(self.temp)
            except OSError:
                pass
            self.temp = None


def summary_text(a) -> str:
    from .lever_fields import summary_lines as lever_lines

    r = a.request
    lines = [
        f"MemLens: {a.model_name} ({a.source}), input {'x'.join(map(str, a.input_shape))}, {r.dtype}"
        f"{f' + AMP ({r.autocast_dtype})' if r.amp else ''}, {r.mode}"
        f"{', ' + r.optimizer if r.mode == 'train' else ''}"
        f"{', first step' if r.first_step and r.mode == 'train' else ''}, target {r.device}",
        f"parameters: {a.parameters:,} ({format_bytes(a.parameter_bytes)})",
        *lever_lines(a),  # the levers pulled and what they saved (engine/lever_fields.py), LoRA included
        "",
        layers_text(a),
    ]
    p = a.peak
    lines += ["", f"traced peak: {format_bytes(p.total_bytes)} ({p.total_bytes:,} bytes) in the {p.phase} "
              f"at '{p.module}'"]
    for c in CATEGORIES:
        lines.append(f"  {c:<16} {format_bytes(p.breakdown[c]):>12}")
    from .footprint import footprint_text  # issue 7: the footprint lines, with their sources

    lines += footprint_text(a)
    t = a.textbook
    lines.append(f"textbook estimate: {format_bytes(t.peak_bytes)} = {t.formula}")
    for nm in a.not_modelled:
        lines.append(f"not modelled: {nm.label}: {nm.note}")
    lines += distributed_lines(a)  # engine/distributed_cli.py
    for w in a.warnings:
        lines.append(f"warning: {w}")
    lines.append(f"analysed in {a.analysis_seconds:.2f} s ({a.engine})")
    return "\n".join(lines)


def reproduce_command(request: AnalysisRequest, device=None, subcommand: str = "report",
                      outputs: tuple[str, ...] = ("--pdf", "report.pdf")) -> str:
    """The shell command that asks for `request` (and plans on `device`) again: every step setting
    spelled out, so it reproduces the report whatever the defaults become."""
    import shlex

    args = ["python", "main.py", subcommand, "--model", request.model, "--batch", str(request.batch)]
    if request.input_shape is not None:
        args += ["--input", "x".join(map(str, request.input_shape))]
    args += ["--dtype", request.dtype, "--mode", request.mode, "--optimizer", request.optimizer,
             "--device", request.device]
    args += ["--amp"] * request.amp + ["--amp-dtype", request.amp_dtype] * bool(request.amp and request.amp_dtype)
    args += ["--first-step"] * request.first_step
    if device is not None and device.kind == "catalog":
        args += ["--gpu", device.name]
    elif device is not None and device.index is not None:  # a GPU detected on this machine
        args += ["--gpu", str(device.index)]
    elif device is not None:  # a capacity typed by the user, or this machine's RAM
        args += ["--capacity", f"{device.capacity_bytes}B"]
    return " ".join(shlex.quote(a) for a in [*args, *outputs])
