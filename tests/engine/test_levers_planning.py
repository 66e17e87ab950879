"""Capacity planning with gradient accumulation: with a micro-batch m below the batch B, the traced
step is one micro-step of m samples, so "the largest batch" is the largest micro-batch that fits
with the accumulation steps k = ceil(B / m) held fixed (global batch k x m), in the engine, the CLI
text and the JSON. Checked against fresh, independent analyses, never the planner's own figures."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SPECS
from engine import AnalysisRequest, analyze
from engine.devices import custom_device
from engine.footprint import fit_check
from engine.json_schema import validate
from engine.planner import DoesNotFitError, max_batch, sweep
from engine.units import parse_bytes

CNN = os.path.join(SPECS, "small_cnn.yaml")
DEVICE = custom_device(parse_bytes("1 GiB"))
ACCUMULATING = AnalysisRequest(model=CNN, batch=64, micro_batch=16, device="cuda")  # 4 steps


def required(request: AnalysisRequest) -> int:
    return fit_check(analyze(request), DEVICE).total_bytes


def test_the_largest_batch_with_accumulation_is_the_largest_micro_batch_at_fixed_steps():
    found = max_batch(ACCUMULATING, DEVICE)
    m = found.value
    assert (found.parameter, found.accumulation_steps, found.batch) == ("micro_batch", 4, 4 * m)
    # Exact with respect to independent traces of the micro-step at m and m + 1, four steps each.
    at_m = required(ACCUMULATING.replace(batch=4 * m, micro_batch=m))
    at_next = required(ACCUMULATING.replace(batch=4 * (m + 1), micro_batch=m + 1))
    assert at_m <= DEVICE.capacity_bytes < at_next
    assert (found.peak_bytes, found.next_peak_bytes) == (at_m, at_next)
    assert found.analysis.levers.micro_batch == m and found.analysis.levers.accumulation_steps == 4
    assert found.analysis.request.batch == 4 * m
    assert found.request_changes() == {"batch": 4 * m, "micro_batch": m}
    assert all(p.parameter == "micro_batch" and p.batch == 4 * p.value for p in found.points)
    assert found.points[0].value == 1  # the search starts at one sample per micro-step, never below
    # The accumulated gradients are live in every micro-step: a micro-batch holds no more than a plain batch.
    assert m <= max_batch(ACCUMULATING.replace(batch=8, micro_batch=None), DEVICE).value
    assert found.describe().startswith(f"largest micro-batch: {m} × 4 steps = batch {4 * m} (")
    assert f"; batch {4 * (m + 1)} (micro-batch {m + 1} × 4 steps) needs" in found.describe()


def test_a_micro_batch_equal_to_the_batch_is_a_plain_batch_search():
    plain = max_batch(ACCUMULATING.replace(batch=16, micro_batch=None), DEVICE)
    one_step = max_batch(ACCUMULATING.replace(batch=16, micro_batch=16), DEVICE)
    assert (one_step.parameter, one_step.accumulation_steps) == ("batch", 1)
    assert (one_step.value, one_step.peak_bytes) == (plain.value, plain.peak_bytes)
    assert one_step.request_changes() == {"batch": plain.value}


def test_a_micro_batch_that_does_not_divide_the_batch_keeps_the_ceiling_of_the_steps():
    found = max_batch(ACCUMULATING.replace(batch=50, micro_batch=16), DEVICE)  # 16+16+16+2: 4 steps
    assert found.accumulation_steps == 4 and found.batch == 4 * found.value


def test_a_batch_sweep_with_accumulation_sweeps_the_micro_batch():
    points = sweep(ACCUMULATING, DEVICE, "batch", [1, 8, 32])
    assert [(p.parameter, p.value, p.batch) for p in points] == [("micro_batch", 1, 4), ("micro_batch", 8, 32),
                                                                ("micro_batch", 32, 128)]
    assert points[2].peak_bytes == required(ACCUMULATING.replace(batch=128, micro_batch=32))


def test_too_big_even_at_one_sample_per_micro_step_names_the_steps():
    with pytest.raises(DoesNotFitError, match=r"does not fit even at micro-batch 1 \(4 accumulation steps\)"):
        max_batch(ACCUMULATING.replace(model="resnet18"), custom_device(parse_bytes("128 MiB")))


# ---- The CLI: text and JSON say the same thing
def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "main.py", "analyze", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_cli_max_batch_with_a_micro_batch_json():
    out = cli("--model", CNN, "--batch", "64", "--micro-batch", "16", "--max-batch", "--capacity", "1GiB",
              "--json", "-")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert validate(doc) == []
    m, k = doc["max_micro_batch"], doc["accumulation_steps"]
    assert k == 4 and doc["max_batch"] == k * m
    assert doc["request"]["batch"] == k * m and doc["request"]["micro_batch"] == m  # the analysis at the answer
    assert doc["micro_batch"]["size"] == m and doc["micro_batch"]["steps"] == k
    assert doc["peak_bytes_at_max"] <= doc["capacity_bytes"] < doc["peak_bytes_at_max_plus_one"]
    assert all(p["value"] == k * p["micro_batch"] for p in doc["points"])
    assert doc["peak_bytes_at_max_plus_one"] == required(ACCUMULATING.replace(batch=k * (m + 1), micro_batch=m + 1))


def test_cli_max_batch_with_a_micro_batch_text():
    out = cli("--model", CNN, "--batch", "64", "--micro-batch", "16", "--max-batch", "--capacity", "1GiB")
    assert out.returncode == 0, out.stderr
    m = max_batch(ACCUMULATING, DEVICE).value
    assert (f"largest batch on custom 1.0 GiB (1.0 GiB): {4 * m} = micro-batch {m} × 4 accumulation steps (held fixed)"
            in out.stdout)
    assert f"  peak at batch {4 * (m + 1)} (micro-batch {m + 1} × 4 steps): " in out.stdout
