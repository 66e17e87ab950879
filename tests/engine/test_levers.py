"""The levers (engine/levers.py, engine/checkpointing.py): what a block is, checkpointing traced with
torch.utils.checkpoint and attributed to the original layers, frozen parameters, micro-batches,
and a one-line message for every bad input. Exact bytes on a model small enough to work out by
hand (tests/data/lever_models.py); the measured truth is in test_truth_cpu_levers.py."""
import os

import numpy as np
import pytest
import torch

from conftest import DATA, SPECS
from engine import AnalysisRequest, analyze
from engine.categories import PHASES
from engine.checkpointing import blocks
from engine.errors import RequestError
from engine.lever_fields import json_fields, summary_lines
from engine.sources import load_model

BLOCK_NET = os.path.join(DATA, "lever_models.py") + ":block_net"
TINY_TRANSFORMER = os.path.join(SPECS, "tiny_transformer.yaml")
B = 8
WIDTH_BYTES = B * 64 * 4  # one 64-wide float32 activation of the batch


def request(model=BLOCK_NET, **kw):
    return AnalysisRequest(model=model, batch=kw.pop("batch", B), **kw)


def live_at_end_of_forward(a, category="activations") -> int:
    start = next(s for phase, s, _ in a.timeline.phase_spans if phase == "backward")
    return int(a.timeline.curves[category][start])


# ---- What a block is
@pytest.mark.parametrize("model, expected", [
    ("resnet18", [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]),
    ("vit_b_16", [f"encoder.layers.encoder_layer_{i}" for i in range(12)]),
    ("vgg16", ["features", "classifier"]),  # no composite children: the sequential stages
    (TINY_TRANSFORMER, ["repeat1.0.transformer1", "repeat1.1.transformer2"]),
    (BLOCK_NET, ["blocks.0", "blocks.1"]),
])
def test_blocks_are_the_composite_children_of_sequential_stages(model, expected):
    assert list(blocks(load_model(model).module)) == expected


def test_every_k_blocks_takes_the_first_block_and_every_kth_after_it():
    a = analyze(AnalysisRequest(model="resnet18", batch=1, checkpoint=("every-3-blocks",)))
    assert a.levers.checkpoint.blocks == ("layer1.0", "layer2.1", "layer4.0")


# ---- Checkpointing, traced
def test_a_checkpointed_block_keeps_only_its_input_until_backward():
    plain = analyze(request())
    ckpt = analyze(request(checkpoint=("blocks.0",)))
    # Without checkpointing the block keeps relu's output (fc2's input too); checkpointed, it keeps
    # only its own input, which the stem's output already was (fc1 saved it): one tensor less.
    assert live_at_end_of_forward(plain) - live_at_end_of_forward(ckpt) == WIDTH_BYTES
    assert ckpt.levers.checkpoint.baseline_peak_bytes == plain.peak.total_bytes
    assert ckpt.levers.checkpoint.saved_bytes == plain.peak.total_bytes - ckpt.peak.total_bytes


def test_the_recomputation_runs_in_backward_under_the_original_layers():
    plain = analyze(request())
    ckpt = analyze(request(checkpoint=("blocks.0",)))
    # A recomputed layer never appears twice in the layer table.
    assert [layer.name for layer in ckpt.layers] == [layer.name for layer in plain.layers]
    assert not any("#" in layer.name for layer in ckpt.layers)
    # The recomputed relu output is born in backward, under the block's relu, and counts as an
    # activation (kept for fc2's and relu's backward); fc1's recomputed output is a temporary.
    backward = PHASES.index("backward")
    recomputed = [(life.module, life.nbytes) for life in ckpt.lifetimes
                  if life.alloc_phase == "backward" and life.category == "activations"]
    assert recomputed == [("blocks.0.relu", WIDTH_BYTES)]
    names = set(ckpt.events.modules[i] for i in np.unique(ckpt.events.module[ckpt.events.phase == backward]))
    assert "blocks.0.fc1" in names and not any("#" in n for n in names)
    # The plain step makes no activations in backward.
    assert not any(life.alloc_phase == "backward" and life.category == "activations" for life in plain.lifetimes)


