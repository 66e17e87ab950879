"""Per-rank memory under DDP, FSDP2 and ZeRO (issue 12), traced by running torch.distributed's own
wrappers on fake tensors under its fake process group. Exact bytes on a network small enough to
shard by hand; the measured comparisons (gloo, one process per rank) are in
test_distributed_truth.py.
"""
import json
import os

import pytest
import torch.distributed as dist

from conftest import DATA, SPECS
from engine import AnalysisRequest, analyze
from engine.distributed.shards import chunk_rows, model_state, param_specs, zero1_owner
from engine.errors import RequestError, UnsupportedError
from engine.report import analysis_to_dict

MLP = os.path.join(DATA, "tiny_mlp.py") + ":build"  # Linear(8, 16), ReLU, Linear(16, 4); input 8 values


def mlp(strategy, world_size, **fields):
    return analyze(AnalysisRequest(model=MLP, batch=4, strategy=strategy, world_size=world_size, **fields))


def held(analysis, rank=0):
    trace = next(t for t in analysis.distributed.ranks if rank in t.ranks)
    return dict(trace.model_state)


# ---- What each rank holds, to the byte
def test_fsdp_shards_each_weight_by_rows_padded_to_the_largest_chunk():
    # 4 ranks, float32. Linear(8,16): weight 16x8 -> 4 rows (128 B), bias 16 -> 4 (16 B).
    # Linear(16,4): weight 4x16 -> 1 row (64 B), bias 4 -> 1 (4 B). 212 B of parameters per rank,
    # the same of gradients, and Adam's two moments + a 4-byte step per parameter: 2*212 + 16.
    a = mlp("fsdp", 4)
    assert held(a) == {"parameters": 212, "gradients": 212, "optimizer_state": 440}
    assert a.distributed.per_rank_peak_bytes == (a.peak.total_bytes,) * 4


def test_fsdp_ranks_past_the_last_chunk_hold_padding_but_no_optimizer_state():
    # 8 ranks: Linear(16,4)'s 4 rows go to ranks 0-3; ranks 4-7 still allocate the padded row
    # (parameters and gradients) but their optimizer state for it is empty.
    a = mlp("fsdp", 8)
    # padded: w1 2 rows (64 B), b1 2 (8 B), w2 1 row (64 B), b2 1 (4 B) = 140 B
    assert held(a, 0) == {"parameters": 140, "gradients": 140, "optimizer_state": 2 * 140 + 16}
    assert held(a, 5) == {"parameters": 140, "gradients": 140, "optimizer_state": 2 * 72 + 16}
    ranks = {t.rank: t.ranks for t in a.distributed.ranks}
    assert ranks == {0: (0, 1, 2, 3), 4: (4, 5, 6, 7)}
    peaks = a.distributed.per_rank_peak_bytes
    assert peaks[0] - peaks[4] == 2 * (140 - 72)  # the empty optimizer state, nothing else


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "fsdp-no-reshard", "zero1", "zero2", "zero3"])
def test_traced_model_state_equals_the_shard_arithmetic(strategy):
    a = mlp(strategy, 4)
    from engine.sources import load_model

    specs = param_specs(load_model(MLP).module, 4)
    for trace in a.distributed.ranks:
        assert dict(trace.model_state) == model_state(specs, strategy, 4, trace.rank, "adam")


def test_zero1_partitions_optimizer_state_largest_parameter_first():
    # numels: w1 128, b1 16, w2 64, b2 4 -> w1 to rank 0, w2 to rank 1, b1 to rank 1 (64 < 128),
    # b2 to rank 1 (80 < 128)
    from engine.sources import load_model

    specs = param_specs(load_model(MLP).module, 4)
    assert zero1_owner(specs, 2) == [0, 1, 1, 1]
    a = mlp("zero1", 2)
    assert held(a, 0) == {"parameters": 848, "gradients": 848, "optimizer_state": 2 * 512 + 4}
    assert held(a, 1) == {"parameters": 848, "gradients": 848, "optimizer_state": 2 * 336 + 12}


