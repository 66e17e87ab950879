"""Tensor parallelism (`--strategy tp`, issue 12): Megatron's column/row split of a block's Linear
pairs, applied by torch's own `parallelize_module` under the fake process group. What each rank
holds is checked to the byte against arithmetic written here from the layer shapes; the measured
per-rank peaks (gloo, one process per rank) are in test_distributed_truth.py.
"""
import json
import os

import pytest
import torch.distributed as dist

from conftest import DATA, SPECS
from engine import AnalysisRequest, analyze
from engine.errors import RequestError, UnsupportedError
from engine.json_schema import validate
from engine.report import analysis_to_dict

TINY_TRANSFORMER = os.path.join(SPECS, "tiny_transformer.yaml")  # width 256, MLP 1024, 2 blocks, vocab 1000
TINY_LLAMA = os.path.join(DATA, "dist_models.py") + ":tiny_llama"  # width 64, MLP 128, 4 heads, 2 kv heads
MLP = os.path.join(DATA, "tiny_mlp.py") + ":build"  # Linear(8, 16), ReLU, Linear(16, 4)
BLOCKS = ("repeat1.0.transformer1", "repeat1.1.transformer2")


def transformer_parameters():
    """(elements, how tp splits them: 0 rows, 1 columns, None whole) of each parameter tensor of
    the tiny transformer spec, written from its layers."""
    d, mlp, vocab = 256, 1024, 1000
    block = [
        (3 * d * d, None), (3 * d, None),  # MultiheadAttention's fused in_proj: whole
        (d * d, None), (d, None),  # its out_proj: whole (not called as a module)
        (mlp * d, 0), (mlp, 0),  # linear1: column-wise, bias sliced
        (d * mlp, 1), (d, None),  # linear2: row-wise, bias added after the all-reduce
        (d, None), (d, None), (d, None), (d, None),  # norm1, norm2
    ]
    return [(vocab * d, None), *block, *block, (d, None), (d, None), (vocab * d, None), (vocab, None)]


def held_by_one_rank(parameters, world_size, optimizer_tensors_per_param=2, step_bytes=4, itemsize=4):
    elements = sum(n // world_size if dim is not None else n for n, dim in parameters)
    return {"parameters": elements * itemsize, "gradients": elements * itemsize,
            "optimizer_state": optimizer_tensors_per_param * elements * itemsize + step_bytes * len(parameters)}


@pytest.fixture(scope="module")
def tp2():
    return analyze(AnalysisRequest(model=TINY_TRANSFORMER, batch=2, strategy="tp", world_size=2))


# ---- What each rank holds, to the byte
@pytest.mark.parametrize("world_size", [2, 4])
def test_each_rank_holds_a_1_over_n_slice_of_the_split_layers_and_the_rest_whole(world_size, tp2):
    a = tp2 if world_size == 2 else analyze(AnalysisRequest(model=TINY_TRANSFORMER, batch=2, strategy="tp",
                                                            world_size=world_size))
    expected = held_by_one_rank(transformer_parameters(), world_size)
    assert expected["parameters"] == {2: 6_270_880, 4: 5_220_256}[world_size]  # the arithmetic, evaluated
    d = a.distributed
    assert len(d.ranks) == 1 and d.ranks[0].ranks == tuple(range(world_size))  # every rank holds the same
    assert dict(d.ranks[0].model_state) == expected
    assert d.per_rank_peak_bytes == (a.peak.total_bytes,) * world_size
    # the timeline starts with the slices live: parameters and optimizer state (steady state, no grads)
    assert a.timeline.curves["parameters"][0] == expected["parameters"]
    assert a.timeline.curves["optimizer_state"][0] == expected["optimizer_state"]


def test_the_plan_names_the_split_layers_and_what_stays_whole(tp2):
    tp = tp2.distributed.tensor_parallel
    assert tp.column == tuple(f"{b}.linear1" for b in BLOCKS)
    assert tp.row == tuple(f"{b}.linear2" for b in BLOCKS)
    assert tp.fused_attention == tuple(f"{b}.self_attn" for b in BLOCKS)
    assert tp.whole_linear == ("linear1",)  # the vocabulary head: no partner
    notes = " ".join(tp2.distributed.notes)
    assert "nn.MultiheadAttention repeat1.0.transformer1.self_attn" in notes and "fused in_proj_weight" in notes


def test_separate_q_k_v_and_out_projections_are_split_too():
    """A Hugging Face Llama keeps q/k/v/o and gate/up/down as Linear layers: all are split."""
    a = analyze(AnalysisRequest(model=TINY_LLAMA, batch=2, strategy="tp", world_size=2))
    tp = a.distributed.tensor_parallel
    layer = "model.layers.0"
    assert tp.column[:5] == tuple(f"{layer}.{n}" for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                           "mlp.gate_proj", "mlp.up_proj"))
    assert tp.row[:2] == (f"{layer}.self_attn.o_proj", f"{layer}.mlp.down_proj")
    assert tp.whole_linear == ("lm_head",) and tp.fused_attention == ()
    h, mlp, kv, vocab = 64, 128, 32, 512  # kv: 2 kv heads x 16 features
    layers = [(h * h, 0), (kv * h, 0), (kv * h, 0), (h * h, 1),  # q, k, v column-wise, o row-wise (no biases)
              (mlp * h, 0), (mlp * h, 0), (h * mlp, 1),  # gate, up column-wise, down row-wise
              (h, None), (h, None)]  # the two RMS norms
    parameters = [(vocab * h, None), *layers, *layers, (h, None), (vocab * h, None)]
    assert dict(a.distributed.ranks[0].model_state) == held_by_one_rank(parameters, 2)


