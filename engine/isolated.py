"""An analysis that can be stopped at any moment: built and traced in a child process.

Why a process: a python-file model runs the user's code, which may never return (an endless
loop, `input()`, a sleep), end the interpreter (`os._exit`) or crash it. A thread cannot be
stopped from outside, and `sys.exit`/`KeyboardInterrupt` are caught in-process anyway, but only
a process can be killed whatever it is doing. The CLI runs every analysis this way (`--timeout`,
Ctrl-C); the GUI worker can do the same for python files and call `cancelled` to stop one.

Children fork from a multiprocessing *forkserver* that imported the engine once, so only the
first analysis pays torch's import (as an in-process analysis would) and the caller need not
import torch at all. The child's stdout is its stderr: whatever the user's code prints, the
caller's stdout (`--json -`) stays clean. The `Analysis` comes back pickled (plain data and
numpy arrays), errors as the same `MemLensError` subclasses.
"""
from __future__ import annotations

import multiprocessing
import time
from typing import Callable

from .errors import AnalysisTimeout, CancelledError, MemLensError

_POLL_SECONDS = 0.05
_JOIN_SECONDS = 5.0


def analyze_isolated(
    request,
    progress: Callable[[float, str], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    timeout: float | None = None,
):
    """`engine.analyze(request)` in a child process; killed on `cancelled()` or after `timeout` s."""
    context = engine_forkserver()
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(request, sender), daemon=True, name="memlens-analysis")
    try:
        child.start()  # the first start waits for the forkserver to import the engine
        sender.close()
        started = time.monotonic()  # the timeout is for the model, not for importing torch
        while True:
            if receiver.poll(_POLL_SECONDS):
                try:
                    kind, payload = receiver.recv()
                except (EOFError, OSError):
                    child.join(5)
                    raise MemLensError(f"{request.model}: the analysis process ended unexpectedly "
                                       f"(exit code {child.exitcode})") from None
                if kind == "progress":
                    if progress is not None:
                        progress(*payload)
                elif kind == "done":
                    return payload
                else:
                    raise payload
            if cancelled is not None and cancelled():
                raise CancelledError("analysis cancelled")
            if timeout is not None and time.monotonic() - started > timeout:
                raise AnalysisTimeout(f"{request.model}: stopped after {timeout:g} s: building and tracing the "
                                      "model did not finish (a python file that never returns?); "
                                      "allow more with --timeout")
    finally:
        sender.close()
        if child.pid is not None:
            if child.is_alive():
                child.kill()
            # Bounded: the exit code comes back through the forkserver, and a caller that is
            # leaving (Ctrl-C, a timeout) must never wait on it; the forkserver reaps the child.
            child.join(_JOIN_SECONDS)
        receiver.close()


def engine_forkserver():
    """The multiprocessing context whose children fork from one server process that imported
    the engine once (started at its first use, shared by every caller in this process)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["engine.pipeline"])
    return context


def _child(request, sender) -> None:
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the caller's to handle: it kills us
    os.dup2(2, 1)  # prints of the user's code, even from C, never reach the caller's stdout
    last = [-1.0]

    def progress(fraction: float, message: str) -> None:
        if fraction - last[0] >= 0.01 or fraction >= 1.0:
            last[0] = fraction
            sender.send(("progress", (fraction, message)))

    try:
        try:
            from .pipeline import analyze

            result = ("done", analyze(request, progress=progress))
        except MemLensError as e:
            result = ("error", e)
        except BaseException as e:  # a bug: still one line for the caller
            first = (str(e).strip().splitlines() or [""])[0]
            result = ("error", MemLensError(f"{request.model}: internal error: {type(e).__name__}: {first}"))
        sender.send(result)
        sender.close()
    except BaseException:  # the caller is gone (cancelled, timed out, interrupted): nobody to tell
        os._exit(1)
