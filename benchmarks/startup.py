"""Time from launching the interpreter to the main window being shown (target: under 1.5 s).

Runs, in a fresh process, what `python main.py` does up to `window.show()` (the engine and
torch load afterwards, in the background), several times, and prints the best and median
wall-clock seconds. Run: `.venv/bin/python benchmarks/startup.py`.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHOW = (
    "import sys; from gui.app import parse_args; from PySide6.QtWidgets import QApplication; "
    "app = QApplication(sys.argv[:1]); from engine.cli import request_from_args; "
    "from gui.window import MainWindow; w = MainWindow(request_from_args(parse_args([]))); w.show(); "
    "app.processEvents(); print('torch' in sys.modules)"
)


def main() -> int:
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", SHOW], cwd=ROOT, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if out.returncode != 0 or out.stdout.strip() != "False":
            print(out.stderr)
            return 1
    print(f"launch to window shown: best {min(times):.2f} s, median {statistics.median(times):.2f} s "
          f"(target 1.5 s; torch not yet imported)")
    return 0 if statistics.median(times) < 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