def test_a_model_that_checkpoints_itself_is_attributed_the_same_way():
    """torch.utils.checkpoint called inside the model's own forward (no lever): the recomputation
    still repeats the original layers and never adds one."""
    a = analyze(request(model=os.path.join(DATA, "lever_models.py") + ":self_checkpointed"))
    names = [layer.name for layer in a.layers]
    assert len(names) == len(set(names)) == 8 and not any("#" in n for n in names)
    recomputed = [(life.module, life.nbytes) for life in a.lifetimes
                  if life.alloc_phase == "backward" and life.category == "activations"]
    assert recomputed == [("net.blocks.0.relu", WIDTH_BYTES)]


def test_each_checkpoint_keeps_a_copy_of_the_cpu_generator_state_on_a_cpu_target():
    plain, ckpt = analyze(request()), analyze(request(checkpoint=("blocks.0",)))
    rng = torch.default_generator.get_state().nbytes  # 5,056 bytes of Mersenne Twister state
    assert live_at_end_of_forward(plain, "temporaries") + rng == live_at_end_of_forward(ckpt, "temporaries")
    # On a GPU the state is host memory. What differs there is cuBLAS's: the recomputation runs
    # the block's addmm (a cuBLASLt epilogue) in autograd's thread, whose handle then needs its
    # own cuBLASLt workspace (engine/target.py CublasWorkspaces), held from the start of a steady step.
    gpu, gpu_plain = analyze(request(checkpoint=("blocks.0",), device="cuda")), analyze(request(device="cuda"))
    extra = {w.label for w in gpu.cuda.workspaces} - {w.label for w in gpu_plain.cuda.workspaces}
    assert extra == {"cuBLASLt workspace (autograd thread)"}
    assert live_at_end_of_forward(gpu, "temporaries") == (live_at_end_of_forward(gpu_plain, "temporaries")
                                                          + gpu.cuda.workspace_bytes - gpu_plain.cuda.workspace_bytes)


def test_the_extra_compute_is_the_recomputed_forwards_flops():
    a = analyze(request(checkpoint=("blocks.0",)))
    fc = 2 * B * 64 * 64  # one 64x64 linear on the batch: multiply-adds x 2
    # The recomputation stops once every tensor backward needs is back (torch's early stop):
    # fc1 and relu run again, fc2 (whose output nothing saved) does not.
    assert a.levers.checkpoint.recompute_flops == fc
    # forward: stem 2*B*32*64, 4 fc, head 2*B*64*10; backward twice that (the stem needs no input grad)
    forward = 2 * B * 32 * 64 + 4 * fc + 2 * B * 64 * 10
    assert a.levers.checkpoint.step_flops == forward + (2 * forward - 2 * B * 32 * 64)
    assert summary_lines(a)[0].startswith("checkpointing 1 block: ")
    assert summary_lines(a)[0].endswith(f"+{100 * fc / a.levers.checkpoint.step_flops:.0f}% compute")


def test_checkpointing_every_block_of_resnet18_lowers_the_backward_peak():
    plain = analyze(AnalysisRequest(model="resnet18", batch=8, optimizer="sgd"))
    ckpt = analyze(AnalysisRequest(model="resnet18", batch=8, optimizer="sgd", checkpoint=("every-block",)))
    assert live_at_end_of_forward(ckpt) < 0.6 * live_at_end_of_forward(plain)  # the stem's are still kept
    assert ckpt.levers.checkpoint.saved_bytes > 0
    assert 25 < ckpt.levers.checkpoint.recompute_pct < 40  # the blocks' forwards, about a third of fwd+bwd


def test_under_cuda_amp_the_recomputation_runs_in_float16_as_the_forward_did():
    """torch re-enters torch.autocast for a recomputation, not the trace's CUDA autocast mode:
    the recomputed blocks must still see float16 inputs (a float32 conv would refuse them)."""
    request = AnalysisRequest(model="resnet18", batch=16, optimizer="sgd", device="cuda", amp=True)
    plain = analyze(request)
    checkpointed = analyze(request.replace(checkpoint=("every-block",)))
    assert checkpointed.levers.checkpoint.saved_bytes > 0
    assert checkpointed.peak.total_bytes < plain.peak.total_bytes
    # the recomputed forwards allocate what the float16 forward did, not twice as much
    def forward_activations(a):
        return sum(layer.saved_bytes for layer in a.layers if layer.name.startswith("layer"))
    assert forward_activations(checkpointed) <= forward_activations(plain)


