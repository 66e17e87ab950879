"""The CUDA part of an analysis (library workspaces, the simulated allocator) survives the disk
cache, and the request's CUDA settings are part of its key."""
import os

import numpy as np

from conftest import SPECS
from engine import AnalysisRequest, analyze
from gui import analysis_cache


def test_a_cuda_analysis_comes_back_with_its_allocator_simulation(tmp_path):
    request = AnalysisRequest(model=os.path.join(SPECS, "small_cnn.yaml"), batch=4, device="cuda",
                              alloc_conf="expandable_segments:True", cuda_arch=(8, 0))
    a = analyze(request)
    analysis_cache.save(a, str(tmp_path))
    b = analysis_cache.load(a.request, str(tmp_path))
    assert b is not None and b.cuda is not None and b.cuda is not a.cuda
    assert (b.cuda.arch, b.cuda.workspaces, b.cuda.warnings) == (a.cuda.arch, a.cuda.workspaces, a.cuda.warnings)
    s, t = a.cuda.simulation, b.cuda.simulation
    np.testing.assert_array_equal(t.reserved, s.reserved)
    np.testing.assert_array_equal(t.allocated, s.allocated)
    assert (t.peak_reserved_bytes, t.segments_at_peak, t.initial_bytes, t.conf) == \
        (s.peak_reserved_bytes, s.segments_at_peak, s.initial_bytes, s.conf)
    assert analysis_cache.load(request.replace(alloc_conf=""), str(tmp_path)) is None
