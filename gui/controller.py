"""What runs when, decided in one place the tests can drive without a window.

The controller owns the `JobWorker`. Every job has a kind ("analysis", "companion", "max_batch",
"sweep", "measure") and an id; for each kind only the newest id is *current*, and only current
jobs' signals leave the controller, so a superseded job can never put a stale result, error or
"cancelled" on screen.

Policy:
- the engine (torch) is imported on the worker thread, after the window has painted;
- the main analysis supersedes everything; each view's `prepare(analysis)` runs right after it on
  the worker thread, so the GUI thread only assigns; the finished analysis is handed to `remember`
  (the on-disk cache) there too;
- the training-vs-inference companion runs only while someone wants it (its tab is visible),
  after the main analysis, with the optimizer the user chose.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import types
from typing import Callable

from PySide6.QtCore import QObject, Signal

from .worker import JobWorker


def _preload_torch_libraries() -> None:
    """Load torch's shared libraries through ctypes before `import torch`. An extension module's
    dlopen runs with the GIL held, so importing torch froze the window for up to 1.3 s at a time
    (0.3 s with this, measured on the loaded 2-core workstation): ctypes lets go of the GIL while
    the linker maps libtorch and runs its static initialisers. `import torch` then finds them
    loaded. Linux only; anything unexpected just leaves the work to `import torch`."""
    if not sys.platform.startswith("linux"):
        return
    try:
        spec = importlib.util.find_spec("torch")
        lib = os.path.join(spec.submodule_search_locations[0], "lib")
        ctypes.CDLL(os.path.join(lib, "libtorch_global_deps.so"), mode=ctypes.RTLD_GLOBAL)  # as torch does
        ctypes.CDLL(os.path.join(lib, "libtorch_python.so"))  # pulls in libtorch_cpu, c10 ...
    except (OSError, AttributeError, TypeError, ImportError):
        pass


def companion_request(request, optimizer: str):
    """The other mode of `request`: inference for a training step, and a training step with the
    user's optimizer for an inference pass."""
    if request.mode == "train":
        return request.replace(mode="inference", optimizer="none", first_step=False)
    return request.replace(mode="train", optimizer=optimizer)


