"""Exact byte counts on a network whose memory can be worked out by hand.

tiny_mlp: Linear(8,16) -> ReLU -> Linear(16,4), batch 2, float32.
Parameters: 8*16*4 + 16*4 + 16*4*4 + 4*4 = 512 + 64 + 256 + 16 = 848 bytes. Input: 2*8*4 = 64.
"""
import os

import pytest

from conftest import DATA
from engine import AnalysisRequest, analyze

TINY = os.path.join(DATA, "tiny_mlp.py") + ":build"


def run(**kw):
    return analyze(AnalysisRequest(model=TINY, batch=2, **kw))


def test_inference_peak_is_params_input_and_two_live_feature_maps():
    a = run(mode="inference", optimizer="none")
    assert a.parameter_bytes == 848
    assert a.timeline.live_at(0) == {
        "parameters": 848, "buffers": 0, "gradients": 0, "optimizer_state": 0,
        "activations": 0, "temporaries": 0, "inputs": 64, "communication": 0,
    }
    # Linear1's output (2*16*4 = 128) is still referenced when ReLU writes its own 128 bytes.
    assert a.peak.total_bytes == 848 + 64 + 128 + 128
    assert a.peak.breakdown["temporaries"] == 256
    # Nothing is saved for backward under no_grad.
    assert all(life.category != "activations" for life in a.lifetimes)


def test_cuda_rounds_every_block_up_to_512_bytes():
    a = run(mode="inference", optimizer="none", device="cuda")
    # 4 parameter tensors, the input and the two 128-byte maps: each one 512-byte block.
    assert a.timeline.live_at(0)["parameters"] == 4 * 512
    # ... plus the cuBLAS/cuBLASLt workspaces an earlier step made (32 + 1 MiB, Hopper; issue 7).
    assert a.cuda.workspace_bytes == 33 * 2**20
    assert a.peak.total_bytes == 4 * 512 + 512 + 2 * 512 + a.cuda.workspace_bytes


def test_training_keeps_saved_maps_and_ends_with_one_gradient_per_parameter():
    a = run(mode="train", optimizer="sgd")
    assert a.timeline.live_at(0)["inputs"] == 64 + 2 * 8  # batch + int64 class targets
    end = a.timeline.live_at(len(a.timeline) - 1)
    assert end["gradients"] == 848
    assert end["activations"] == 0  # backward freed everything it saved
    relu = a.layer_named("1")
    assert relu.type == "ReLU" and relu.output_bytes == 128
    assert relu.saved_bytes == 128  # ReLU saves its result for backward
    saved = [life for life in a.lifetimes if life.category == "activations"]
    assert saved and all(life.alloc_phase == "forward" for life in saved)
    backward = next(s for s in a.timeline.phase_spans if s[0] == "backward")
    assert all(backward[1] < life.free_point <= backward[2] + 1 for life in saved)


@pytest.mark.parametrize("optimizer, copies", [("sgd", 0), ("momentum", 1), ("adam", 2)])
def test_steady_state_starts_with_the_optimizer_state(optimizer, copies):
    a = run(mode="train", optimizer=optimizer)
    state = a.timeline.live_at(0)["optimizer_state"]
    # Adam adds one 4-byte step counter per parameter tensor.
    assert state == copies * 848 + (4 * 4 if optimizer == "adam" else 0)


def test_first_step_creates_the_state_inside_the_optimizer_phase():
    a = run(mode="train", optimizer="adam", first_step=True)
    assert a.timeline.live_at(0)["optimizer_state"] == 0
    assert a.timeline.live_at(len(a.timeline) - 1)["optimizer_state"] == 2 * 848 + 4 * 4
    born = {life.alloc_phase for life in a.lifetimes if life.category == "optimizer_state"}
    assert born == {"optimizer"}


def test_curves_are_consistent_with_the_events():
    a = run(mode="train", optimizer="adam")
    total = sum(a.timeline.curves[c] for c in a.timeline.curves)
    assert (total == a.timeline.total).all()
    assert int(a.timeline.total[-1] - a.timeline.total[0]) == int(a.events.nbytes.sum())
    assert len(a.timeline) == len(a.events) + 1
    ev = a.events.event(0)
    assert ev.kind == "alloc" and ev.phase == "forward" and ev.module == "0"