def test_the_model_is_left_as_it_was():
    loaded = load_model(BLOCK_NET)
    from engine.pipeline import analyze_loaded

    analyze_loaded(loaded, request(checkpoint=("blocks.1",), freeze=("stem",)), lambda f, m: None, None, 0.0)
    assert "forward" not in vars(loaded.module.blocks[1])
    assert all(p.requires_grad for p in loaded.module.parameters())


# ---- Freezing
def test_frozen_parameters_get_no_gradient_and_no_optimizer_state():
    a = analyze(request(freeze=("blocks.*",), optimizer="adam"))
    net = load_model(BLOCK_NET).module
    trainable = sum(p.numel() * 4 for n, p in net.named_parameters() if not n.startswith("blocks."))
    # Adam: two moments per trainable value, and a 4-byte step counter per trainable tensor (4 left)
    assert a.timeline.curves["optimizer_state"][0] == 2 * trainable + 4 * 4
    assert a.timeline.curves["gradients"][-1] == trainable
    assert a.levers.frozen_tensors == 8 and a.levers.frozen_parameters == 2 * (64 * 64 + 64) * 2


def test_freezing_the_first_layers_means_autograd_saves_less():
    plain = analyze(request())
    frozen = analyze(request(freeze=("stem", "blocks.0")))
    # Nothing upstream needs a gradient: stem and blocks.0 save nothing (blocks.0.fc1's input,
    # relu's output), blocks.1.fc1 still saves its input.
    assert live_at_end_of_forward(plain) - live_at_end_of_forward(frozen) == 2 * WIDTH_BYTES


# ---- Gradient accumulation
def test_a_micro_step_starts_with_the_accumulated_gradients_live():
    a = analyze(request(batch=32, micro_batch=8))
    params = a.parameter_bytes
    assert a.input_shape[0] == 8 and a.request.batch == 32
    assert a.timeline.curves["gradients"][0] == params
    assert a.levers.accumulation_steps == 4 and a.levers.accumulated_gradient_bytes == params
    plain8 = analyze(request(batch=8))
    assert a.peak.total_bytes >= plain8.peak.total_bytes
    assert a.timeline.curves["gradients"][-1] == params  # accumulated in place: no second copy


def test_a_micro_batch_that_does_not_divide_the_batch_says_the_last_step_is_smaller():
    a = analyze(request(batch=20, micro_batch=8))
    assert a.input_shape[0] == 8 and a.levers.accumulation_steps == 3
    assert summary_lines(a)[0].startswith("micro-batch 8 × 3 steps (the last of 4 samples: a full one is traced, "
                                          "an upper bound for it): ")
    assert json_fields(a)["micro_batch"]["last_size"] == 4


def test_a_micro_batch_equal_to_the_batch_is_a_plain_step():
    assert analyze(request(micro_batch=B)).peak.total_bytes == analyze(request()).peak.total_bytes


# ---- Inference
def test_levers_have_no_effect_in_inference_and_say_so():
    plain = analyze(request(mode="inference"))
    a = analyze(request(mode="inference", checkpoint=("blocks.0",), freeze=("stem",), micro_batch=4))
    assert a.peak.total_bytes == plain.peak.total_bytes
    assert any(w.startswith("checkpointing ignored: inference") for w in a.warnings)
    assert any(w.startswith("--freeze ignored") for w in a.warnings)


