"""analyze() reports progress through a plain callable and stops when asked (the GUI's contract)."""
import pytest

from engine import AnalysisRequest, analyze
from engine.errors import CancelledError


def test_progress_rises_to_one_through_the_phases():
    seen = []
    analyze(AnalysisRequest(model="resnet18", batch=2), progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)
    messages = {m for _, m in seen}
    assert {"forward", "backward", "optimizer step"} <= messages


def test_cancel_stops_the_trace_and_leaves_the_engine_usable():
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 20  # let it start, then stop it mid-trace

    with pytest.raises(CancelledError):
        analyze(AnalysisRequest(model="densenet121", batch=2), cancelled=cancelled)
    # No hook or patched function is left behind: the next analysis is the same as a fresh one.
    a = analyze(AnalysisRequest(model="resnet18", batch=2, optimizer="sgd"))
    b = analyze(AnalysisRequest(model="resnet18", batch=2, optimizer="sgd"))
    assert a.peak.total_bytes == b.peak.total_bytes and len(a.events) == len(b.events)
    import torch.nn.functional as F
    from torch.nn.modules import module

    assert F.scaled_dot_product_attention.__module__ != "engine.attention"
    assert not module._global_forward_pre_hooks and not module._global_forward_hooks
