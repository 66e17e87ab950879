"""`python main.py analyze` with the planning flags: --gpu / --capacity, --max-batch, --sweep."""
import csv
import io
import json
import math
import os
import re

import pytest

from conftest import SPECS, run_main_concurrently
from engine import AnalysisRequest, analyze
from engine.cli import main
from engine.devices import custom_device, find_gpu
from engine.footprint import fit_check

CNN = os.path.join(SPECS, "small_cnn.yaml")


# Each run is its own main.py process (a torch start-up); the module starts them together.
RUNS = {
    "max_batch_json": ["--model", CNN, "--max-batch", "--capacity", "1GiB", "--json", "-"],
    "max_batch_text": ["--model", CNN, "--max-batch", "--gpu", "T4", "--overhead", "context=300MiB"],
    "gpu_alone": ["--model", CNN, "--batch", "8", "--device", "cuda", "--gpu", "A100 80GB"],
    "sweep": ["--model", CNN, "--sweep", "batch=1,2,4,...,16", "--gpu", "L4", "--csv", "{tmp}/rows.csv",
              "--json", "{tmp}/rows.json"],
}


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("planning")


@pytest.fixture(scope="module")
def runs(tmp):
    return run_main_concurrently({name: ["analyze", *(a.format(tmp=tmp) for a in argv)] for name, argv in RUNS.items()})


def test_max_batch_json_has_the_documented_keys_and_is_exact(runs):
    out = runs["max_batch_json"]
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    b = doc["max_batch"]
    assert doc["capacity_bytes"] == 2**30
    assert doc["peak_bytes_at_max"] <= doc["capacity_bytes"] < doc["peak_bytes_at_max_plus_one"]
    assert doc["request"]["batch"] == b and doc["model"] == "small-resnet"  # the analysis at the answer
    assert doc["fit"]["total_bytes"] == doc["peak_bytes_at_max"]
    # Never a scan: doubling then bisecting at worst (was <= 7 while the fit total was affine in the
    # batch; the simulated allocator reserve of issue 7 is a step function of it).
    assert doc["traces"] == len(doc["points"]) <= 2 * math.ceil(math.log2(b)) + 4 and doc["seconds"] > 0
    # The same figure from an independent analysis.
    request = AnalysisRequest(model=CNN, batch=b + 1, device="cuda")
    assert fit_check(analyze(request), custom_device(2**30)).total_bytes == doc["peak_bytes_at_max_plus_one"]


def test_max_batch_text_on_a_catalog_gpu(runs):
    out = runs["max_batch_text"]
    assert out.returncode == 0, out.stderr
    assert "largest batch on NVIDIA T4 (15.0 GiB):" in out.stdout
    assert re.search(r"CUDA context and library handles\s+300\.0 MiB  user", out.stdout)
    assert "note: planning for a GPU: tracing with --device cuda rules" in out.stderr


def test_gpu_alone_adds_the_fit_check_to_the_summary(runs):
    out = runs["gpu_alone"]
    assert out.returncode == 0, out.stderr
    assert "footprint on NVIDIA A100 80GB (80.0 GiB" in out.stdout
    assert "fits on NVIDIA A100 80GB:" in out.stdout
    assert "traced peak:" in out.stdout  # the usual summary is still there


def test_sweep_writes_csv_and_json_rows(runs, tmp):
    target = tmp / "rows.csv"
    out = runs["sweep"]
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert [int(r["value"]) for r in rows] == [1, 2, 4, 8, 16]
    assert all(r["parameter"] == "batch" and r["state"] == "fits" for r in rows)
    peaks = [int(r["peak_bytes"]) for r in rows]
    # The traced peak grows with the batch; the total moves in the simulated allocator's segment steps.
    tensor_peaks = [int(r["tensor_peak_bytes"]) for r in rows]
    assert tensor_peaks == sorted(tensor_peaks) and all(p > t for p, t in zip(peaks, tensor_peaks))
    doc = json.loads((tmp / "rows.json").read_text())
    assert doc["capacity_bytes"] == find_gpu("L4").capacity_bytes
    assert [r["peak_bytes"] for r in doc["rows"]] == peaks
    assert "batch 16:" in out.stderr  # each point is reported as it is computed


@pytest.mark.parametrize("args, message", [
    (("--max-batch", "--gpu", "RTX 4099"), "unknown GPU 'RTX 4099'; did you mean 'NVIDIA GeForce RTX 4090'"),
    (("--max-batch", "--capacity", "24 GB of RAM"), "cannot read '24 GB of RAM' as a size"),
    (("--max-batch", "--capacity", "-1"), "a size must be positive, got '-1'"),
    (("--max-batch",), "planning needs a device"),
    (("--max-batch", "--capacity", "1GiB", "--gpu", "T4"), "either --capacity or --gpu"),
    (("--max-batch", "--capacity", "1MiB"), "does not fit even at batch 1: needs"),
    (("--max-batch", "--gpu", "0"), "no detected GPU 0 on this machine (no GPU"),
    (("--sweep", "width=1,2", "--gpu", "T4"), "write batch=1,2,4,...,512"),
    (("--gpu", "T4", "--overhead", "tensors=1GiB"), "cannot override footprint line 'tensors'"),
])
def test_bad_planning_input_is_one_clear_line(args, message, capsys):
    # In process (the same main() the subprocess runs) to spare a torch start-up per case.
    assert main(["--model", CNN, *args]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("memlens: error: ")
    assert message in err
