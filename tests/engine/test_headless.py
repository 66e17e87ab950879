"""engine/ never imports Qt: it must run from a notebook, the CLI or a server."""
import os
import re
import subprocess
import sys

from conftest import ROOT

QT = re.compile(r"^\s*(from|import)\s+(PySide6|PyQt\d?|pyqtgraph|shiboken6)\b", re.M)


def test_no_engine_file_imports_qt():
    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "engine")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    if QT.search(f.read()):
                        offenders.append(os.path.relpath(path, ROOT))
    assert offenders == []


def test_importing_and_running_the_engine_loads_no_qt_module():
    code = (
        "import sys; from engine import analyze, AnalysisRequest; "
        "analyze(AnalysisRequest(model='resnet18', batch=1)); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