# ---- Bad input: one line each
@pytest.mark.parametrize("kw, message", [
    (dict(micro_batch=16), "micro-batch 16 is larger than the batch 8"),
    (dict(micro_batch=0), "micro-batch must be a positive integer"),
    (dict(checkpoint=("fit",)), "checkpoint 'fit' searches against a capacity"),
    (dict(checkpoint=("every-block", "stem")), "checkpoint: a preset (every-block) stands alone"),
])
def test_bad_lever_fields_are_refused_by_the_request(kw, message):
    with pytest.raises(RequestError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        request(**kw)


@pytest.mark.parametrize("kw, message", [
    (dict(freeze=("feature.*",)), "--freeze 'feature.*' matches no parameter or module of lever_models.py:block_net"),
    (dict(checkpoint=("blocks.2",)), "--checkpoint 'blocks.2': lever_models.py:block_net has no module of that name; close names: "),
    (dict(checkpoint=("flatten",)), "--checkpoint 'flatten': lever_models.py:block_net's flatten has no parameters and keeps no "
                                    "activations for backward: checkpointing it saves nothing"),
    (dict(checkpoint=("blocks", "blocks.0")), "--checkpoint 'blocks.0' is inside 'blocks', which is checkpointed"),
])
def test_bad_levers_are_named_against_the_model(kw, message):
    with pytest.raises(RequestError) as info:
        analyze(request(**kw))
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_an_unknown_name_gets_close_suggestions():
    with pytest.raises(RequestError, match="close names: layer4, layer3, layer2$"):
        analyze(AnalysisRequest(model="resnet18", batch=1, checkpoint=("layer5",)))


# ---- What the levers saved: each compared with an independent trace without it
def test_one_lever_says_what_it_saved_against_the_step_without_it():
    from engine.units import format_bytes

    plain = analyze(request()).peak.total_bytes
    frozen = analyze(request(freeze=("stem",)))
    assert frozen.levers.without_levers_peak_bytes == plain
    assert frozen.levers.trainable_parameters == sum(
        p.numel() for p in load_model(BLOCK_NET).module.parameters()) - (32 * 64 + 64)
    assert summary_lines(frozen) == [f"frozen: 2,112 parameters in 2 tensors (no gradient, no optimizer state): "
                                     f"−{format_bytes(plain - frozen.peak.total_bytes)}"]
    micro = analyze(request(micro_batch=4))
    assert micro.levers.without_levers_peak_bytes == plain
    assert summary_lines(micro)[0].endswith(
        f"the optimizer step; vs batch {B} in one step: −{format_bytes(plain - micro.peak.total_bytes)}")


def test_several_levers_say_what_they_saved_together():
    from engine.units import format_bytes

    plain = analyze(request(batch=16)).peak.total_bytes
    a = analyze(request(batch=16, micro_batch=8, checkpoint=("blocks.0",), freeze=("stem",)))
    assert a.levers.without_levers_peak_bytes == plain
    lines = summary_lines(a)
    assert [line.split(" ")[0] for line in lines] == ["checkpointing", "frozen:", "micro-batch", "levers"]
    assert lines[-1] == (f"levers together: −{format_bytes(plain - a.peak.total_bytes)} "
                         f"(peak {format_bytes(plain)} without them)")
    assert not lines[1].endswith(")" + ": ") and lines[1].endswith("(no gradient, no optimizer state)")


def test_searches_skip_the_trace_without_levers():
    from engine.levers import without_savings

    with without_savings():
        a = analyze(request(freeze=("stem",)))
    assert a.levers.without_levers_peak_bytes is None and summary_lines(a)[0].endswith("optimizer state)")
    assert analyze(request()).levers.without_levers_peak_bytes is None  # no lever, nothing to compare


# ---- What the JSON and the cache carry
def test_json_fields_describe_each_lever():
    a = analyze(request(batch=16, micro_batch=8, checkpoint=("blocks.0",), freeze=("stem",)))
    doc = json_fields(a)
    assert doc["model_blocks"] == ["blocks.0", "blocks.1"]
    assert doc["checkpoint"]["blocks"] == ["blocks.0"]
    assert doc["checkpoint"]["saved_bytes"] == a.levers.checkpoint.saved_bytes
    assert doc["checkpoint"]["recompute_flops"] == 2 * 8 * 64 * 64
    assert doc["frozen_parameters"] == 32 * 64 + 64 and doc["frozen_tensors"] == 2
    assert doc["micro_batch"] == {"size": 8, "steps": 2, "last_size": 8,
                                  "accumulated_gradient_bytes": a.levers.accumulated_gradient_bytes}
    assert doc["without_levers_peak_bytes"] == analyze(request(batch=16)).peak.total_bytes
    assert doc["trainable_parameters"] == a.levers.trainable_parameters > 0 and doc["lora_adapter_parameters"] == 0
    plain = json_fields(analyze(request()))
    assert plain["checkpoint"] is None and plain["micro_batch"] is None and plain["frozen_parameters"] == 0


def test_the_analysis_cache_round_trips_the_levers(tmp_path):
    from gui import analysis_cache

    a = analyze(request(batch=16, micro_batch=8, checkpoint=("blocks.0",), freeze=("stem",)))
    analysis_cache.save(a, str(tmp_path))
    back = analysis_cache.load(a.request, str(tmp_path))
    assert back is not None and back.levers == a.levers and back.request == a.request


def test_requests_take_comma_separated_text_as_tuples():
    r = AnalysisRequest(model="resnet18", checkpoint="layer1, layer2", freeze="fc.*")
    assert r.checkpoint == ("layer1", "layer2") and r.freeze == ("fc.*",)
