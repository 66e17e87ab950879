"""The last analysis on disk: the same numbers back without torch, and only for the same request,
versions and file contents."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, SPECS
from engine import AnalysisRequest, analyze
from gui import analysis_cache


@pytest.fixture(scope="module")
def spec_analysis():
    return analyze(AnalysisRequest(model=os.path.join(SPECS, "small_cnn.yaml"), batch=4))


def test_a_saved_analysis_comes_back_equal(spec_analysis, tmp_path):
    a = spec_analysis
    analysis_cache.save(a, str(tmp_path))
    b = analysis_cache.load(a.request, str(tmp_path))
    assert b is not None and b is not a
    assert (b.request, b.layers, b.peak, b.lifetimes, b.textbook, b.not_modelled, b.warnings) == \
        (a.request, a.layers, a.peak, a.lifetimes, a.textbook, a.not_modelled, a.warnings)
    assert b.timeline.phase_spans == a.timeline.phase_spans
    for cat, curve in a.timeline.curves.items():
        np.testing.assert_array_equal(b.timeline.curves[cat], curve)
    np.testing.assert_array_equal(b.events.nbytes, a.events.nbytes)
    assert b.events.modules == a.events.modules and b.model_name == a.model_name


def test_another_request_or_a_changed_spec_file_is_a_miss(spec_analysis, tmp_path):
    spec = tmp_path / "net.yaml"
    with open(os.path.join(SPECS, "small_cnn.yaml")) as f:
        spec.write_text(f.read())
    a = analyze(AnalysisRequest(model=str(spec), batch=2))
    analysis_cache.save(a, str(tmp_path))
    assert analysis_cache.load(a.request, str(tmp_path)) is not None
    assert analysis_cache.load(a.request.replace(batch=3), str(tmp_path)) is None
    spec.write_text(spec.read_text() + "\n# edited\n")
    assert analysis_cache.load(a.request, str(tmp_path)) is None


def test_a_damaged_cache_file_is_a_miss_not_an_error(spec_analysis, tmp_path):
    path = analysis_cache.save(spec_analysis, str(tmp_path))
    with open(path, "r+b") as f:
        f.seek(100)
        f.write(b"garbage" * 10)
    assert analysis_cache.load(spec_analysis.request, str(tmp_path)) is None
    assert analysis_cache.load(spec_analysis.request, str(tmp_path / "absent")) is None


def test_the_cache_is_read_without_importing_torch(spec_analysis, tmp_path):
    analysis_cache.save(spec_analysis, str(tmp_path))
    code = ("import sys; from engine.request import AnalysisRequest; from gui import analysis_cache; "
            f"a = analysis_cache.load(AnalysisRequest(model={spec_analysis.request.model!r}, batch=4), {str(tmp_path)!r}); "
            "print(a.peak.total_bytes, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(spec_analysis.peak.total_bytes), "False"]


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MEMLENS_CACHE_DIR", str(tmp_path))
    assert analysis_cache.cache_dir() == str(tmp_path)
