"""The largest batch / resolution / sequence that fits, and sweeps.

The exactness property is checked against fresh, independent analyses (a new model, a new trace,
the fit check's total), not against the planner's own figures: peak(b) <= capacity < peak(b + 1).
"""
import math
import os

import pytest

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.devices import custom_device, find_gpu
from engine.errors import CancelledError, RequestError
from engine.footprint import fit_check
from engine.planner import (VARIANTS, DoesNotFitError, compare_variants, max_batch, max_resolution, max_sequence,
                            parse_values, sweep)
from engine.units import parse_bytes

CNN = os.path.join(SPECS, "small_cnn.yaml")
TRANSFORMER = os.path.join(SPECS, "tiny_transformer.yaml")
GIB = 2**30


def required(request: AnalysisRequest, device) -> int:
    """What the fit check compares with the capacity, from a fresh analysis."""
    return fit_check(analyze(request), device).total_bytes


@pytest.mark.parametrize("request_, capacity", [
    (AnalysisRequest(model=CNN, batch=8, device="cuda"), "1.5 GiB"),
    (AnalysisRequest(model="resnet18", batch=8, input_shape=(3, 64, 64), device="cuda"), "3 GiB"),
    (AnalysisRequest(model=TRANSFORMER, batch=8, device="cuda"), "2GB"),
], ids=["spec-cnn", "resnet18-64px", "tiny-transformer"])
def test_largest_batch_is_exact_with_respect_to_the_trace(request_, capacity):
    device = custom_device(parse_bytes(capacity))
    found = max_batch(request_, device)
    b = found.value
    at_b = required(request_.replace(batch=b), device)
    at_next = required(request_.replace(batch=b + 1), device)
    assert at_b <= device.capacity_bytes < at_next
    assert (found.peak_bytes, found.next_peak_bytes) == (at_b, at_next)
    assert found.fit.total_bytes == at_b and found.fit.state in ("fits", "tight")
    assert b > 50  # a real search, not batch 1
    # Never a scan: at most doubling up to the answer, then bisecting. (Was <= 7 while the fit
    # total was affine in the batch; the simulated allocator reserve (issue 7) is a step function
    # of it, so the secant no longer lands in one or two traces.)
    assert found.traces <= 2 * math.ceil(math.log2(b)) + 4
    assert [p.value for p in found.points][0] == 1


def test_largest_square_resolution_is_exact():
    request = AnalysisRequest(model="resnet18", batch=2, device="cuda")
    device = find_gpu("T4")
    found = max_resolution(request, device)
    r = found.value
    assert required(request.replace(input_shape=(3, r, r)), device) <= device.capacity_bytes
    assert required(request.replace(input_shape=(3, r + 1, r + 1)), device) > device.capacity_bytes
    assert 224 < r and found.traces <= 8


def test_longest_sequence_is_exact():
    request = AnalysisRequest(model=TRANSFORMER, batch=4, device="cuda")
    device = custom_device(parse_bytes("3 GiB"))
    found = max_sequence(request, device)
    s = found.value
    assert required(request.replace(input_shape=(s,)), device) <= device.capacity_bytes
    assert required(request.replace(input_shape=(s + 1,)), device) > device.capacity_bytes
    assert found.traces <= 2 * math.ceil(math.log2(s)) + 4  # never a scan (was <= 6: see above)


def test_a_model_too_big_for_batch_1_says_what_it_needs():
    request = AnalysisRequest(model="resnet18", batch=32, device="cuda")
    need = required(request.replace(batch=1), find_gpu("T4"))
    with pytest.raises(DoesNotFitError, match=r"does not fit even at batch 1: needs .* \(" + f"{need:,}" + " bytes\\)"):
        max_batch(request, custom_device(parse_bytes("512 MiB")))


def test_a_cpu_request_is_planned_with_cuda_rules_on_a_gpu():
    found = max_batch(AnalysisRequest(model=CNN, batch=8, device="cpu"), custom_device(GIB))
    assert found.fit.warnings == ()  # traced for CUDA, so no "traced for the cpu" warning


def test_shape_searches_refuse_models_they_do_not_apply_to():
    with pytest.raises(RequestError, match="resolution applies to image inputs"):
        max_resolution(AnalysisRequest(model=TRANSFORMER, batch=2, device="cuda"), custom_device(GIB))
    with pytest.raises(RequestError, match="sequence length applies to models taking token ids"):
        max_sequence(AnalysisRequest(model=CNN, batch=2, device="cuda"), custom_device(GIB))


