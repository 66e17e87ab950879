"""How the memory timeline copes with a million events (issue: smooth with 1M events).

A real analysis (resnet18) is stretched to N events by repeating its event log, so the curves
keep a realistic shape; the widget then draws it, zooms in and pans offscreen. Prints seconds
per operation. Run: `.venv/bin/python benchmarks/timeline_render.py [N]`.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from engine import AnalysisRequest, analyze  # noqa: E402
from engine.analysis import EventLog  # noqa: E402
from engine.timeline import find_peak  # noqa: E402


def stretched(analysis, n_events: int):
    ev = analysis.events
    reps = max(1, n_events // len(ev))

    def tile(a):
        return np.tile(a, reps)

    # Each repetition is a whole step, so live bytes return to where they started.
    log = EventLog(nbytes=tile(ev.nbytes), storage=tile(ev.storage), category=tile(ev.category),
                   module=tile(ev.module), phase=tile(ev.phase), modules=ev.modules)
    curves = {}
    for cat, curve in analysis.timeline.curves.items():
        deltas = np.diff(curve)
        curves[cat] = np.concatenate([[curve[0]], curve[0] + np.cumsum(np.tile(deltas, reps))])
    total = np.sum(list(curves.values()), axis=0)
    n = len(log)
    timeline = dataclasses.replace(analysis.timeline, curves=curves, total=total,
                                   phase_spans=(("forward", 0, n // 3), ("backward", n // 3, 2 * n // 3),
                                                ("optimizer", 2 * n // 3, n)))
    return dataclasses.replace(analysis, events=log, timeline=timeline, peak=find_peak(timeline, log))


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    app = QApplication.instance() or QApplication([])
    from gui.timeline import MemoryTimelineWidget

    big = stretched(analyze(AnalysisRequest(model="resnet18", batch=2)), n)
    widget = MemoryTimelineWidget()
    widget.resize(1400, 500)
    widget.show()
    t = time.perf_counter()
    widget.set_analysis(big)
    app.processEvents()
    widget.grab()
    print(f"{len(big.events):,} events: set_analysis + first paint {time.perf_counter() - t:.2f} s")
    for label, (x0, x1) in (("zoom to 1%", (n * 0.40, n * 0.41)), ("pan", (n * 0.60, n * 0.61)),
                            ("zoom out", (0, n))):
        t = time.perf_counter()
        widget.setXRange(x0, x1, padding=0)
        app.processEvents()
        widget.grab()
        print(f"{label}: {time.perf_counter() - t:.3f} s per repaint")
    t = time.perf_counter()
    for point in np.linspace(0, n - 1, 20).astype(int):
        widget.set_cursor(int(point))
        app.processEvents()
    print(f"cursor move: {(time.perf_counter() - t) / 20 * 1000:.1f} ms each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
