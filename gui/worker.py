"""The one place where threads meet Qt: engine calls run here, results come back as signals.

One analysis runs at a time (the tracer installs process-wide hooks). A request that arrives
while one runs cancels it and is run next (newest wins). Every exception becomes `sig_failed`,
progress is throttled to ~20 updates a second, and the engine itself is imported in the
background so the window appears before torch has loaded.
"""
from __future__ import annotations

import threading
import time
import traceback

from PySide6.QtCore import QObject, Signal


class _Engine:
    """The engine entry points the GUI uses, handed over once imported."""

    def __init__(self, analyze, errors, sources):
        self.analyze, self.errors, self.sources = analyze, errors, sources


class EngineLoader(QObject):
    """Imports the engine (torch, torchvision) off the GUI thread."""

    sig_ready = Signal(object)
    """The loaded engine (`.analyze`, `.errors`, `.sources`)."""
    sig_failed = Signal(str)
    """Why the engine could not be imported."""

    def start(self) -> None:
        threading.Thread(target=self._run, name="memlens-import", daemon=True).start()

    def _run(self) -> None:
        try:
            from engine import errors, pipeline, sources

            sources.catalog()
            self.sig_ready.emit(_Engine(pipeline.analyze, errors, sources))
        except Exception as e:  # pragma: no cover - a broken install
            self.sig_failed.emit(f"could not load the engine: {type(e).__name__}: {e}")


class AnalysisWorker(QObject):
    """Runs `engine.analyze` in a background thread."""

    sig_started = Signal(object)
    """The request that started running."""
    sig_progress = Signal(float, str)
    """Fraction done (0..1) and what is happening."""
    sig_finished = Signal(object)
    """The finished `Analysis`."""
    sig_failed = Signal(str)
    """A readable message (engine errors as they are; anything else with its type)."""
    sig_cancelled = Signal()
    """The running analysis stopped on request."""

    PROGRESS_INTERVAL_S = 0.05

    def __init__(self, parent=None):
        super().__init__(parent)
        self._engine = None
        self._lock = threading.Lock()
        self._running = False
        self._cancel = threading.Event()
        self._pending = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # ---- Public API
    def set_engine(self, engine_module) -> None:
        self._engine = engine_module
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.submit(pending)

    def submit(self, request) -> None:
        """Run `request`; supersedes (cancels) one that is running."""
        if self._closed:
            return
        with self._lock:
            if self._engine is None or self._running:
                self._pending = request
                if self._running:
                    self._cancel.set()
                return
            self._running = True
            self._cancel = threading.Event()
            cancel = self._cancel
        self.sig_started.emit(request)
        self._thread = threading.Thread(target=self._run, args=(request, cancel), name="memlens-analysis", daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        with self._lock:
            self._pending = None
            self._cancel.set()

    def is_running(self) -> bool:
        return self._running

    def shutdown(self, timeout_s: float = 10.0) -> None:
        """Stop for good (the window is closing): cancel, wait briefly, emit nothing more."""
        self._closed = True
        self.cancel()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    # ---- Private API
    def _run(self, request, cancel: threading.Event) -> None:
        last = [0.0]

        def progress(fraction: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] >= self.PROGRESS_INTERVAL_S or fraction >= 1.0:
                last[0] = now
                self._emit(self.sig_progress, fraction, message)

        errors = self._engine.errors
        analyze = self._engine.analyze
        if request.source_kind == "python":  # user code runs in a process that can be killed
            from engine.isolated import analyze_isolated as analyze
        try:
            analysis = analyze(request, progress=progress, cancelled=cancel.is_set)
        except errors.CancelledError:
            self._done()
            self._emit(self.sig_cancelled)
        except errors.MemLensError as e:
            self._done()
            self._emit(self.sig_failed, str(e))
        except Exception as e:  # a bug: say so, keep the app alive
            traceback.print_exc()
            self._done()
            self._emit(self.sig_failed, f"internal error ({type(e).__name__}): {e}")
        else:
            self._done()
            if not cancel.is_set():
                self._emit(self.sig_finished, analysis)
            else:
                self._emit(self.sig_cancelled)

    def _emit(self, signal, *args) -> None:
        if not self._closed:
            signal.emit(*args)

    def _done(self) -> None:
        with self._lock:
            self._running = False
            pending, self._pending = self._pending, None
        if pending is not None and not self._closed:
            self.submit(pending)