class Controller(QObject):
    """Owns the worker; re-emits only current jobs' signals."""

    sig_engine_ready = Signal(object)
    """The engine is imported: a namespace with `catalog` (torchvision families) and `torch_version`."""
    sig_started = Signal(str)
    """The current job of this kind started running."""
    sig_progress = Signal(str, float, str)
    """Kind, fraction done, message (current jobs only)."""
    sig_partial = Signal(str, object)
    """Kind and a partial result of its current job."""
    sig_result = Signal(str, object)
    """Kind and the result of its current job."""
    sig_error = Signal(str, str)
    """Kind and a one-line message: its current job failed."""
    sig_cancel = Signal(str)
    """Kind: its current job was cancelled (not superseded by a newer one of the same kind)."""

    sig_analysis_started = Signal(object)
    """The request whose analysis started running."""
    sig_analysis_ready = Signal(object, object)
    """The finished Analysis and {view module name: prepared data}."""
    sig_analysis_failed = Signal(object, str)
    """The request that could not be analysed, and why."""
    sig_analysis_cancelled = Signal(object)
    """The request whose analysis was cancelled."""
    sig_companion_ready = Signal(object)
    """The companion (other mode) Analysis of what is shown."""
    sig_companion_failed = Signal(object, str)
    """The companion request and why it failed."""

    def __init__(self, parent=None, *, remember: Callable | None = None):
        super().__init__(parent)
        self.worker = JobWorker(self)
        self.engine = None
        self.shown = None  # the Analysis on screen
        self.running = None  # the request being analysed (or waiting for the engine)
        self.preparers: dict[str, Callable] = {}
        self._remember = remember
        self._current: dict[str, int] = {}
        self._requests: dict[int, object] = {}
        self._companion_wanted = False
        self._companion_optimizer = "adam"
        self._companion_of = None  # the companion request submitted or shown
        self._analyze = None
        w = self.worker
        w.sig_started.connect(self._on_started)
        w.sig_progress.connect(self._on_progress)
        w.sig_partial.connect(self._on_partial)
        w.sig_finished.connect(self._on_finished)
        w.sig_failed.connect(self._on_failed)
        w.sig_cancelled.connect(self._on_cancelled)

    # ---- Public API
    def start_engine(self) -> None:
        """Start the worker thread; it imports the engine before running any job."""
        self.worker.start(before=self._load_engine)

    def submit(self, kind: str, fn: Callable, *, supersede: bool = True) -> int:
        """Run `fn(progress, cancelled, emit_partial)`; it becomes the current job of its kind."""
        job_id = self.worker.submit(kind, fn, supersede=supersede)
        if job_id:
            self._current[kind] = job_id
        return job_id

    def is_current(self, kind: str, job_id: int) -> bool:
        return self._current.get(kind) == job_id

    def analyse(self, request) -> int:
        """Analyse `request`, superseding whatever runs; the views' data is prepared with it."""
        preparers = dict(self.preparers)

        def job(progress, cancelled, _partial):
            analysis = self._analyze(request, progress=progress, cancelled=cancelled)
            prepared = {}
            for name, prepare in preparers.items():
                if cancelled():
                    return None
                progress(1.0, f"preparing the {name} view")
                prepared[name] = prepare(analysis)
            if self._remember is not None and not cancelled():
                try:
                    self._remember(analysis)
                except Exception as e:  # noqa: BLE001 - a full disk must not cost the user the result
                    print(f"memlens: could not cache the analysis: {e}")
            return analysis, prepared

        self.running = request
        self._companion_of = None
        job_id = self.submit("analysis", job)
        self._requests[job_id] = request
        return job_id

    def analyze_in_job(self, request, progress, cancelled):
        """Analyse `request` inside a submitted job (pinned scenarios reopened from a plan), by the
        main analysis's rule: a python file runs in a child process."""
        return self._analyze(request, progress=progress, cancelled=cancelled)

    def show(self, analysis) -> None:
        """`analysis` is on screen without a run (reopened from the cache)."""
        self.shown = analysis
        self._maybe_companion()

    def cancel(self) -> None:
        """Stop the running analysis and anything queued (Esc, the Cancel button)."""
        self.worker.cancel()

    def is_analysing(self) -> bool:
        return self.running is not None

    def set_companion_wanted(self, wanted: bool) -> None:
        """The comparison is visible (run it when due) or hidden (stop it)."""
        self._companion_wanted = wanted
        if wanted:
            self._maybe_companion()
        elif self._current.get("companion") in self._requests:  # still queued or running
            self.worker.cancel(self._current["companion"])

    def set_companion_optimizer(self, optimizer: str) -> None:
        """The optimizer the user chose: a training companion of an inference pass uses it."""
        self._companion_optimizer = optimizer
        self._maybe_companion()

    def shutdown(self, timeout_s: float = 0.3) -> bool:
        """The window is closing: cancel everything, emit nothing more. True if the thread ended."""
        return self.worker.shutdown(timeout_s)

    # ---- Private API
    def _load_engine(self) -> None:
        _preload_torch_libraries()
        from engine import pipeline, sources
        from engine.isolated import analyze_isolated

        def analyze(request, progress, cancelled):
            # A python file runs the user's code, which may never return or end the interpreter:
            # only a child process can be stopped whatever it does (engine/isolated.py).
            run = analyze_isolated if request.source_kind == "python" else pipeline.analyze
            return run(request, progress=progress, cancelled=cancelled)

        self._analyze = analyze
        self.engine = types.SimpleNamespace(catalog=sources.catalog(), torch_version=pipeline.torch.__version__)
        self.sig_engine_ready.emit(self.engine)

    def _maybe_companion(self) -> None:
        if not self._companion_wanted or self.shown is None or self.running is not None:
            return
        other = companion_request(self.shown.request, self._companion_optimizer)
        if other == self._companion_of:
            return
        self._companion_of = other

        def job(progress, cancelled, _partial):
            return self._analyze(other, progress=progress, cancelled=cancelled)

        job_id = self.submit("companion", job)
        self._requests[job_id] = other

    def _kind_of(self, job_id: int) -> str | None:
        return next((kind for kind, current in self._current.items() if current == job_id), None)

    def _on_started(self, job_id: int, kind: str) -> None:
        if not self.is_current(kind, job_id):
            return
        self.sig_started.emit(kind)
        if kind == "analysis" and job_id in self._requests:
            self.sig_analysis_started.emit(self._requests[job_id])

    def _on_progress(self, job_id: int, fraction: float, message: str) -> None:
        kind = self._kind_of(job_id)
        if kind is not None:
            self.sig_progress.emit(kind, fraction, message)

    def _on_partial(self, job_id: int, value) -> None:
        kind = self._kind_of(job_id)
        if kind is not None:
            self.sig_partial.emit(kind, value)

    def _on_finished(self, job_id: int, result) -> None:
        kind = self._kind_of(job_id)
        ours = self._requests.pop(job_id, None) is not None  # submitted by analyse() or the companion
        if kind is None:
            return
        if ours and kind == "analysis":
            self.running = None
            analysis, prepared = result
            self.shown = analysis
            self.sig_analysis_ready.emit(analysis, prepared)
            self._maybe_companion()
            result = analysis
        elif ours and kind == "companion":
            self.sig_companion_ready.emit(result)
        self.sig_result.emit(kind, result)

    def _on_failed(self, job_id: int, message: str) -> None:
        kind = self._kind_of(job_id)
        request = self._requests.pop(job_id, None)
        if kind is None:
            return
        if request is not None and kind == "analysis":
            self.running = None
            self.sig_analysis_failed.emit(request, message)
            self._maybe_companion()
        elif request is not None and kind == "companion":
            self.sig_companion_failed.emit(request, message)
        self.sig_error.emit(kind, message)

    def _on_cancelled(self, job_id: int) -> None:
        kind = self._kind_of(job_id)
        request = self._requests.pop(job_id, None)
        if kind is None:
            return
        if request is not None and kind == "analysis":
            self.running = None
            self.sig_analysis_cancelled.emit(request)
        elif request is not None and kind == "companion":
            self._companion_of = None  # not shown: run it again when it is wanted
        self.sig_cancel.emit(kind)
