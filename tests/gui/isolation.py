"""A fixture for window tests: a settings folder and an analysis cache of the test's own, so no
test reads what another left behind (recent files, the last model, the cached analysis)."""
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
