"""The CPU truth again, on the instruction sets this machine can pretend to be: oneDNN and ATen
pick their kernels, and with them their scratch buffers, by instruction set, so a model that
holds on one CPU and fails on another is a bug in the model (issue 8).

One subprocess per instruction set runs a subset of the truth cases chosen to exercise the
ISA-dependent kernels (float32 and bfloat16 convolutions, AMP, few channels, grouped and
transposed convolutions, LSTMs, a vision transformer's attention and matrix products;
recursive modules and packed sequences run the same kernels on every family and stay in
test_truth_cpu.py); each (ISA, case) is one test. Target: within 2%, as in test_truth_cpu.py.

AVX512_CORE_BF16 adds bfloat16 kernels to AVX512_CORE and nothing else: its float32 cases run
AVX512_CORE's kernels and the trace takes the same path (16-channel blocks, the same
scratchpads). Measured on one AMX machine, all 12 float32 cases gave the same traced and the
same measured peak to the byte under both caps, so avx512_bf16 runs its bfloat16 (AMP) cases
and one float32 case (a first convolution on one channel) that shows the cap leaves float32 alone.
"""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.cpu_isa import cpu_flags, family_from
from test_truth_cpu import AMP, TOLERANCE, user_model

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "truth_worker.py")

# Restrictions (environment) and the oneDNN family each must yield.
ISAS = {
    "avx2": ({"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}, "avx2"),
    "avx512": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}, "avx512"),  # Skylake to Ice Lake Xeons
    "avx512_bf16": ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, "avx512_bf16"),  # an AMD EPYC Zen 4
}

CASES = [
    ("resnet18", 2, "train", "adam", None),
    ("resnet18", 2, "train", "adam", AMP),
    ("resnet18", 2, "inference", "none", AMP),
    ("mobilenet_v3_small", 2, "train", "sgd", AMP),
    (user_model("mnist"), 4, "train", "adam", None),
    (user_model("autoencoder"), 4, "train", "adam", None),
    (user_model("autoencoder"), 4, "inference", "none", None),
    (user_model("reused_relu"), 4, "train", "adam", None),
    (user_model("reused_relu"), 4, "inference", "none", None),
    (user_model("grouped"), 4, "train", "adam", None),
    (user_model("grouped"), 4, "inference", "none", None),
    (user_model("depthwise_separable"), 4, "train", "adam", None),  # 3x3 depthwise: padded to 16 or 8
    (user_model("resnext"), 4, "train", "adam", None),  # groups of 4 and 12: GEMM, or jit from AVX-512 on
    (user_model("convnext"), 4, "train", "adam", None),  # depthwise tiles: 16x16 with AVX-512, 8x8 below
    (user_model("downsample"), 4, "train", "adam", None),  # channels-last: padded to 16 or 8, 32 or 24
    (user_model("downsample"), 4, "inference", "none", None),
    (user_model("patches"), 4, "train", "adam", None),  # GEMM weight gradient: kernels from 15 wide (14 on AVX2)
    (user_model("lstm"), 4, "train", "adam", None),
    (user_model("lstm"), 4, "inference", "none", None),
    ("vit_b_16", 1, "train", "adamw", None),  # attention and large float32 matrix products
    ("vit_b_16", 1, "inference", "none", None),
]
# The cases each instruction set runs: all of them, but float32 on AVX512_CORE_BF16 (see above).
FLOAT32_ON_BF16 = {_case for _case in CASES if _case[4] is None} - {(user_model("mnist"), 4, "train", "adam", None)}
RUNS = {isa: [c for c in CASES if not (isa == "avx512_bf16" and c in FLOAT32_ON_BF16)] for isa in ISAS}



def _id(case):
    model, _, mode, optimizer, amp = case
    name = os.path.basename(model).replace("user_models.py:build_", "")
    return "-".join([name, mode, optimizer] + ([amp] if amp else []))


def _params():
    for isa in ISAS:
        for case in RUNS[isa]:
            yield pytest.param(isa, case, id=f"{isa}-{_id(case)}")


def _runs_here(isa: str) -> bool:
    return family_from(cpu_flags(), ISAS[isa][0]["ONEDNN_MAX_CPU_ISA"]) == ISAS[isa][1]


@pytest.fixture(scope="module")
def results(request) -> dict:
    """Every case's figures, per instruction set, from one restricted worker process each. The
    workers the selected tests need run two at a time: each is single-threaded much of the time
    (start-up, tracing), and a process's allocations are its own, whatever runs beside it."""
    wanted = [isa for isa in ISAS if _runs_here(isa) and any(
        item.module is request.module and getattr(item, "callspec", None) and item.callspec.params["isa"] == isa
        for item in request.session.items)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(wanted, pool.map(_worker, wanted)))


def _worker(isa: str) -> subprocess.CompletedProcess:
    cases = [[m, b, mode, opt, amp == AMP] for m, b, mode, opt, amp in RUNS[isa]]
    return subprocess.run([sys.executable, WORKER, json.dumps(cases)], env={**os.environ, **ISAS[isa][0]},
                          capture_output=True, text=True, timeout=1200)


def _rows(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return {_id((r["case"][0], r["case"][1], r["case"][2], r["case"][3], AMP if r["case"][4] else None)): r
            for r in rows}


@pytest.mark.slow
@pytest.mark.parametrize("isa, case", list(_params()))
def test_traced_peak_matches_a_measured_cpu_step_on_a_restricted_isa(isa, case, results):
    family = ISAS[isa][1]
    if not _runs_here(isa):
        pytest.skip(f"this CPU cannot run {isa} (a restriction only lowers the instruction set)")
    result = _rows(results[isa])[_id(case)]
    assert result["family"] == family  # the restriction took hold
    assert result["traced_start"] == result["measured_start"]
    error = (result["traced_peak"] - result["measured_peak"]) / result["measured_peak"]
    print(f"{isa} {_id(case)}: traced {result['traced_peak']} measured {result['measured_peak']} error {error:+.3%}")
    assert abs(error) < TOLERANCE
