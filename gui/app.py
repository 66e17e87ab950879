"""`python main.py [--model ...] [--screenshot out.png]`: start the desktop application.

The window appears before torch is imported (the engine loads in a background thread), then the
requested model (VGG-16, batch 32 by default) is analysed.
"""
from __future__ import annotations

import argparse
import sys


def parse_args(argv):
    from engine.cli import add_request_arguments  # light: argparse + constants

    parser = argparse.ArgumentParser(prog="main.py", description="MemLens desktop application")
    add_request_arguments(parser)
    parser.add_argument("--screenshot", metavar="PNG", help="render the window offscreen after the analysis, save it, exit")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.screenshot:
        import os

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from engine.cli import request_from_args
    from engine.errors import MemLensError

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("MemLens")
    try:
        request = request_from_args(args)
    except MemLensError as e:
        print(f"memlens: error: {e}", file=sys.stderr)
        return 2
    from .window import MainWindow

    window = MainWindow(request)
    window.show()
    if args.screenshot:
        return _screenshot(app, window, args.screenshot)
    window.start()
    return app.exec()


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
