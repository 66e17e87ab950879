"""MemLens's CUDA predictions against what an H200 measured (issue 7): a `--device cuda` trace of
a recorded case, its footprint lines, against max_memory_allocated (2%), max_memory_reserved (3%)
and NVML's per-process used memory (5%) of the same step run in a fresh process
(tests/data/gpu/h200_2026-11-28_fresh, benchmarks/gpu_accuracy.py --fresh-all).

A subset runs here (every run kind on eight models, float16 AMP training on four); the whole
table, 216 cases, is `python benchmarks/gpu_predict.py` (docs/VALIDATION.md). Misses are listed
by name with their cause and checked to still miss (strict), so a fix shows up as a failure
that asks to strike it from the list.
"""
import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from gpu_accuracy import load_document  # noqa: E402
from gpu_predict import TARGETS, predict  # noqa: E402

RUN = os.path.join(ROOT, "tests", "data", "gpu", "h200_2026-11-28_fresh")
DOCUMENT = load_document(os.path.join(RUN, "gpu_accuracy.json"))
ARCH = tuple(DOCUMENT["compute_capability"])
MODELS = ("resnet18", "vgg16", "mobilenet_v2", "shufflenet_v2_x1_0", "convnext_tiny", "vit_b_16",
          "tiny_transformer.yaml", "hf_decoder.py:build")
AMP_MODELS = ("resnet18", "vit_b_16", "swin_t", "hf_decoder.py:build")
# (model, mode, optimizer, precision, figure) -> why it misses its target
HISTORY = ("the segment layout follows the recording's history (a train-mode float32 no-grad forward before "
           "the first step, gone from later recordings): the traced step alone, replayed from the segments the GPU "
           "had before its measured step, is within 3% (checked below), and the simulator replays the recorded "
           "trace itself within 3% (test_gpu_replay.py)")
KNOWN_MISSES: dict[tuple, str] = {
    ("vgg16", "train", "adam", "float32", "reserved"): HISTORY,
    ("vgg16", "train", "sgd", "float32", "reserved"): HISTORY,
    ("resnet18", "train", "adam", "amp_float16", "reserved"): HISTORY,  # +9% (an over-estimate) since the exact workspaces
    ("swin_t", "train", "adam", "amp_float16", "reserved"): HISTORY,  # +4.2% since layer norm's copies (was -3.7% less probe)
}


def _chosen(case) -> bool:
    if case["precision"] == "float32":
        return case["model"] in MODELS
    return case["precision"] == "amp_float16" and case["model"] in AMP_MODELS and case["optimizer"] == "adam"


CASES = [c for c in DOCUMENT["cases"] if _chosen(c) and "error" not in c]


def _key(case):
    return case["model"], case["mode"], case["optimizer"], case["precision"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: ":".join(_key(c)))
def test_the_predicted_footprint_is_within_the_targets_of_the_measured_one(case):
    row = predict(case, ARCH)
    for figure, target in TARGETS.items():
        error = row["error_pct"][figure]
        miss = KNOWN_MISSES.get((*_key(case), figure))
        if miss is None:
            assert abs(error) <= target, f"{figure}: predicted {row['predicted'][figure]:,} B, measured " \
                                         f"{row['measured'][figure]:,} B ({error:+.2f}%, target {target}%)"
        else:
            assert abs(error) > target, f"{figure} is within {target}% now ({error:+.2f}%): strike it from " \
                                        f"KNOWN_MISSES ({miss})"
            if miss is HISTORY:  # the cause, checked: the traced step alone, from the layout the GPU had, is right
                step = row["error_pct"]["reserved_step"]
                assert abs(step) <= target, f"the step from the recorded layout misses too ({step:+.2f}%)"
    if case["mode"] == "train":  # the GPU's own events less the probe forward: the history MemLens predicts
        less_probe = row["error_pct"]["reserved_less_probe"]
        assert abs(less_probe) <= TARGETS["reserved"], \
            f"reserved {less_probe:+.2f}% from the recorded process less its probe forward"


MIB = 2**20


def test_the_recorded_process_less_its_probe_keeps_the_library_workspace_it_made():
    """A hand-made process: model 30 MiB and input 12 MiB; the probe forward makes 60 MiB and the
    cuBLAS workspace (32 MiB, never freed), then frees the 60 MiB; the targets (512 B, a 2 MiB
    small segment); the warm-up makes 50 MiB and 30 MiB (the probe's 60 MiB layer in 16 bits),
    then frees both. With the probe, 50 MiB is carved from its 60 MiB segment and 30 MiB takes a
    new one: 166 MiB. Without it, 50 and 30 MiB are new segments and the workspace comes after the
    30 MiB: 30 + 12 + 2 + 50 + 30 + 32 = 156 MiB (124 had the workspace gone with the probe)."""
    from engine.allocator_replay import compact_trace
    from gpu_predict import recorded_less_probe

    def alloc(size, addr):
        return {"action": "alloc", "size": size, "addr": addr}

    def free(size, addr):
        return {"action": "free_completed", "size": size, "addr": addr}

    entries = [alloc(30 * MIB, 1), alloc(12 * MIB, 2),
               alloc(60 * MIB, 3), alloc(32 * MIB, 4), free(60 * MIB, 3),
               alloc(512, 5),
               alloc(50 * MIB, 6), alloc(30 * MIB, 7), free(30 * MIB, 7), free(50 * MIB, 6)]
    case = {"mode": "train", "whole_trace": compact_trace(entries)}
    assert recorded_less_probe(case) == 156 * MIB
    assert recorded_less_probe({**case, "mode": "inference"}) is None


def test_the_subset_covers_every_run_kind_and_both_families():
    kinds = {(c["mode"], c["optimizer"], c["precision"]) for c in CASES}
    assert {("train", "adam", "float32"), ("train", "sgd", "float32"), ("inference", "none", "float32"),
            ("train", "adam", "amp_float16")} <= kinds
    assert {"resnet18", "vit_b_16", "hf_decoder.py:build"} <= {c["model"] for c in CASES}
