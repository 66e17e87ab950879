"""The menu bar: File, View, Help. Every action has a standard shortcut or a mnemonic, a tooltip,
and calls one public method of the window; the F1 shortcut list is generated from these actions,
so it cannot drift from them.
"""
from __future__ import annotations

import os

from PySide6.QtGui import QAction, QKeySequence

from engine.choices import is_file_source

from .export import run_report_dialog


def build_menus(window) -> dict[str, QAction]:
    """Fill `window.menuBar()`; returns the actions by name (tests and the shortcut list read it)."""
    bar = window.menuBar()
    actions: dict[str, QAction] = {}

    def add(menu, name, text, slot, shortcut=None, tip="", checkable=False):
        action = QAction(text, window)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(tip or text.replace("&", "").rstrip("…"))
        action.setStatusTip(action.toolTip())
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        menu.addAction(action)
        actions[name] = action
        return action

    file = bar.addMenu("&File")
    add(file, "open", "&Open spec, Python file or plan…", window.open_file_dialog, QKeySequence.Open,
        "Open a layer spec (.yaml/.json), a python file (it is executed) or a saved plan (.memlens)")
    window.recent_menu = file.addMenu("Open &recent")
    window.recent_menu.aboutToShow.connect(lambda: _fill_recent(window))
    # -- plans and scenarios (issue 10)
    window.recent_plans_menu = file.addMenu("Recent p&lans")
    window.recent_plans_menu.aboutToShow.connect(lambda: _fill_recent_plans(window))
    file.addSeparator()
    add(file, "save_plan", "&Save plan…", window.save_plan_dialog, QKeySequence.Save,
        "Save the model and step settings as a .memlens plan a later session can open")
    add(file, "export", "&Export…", window.export_dialog, "Ctrl+E",
        "Pictures of the window or a view (PNG at 1x/2x/4K, SVG), the capacity-plan report (PDF), "
        "the layer table (CSV) or the analysis (JSON)")
    add(file, "export_report", "Export capacity-plan re&port (PDF)…", lambda: run_report_dialog(window), None,
        "Two printable pages: peak, fit and largest batch, timeline, breakdown, training vs inference, diagram")
    file.addSeparator()
    add(file, "quit", "&Quit", window.close, "Ctrl+Q", "Close MemLens (a running analysis is stopped)")

    view = bar.addMenu("&View")
    add(view, "fit", "&Fit views", window.fit_views, "F", "Fit the diagram and the plots to their data")
    add(view, "reset_layout", "&Reset layout", window.reset_layout, None, "Restore the default panel sizes")
    view.addSeparator()
    add(view, "high_contrast", "&High-contrast theme", window.set_high_contrast, None,
        "Black text, strong lines and colour-blind-safe category colours", checkable=True)
    add(view, "presentation", "&Presentation mode", window.set_presentation, "Ctrl+P",
        "Large text and the high-contrast theme, for a projector", checkable=True)
    add(view, "decimal_units", "&Decimal units (GB)", window.set_decimal_units, None,
        "Show sizes in GB/MB (as vendors sell memory) instead of GiB/MiB", checkable=True)
    add(view, "full_screen", "F&ull screen", window.set_full_screen, "F11", "Full screen on/off", checkable=True)

    run = bar.addMenu("&Analysis")
    add(run, "cancel", "&Cancel analysis", window.cancel, "Esc", "Stop the running analysis")
    add(run, "pin", "&Pin as scenario…", window.pin_scenario, "Ctrl+B",
        "Keep the analysis on screen as a named scenario and compare it with later ones (Scenarios tab)")

    help_menu = bar.addMenu("&Help")
    add(help_menu, "shortcuts", "&Keyboard shortcuts", window.show_shortcuts, QKeySequence.HelpContents)
    add(help_menu, "spec_schema", "&Spec schema", window.show_spec_schema, None,
        "How to write a YAML/JSON layer spec")
    add(help_menu, "about", "&About MemLens", window.show_about, None, "Version, torch version, what MemLens does")
    return actions


def shortcut_lines(actions: dict[str, QAction]) -> list[str]:
    """'Ctrl+O — Open spec…' for every action that has a shortcut, in menu order."""
    return [f"{a.shortcut().toString(QKeySequence.NativeText)} — {a.text().replace('&', '')}"
            for a in actions.values() if not a.shortcut().isEmpty()]


def _fill_recent(window) -> None:
    menu = window.recent_menu
    menu.clear()
    paths = [window.config.recent.itemData(i) for i in range(window.config.recent.count())]
    for i, path in enumerate(p for p in paths if is_file_source(p)):
        action = menu.addAction(f"&{i + 1} {os.path.basename(path)}" if i < 9 else os.path.basename(path))
        action.setToolTip(path)
        action.triggered.connect(lambda _=False, p=path: window.open_model(p))
    if menu.isEmpty():
        menu.addAction("(no recent files)").setEnabled(False)


def _fill_recent_plans(window) -> None:
    from gui.plan_session import recent_plans

    menu = window.recent_plans_menu
    menu.clear()
    for i, path in enumerate(recent_plans()):
        action = menu.addAction(f"&{i + 1} {os.path.basename(path)}" if i < 9 else os.path.basename(path))
        action.setToolTip(path)
        action.triggered.connect(lambda _=False, p=path: window.open_path(p))
    if menu.isEmpty():
        menu.addAction("(no recent plans)").setEnabled(False)
