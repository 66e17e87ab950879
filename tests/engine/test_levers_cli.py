"""`analyze --checkpoint/--freeze/--micro-batch`: the levers from the command line, their JSON keys,
the fewest-blocks search, and one-line errors (exit code 1)."""
import json
import subprocess
import sys

from conftest import ROOT
from engine.units import format_bytes


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "main.py", "analyze", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_checkpointing_every_block_reports_what_it_saves_and_costs():
    out = cli("--model", "resnet18", "--batch", "8", "--optimizer", "sgd", "--checkpoint", "every-block",
              "--json", "-")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    c = doc["checkpoint"]
    assert c["blocks"] == doc["model_blocks"] == [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert c["saved_bytes"] == c["baseline_peak_bytes"] - doc["peak_bytes"] > 0
    assert 0 < c["recompute_flops"] < c["step_flops"]
    assert c["recompute_pct"] == round(100 * c["recompute_flops"] / c["step_flops"], 3)
    assert doc["request"]["checkpoint"] == ["every-block"]
    assert doc["frozen_parameters"] == 0 and doc["micro_batch"] is None


def test_freeze_and_micro_batch_in_the_summary():
    out = cli("--model", "resnet18", "--batch", "8", "--freeze", "layer1.*, conv1", "--micro-batch", "4")
    assert out.returncode == 0, out.stderr
    frozen = 4 * 64 * 64 * 9 + 4 * 2 * 64 + 64 * 3 * 7 * 7  # layer1's 4 convs and 4 batch norms, conv1
    assert f"frozen: {frozen:,} parameters in 13 tensors (no gradient, no optimizer state)" in out.stdout
    gradients = format_bytes(4 * (11_689_512 - frozen))
    assert (f"micro-batch 4 × 2 steps: a micro-step with {gradients} of accumulated gradients live and the "
            "optimizer step") in out.stdout
    assert "input 4x3x224x224" in out.stdout


def _footprint(*levers) -> int:
    out = cli("--model", "resnet18", "--batch", "64", *levers, "--capacity", "1TiB", "--json", "-")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["fit"]["total_bytes"]


def test_fit_finds_the_fewest_blocks_under_the_capacity():
    # a capacity between the footprint with every block checkpointed and without any (the footprint
    # model, reserve and workspaces included, decides where those lie)
    plain, every = _footprint(), _footprint("--checkpoint", "every-block")
    assert every < plain
    capacity = (plain + every) // 2
    out = cli("--model", "resnet18", "--batch", "64", "--checkpoint", "fit", "--capacity", str(capacity), "--json", "-")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    search = doc["checkpoint_search"]
    assert 0 < len(search["blocks"]) < search["candidates"] == 8  # some, not all
    assert doc["fit"]["state"] != "does not fit" and doc["checkpoint"]["blocks"] == search["blocks"]
    assert doc["fit"]["total_bytes"] <= search["capacity_bytes"]
    assert search["traces"] >= 3  # the plain step (did not fit), every block (fits), then bisection


def test_fit_says_so_when_no_set_of_blocks_fits():
    out = cli("--model", "resnet18", "--batch", "64", "--checkpoint", "fit", "--capacity", "500MiB")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith(
        "memlens: error: --checkpoint fit: even checkpointing all 8 blocks of resnet18 needs ")


def test_bad_levers_are_one_line_errors():
    for args, message in [
        (("--freeze", "feat*"), "--freeze 'feat*' matches no parameter or module of resnet18"),
        (("--micro-batch", "16"), "micro-batch 16 is larger than the batch 8"),
        (("--checkpoint", "layer1.0.relu"), "--checkpoint 'layer1.0.relu': resnet18's layer1.0.relu has no "
                                            "parameters and keeps no activations"),
        (("--checkpoint", "fit"), "planning needs a device"),
        (("--checkpoint", "fit", "--capacity", "8GiB", "--max-batch"), "--checkpoint fit searches for blocks"),
    ]:
        out = cli("--model", "resnet18", "--batch", "8", *args)
        assert out.returncode == 1, args
        assert out.stderr.startswith(f"memlens: error: {message}") and out.stderr.count("\n") == 1, out.stderr
