"""`analyze --strategy ... --world-size N`: per-rank JSON through the CLI's forkserver child, and
one-line refusals (engine/distributed_cli.py)."""
import json
import os
import subprocess
import sys

from conftest import DATA, ROOT

MLP = os.path.join(DATA, "tiny_mlp.py") + ":build"


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "main.py", "analyze", "--model", MLP, "--batch", "4", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_json_reports_one_gpu_of_n_and_text_names_the_strategy():
    out = cli("--strategy", "zero2", "--world-size", "4", "--json", "-")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["strategy"], doc["world_size"], doc["request"]["strategy"]) == ("zero2", 4, "zero2")
    assert doc["per_rank_peak_bytes"] == [doc["peak_bytes"]] * 4
    assert doc["distributed"]["ranks"][0]["model_state"] == {"parameters": 212, "gradients": 212,
                                                             "optimizer_state": 440}
    assert any("fsdp" in note.lower() or "FSDP2" in note for note in doc["distributed"]["notes"])
    text = cli("--strategy", "ddp", "--world-size", "2", "--bucket-cap-mb", "1")
    assert text.returncode == 0, text.stderr
    assert "distributed: ddp over 2 ranks" in text.stdout and "DeepSpeed reference" in text.stdout


def test_bad_distributed_flags_exit_1_with_one_line():
    for args, message in ((["--strategy", "fsdp", "--world-size", "12"], "needs a power-of-two world size"),
                          (["--strategy", "ddp", "--world-size", "0"], "between 1 and 1024"),
                          (["--strategy", "fsdp", "--mode", "inference", "--offload", "optimizer"],
                           "inference mode runs no optimizer")):
        out = cli(*args)
        assert out.returncode == 1 and message in out.stderr, out.stderr
        assert out.stderr.count("\n") == 1
