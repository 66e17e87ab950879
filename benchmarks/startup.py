"""Launch to window, and launch to numbers on screen, with and without the cached last analysis.

Each figure is wall-clock seconds from starting a fresh interpreter (what `memlens` does) to:
- *window*: the first frame is painted (target: under 1.5 s; torch is not imported yet);
- *numbers, cached*: the last analysis is on screen, read back from the cache (target: under 2 s);
- *numbers, uncached*: the analysis is traced first, after importing torch (for comparison).

Settings and the cache go to a throwaway folder. Run: `.venv/bin/python benchmarks/startup.py`
(`--runs N`, `--model M --batch B`); under a real display set QT_QPA_PLATFORM=xcb.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = """
import sys, time
from PySide6.QtWidgets import QApplication
import gui.window as window
start = window.MainWindow.start
def start_and_time(self):
    self.sig_first_frame.connect(lambda: print('window', time.time(), 'torch' in sys.modules, flush=True))
    self.sig_numbers_shown.connect(lambda analysis: print('numbers', time.time(), flush=True))
    self.sig_analysis_shown.connect(lambda analysis: self.close())
    self.sig_error_shown.connect(lambda message: (print('error', message, flush=True), self.close()))
    start(self)
window.MainWindow.start = start_and_time
import gui.app
sys.exit(gui.app.main(sys.argv[1:]))
"""
TARGETS = {"window": 1.5, "numbers, cached": 2.0}


def launch(args: list[str], folder: str) -> dict[str, float]:
    env = dict(os.environ, MEMLENS_CACHE_DIR=os.path.join(folder, "cache"), XDG_CONFIG_HOME=folder,
               QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    started = time.time()
    out = subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    marks = {}
    for line in out.stdout.splitlines():
        word, *rest = line.split()
        if word in marks:
            continue  # the first time counts
        if word == "error":
            raise SystemExit(f"the analysis failed: {' '.join(rest)}")
        if word == "window" and rest[1] == "True":
            raise SystemExit("torch was imported before the first frame")
        marks[word] = float(rest[0]) - started
    if set(marks) != {"window", "numbers"}:
        raise SystemExit(f"no timings (exit {out.returncode}): {out.stderr[-2000:]}")
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--batch", default="8")
    opts = parser.parse_args()
    args = ["--model", opts.model, "--batch", opts.batch]
    times: dict[str, list[float]] = {"window": [], "numbers, cached": [], "numbers, uncached": []}
    for _ in range(opts.runs):
        with tempfile.TemporaryDirectory(prefix="memlens-startup-") as folder:
            first = launch(args, folder)  # empty cache: traces, then stores the analysis
            second = launch(args, folder)  # the same request again: read back from the cache
        times["window"] += [first["window"], second["window"]]
        times["numbers, uncached"].append(first["numbers"])
        times["numbers, cached"].append(second["numbers"])
    ok = True
    for name, values in times.items():
        median = statistics.median(values)
        target = TARGETS.get(name)
        verdict = "" if target is None else f" (target {target} s: {'ok' if median < target else 'MISSED'})"
        ok &= target is None or median < target
        print(f"launch to {name:<18} best {min(values):5.2f} s, median {median:5.2f} s{verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
