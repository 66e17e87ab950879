"""A fixture for window tests: a settings folder and an analysis cache of the test's own, so no
test reads what another left behind (recent files, the last model, the cached analysis), and a
shown window to test."""
import contextlib

import pytest


@pytest.fixture
def private_settings(tmp_path, monkeypatch):
    from PySide6.QtCore import QSettings

    folder = tmp_path / "settings"
    folder.mkdir()
    monkeypatch.setenv("MEMLENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))  # for subprocesses the test starts
    for fmt in (QSettings.IniFormat, QSettings.NativeFormat):
        QSettings.setPath(fmt, QSettings.UserScope, str(folder))
    return folder


SMALL_SCREEN = (1280 - 16, 720 - 60)  # a 1280x720 screen less a title bar and a panel


@contextlib.contextmanager
def shown_window(qtbot, request, size=None):
    """A main window on `request`, shown (at `size`) with its first analysis on screen; closed after."""
    from gui.window import MainWindow

    w = MainWindow(request)
    qtbot.addWidget(w)
    if size is not None:
        w.resize(*size)
    w.show()
    with qtbot.waitSignal(w.sig_analysis_shown, timeout=120_000):
        w.start()
    try:
        yield w
    finally:
        w.close()