def test_chunk_rows_follow_torch_chunk():
    import torch

    for d0 in (1, 3, 5, 10, 16):
        for n in (1, 2, 4, 8):
            chunks = torch.arange(d0).chunk(n)
            for r in range(n):
                padded, real = chunk_rows(d0, n, r)
                assert padded == chunks[0].numel() and real == (chunks[r].numel() if r < len(chunks) else 0)


# ---- Collective buffers
def test_ddp_buckets_are_live_from_the_start_as_communication():
    a = mlp("ddp", 2)
    assert a.timeline.curves["communication"][0] == 848  # one bucket: every gradient's bytes
    view = mlp("ddp", 2, gradient_as_bucket_view=True)
    assert view.timeline.curves["communication"][0] == 0  # the bucket *is* the gradients
    assert view.timeline.curves["gradients"][0] == 848
    assert view.peak.total_bytes < a.peak.total_bytes


def test_fsdp_all_gathers_are_communication_events():
    a = mlp("fsdp", 4)
    comm = a.timeline.curves["communication"]
    assert comm[0] == 0 and comm.max() > 0  # born in the step, gone by its end
    assert a.distributed.communication_peak_bytes == comm.max()


def test_sharding_lowers_the_peak_and_no_reshard_keeps_parameters_gathered_into_backward():
    ddp, no_reshard, full = (mlp(s, 4) for s in ("ddp", "fsdp-no-reshard", "fsdp"))
    assert max(full.peak.total_bytes, no_reshard.peak.total_bytes) < ddp.peak.total_bytes

    def gathered_when_backward_starts(a):
        start = next(first for phase, first, last in a.timeline.phase_spans if phase == "backward")
        return a.timeline.curves["communication"][start]

    # Full sharding frees the gathered weights after the forward; no-reshard keeps them.
    assert gathered_when_backward_starts(full) == 0 < gathered_when_backward_starts(no_reshard)


def test_no_reshard_steps_gather_in_their_own_forward_as_full_sharding_does():
    """A training loop's step starts sharded (the previous backward resharded): the no-grad
    forward that finds a spec model's output shape must not leave its gathered weights behind."""
    from engine.categories import CATEGORIES, PHASES

    spec = os.path.join(SPECS, "tiny_transformer.yaml")
    full, no_reshard = (analyze(AnalysisRequest(model=spec, batch=2, strategy=s, world_size=4))
                        for s in ("fsdp", "fsdp-no-reshard"))

    def forward_gathers(a):
        e = a.events
        born = (e.category == CATEGORIES.index("communication")) & (e.nbytes > 0) & (e.phase == PHASES.index("forward"))
        return int(born.sum()), int(e.nbytes[born].sum())

    assert forward_gathers(no_reshard) == forward_gathers(full)
    assert forward_gathers(full)[0] >= 2 * 2  # each block's gathered weights, at least


def test_fsdp_mixed_precision_gathers_half_the_bytes():
    full = mlp("fsdp", 4)
    half = mlp("fsdp", 4, param_dtype="bfloat16", reduce_dtype="float32")
    assert held(half) == held(full)  # shards, gradients and optimizer state stay float32
    # every gathered weight is 2 bytes instead of 4: the all-gather buffers halve
    gathered = lambda a: a.timeline.curves["communication"].max()  # noqa: E731
    assert gathered(half) < gathered(full)


# ---- Offload
def test_offloaded_optimizer_state_leaves_the_device_timeline():
    on, off = mlp("fsdp", 4), mlp("fsdp", 4, offload="optimizer")
    assert off.peak.breakdown["optimizer_state"] == 0 and off.timeline.curves["optimizer_state"].max() == 0
    assert off.distributed.host_offload_bytes == 440
    assert off.peak.total_bytes < on.peak.total_bytes


def test_offloaded_parameters_keep_only_all_gathered_copies_on_the_device():
    off = mlp("fsdp", 4, offload="params")
    assert off.timeline.curves["parameters"].max() == 0
    assert off.distributed.host_offload_bytes == 212 + 440  # shards and optimizer state


# ---- Repeatable, and reported
def test_process_group_is_torn_down_so_analyses_repeat():
    first = mlp("fsdp", 2)
    assert not dist.is_initialized()
    assert mlp("fsdp", 2).peak.total_bytes == first.peak.total_bytes


