"""cuBLAS/cuBLASLt workspaces in a step traced for CUDA, sized as torch sizes them
(aten/src/ATen/cuda/CublasHandlePool.cpp), and the overhead tables they sit beside.

tiny_mlp: Linear(8,16) -> ReLU -> Linear(16,4); at batch 2 both Linear layers run addmm with a
bias vector, which torch runs as a cuBLASLt epilogue in the forward; the backward's matrix
products (mm) run in autograd's CUDA thread with a cuBLAS handle of its own.
"""
from __future__ import annotations

import os

import pytest

from engine import AnalysisRequest, analyze
from engine.cuda_workspaces import (CUBLAS_DEFAULT_OTHER, context_bytes, cublas_bytes, cublaslt_bytes,
                                    cudnn_workspace_bytes, parse_arch, parse_cublas_workspace_config)
from engine.errors import RequestError

MIB = 2**20
TINY = os.path.join(os.path.dirname(__file__), "..", "data", "tiny_mlp.py") + ":build"


def traced(**changes):
    return analyze(AnalysisRequest(model=TINY, batch=2, device="cuda", optimizer="sgd", **changes))


def test_hopper_default_is_32_mib_and_other_gpus_get_8_mib_and_128_kib():
    assert cublas_bytes() == 32 * MIB  # ':4096:8' on compute capability 9.0
    assert cublas_bytes("", (8, 0)) == CUBLAS_DEFAULT_OTHER == 8 * MIB + 128 * 1024  # ':4096:2:16:8'


def test_cublas_workspace_config_sums_size_times_count():
    assert parse_cublas_workspace_config(":4096:8") == 32 * MIB
    assert parse_cublas_workspace_config(":4096:2:16:8") == 8 * MIB + 128 * 1024
    assert cublas_bytes(":16:8", (9, 0)) == 128 * 1024  # the deterministic-algorithms setting


def test_cublaslt_workspace_is_1_mib_and_capped_by_the_cublas_one():
    assert cublaslt_bytes() == MIB
    assert cublaslt_bytes("4096") == 4 * MIB
    assert cublaslt_bytes("4096", ":16:8") == 128 * 1024


@pytest.mark.parametrize("field, value, says", [
    ("cublas_workspace_config", "4096", "expected ':SIZE:COUNT' pairs"),
    ("cublaslt_workspace_size", "1M", "whole number of KiB"),
    ("alloc_conf", "max_split_size_mb:1", "must be >= 20"),
    ("cuda_arch", (9,), "two whole numbers"),
])
def test_bad_cuda_settings_are_refused_in_one_line(field, value, says):
    with pytest.raises(RequestError, match=says):
        AnalysisRequest(model="resnet18", device="cuda", **{field: value})


def test_compute_capability_is_read_as_written():
    assert parse_arch("9.0") == parse_arch("sm_90") == parse_arch("90") == (9, 0)
    assert parse_arch("12.0") == (12, 0)
    with pytest.raises(RequestError, match="compute capability"):
        parse_arch("hopper")


def test_a_steady_training_step_holds_both_threads_workspaces_from_the_start():
    """An earlier step made them: 32 MiB (forward thread) + 1 MiB (its cuBLASLt) + 32 MiB
    (autograd thread) = 65 MiB live before the step, as memory_allocated reads on an H200."""
    a = traced()
    assert [(w.label, w.bytes, w.made) for w in a.cuda.workspaces] == [
        ("cuBLAS workspace (main thread)", 32 * MIB, "an earlier step"),
        ("cuBLASLt workspace (main thread)", MIB, "an earlier step"),
        ("cuBLAS workspace (autograd thread)", 32 * MIB, "an earlier step"),
    ]
    cpu = analyze(AnalysisRequest(model=TINY, batch=2, device="cpu", optimizer="sgd"))
    assert a.peak.breakdown["temporaries"] >= 65 * MIB
    assert int(a.timeline.total[0]) - int(cpu.timeline.total[0]) >= 65 * MIB


def test_inference_has_no_autograd_thread():
    a = traced(mode="inference")
    assert a.cuda.workspace_bytes == 33 * MIB


def test_a_first_step_makes_them_at_the_first_matrix_product():
    """First step: an allocation event inside the first Linear (forward thread) and one at the
    backward's first matrix product, never freed."""
    a = traced(first_step=True)
    made = {w.label: w.made for w in a.cuda.workspaces}
    assert made["cuBLAS workspace (main thread)"] == "0"
    assert made["cuBLAS workspace (autograd thread)"] == "2"  # the last Linear's backward runs first
    big = [life for life in a.lifetimes if life.nbytes == 32 * MIB]
    assert len(big) == 2 and all(life.free_point == len(a.timeline) for life in big)
    assert int(a.timeline.total[0]) < 32 * MIB


def test_cublas_workspace_config_and_the_architecture_size_the_traced_workspaces():
    assert traced(cublas_workspace_config=":16:8").cuda.workspace_bytes == 3 * 128 * 1024
    assert traced(cuda_arch=(8, 0)).cuda.workspace_bytes == 2 * CUBLAS_DEFAULT_OTHER + MIB


def test_cpu_traces_have_no_cuda_part():
    assert analyze(AnalysisRequest(model=TINY, batch=2)).cuda is None


def test_the_tables_say_what_is_measured_and_what_is_extrapolated():
    measured = cudnn_workspace_bytes((9, 0), "2.11.0+cu130")
    assert measured.source == "measured table" and "H200" in measured.note
    elsewhere = cudnn_workspace_bytes((8, 0), "2.11.0")
    assert elsewhere.source == "default"
    same_gpu_other_torch = cudnn_workspace_bytes((9, 0), "2.14.1")
    assert same_gpu_other_torch.source == "default" and "extrapolated" in same_gpu_other_torch.note
    assert context_bytes().source == "default"