def test_the_rows_all_reduce_is_a_communication_buffer(tp2):
    comm = tp2.timeline.curves["communication"]
    assert comm[0] == 0 and comm.max() > 0  # born in the step, gone by its end
    # the largest: one all-reduced (batch 2, 128 tokens, width 256) float32 output of linear2
    assert tp2.distributed.communication_peak_bytes >= 2 * 128 * 256 * 4


def test_splitting_lowers_the_peak_below_one_device():
    one = analyze(AnalysisRequest(model=TINY_TRANSFORMER, batch=2))
    four = analyze(AnalysisRequest(model=TINY_TRANSFORMER, batch=2, strategy="tp", world_size=4))
    assert four.peak.total_bytes < one.peak.total_bytes
    assert not dist.is_initialized()


def test_inference_and_the_cuda_target_trace_too():
    """Inference: TransformerEncoderLayer's fused fast path would bypass the split layers (it is
    turned off, and said). CUDA: the foreach optimizer gets split and whole parameters in two groups."""
    inference = analyze(AnalysisRequest(model=TINY_TRANSFORMER, batch=2, strategy="tp", world_size=2, mode="inference"))
    assert dict(inference.distributed.ranks[0].model_state)["gradients"] == 0
    assert "fast path is off" in " ".join(inference.distributed.notes)
    cuda = analyze(AnalysisRequest(model=TINY_TRANSFORMER, batch=2, strategy="tp", world_size=2, device="cuda"))
    # CUDA keeps Adam's step counters on the host: only the two moments are on the device
    assert dict(cuda.distributed.ranks[0].model_state) == held_by_one_rank(transformer_parameters(), 2, step_bytes=0)


# ---- Reported
def test_json_lists_the_split_layers_and_passes_the_schema(tp2):
    doc = json.loads(json.dumps(analysis_to_dict(tp2)))
    assert validate(doc) == []
    assert doc["strategy"] == "tp" and doc["per_rank_peak_bytes"] == [doc["peak_bytes"]] * 2
    assert doc["distributed"]["tensor_parallel"] == {
        "column": [f"{b}.linear1" for b in BLOCKS], "row": [f"{b}.linear2" for b in BLOCKS],
        "whole_linear": ["linear1"], "fused_attention": [f"{b}.self_attn" for b in BLOCKS]}
    fsdp = analysis_to_dict(analyze(AnalysisRequest(model=MLP, batch=4, strategy="fsdp", world_size=2)))
    assert fsdp["distributed"]["tensor_parallel"] is None


# ---- Planning per GPU
def test_the_largest_batch_is_the_largest_that_fits_one_gpu_of_the_split():
    from conftest import assert_largest_batch_is_exact
    from engine.devices import custom_device
    from engine.units import parse_bytes

    request = AnalysisRequest(model=TINY_TRANSFORMER, batch=2, strategy="tp", world_size=4, device="cuda")
    found = assert_largest_batch_is_exact(request, custom_device(parse_bytes("1 GiB")))
    assert found.analysis.distributed.world_size == 4 and found.analysis.request.strategy == "tp"


