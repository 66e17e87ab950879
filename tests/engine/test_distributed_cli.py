"""`analyze --strategy ... --world-size N`: per-rank JSON through the CLI's forkserver child, and
one-line refusals (engine/distributed_cli.py)."""
import json
import os

import pytest

from conftest import DATA, run_main_concurrently

MLP = os.path.join(DATA, "tiny_mlp.py") + ":build"
BAD_FLAGS = [
    (("--strategy", "fsdp", "--world-size", "12"), "needs a power-of-two world size"),
    (("--strategy", "ddp", "--world-size", "0"), "between 1 and 1024"),
    (("--strategy", "fsdp", "--mode", "inference", "--offload", "optimizer"), "inference mode runs no optimizer"),
    (("--strategy", "tp", "--world-size", "3"), "tensor parallelism cannot split layer '0' (Linear 8->16)"),
]
# Each run is its own main.py process; the module starts them together.
RUNS = {
    "zero2_json": ("--strategy", "zero2", "--world-size", "4", "--json", "-"),
    "ddp_text": ("--strategy", "ddp", "--world-size", "2", "--bucket-cap-mb", "1"),
    "tp_json": ("--strategy", "tp", "--world-size", "2", "--json", "-"),
    **{args: args for args, _ in BAD_FLAGS},
}


@pytest.fixture(scope="module")
def runs():
    return run_main_concurrently({name: ["analyze", "--model", MLP, "--batch", "4", *args] for name, args in RUNS.items()})


def test_json_reports_one_gpu_of_n_and_text_names_the_strategy(runs):
    out = runs["zero2_json"]
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["strategy"], doc["world_size"], doc["request"]["strategy"]) == ("zero2", 4, "zero2")
    assert doc["per_rank_peak_bytes"] == [doc["peak_bytes"]] * 4
    assert doc["distributed"]["ranks"][0]["model_state"] == {"parameters": 212, "gradients": 212,
                                                             "optimizer_state": 440}
    assert any("fsdp" in note.lower() or "FSDP2" in note for note in doc["distributed"]["notes"])
    text = runs["ddp_text"]
    assert text.returncode == 0, text.stderr
    assert "distributed: ddp over 2 ranks" in text.stdout and "DeepSpeed reference" in text.stdout


def test_bad_distributed_flags_exit_1_with_one_line(runs):
    for args, message in BAD_FLAGS:
        out = runs[args]
        errors = [line for line in out.stderr.splitlines() if line.startswith("memlens: error:")]
        assert out.returncode == 1 and len(errors) == 1 and message in errors[0], out.stderr
        # nothing else but the note a python model file prints when it is executed
        assert all(line in errors or line.startswith("note: executing python file") for line in out.stderr.splitlines())


def test_tensor_parallel_json_names_the_split_layers(runs):
    out = runs["tp_json"]
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert (doc["strategy"], doc["world_size"]) == ("tp", 2)
    assert doc["distributed"]["tensor_parallel"] == {"column": ["0"], "row": ["2"], "whole_linear": [],
                                                     "fused_attention": []}
    # float32 per rank: Linear(8,16) by rows (8x8 weight, 8 of the bias), Linear(16,4) by columns (4x8 weight)
    # with its 4-element bias whole
    assert doc["distributed"]["ranks"][0]["model_state"]["parameters"] == 4 * (8 * 8 + 8 + 4 * 8 + 4)


def test_tensor_parallel_text_says_what_was_split_not_zeros_formulas():
    """ZeRO's model-state formulas shard whole states; under tp the text names the split instead."""
    from engine import AnalysisRequest, analyze
    from engine.distributed_cli import summary_lines

    text = "\n".join(summary_lines(analyze(AnalysisRequest(model=MLP, batch=4, strategy="tp", world_size=2))))
    assert "tensor parallel, split: 1 Linear layer column-wise, 1 row-wise" in text
    assert "DeepSpeed reference" not in text
