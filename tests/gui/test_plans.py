"""Saved plans (issue 10): a plan file reopens to the same analyses, bad or hostile files are refused
with their own message and change nothing, and saving never loses the previous file."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from conftest import DATA, ROOT, SPECS
from engine import AnalysisRequest
from gui.plan import MAX_PLAN_BYTES, DeviceChoice, PinnedPlan, Plan, PlanError, ViewState, load_plan, save_plan
from gui.window import MainWindow
from isolation import private_settings  # noqa: F401 - a fixture

CNN = os.path.join(SPECS, "small_cnn.yaml")
WAIT = 120_000


def a_plan(model: str) -> Plan:
    request = AnalysisRequest(model=model, batch=4)
    return Plan(request, "momentum", DeviceChoice("my card", "custom", 3 * 2**30), (("context", 300 * 2**20),),
                (PinnedPlan("A: fp32", request.replace(batch=2), DeviceChoice("NVIDIA A100 80GB", "catalog", 80 * 10**9)),
                 PinnedPlan("B: inference", request.replace(mode="inference", optimizer="none"))),
                ViewState("Scenarios", 1, "0", 1))


# ---- The file alone
def test_a_plan_file_round_trips_with_the_model_relative_to_the_plan(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "plans").mkdir()
    model = str(tmp_path / "models" / "net.yaml")
    shutil.copy(CNN, model)
    plan = a_plan(model)
    path = str(tmp_path / "plans" / "p.memlens")
    save_plan(path, plan)
    document = json.loads(open(path).read())
    assert (document["format"], document["version"]) == ("memlens-plan", 2)
    assert document["request"]["model"] == os.path.join("..", "models", "net.yaml")
    assert load_plan(path) == plan
    # Moved together with its model, the plan still finds it.
    shutil.move(str(tmp_path / "plans"), str(tmp_path / "moved" / "plans"))
    shutil.move(str(tmp_path / "models"), str(tmp_path / "moved" / "models"))
    assert load_plan(str(tmp_path / "moved" / "plans" / "p.memlens")).request.model == str(
        tmp_path / "moved" / "models" / "net.yaml")


def test_a_first_version_plan_still_opens(tmp_path):
    path = tmp_path / "old.memlens"
    path.write_text(json.dumps({"format": "memlens-plan/1", "request": {"model": "resnet18", "batch": 3},
                                "companion_optimizer": "sgd"}))
    plan = load_plan(str(path))
    assert plan.request == AnalysisRequest(model="resnet18", batch=3) and plan.companion_optimizer == "sgd"
    assert plan.scenarios == () and plan.device is None


def bad_plans(tmp_path) -> dict:
    """Each kind of bad plan file, by the problem it must be reported as."""
    good = json.dumps({"format": "memlens-plan", "version": 2, "request": {"model": CNN, "batch": 4}})
    files = {
        "truncated": good[: len(good) // 2],
        "corrupt": good.replace(":", ";", 1),
        "wrong version": good.replace('"version": 2', '"version": 7'),
        "too large": good + " " * MAX_PLAN_BYTES,
        "too deeply nested": good[:-1] + ', "view": ' + "[" * 5000 + "]" * 5000 + "}",
        "not a plan": json.dumps({"format": "something else"}),
        "empty": "",
        "invalid": good.replace('"batch": 4', '"batch": -4'),
    }
    paths = {}
    for problem, text in files.items():
        path = tmp_path / f"{problem.replace(' ', '_')}.memlens"
        path.write_text(text)
        paths[problem] = str(path)
    nested = tmp_path / "nested_shallow.memlens"  # deep enough to be refused, shallow enough for json
    nested.write_text(good[:-1] + ', "view": ' + "[" * 40 + "]" * 40 + "}")
    paths["too deeply nested (40)"] = str(nested)
    return paths


def test_every_bad_plan_file_gets_its_own_one_line_message(tmp_path):
    messages = set()
    for problem, path in bad_plans(tmp_path).items():
        with pytest.raises(PlanError) as e:
            load_plan(path)
        assert e.value.problem == problem.split(" (")[0], str(e.value)
        assert path in str(e.value) and "\n" not in str(e.value)
        messages.add(str(e.value).replace(path, ""))
    assert len(messages) == len(bad_plans(tmp_path))


def test_a_plan_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "pipe.memlens"
    os.mkfifo(fifo)
    with pytest.raises(PlanError, match="not a regular file"):
        load_plan(str(fifo))


def test_a_plan_pointing_at_python_code_names_the_file_it_would_run(tmp_path):
    python_model = os.path.join(DATA, "tiny_mlp.py") + ":build"
    plan = Plan(AnalysisRequest(model=CNN), "adam", scenarios=(PinnedPlan("A", AnalysisRequest(model=python_model)),))
    save_plan(str(tmp_path / "p.memlens"), plan)
    assert load_plan(str(tmp_path / "p.memlens")).python_files == (os.path.join(DATA, "tiny_mlp.py"),)


def test_a_save_that_fails_at_the_rename_leaves_the_previous_plan_intact(tmp_path, monkeypatch):
    path = tmp_path / "p.memlens"
    save_plan(str(path), a_plan(CNN))
    before = path.read_bytes()

    def broken_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_rename)
    changed = Plan(AnalysisRequest(model="resnet18"), "sgd")
    with pytest.raises(OSError):
        save_plan(str(path), changed)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["p.memlens"]  # the temporary file is gone too


# ---- Through the window and the real controller
@pytest.fixture
def window(qtbot, private_settings):
    w = MainWindow(AnalysisRequest(model=CNN, batch=4))
    qtbot.addWidget(w)
    w.resize(1280, 720)
    w.show()
    with qtbot.waitSignal(w.sig_analysis_shown, timeout=WAIT):
        w.start()
    qtbot.waitUntil(lambda: w.devices.detection is not None, timeout=WAIT)
    yield w
    w.close()
    assert w.controller.shutdown(60.0)


def analyse(window, qtbot, request):
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=WAIT):
        window.config.set_request(request)
        window.config.schedule()
    assert window.analysis.request == request


def choose_capacity(window, qtbot, text):
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=WAIT):  # a GPU re-traces with CUDA's rules
        window.devices.custom.setText(text)
        window.devices.custom_button.click()


def figures(analysis):
    return (analysis.peak.total_bytes, analysis.peak.breakdown,
            [(layer.name, layer.param_bytes, layer.output_bytes, layer.saved_bytes) for layer in analysis.layers])


def state(window):
    """What a refused plan must leave as it was."""
    return (window.analysis, window.config.request(), [(p.name, p.request, p.analysis) for p in window.scenarios.pinned],
            window.devices.current_device())


def all_analysed(window, count):
    return len(window.scenarios.pinned) == count and all(p.analysis is not None for p in window.scenarios.pinned)


def test_a_saved_plan_reopens_to_identical_analyses(window, qtbot, tmp_path):
    choose_capacity(window, qtbot, "2 GiB")
    a = window.analysis
    window.scenarios.pin("A: batch 4")
    analyse(window, qtbot, a.request.replace(batch=8, optimizer="sgd"))
    current = window.analysis
    window.lower_tabs.setCurrentWidget(window.scenarios)
    window.selection.select(current.layers[3].name)
    path = str(tmp_path / "p.memlens")
    assert window.save_plan(path)

    # Change everything, then reopen.
    window.scenarios.unpin(0)
    analyse(window, qtbot, a.request.replace(batch=2, mode="inference", optimizer="none"))
    window.lower_tabs.setCurrentIndex(1)
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=WAIT):
        window.open_path(path)
    qtbot.waitUntil(lambda: all_analysed(window, 1), timeout=WAIT)
    assert window.analysis.request == current.request
    assert figures(window.analysis) == figures(current)
    pinned = window.scenarios.pinned[0]
    assert pinned.name == "A: batch 4" and pinned.request == a.request
    assert figures(pinned.analysis) == figures(a)
    assert pinned.device.capacity_bytes == 2 * 2**30
    assert window.devices.current_device().capacity_bytes == 2 * 2**30
    assert window.lower_tabs.currentWidget() is window.scenarios
    assert window.selection.selected == current.layers[3].name
    assert window.scenarios.comparison.peak_delta == (0, current.peak.total_bytes - a.peak.total_bytes)


def test_bad_and_hostile_plans_each_say_why_and_change_nothing(window, qtbot, tmp_path):
    window.scenarios.pin("A")
    before = state(window)
    shown = []
    for problem, path in bad_plans(tmp_path).items():
        with qtbot.waitSignal(window.sig_error_shown, timeout=5_000) as blocker:
            window.open_path(path)
        shown.append(blocker.args[0])
        assert path in blocker.args[0] and window.error.isVisible()
        qtbot.wait(50)
        assert state(window) == before, problem
        assert not window.controller.is_analysing()
    assert len(set(shown)) == len(shown)


def answer_question(qtbot, button, seen: list):
    def click():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(50, click)
            return
        seen.append(box.text())
        box.button(button).click()

    QTimer.singleShot(50, click)


def test_a_plan_that_runs_python_asks_first_and_a_no_changes_nothing(window, qtbot, tmp_path):
    window.scenarios.pin("A")
    before = state(window)
    python_model = os.path.join(DATA, "tiny_mlp.py") + ":build"
    path = str(tmp_path / "python.memlens")
    save_plan(path, Plan(AnalysisRequest(model=python_model, batch=2), "adam"))
    seen = []
    answer_question(qtbot, QMessageBox.No, seen)
    window.open_path(path)
    assert seen and os.path.join(DATA, "tiny_mlp.py") in seen[0]
    qtbot.wait(100)
    assert state(window) == before and not window.controller.is_analysing()
    # Yes runs it (in a child process, as any python model).
    answer_question(qtbot, QMessageBox.Yes, seen)
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=WAIT):
        window.open_path(path)
    assert window.analysis.request.model == python_model and window.scenarios.pinned == []


def test_a_failed_save_says_so_and_keeps_the_previous_file(window, qtbot, tmp_path, monkeypatch):
    folder = tmp_path / "plans"
    folder.mkdir()
    path = folder / "p.memlens"
    assert window.save_plan(str(path))
    before = path.read_bytes()
    window.scenarios.pin("A")

    def refused(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refused)
    with qtbot.waitSignal(window.sig_error_shown, timeout=5_000) as blocker:
        assert not window.save_plan(str(path))
    assert "cannot save the plan" in blocker.args[0] and "previous file is unchanged" in blocker.args[0]
    assert path.read_bytes() == before and os.listdir(folder) == ["p.memlens"]


def test_a_plan_dropped_on_the_window_opens_and_joins_the_recent_plans(window, qtbot, tmp_path):
    from gui.plan_session import recent_plans

    path = str(tmp_path / "dropped.memlens")
    save_plan(path, Plan(AnalysisRequest(model=CNN, batch=3), "adam"))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(path)])
    drop = QDropEvent(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(window.sig_analysis_shown, timeout=WAIT):
        window.dropEvent(drop)
    assert window.analysis.request.batch == 3
    assert recent_plans() == [path]
    window.recent_plans_menu.aboutToShow.emit()
    assert [a.toolTip() for a in window.recent_plans_menu.actions()] == [path]


def test_a_plan_on_the_command_line_opens_in_the_window(tmp_path, private_settings):
    path = str(tmp_path / "cli.memlens")
    save_plan(path, Plan(AnalysisRequest(model=CNN, batch=5), "adam",
                         scenarios=(PinnedPlan("A", AnalysisRequest(model=CNN, batch=2)),)))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(private_settings),
           "MEMLENS_CACHE_DIR": str(tmp_path / "cache")}
    shot = tmp_path / "shot.png"
    run = subprocess.run([sys.executable, "main.py", path, "--screenshot", str(shot)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert shot.stat().st_size > 10_000
    bad = tmp_path / "bad.memlens"
    bad.write_text('{"format": "memlens-plan", "version": 99}')
    run = subprocess.run([sys.executable, "main.py", str(bad), "--model", CNN, "--batch", "2", "--screenshot",
                          str(shot)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and f"{bad}: plan version 99" in run.stderr  # said; the window opened anyway
