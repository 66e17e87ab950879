"""`memlens [--model ...] [--screenshot out.png] [plan.memlens]`: start the desktop application.

The window appears before torch is imported (the engine loads on the worker thread once the
window has painted). Without request flags it reopens the last model and settings; when the last
analysis is cached for them it is on screen at once, while torch loads behind it.
"""
from __future__ import annotations

import argparse
import os
import sys


def run() -> None:
    """The `memlens` console script: `memlens` opens the window, `memlens analyze ...` is the CLI."""
    sys.exit(dispatch(sys.argv[1:]))


def dispatch(argv: list[str]) -> int:
    if argv and argv[0] in ("analyze", "report"):
        try:  # a Ctrl-C while the command is still importing reads as one inside it: one line, 130
            if argv[0] == "analyze":
                from engine.cli import main as command
            else:  # the capacity-plan report, headless (gui/report_cli.py)
                from .report_cli import main as command
            return command(argv[1:])
        except KeyboardInterrupt:
            print("memlens: interrupted", file=sys.stderr)
            return 130
    return main(argv)


_UNSET = object()  # the default of every request flag: a flag given on the command line is never it


def parse_args(argv):
    """`args.explicit` names the request flags given on the command line, even those given the
    default's value (`--model vgg16` asks for vgg16, not for the last session's model)."""
    from engine.cli import add_request_arguments  # light: argparse + constants
    from engine.distributed_cli import add_distributed_arguments  # --strategy, --world-size ... (one GPU of N)

    defaults = argparse.ArgumentParser(add_help=False)
    add_request_arguments(defaults)
    add_distributed_arguments(defaults)
    defaults = vars(defaults.parse_args([]))
    parser = argparse.ArgumentParser(prog="memlens", description="MemLens desktop application "
                                     "(`memlens analyze --help` for the command line)")
    add_request_arguments(parser)
    add_distributed_arguments(parser)
    parser.set_defaults(**dict.fromkeys(defaults, _UNSET))
    parser.add_argument("--screenshot", metavar="PNG", help="render the window offscreen after the analysis, save it, exit")
    parser.add_argument("plan", nargs="?", help="a saved plan (.memlens) to open: its model, settings, device and "
                        "pinned scenarios")
    args = parser.parse_args(argv)
    args.explicit = {key for key in defaults if getattr(args, key) is not _UNSET}
    for key in defaults.keys() - args.explicit:
        setattr(args, key, defaults[key])
    return args


def initial_request(args):
    """The request flags if any were given, else the last request this user analysed."""
    from engine.cli import request_from_args

    if not args.explicit:
        from PySide6.QtCore import QSettings

        from .plan import PlanError, request_from_json

        saved = QSettings("MemLens", "MemLens").value("last_request")
        if saved:
            try:
                return request_from_json(saved, "the saved last request")
            except PlanError as e:
                print(f"memlens: {e}; starting from the defaults", file=sys.stderr)
    return request_from_args(args)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from engine.errors import MemLensError

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MemLens")
    app.setOrganizationName("MemLens")
    plan, why = _plan_argument(args)
    try:
        request = plan.request if plan is not None else initial_request(args)
    except MemLensError as e:
        print(f"memlens: error: {e}", file=sys.stderr)
        return 2
    from .window import MainWindow

    window = MainWindow(request)
    window.show()
    if plan is not None:
        window.plans.apply(plan, analyse=False)  # the plan's request is the first analysis
    elif why:
        window.show_error(why)  # the window opens as usual, and says why the plan did not
    if args.screenshot:
        code = _screenshot(app, window, args.screenshot)
    else:
        window.start()
        code = app.exec()
    return _exit_now(window, code)


def _plan_argument(args):
    """(plan, '') for a readable plan given on the command line, (None, why) for a refused one."""
    if not args.plan:
        return None, ""
    from .plan_session import plan_for_start

    plan, why = plan_for_start(args.plan)
    if why:
        print(f"memlens: error: {why}", file=sys.stderr)
    return plan, why


def _exit_now(window, code: int):
    """Closing must end the process at once, even mid-analysis or mid-import of torch. Python's
    own shutdown takes 3+ s once torch is loaded (measured: 3.3 s after a closed densenet201 run),
    and a daemon thread still inside torch can crash it. Everything worth keeping (settings, the
    cache) is written by now, so end the process without that shutdown."""
    window.controller.shutdown(0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _screenshot(app, window, path: str) -> int:
    from PySide6.QtCore import QTimer

    result = {"code": 0}

    def save(*_):
        QTimer.singleShot(300, lambda: (window.grab().save(path), app.quit()))

    def failed(message):
        result["code"] = 1
        print(f"memlens: error: {message}", file=sys.stderr)
        save()

    window.sig_analysis_shown.connect(save)
    window.sig_error_shown.connect(failed)
    window.start()
    app.exec()
    return result["code"]