def test_world_size_sweep_shrinks_the_split_layers_only():
    from engine.distributed.sweep import world_size_sweep

    points = world_size_sweep(AnalysisRequest(model=TINY_TRANSFORMER, batch=2, strategy="tp"), world_sizes=(1, 2, 4))
    assert [p.model_state_bytes for p in points] == [sum(held_by_one_rank(transformer_parameters(), n).values())
                                                     for n in (1, 2, 4)]
    assert points[0].peak_bytes > points[1].peak_bytes > points[2].peak_bytes


def test_a_world_size_the_layers_do_not_divide_by_is_named_and_the_sweep_goes_on():
    """The planning table keeps the counts that work: 3 ranks cannot split a 1024-wide layer,
    2 and 4 can, and their figures are those of their own analyses."""
    from engine.distributed.sweep import world_size_sweep

    request = AnalysisRequest(model=TINY_TRANSFORMER, batch=2, strategy="tp")
    points = world_size_sweep(request, world_sizes=(2, 3, 4))
    assert [p.world_size for p in points] == [2, 3, 4]
    assert not points[0].not_possible and not points[2].not_possible
    assert "its 1024 output features do not divide by 3" in points[1].not_possible
    assert points[1].peak_bytes == 0
    for point in (points[0], points[2]):
        assert point.peak_bytes == analyze(request.replace(world_size=point.world_size)).distributed.max_peak_bytes
    # A model with nothing to split at any count still stops the sweep with its one line.
    with pytest.raises(UnsupportedError, match="splits Linear layers in column/row pairs"):
        world_size_sweep(request.replace(model=os.path.join(SPECS, "small_cnn.yaml")), world_sizes=(2, 4))


# ---- Bad input: one clear line each, naming the layer
@pytest.mark.parametrize("model, world_size, message", [
    (TINY_TRANSFORMER, 3, r"cannot split layer 'repeat1.0.transformer1.linear1' \(Linear 256->1024\) column-wise "
                          r"\(output features\) over 3 ranks: its 1024 output features do not divide by 3"),
    (MLP, 32, r"cannot split layer '0' \(Linear 8->16\) column-wise \(output features\) over 32 ranks"),
    (TINY_LLAMA, 4, "cannot split layer 'model.layers.0.self_attn.k_proj' column-wise .* its 2 attention heads"),
    (os.path.join(SPECS, "small_cnn.yaml"), 2, r"splits Linear layers in column/row pairs .* the model has none "
                                               r"\(Linear layers: linear1\)"),
    (os.path.join(DATA, "dist_models.py") + ":tied_pair", 2, "cannot split layer '1': its weight is tied to '0'"),
])
def test_layers_that_cannot_be_split_are_named_in_one_line(model, world_size, message):
    with pytest.raises(UnsupportedError, match=message) as info:
        analyze(AnalysisRequest(model=model, batch=2, strategy="tp", world_size=world_size))
    assert "\n" not in str(info.value)
    assert not dist.is_initialized()


def test_offload_is_refused_for_tensor_parallelism():
    with pytest.raises(RequestError, match="--offload optimizer is modelled for data-parallel strategies"):
        AnalysisRequest(model=MLP, strategy="tp", world_size=2, offload="optimizer")


# ---- The plan, from the structure alone (no trace)
def test_a_sequential_pairs_neighbours_with_only_elementwise_modules_between():
    from torch import nn

    from engine.distributed.tensor_parallel import plan_tensor_parallel

    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Dropout(), nn.Linear(16, 8),  # a pair
                          nn.Linear(8, 16), nn.LayerNorm(16),  # a norm over the features a split would slice: no
                          nn.Linear(16, 8), nn.Linear(8, 4))  # a pair
    plan = plan_tensor_parallel(model, 2)
    assert (plan.column, plan.row, plan.whole_linear) == (("0", "6"), ("3", "7"), ("4",))
    with pytest.raises(UnsupportedError, match="the model has none"):
        plan_tensor_parallel(nn.Sequential(nn.Linear(8, 16), nn.LayerNorm(16), nn.Linear(16, 8)), 2)
