"""The one place where threads meet Qt: one background thread runs jobs, results come back as signals.

A job is `fn(progress, cancelled, emit_partial) -> result`. Jobs run one at a time, in order, on
one thread (the tracer installs process-wide hooks), and every signal carries the job's id so the
receiver applies only the job it still wants (glue's compute worker). Two rules make the id
enough:

- every submitted job ends with exactly one of `sig_finished`, `sig_failed`, `sig_cancelled`;
- a superseding job starts only after the superseded job's last signal is out (both are emitted
  by the same thread, so queued delivery keeps that order).

Every exception, `BaseException` included (a model file calling `sys.exit()`, a stray
KeyboardInterrupt), becomes `sig_failed`: the thread never dies and the queue never wedges.
A job whose cancel flag is set when it ends is reported cancelled, whatever it returned.
"""
from __future__ import annotations

import collections
import itertools
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from PySide6.QtCore import QObject, Signal

from engine.errors import CancelledError, MemLensError


@dataclass
class Job:
    id: int
    kind: str
    fn: Callable
    cancel: threading.Event = field(default_factory=threading.Event)


def failure_message(e: BaseException) -> str:
    """One line a user can read: engine errors as they are; anything else named by its type."""
    if isinstance(e, MemLensError):
        return str(e)
    if isinstance(e, SystemExit):
        return f"the code called sys.exit({e.code!r}) (SystemExit): nothing was analysed"
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (KeyboardInterrupt)"
    return f"internal error ({type(e).__name__}): {e}"


class JobWorker(QObject):
    """Runs submitted jobs on one daemon thread; see the module docstring for the guarantees."""

    sig_started = Signal(int, str)
    """A job (id, kind) started running."""
    sig_progress = Signal(int, float, str)
    """Job id, fraction done (0..1), what is happening; throttled."""
    sig_partial = Signal(int, object)
    """Job id and a partial result (a sweep point ...)."""
    sig_finished = Signal(int, object)
    """Job id and its result."""
    sig_failed = Signal(int, str)
    """Job id and a one-line message."""
    sig_cancelled = Signal(int)
    """Job id: it was cancelled or superseded (possibly before it started)."""

    PROGRESS_INTERVAL_S = 0.05

    def __init__(self, parent=None):
        super().__init__(parent)
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._queue: collections.deque[Job] = collections.deque()
        self._current: Job | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        self._before: Callable[[], None] | None = None

    # ---- Public API
    def start(self, before: Callable[[], None] | None = None) -> None:
        """Start the thread; `before()` runs on it first (importing the engine). Jobs submitted
        earlier wait in the queue."""
        if self._thread is not None:
            return
        self._before = before
        self._thread = threading.Thread(target=self._loop, name="memlens-worker", daemon=True)
        self._thread.start()

    def submit(self, kind: str, fn: Callable, *, supersede: bool = True) -> int:
        """Queue `fn`; with `supersede`, cancel the running job and every queued one first.
        Returns the job id (0 once the worker is shut down: nothing will run)."""
        with self._cond:
            if self._closed:
                return 0
            job = Job(next(self._ids), kind, fn)
            if supersede:
                self._cancel_locked(None)
            self._queue.append(job)
            self._cond.notify()
        return job.id

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job (running or queued), or every job when `job_id` is None."""
        with self._cond:
            self._cancel_locked(job_id)

    def is_busy(self) -> bool:
        with self._cond:
            return self._current is not None or bool(self._queue)

    def running_kind(self) -> str | None:
        with self._cond:
            return self._current.kind if self._current is not None else None

    def shutdown(self, timeout_s: float = 0.5) -> bool:
        """Stop for good: cancel everything, emit nothing more, wait up to `timeout_s` for the
        running job. Returns True when the thread has ended."""
        with self._cond:
            self._closed = True
            self._cancel_locked(None)
            self._cond.notify_all()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    # ---- Private API
    def _cancel_locked(self, job_id: int | None) -> None:
        for job in [self._current, *self._queue]:
            if job is not None and (job_id is None or job.id == job_id):
                job.cancel.set()

    def _loop(self) -> None:
        before_error = None
        if self._before is not None:
            try:
                self._before()
            except BaseException as e:  # noqa: BLE001 - a broken install must still answer every job
                traceback.print_exc()
                before_error = f"could not load the engine: {type(e).__name__}: {e}"
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if self._closed:
                    self._current = None
                    return
                job = self._current = self._queue.popleft()
            if job.cancel.is_set():
                self._finish(job, self.sig_cancelled, job.id)
            elif before_error is not None:
                self._finish(job, self.sig_failed, job.id, before_error)
            else:
                self._run(job)

    def _run(self, job: Job) -> None:
        self._emit(self.sig_started, job.id, job.kind)
        last = [0.0]

        def progress(fraction: float, message: str) -> None:
            now = time.monotonic()
            if now - last[0] >= self.PROGRESS_INTERVAL_S or fraction >= 1.0:
                last[0] = now
                self._emit(self.sig_progress, job.id, float(fraction), message)

        def emit_partial(value) -> None:
            if not job.cancel.is_set():
                self._emit(self.sig_partial, job.id, value)

        try:
            result = job.fn(progress, job.cancel.is_set, emit_partial)
        except CancelledError:
            self._finish(job, self.sig_cancelled, job.id)
        except BaseException as e:  # noqa: BLE001 - SystemExit from a user file must not kill the thread
            if job.cancel.is_set():
                self._finish(job, self.sig_cancelled, job.id)
                return
            if not isinstance(e, MemLensError):
                traceback.print_exc()
            self._finish(job, self.sig_failed, job.id, failure_message(e))
        else:
            if job.cancel.is_set():
                self._finish(job, self.sig_cancelled, job.id)
            else:
                self._finish(job, self.sig_finished, job.id, result)

    def _finish(self, job: Job, signal, *args) -> None:
        """The job's last signal. The next job is popped only after it is out (same thread), so
        clearing `_current` first cannot reorder anything, and a receiver sees the worker idle."""
        with self._cond:
            if self._current is job:
                self._current = None
        self._emit(signal, *args)

    def _emit(self, signal, *args) -> None:
        if self._closed:
            return
        try:
            signal.emit(*args)
        except RuntimeError:  # the QObject was deleted while the thread ran (window closed)
            self._closed = True
