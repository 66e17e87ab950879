"""Copies ATen's kernels make inside one op (engine/aten_copies.py), against the allocator's events
of the same op run for real on this CPU (torch.profiler), and in a CUDA trace, where the same
native code runs."""
import os

import torch
from torch.profiler import ProfilerActivity, profile

from conftest import ROOT
from engine.aten_copies import aten_script
from engine.pipeline import analyze
from engine.request import AnalysisRequest

aten = torch.ops.aten
MODELS = os.path.join(ROOT, "tests", "data", "user_models.py")


def measured(op, *args):
    """The allocator's events (signed bytes, in order) while `op` runs once on real CPU tensors."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = op(*args)
    del out
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    return [e.nbytes() for e in events]


def scripted(func, args, outputs):
    """The events the script stands for, each output as its real size (engine/tracer.py _replay)."""
    meta = [torch.empty_strided(a.shape, a.stride(), device="meta") if isinstance(a, torch.Tensor) else a
            for a in args]
    held, events = {}, []
    for step in aten_script(func, meta) or [("out", i) for i in range(len(outputs))]:
        if step[0] == "alloc":
            held[step[1]] = step[2]
            events.append(step[2])
        elif step[0] == "free":
            events.append(-held.pop(step[1]))
        elif outputs[step[1]]:
            events.append(outputs[step[1]])
    return events


def permuted(n=4, c=32, h=16):
    return torch.randn(n, c, h, h).permute(0, 2, 3, 1)  # Swin's stem: channels last, not contiguous


def test_layer_norm_copies_an_input_that_is_not_contiguous_for_the_length_of_the_op():
    x, w, b = permuted(), torch.ones(32), torch.zeros(32)
    args = (x, [32], w, b, 1e-5)
    outputs = (x.numel() * 4, 4 * 16 * 16 * 4, 4 * 16 * 16 * 4)  # y, mean, rstd
    copy = x.numel() * 4
    assert measured(lambda: aten.native_layer_norm(*args)) == \
        scripted(aten.native_layer_norm.default, args, outputs) == [copy, *outputs, -copy]
    assert aten_script(aten.native_layer_norm.default, [x.contiguous(), [32], w, b, 1e-5]) is None


def test_layer_norm_backward_copies_the_saved_input_again():
    x, w, b = permuted(), torch.ones(32), torch.zeros(32)
    _, mean, rstd = aten.native_layer_norm(x, [32], w, b, 1e-5)
    grad = torch.randn(4, 16, 16, 32)
    args = (grad, x, [32], mean, rstd, w, b, [True, True, True])
    outputs = (x.numel() * 4, 32 * 4, 32 * 4)
    events = measured(lambda: aten.native_layer_norm_backward(*args))
    # The kernel's per-thread sums for the weight's gradients (2 x 32 floats a thread) are not a copy.
    sums = 2 * 32 * 4 * torch.get_num_threads()
    events = [e for e in events if abs(e) != sums]
    copy = x.numel() * 4
    assert events == scripted(aten.native_layer_norm_backward.default, args, outputs) == [copy, *outputs, -copy]


def test_roll_over_two_dimensions_makes_one_intermediate_and_over_one_none():
    x = torch.randn(4, 16, 16, 32)
    args = (x, [-2, -2], [1, 2])
    assert measured(lambda: torch.roll(x, (-2, -2), (1, 2))) == \
        scripted(aten.roll.default, args, (x.numel() * 4,)) == [x.numel() * 4, x.numel() * 4, -x.numel() * 4]
    assert measured(lambda: torch.roll(x, -2, 1)) == [x.numel() * 4]
    assert aten_script(aten.roll.default, (x, [-2], [1])) is None


def test_affine_grid_builds_its_base_grid_first_and_drops_it():
    theta = torch.randn(4, 2, 3)
    args = (theta, [4, 1, 28, 28], False)
    grid = 4 * 28 * 28 * 2 * 4
    events = [e for e in measured(lambda: aten.affine_grid_generator(*args)) if abs(e) > 128]  # linspace's rows
    assert events == scripted(aten.affine_grid_generator.default, args, (grid,)) == [4 * 28 * 28 * 3 * 4, grid,
                                                                                    -4 * 28 * 28 * 3 * 4]


def _module_temporaries(analysis, module, phase):
    events = analysis.events
    phases = analysis.events.phase
    from engine.categories import CATEGORIES, PHASES

    code = events.modules.index(module)
    temporaries = CATEGORIES.index("temporaries")
    keep = (events.module == code) & (phases == PHASES.index(phase)) & (events.category == temporaries)
    return events.nbytes[keep].tolist()


def test_a_cuda_trace_takes_the_same_copies():
    request = AnalysisRequest(model=f"{MODELS}:build_permuted_norm", batch=4, mode="train", optimizer="adam",
                              device="cuda")
    analysis = analyze(request)
    stem_out = 4 * 32 * 32 * 32 * 4  # batch 4, 32 channels, 32x32, float32: 512-byte blocks already
    assert stem_out in _module_temporaries(analysis, "norm", "forward")
    assert stem_out in _module_temporaries(analysis, "norm", "backward")
