"""`python main.py analyze`: JSON contract, readable summary, clean errors and exit codes."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, SPECS, run_main_concurrently

MLP = "resources/examples/mlp.py:build"

# The runs that trace a model (a torch start-up each), started together for the whole module.
RUNS = {
    "json": ["--model", "resnet18", "--batch", "2", "--optimizer", "sgd", "--json", "-"],
    "json_to_a_file": ["--model", os.path.join(SPECS, "small_cnn.yaml"), "--batch", "8", "--json", "{tmp}/a.json"],
    "summary": ["--model", "vgg16", "--batch", "32", "--mode", "inference"],
    "python_file": ["--model", MLP, "--batch", "4"],
    "optimizer_in_inference": ["--model", MLP, "--mode", "inference", "--optimizer", "adam", "--json", "-"],
}


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def runs(tmp):
    return run_main_concurrently({name: ["analyze", *(a.format(tmp=tmp) for a in argv)] for name, argv in RUNS.items()})


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "main.py", "analyze", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_json_output_has_the_documented_fields(runs):
    out = runs["json"]
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    for key in ("model", "parameters", "peak_bytes", "peak_breakdown", "textbook", "layers", "timeline",
                "warnings", "analysis_seconds"):
        assert key in doc
    assert doc["model"] == "resnet18" and doc["parameters"] == 11_689_512
    assert set(doc["peak_breakdown"]) == {"parameters", "buffers", "gradients", "optimizer_state",
                                          "activations", "temporaries", "inputs", "communication"}
    assert sum(doc["peak_breakdown"].values()) == doc["peak_bytes"]
    assert {"parameters_bytes", "peak_bytes"} <= set(doc["textbook"])
    layer = doc["layers"][0]
    assert {"name", "type", "output_shape", "params", "output_bytes", "saved_bytes"} <= set(layer)
    assert layer["name"] == "conv1" and layer["output_shape"] == [2, 64, 112, 112]
    curves = doc["timeline"]
    assert max(curves["total"]) == doc["peak_bytes"]  # downsampling keeps the peak
    assert len(curves["total"]) <= 2000


def test_json_to_a_file_and_the_readable_summary(runs, tmp):
    out = runs["json_to_a_file"]
    assert out.returncode == 0 and json.loads((tmp / "a.json").read_text())["model"] == "small-resnet"
    out = runs["summary"]
    assert out.returncode == 0
    assert "parameters: 138,357,544 (527.8 MiB)" in out.stdout
    assert "traced peak:" in out.stdout and "textbook estimate:" in out.stdout


# An unknown model name and a detection model (each a torch start-up) are in test_bad_inputs.py's
# catalogue, with its stricter checks (the exact exit code, one line, the name in it).
@pytest.mark.parametrize("args, message", [
    (["--batch", "0"], "batch must be a positive integer"),
    (["--input", "3x22a"], "malformed input shape"),
    (["--model", "missing.yaml"], "missing.yaml: cannot read spec"),
])
def test_bad_input_exits_non_zero_without_a_traceback(args, message):
    out = cli(*args)
    assert out.returncode != 0
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_python_files_are_announced_as_executed(runs):
    out = runs["python_file"]
    assert out.returncode == 0
    assert "executing python file resources/examples/mlp.py" in out.stderr


def test_an_optimizer_asked_for_in_inference_mode_is_warned_about(runs):
    out = runs["optimizer_in_inference"]
    assert out.returncode == 0, out.stderr
    assert "memlens: warning: optimizer 'adam' ignored: inference runs no optimizer step" in out.stderr
    assert any("optimizer 'adam' ignored" in w for w in json.loads(out.stdout)["warnings"])


def test_help_documents_the_timeout():
    out = cli("--help")
    assert out.returncode == 0
    assert "--timeout SECONDS" in out.stdout and "default 600" in out.stdout


def test_the_cli_process_never_imports_torch_when_the_child_traces(tmp):
    # The child (engine/isolated.py) traces; this process unpickles plain data and renders the
    # JSON, the summary and the GPU footprint lines: importing torch here would cost a second
    # start-up of seconds on every run.
    argv = ["analyze", "--model", os.path.join(SPECS, "small_cnn.yaml"), "--batch", "4", "--device", "cuda"]
    probe = ("import sys, engine.cli as c; json_code = c.main(sys.argv[1:] + ['--json', %r]); "
             "code = c.main(sys.argv[1:]); print('exit', json_code, code, 'torch imported:', 'torch' in sys.modules)"
             % str(tmp / "cuda.json"))
    out = subprocess.run([sys.executable, "-c", probe, *argv[1:]], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.stdout.splitlines()[-1] == "exit 0 0 torch imported: False", out.stderr
    assert "CUDA context and library handles" in out.stdout  # the footprint, rendered here
    doc = json.loads((tmp / "cuda.json").read_text())
    assert doc["peak_reserved_bytes"] > 0 and any(line["key"] == "context" for line in doc["footprint"])
