"""AMP's autocast dtype as a request field (`amp_dtype`, `--amp-dtype`): float16 or bfloat16 on
either target; "" keeps the target's default (float16 on CUDA, bfloat16 on the CPU). float16 on
CUDA trains with a GradScaler, bfloat16 (and the CPU) without one."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import DATA, ROOT, SPECS
from engine import AnalysisRequest, analyze
from engine.cli import reproduce_command
from engine.errors import RequestError
from engine.json_schema import validate
from engine.report import analysis_to_dict
from engine.step import amp_torch_dtype, autocast_for, build_scaler
from engine.target import CudaAutocast
from engine.truth import measure_cpu_step

TINY = os.path.join(DATA, "tiny_mlp.py") + ":build"
TINY_TRANSFORMER = os.path.join(SPECS, "tiny_transformer.yaml")


def cuda(**changes):
    return analyze(AnalysisRequest(model=TINY, batch=2, device="cuda", optimizer="adam", **changes))


def test_the_default_is_the_targets_dtype_and_either_can_be_asked_for():
    assert AnalysisRequest(amp=True, device="cuda").autocast_dtype == "float16"
    assert AnalysisRequest(amp=True).autocast_dtype == "bfloat16"
    assert AnalysisRequest(amp=True, device="cuda", amp_dtype="bfloat16").autocast_dtype == "bfloat16"
    assert AnalysisRequest(amp=True, amp_dtype="float16").autocast_dtype == "float16"
    assert AnalysisRequest(amp_dtype="bfloat16").autocast_dtype is None  # no AMP, no autocast
    assert amp_torch_dtype("cuda", "bfloat16") == torch.bfloat16 and amp_torch_dtype("cuda") == torch.float16
    assert isinstance(autocast_for(True, "cuda", amp_dtype="bfloat16"), CudaAutocast)
    assert autocast_for(True, "cuda", amp_dtype="bfloat16").dtype == torch.bfloat16


@pytest.mark.parametrize("value", ["fp16", "float32", "int8", None, 16])
def test_an_unknown_dtype_is_refused_in_one_line(value):
    with pytest.raises(RequestError) as e:
        AnalysisRequest(amp=True, amp_dtype=value)
    assert "AMP dtype must be float16 or bfloat16" in str(e.value) and "\n" not in str(e.value)


def test_only_float16_on_cuda_trains_with_a_scaler():
    assert build_scaler(True, "cuda", "train") is not None
    assert build_scaler(True, "cuda", "train", amp_dtype="float16") is not None
    assert build_scaler(True, "cuda", "train", amp_dtype="bfloat16") is None
    assert build_scaler(True, "cpu", "train", amp_dtype="float16") is None


def test_bfloat16_on_cuda_holds_no_scale_or_growth_tensor():
    float16, bfloat16, plain = cuda(amp=True), cuda(amp=True, amp_dtype="bfloat16"), cuda()
    state = [a.timeline.live_at(0)["optimizer_state"] for a in (float16, bfloat16, plain)]
    assert state == [state[2] + 2 * 512, state[2], state[2]]
    # ... nor the scaler's inf checks and unscale in the optimizer phase
    def optimizer_allocations(a):
        start = next(s for p, s, e in a.timeline.phase_spans if p == "optimizer")
        return int((a.events.nbytes[start:] > 0).sum())
    assert optimizer_allocations(bfloat16) == optimizer_allocations(plain) < optimizer_allocations(float16)


def test_a_float16_cpu_step_traces_as_a_real_one_measures():
    """The CPU truth runs the request's own autocast dtype (torch.autocast('cpu', float16))."""
    request = AnalysisRequest(model=TINY_TRANSFORMER, batch=2, mode="train", optimizer="adam", amp=True,
                              amp_dtype="float16")
    traced, measured = analyze(request).peak.total_bytes, measure_cpu_step(request).peak_bytes
    assert abs(traced - measured) <= 0.02 * measured


def cli(*args):
    return subprocess.run([sys.executable, "main.py", "analyze", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def test_the_cli_flag_reaches_the_json_and_the_summary():
    out = cli("--model", TINY, "--batch", "2", "--device", "cuda", "--amp", "--amp-dtype", "bfloat16", "--json", "-")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["request"]["amp_dtype"] == "bfloat16" and validate(doc) == []
    assert doc["peak_bytes"] == cuda(amp=True, amp_dtype="bfloat16").peak.total_bytes
    summary = cli("--model", TINY, "--batch", "2", "--device", "cuda", "--amp")
    assert summary.returncode == 0 and "float32 + AMP (float16)" in summary.stdout


@pytest.mark.parametrize("args, message", [
    (["--amp-dtype", "bfloat16"], "--amp-dtype bfloat16 needs --amp"),
    (["--amp", "--amp-dtype", "fp8"], "invalid choice: 'fp8'"),
])
def test_the_cli_refuses_a_dtype_without_amp_or_an_unknown_one(args, message):
    out = cli("--model", TINY, *args)
    assert out.returncode in (1, 2) and message in out.stderr and out.stderr.count("\n") == 1


def test_the_reproduce_command_spells_the_dtype_out():
    command = reproduce_command(AnalysisRequest(model=TINY, amp=True, amp_dtype="bfloat16", device="cuda"))
    assert "--amp --amp-dtype bfloat16" in command
    assert "--amp-dtype" not in reproduce_command(AnalysisRequest(model=TINY, amp=True))


def test_the_json_schema_refuses_an_unknown_dtype():
    doc = json.loads(json.dumps(analysis_to_dict(cuda(amp=True, amp_dtype="bfloat16"))))
    assert validate(doc) == []
    doc["request"]["amp_dtype"] = "fp8"
    assert validate(doc) != []