def test_json_gains_strategy_world_size_per_rank_peaks_and_communication():
    doc = json.loads(json.dumps(analysis_to_dict(mlp("zero3", 4))))
    assert doc["strategy"] == "zero3" and doc["world_size"] == 4
    assert len(doc["per_rank_peak_bytes"]) == 4 and doc["peak_bytes"] == doc["per_rank_peak_bytes"][0]
    assert doc["communication"]["category"] == "communication"
    assert "communication" in doc["peak_breakdown"]
    assert doc["distributed"]["reference"]["zero3_bytes"] == (4 + 12) * 212 // 4
    single = analysis_to_dict(analyze(AnalysisRequest(model=MLP, batch=4)))
    assert single["strategy"] == "single" and single["per_rank_peak_bytes"] == [single["peak_bytes"]]
    assert single["distributed"] is None and single["communication"]["peak_bytes"] == 0


def test_deepspeed_reference_formulas():
    from engine.distributed.reference import deepspeed_reference

    ref = deepspeed_reference(psi=7_000_000_000, world_size=64, model_state_bytes=0, peak_bytes=0,
                              communication_bytes=0, activation_bytes=0)
    assert ref.zero2_bytes == 2 * 7e9 + 14 * 7e9 // 64  # 2Ψ + (2+K)Ψ/N
    assert ref.zero3_bytes == 16 * 7e9 // 64  # (2+2+K)Ψ/N
    assert ref.zero1_bytes == 4 * 7e9 + 12 * 7e9 // 64  # 2Ψ + 2Ψ + KΨ/N


# ---- Planning per GPU
def test_the_largest_batch_is_the_largest_that_fits_the_fullest_gpu_of_the_strategy():
    from conftest import assert_largest_batch_is_exact
    from engine.devices import custom_device
    from engine.units import parse_bytes

    request = AnalysisRequest(model=os.path.join(SPECS, "tiny_transformer.yaml"), batch=2, strategy="fsdp",
                              world_size=4, device="cuda")
    # Exact with respect to independent traces of one GPU of four at b and b + 1.
    found = assert_largest_batch_is_exact(request, custom_device(parse_bytes("1.5 GiB")))
    assert found.analysis.distributed.world_size == 4 and found.analysis.request.strategy == "fsdp"


# ---- Bad input: one clear line each
@pytest.mark.parametrize("fields, message", [
    ({"strategy": "ddp", "world_size": 0}, "world size must be between 1 and 1024, got 0"),
    ({"strategy": "ddp", "world_size": 2048}, "world size must be between 1 and 1024, got 2048"),
    ({"strategy": "fsdp", "world_size": 6}, "strategy fsdp needs a power-of-two world size"),
    ({"strategy": "zero1", "world_size": 3}, "strategy zero1 needs a power-of-two world size"),
    ({"strategy": "ring", "world_size": 2}, "strategy must be one of"),
    ({"strategy": "single", "world_size": 4}, "world size 4 needs a strategy"),
    ({"strategy": "fsdp", "world_size": 2, "mode": "inference", "offload": "optimizer"},
     "inference mode runs no optimizer"),
    ({"strategy": "ddp", "world_size": 2, "offload": "params"}, "--offload params needs a sharded strategy"),
    ({"strategy": "ddp", "world_size": 2, "bucket_cap_mb": 0}, "bucket size must be between 0 and 1024 MB"),
    ({"strategy": "ddp", "world_size": 2, "param_dtype": "bfloat16"}, "FSDP2's mixed-precision policy"),
    ({"strategy": "fsdp", "world_size": 2, "reduce_dtype": "int8"}, "reduce dtype must be one of"),
])
def test_bad_distributed_requests_are_refused_in_one_line(fields, message):
    with pytest.raises(RequestError, match=message) as info:
        AnalysisRequest(model=MLP, **fields)
    assert "\n" not in str(info.value)


def test_a_model_without_parameters_cannot_be_sharded():
    model = os.path.join(DATA, "dist_models.py") + ":no_parameters"
    with pytest.raises(UnsupportedError, match="the model has none"):
        analyze(AnalysisRequest(model=model, batch=2, strategy="fsdp", world_size=2))
    assert not dist.is_initialized()