# ---- Sweeps
def test_sweep_reports_each_point_as_it_is_computed():
    seen, fractions = [], []
    points = sweep(AnalysisRequest(model=CNN, batch=8, device="cuda"), find_gpu("L4"), "batch", [1, 4, 16],
                   on_point=seen.append, progress=lambda f, m: fractions.append(f))
    assert [p.value for p in seen] == [1, 4, 16] and tuple(seen) == points
    # The traced peak grows with the batch; the total need not at this size: the simulated
    # allocator's segments come in 2 and 20 MiB steps, as on the GPU.
    assert points[0].tensor_peak_bytes < points[1].tensor_peak_bytes < points[2].tensor_peak_bytes
    assert all(p.peak_bytes > p.tensor_peak_bytes for p in points)
    assert points[2].peak_bytes == required(AnalysisRequest(model=CNN, batch=16, device="cuda"), find_gpu("L4"))
    assert all(p.state == "fits" and p.capacity_bytes == find_gpu("L4").capacity_bytes for p in points)
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_sweep_can_be_cancelled_between_points():
    seen = []
    with pytest.raises(CancelledError):
        sweep(AnalysisRequest(model=CNN, batch=8, device="cuda"), find_gpu("L4"), "resolution", [32, 64, 128],
              on_point=seen.append, cancelled=lambda: len(seen) >= 1)
    assert [p.value for p in seen] == [32]


def test_sweep_states_cross_the_capacity():
    device = custom_device(parse_bytes("1 GiB"))
    points = sweep(AnalysisRequest(model=CNN, batch=8, device="cuda"), device, "batch", [1, 4096])
    assert [p.state for p in points] == ["fits", "does not fit"]


@pytest.mark.parametrize("text, expected", [
    ("batch=1,2,4,...,64", ("batch", [1, 2, 4, 8, 16, 32, 64])),
    ("resolution=224,448,...,3840", ("resolution", [224, 448, 896, 1792, 3584, 3840])),
    ("seq=128,256,384,...,768", ("seq", [128, 256, 384, 512, 640, 768])),
    ("batch=3", ("batch", [3])),
])
def test_sweep_values_are_parsed(text, expected):
    assert parse_values(text) == expected


@pytest.mark.parametrize("text, message", [
    ("width=1,2", "write batch=1,2,4,...,512"),
    ("batch=1,two", "'two' is not an integer"),
    ("batch=1,...,8", "'...' needs two values before it"),
    ("batch=0,1", "values must be positive"),
])
def test_bad_sweep_values_are_refused(text, message):
    with pytest.raises(RequestError, match=message):
        parse_values(text)


def test_variants_show_the_effect_of_dtype_optimizer_and_mode():
    seen = []
    points = compare_variants(AnalysisRequest(model=CNN, batch=64, device="cuda"), custom_device(GIB),
                              on_point=seen.append)
    assert [p.label for p in seen] == [label for label, _ in VARIANTS] and tuple(seen) == points
    by = {p.label: p.tensor_peak_bytes for p in points}
    assert by["float32, inference"] < by["float32, SGD"] < by["float32, SGD momentum"] < by["float32, Adam"]
    assert by["bfloat16 weights, Adam"] < by["float32, Adam"]
    assert points[1].request.amp and points[0].request.device == "cuda"


def test_python_file_models_are_planned_in_child_processes():
    from conftest import DATA

    request = AnalysisRequest(model=os.path.join(DATA, "tiny_mlp.py") + ":build", batch=4, device="cuda")
    device = custom_device(required(request.replace(batch=1), find_gpu("T4")) + 4 * 2**20)  # 4 MiB above batch 1
    found = max_batch(request, device)
    assert found.value > 100 and found.peak_bytes <= device.capacity_bytes < found.next_peak_bytes
    # The capacity is one of the reserve's steps, so a fitting batch sits exactly at it: the search
    # still bisects, not creeps one batch a trace (it took 530 child processes before).
    assert found.traces <= 2 * math.ceil(math.log2(found.value)) + 4
    assert required(request.replace(batch=found.value + 1), device) == found.next_peak_bytes
