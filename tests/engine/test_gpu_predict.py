"""MemLens's CUDA predictions against what an H200 measured (issue 7): a `--device cuda` trace of
a recorded case, its footprint lines, against max_memory_allocated (2%), max_memory_reserved (3%)
and NVML's per-process used memory (5%) of the same step run in a fresh process
(tests/data/gpu/h200_2026-11-28_fresh, benchmarks/gpu_accuracy.py --fresh-all).

A subset runs here (every run kind on eight models, float16 AMP training on three); the whole
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
AMP_MODELS = ("resnet18", "vit_b_16", "hf_decoder.py:build")
# (model, mode, optimizer, precision, figure) -> why it misses its target
HISTORY = ("the segment layout follows the recording's history (a train-mode float32 no-grad forward before "
           "the first step, gone from later recordings): the traced step alone, replayed from the segments the GPU "
           "had before its measured step, is within 3% (checked below), and the simulator replays the recorded "
           "trace itself within 3% (test_gpu_replay.py)")
KNOWN_MISSES: dict[tuple, str] = {
    ("vgg16", "train", "adam", "float32", "reserved"): HISTORY,
    ("vgg16", "train", "sgd", "float32", "reserved"): HISTORY,
    ("resnet18", "train", "adam", "amp_float16", "reserved"): HISTORY,  # +9% (an over-estimate) since the exact workspaces
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


def test_the_subset_covers_every_run_kind_and_both_families():
    kinds = {(c["mode"], c["optimizer"], c["precision"]) for c in CASES}
    assert {("train", "adam", "float32"), ("train", "sgd", "float32"), ("inference", "none", "float32"),
            ("train", "adam", "amp_float16")} <= kinds
    assert {"resnet18", "vit_b_16", "hf_decoder.py:build"} <= {c["model"] for c in CASES}
