"""The controller and its worker, driven without a window: jobs with ids, supersede order, every
exception reported, the companion only when wanted, views' data prepared off the GUI thread."""
import os
import threading

import pytest

from conftest import SPECS
from engine import AnalysisRequest

pytest.importorskip("PySide6")

from gui.controller import Controller, companion_request  # noqa: E402

SMALL = os.path.join(SPECS, "small_cnn.yaml")


@pytest.fixture
def controller(qtbot):
    c = Controller()
    c.worker.start()  # no engine: generic jobs only
    yield c
    assert c.shutdown(5.0)


@pytest.fixture
def engine_controller(qtbot):
    c = Controller()
    with qtbot.waitSignal(c.sig_engine_ready, timeout=120_000):
        c.start_engine()
    yield c
    assert c.shutdown(30.0)


def _record(controller):
    seen = []
    for name in ("sig_started", "sig_result", "sig_error", "sig_cancel"):
        getattr(controller, name).connect(lambda *args, name=name: seen.append((name, *args)))
    return seen


def _blocking(gate: threading.Event, value):
    def job(progress, cancelled, partial):
        gate.wait(10)
        return value
    return job


def _value(value):
    return lambda progress, cancelled, partial: value


def test_a_stale_result_is_never_shown(controller, qtbot):
    """A job that ignores cancellation and returns late is dropped by its id, not by its content."""
    seen = _record(controller)
    gate = threading.Event()
    controller.submit("analysis", _blocking(gate, "old"), supersede=False)
    qtbot.waitUntil(lambda: ("sig_started", "analysis") in seen)
    with qtbot.waitSignal(controller.sig_result, timeout=10_000) as blocker:
        controller.submit("analysis", _value("new"), supersede=False)  # not even cancelled: only newer
        gate.set()
    assert blocker.args == ["analysis", "new"]
    qtbot.wait(50)
    assert [s for s in seen if s[0] == "sig_result"] == [("sig_result", "analysis", "new")]


def test_a_superseded_job_ends_before_the_next_starts(controller, qtbot):
    """Bug: the old job's 'cancelled' arrived after the new job had started, so the window
    disabled Cancel and said 'cancelled' while the new analysis ran."""
    order = []
    w = controller.worker
    w.sig_started.connect(lambda i, k: order.append(("started", i)))
    w.sig_cancelled.connect(lambda i: order.append(("cancelled", i)))
    w.sig_finished.connect(lambda i, r: order.append(("finished", i)))

    def slow(progress, cancelled, partial):
        while not cancelled():
            threading.Event().wait(0.01)
        return "ignored"

    first = controller.submit("analysis", slow)
    qtbot.waitUntil(lambda: ("started", first) in order)
    queued = controller.submit("analysis", _value("dropped before it ran"))
    second = controller.submit("analysis", _value("last"))
    qtbot.waitUntil(lambda: ("finished", second) in order, timeout=10_000)
    assert order == [("started", first), ("cancelled", first), ("cancelled", queued), ("started", second),
                     ("finished", second)]


def test_every_exception_is_a_failure_and_the_next_job_runs(controller, qtbot):
    """Bug: SystemExit from a user's file killed the thread silently; every later job waited forever."""
    def exits(progress, cancelled, partial):
        raise SystemExit(3)

    def interrupted(progress, cancelled, partial):
        raise KeyboardInterrupt

    def buggy(progress, cancelled, partial):
        return 1 / 0

    for job, words in ((exits, "sys.exit(3)"), (interrupted, "KeyboardInterrupt"), (buggy, "ZeroDivisionError")):
        with qtbot.waitSignal(controller.sig_error, timeout=10_000) as blocker:
            controller.submit("analysis", job)
        assert blocker.args[0] == "analysis" and words in blocker.args[1]
        with qtbot.waitSignal(controller.sig_result, timeout=10_000) as blocker:
            controller.submit("analysis", _value("still alive"))
        assert blocker.args == ["analysis", "still alive"]
    assert not controller.worker.is_busy()


def test_cancel_reports_the_current_job_once_and_partials_carry_through(controller, qtbot):
    seen = _record(controller)
    partials = []
    controller.sig_partial.connect(lambda kind, value: partials.append((kind, value)))

    def sweep(progress, cancelled, partial):
        for i in range(1000):
            if cancelled():
                from engine.errors import CancelledError
                raise CancelledError("stopped")
            partial(i)
            threading.Event().wait(0.005)

    controller.submit("sweep", sweep)
    qtbot.waitUntil(lambda: len(partials) >= 3, timeout=10_000)
    with qtbot.waitSignal(controller.sig_cancel, timeout=10_000):
        controller.cancel()
    assert [s for s in seen if s[0] != "sig_started"] == [("sig_cancel", "sweep")]
    assert partials[:3] == [("sweep", 0), ("sweep", 1), ("sweep", 2)]


def test_a_shut_down_controller_takes_no_job_and_says_nothing(controller, qtbot):
    seen = _record(controller)
    assert controller.shutdown(1.0)
    assert controller.submit("analysis", _value("late")) == 0
    qtbot.wait(50)
    assert seen == []


def test_the_views_data_is_prepared_on_the_worker_thread(engine_controller, qtbot):
    engine_controller.preparers = {"probe": lambda analysis: (threading.current_thread().name, len(analysis.layers))}
    with qtbot.waitSignal(engine_controller.sig_analysis_ready, timeout=120_000) as blocker:
        engine_controller.analyse(AnalysisRequest(model=SMALL, batch=2))
    analysis, prepared = blocker.args
    assert prepared == {"probe": ("memlens-worker", len(analysis.layers))}
    assert threading.current_thread().name != "memlens-worker"


def test_the_companion_runs_only_when_wanted_with_the_chosen_optimizer(engine_controller, qtbot):
    c = engine_controller
    companions = []
    c.sig_companion_ready.connect(companions.append)
    c.set_companion_optimizer("sgd")
    with qtbot.waitSignal(c.sig_analysis_ready, timeout=120_000):
        c.analyse(AnalysisRequest(model=SMALL, batch=2, mode="inference", optimizer="none"))
    qtbot.wait(300)
    assert companions == [] and not c.worker.is_busy()  # its tab is hidden: nothing runs
    with qtbot.waitSignal(c.sig_companion_ready, timeout=120_000):
        c.set_companion_wanted(True)
    assert companions[0].request == AnalysisRequest(model=SMALL, batch=2, mode="train", optimizer="sgd")
    with qtbot.waitSignal(c.sig_companion_ready, timeout=120_000):
        c.set_companion_optimizer("adamw")  # a new choice re-runs the visible comparison
    assert companions[1].request.optimizer == "adamw"


def test_a_new_analysis_supersedes_the_companion(engine_controller, qtbot):
    c = engine_controller
    c.set_companion_wanted(True)
    companions, shown = [], []
    c.sig_companion_ready.connect(companions.append)
    c.sig_analysis_ready.connect(lambda a, p: shown.append(a))
    c.analyse(AnalysisRequest(model="densenet121", batch=2))
    c.analyse(AnalysisRequest(model=SMALL, batch=2))
    qtbot.waitUntil(lambda: len(companions) == 1, timeout=120_000)
    assert [a.request.model for a in shown] == [SMALL]
    assert companions[0].request == companion_request(shown[0].request, "adam")
