"""Saving the window as a plan and putting a plan back on the window (File ▸ Save plan, Open,
Recent plans, a `.memlens` on the command line or dropped on the window).

Opening is all or nothing: the file is read and checked completely (gui/plan.py), and a Python
model is confirmed by the user, before anything on screen changes; any refusal leaves the
current request, scenarios and device as they were. Reopening re-runs the analyses: the main
one through the settings panel, the pinned scenarios through the controller, behind it.
"""
from __future__ import annotations

import os

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QMessageBox

from engine.errors import MemLensError

from .plan import DeviceChoice, Plan, PinnedPlan, PlanError, ViewState, load_plan, save_plan

RECENT_KEY = "recent_plans"
MAX_RECENT = 10


class PlanSession:
    """The window's side of plan files (the window owns one)."""

    def __init__(self, window):
        self.window = window
        self._device_wanted: DeviceChoice | None = None
        self._overrides_wanted: dict[str, int] = {}
        self._view_wanted: ViewState | None = None
        window.controller.sig_result.connect(self._on_result)
        window.sig_analysis_shown.connect(self._on_analysis_shown)

    # ---- Public API
    def collect(self) -> Plan:
        """The plan of what is on screen: its request (or, before any, the panel's), the chosen
        device, the pinned scenarios and the view."""
        w = self.window
        request = w.analysis.request if w.analysis is not None else w.config.request()
        scenarios = w.scenarios.pinned if w.scenarios is not None else []
        device = w.devices.current_device()
        view = ViewState(w.lower_tabs.tabText(w.lower_tabs.currentIndex()), w.left_tabs.currentIndex(),
                         w.selection.selected or "",
                         max(0, w.scenarios.baseline.currentIndex()) if w.scenarios is not None else 0)
        return Plan(request, w.config.optimizer_choice(), DeviceChoice.of(device),
                    tuple(sorted(w.devices.overrides().items())) if device is not None else (),
                    tuple(PinnedPlan(p.name, p.request, DeviceChoice.of(p.device), tuple(p.overrides))
                          for p in scenarios), view)

    def save(self, path: str) -> bool:
        """Write the plan; a failure is said and the previous file, if any, is left as it was."""
        try:
            save_plan(path, self.collect())
        except OSError as e:
            self.window.show_error(f"{path}: cannot save the plan ({e.strerror or e}); the previous file is unchanged")
            return False
        remember(path)
        self.window.status.setText(f"plan saved to {path}")
        return True

    def read(self, path: str, ask: bool = True) -> Plan | None:
        """The checked plan in `path`, or None after saying why (or after the user declined to run
        its Python file)."""
        try:
            plan = load_plan(path)
        except PlanError as e:
            self.window.show_error(str(e))
            return None
        if plan.python_files and ask and not confirm_python(self.window, path, plan.python_files):
            self.window.status.setText(f"{os.path.basename(path)} not opened: its Python file was not run")
            return None
        return plan

    def open(self, path: str) -> bool:
        """Read, check, confirm, then put the plan on screen and re-run its analyses."""
        plan = self.read(path)
        if plan is None:
            return False
        self.apply(plan)
        remember(path)
        self.window.status.setText(f"opened plan {path}")
        return True

    def apply(self, plan: Plan, analyse: bool = True) -> None:
        """Put `plan` on the window; with `analyse`, the main analysis is scheduled (the start-up
        path analyses the plan's request as the first request instead)."""
        w = self.window
        w.build_plots()
        w.config.set_request(plan.request)
        if plan.request.mode != "train":
            w.config.optimizer.setCurrentText(plan.companion_optimizer)
        if analyse:
            w.config.schedule()
        w.scenarios.restore([(s.name, s.request, s.device.device() if s.device else None, s.overrides)
                             for s in plan.scenarios])
        self._device_wanted = plan.device
        self._overrides_wanted = dict(plan.overrides)
        self._choose_device()
        self._view_wanted = plan.view
        self._restore_tabs(plan.view)
        if w.analysis is not None and w.analysis.request == plan.request and not w.controller.is_analysing():
            self._on_analysis_shown(w.analysis)

    # ---- Private API
    def _choose_device(self) -> None:
        wanted, panel = self._device_wanted, self.window.devices
        if wanted is None or panel.detection is None:
            return  # chosen once detection has filled the panel's list
        self._device_wanted = None
        for key, edit in panel.override_edits.items():
            edit.setText(str(self._overrides_wanted[key]) if key in self._overrides_wanted else "")
        if self._overrides_wanted != panel.overrides():  # the panel reads every field when one is finished
            next(iter(panel.override_edits.values())).editingFinished.emit()
        if wanted.kind in ("custom", "host") or not panel.select_device(wanted.name):
            panel.custom.setText(str(wanted.capacity_bytes))
            panel.custom_button.click()

    def _restore_tabs(self, view: ViewState) -> None:
        w = self.window
        tabs = w.lower_tabs
        for i in range(tabs.count()):
            if tabs.tabText(i) == view.lower_tab:
                tabs.setCurrentIndex(i)
        if 0 <= view.left_tab < w.left_tabs.count():
            w.left_tabs.setCurrentIndex(view.left_tab)

    def _on_result(self, kind: str, _result) -> None:
        if kind == "devices" and self._device_wanted is not None:
            QTimer.singleShot(0, self._choose_device)  # after the planning has filled the list

    def _on_analysis_shown(self, analysis) -> None:
        view, self._view_wanted = self._view_wanted, None
        if view is None:
            return
        w = self.window
        if view.selected_layer and analysis.layer_named(view.selected_layer) is not None:
            w.selection.select(view.selected_layer)
        if w.scenarios is not None and 0 <= view.baseline < w.scenarios.baseline.count():
            w.scenarios.baseline.setCurrentIndex(view.baseline)


def confirm_python(parent, path: str, files: tuple[str, ...]) -> bool:
    """Ask before a plan makes MemLens execute Python files; No is the default."""
    listed = "\n".join(files)
    answer = QMessageBox.question(
        parent, "Run a Python file?",
        f"The plan {os.path.basename(path)} builds its model by executing Python code:\n\n{listed}\n\n"
        "Run it? Only do so if you trust where the plan and this file come from.",
        QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    return answer == QMessageBox.Yes


def recent_plans() -> list[str]:
    """Plans opened or saved lately that still exist, newest first."""
    paths = QSettings("MemLens", "MemLens").value(RECENT_KEY, [], type=list)
    return [p for p in paths if isinstance(p, str) and os.path.isfile(p)][:MAX_RECENT]


def remember(path: str) -> None:
    settings = QSettings("MemLens", "MemLens")
    path = os.path.abspath(path)
    paths = [p for p in settings.value(RECENT_KEY, [], type=list) if p != path]
    settings.setValue(RECENT_KEY, [path, *paths][:MAX_RECENT])


def plan_for_start(path: str) -> tuple[Plan | None, str]:
    """A plan given on the command line, read before the window exists: (plan, '') or (None, why)."""
    if not path.lower().endswith(".memlens"):
        return None, f"{path}: not a plan file (expected a .memlens file)"
    try:
        plan = load_plan(path)
    except MemLensError as e:
        return None, str(e)
    if plan.python_files and not confirm_python(None, path, plan.python_files):
        return None, f"{path}: not opened (its Python file was not run)"
    remember(path)
    return plan, ""
