"""Python's cyclic garbage collector, run in the GUI thread only.

Why: any allocation can trigger a collection in whatever thread makes it. When the analysis
worker thread collects a cycle that holds Qt widgets (a closed dialog, an earlier window), their
C++ destructors run there; PySide then waits for the GIL inside Qt's destructor while the GUI
thread, holding the GIL, waits for the Qt mutex that destructor holds: the window freezes for
good (seen in stop 18: worker in ~QObject -> Sbk_GetPyOverride -> GilState::acquire, GUI thread
in ~QMenu -> QBasicMutex::lockInternal). So while a window lives, automatic collection is off and
a GUI-thread timer collects by the same generation thresholds Python would use.
"""
from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

_INTERVAL_MS = 300
_holders = 0  # live collectors: automatic collection comes back when the last one stops


class MainThreadCollector(QObject):
    """Turns automatic collection off and collects from a GUI-thread timer until `stop()`."""

    def __init__(self, parent=None):
        global _holders
        super().__init__(parent)
        self._running = True
        _holders += 1
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._on_tick)
        self._timer.start(_INTERVAL_MS)

    # ---- Public API
    def stop(self) -> None:
        """Stop collecting here; the last collector to stop turns automatic collection back on."""
        global _holders
        if not self._running:
            return
        self._running = False
        self._timer.stop()
        _holders -= 1
        if _holders == 0:
            gc.enable()

    # ---- Private API
    def _on_tick(self) -> None:
        counts, thresholds = gc.get_count(), gc.get_threshold()
        for generation in (2, 1, 0):
            if counts[generation] > thresholds[generation]:
                gc.collect(generation)
                return
