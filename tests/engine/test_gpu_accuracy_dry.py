"""benchmarks/gpu_accuracy.py, the script a GPU session runs once: its code paths on the CPU
(--dry-run), and the coverage it promises (at least 20 torchvision models, three runs, three
precisions, breadth first so a run cut short still covers every model)."""
import os
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import gpu_accuracy  # noqa: E402


def test_the_run_covers_twenty_torchvision_models_every_run_and_precision_breadth_first():
    todo = gpu_accuracy.cases(dry_run=False, models=None)
    models = {m for m, *_ in todo}
    torchvision = {m for m in models if os.sep not in m}
    assert len(torchvision) >= 20 and any(m.endswith("tiny_transformer.yaml") for m in models)
    assert any(m.endswith("hf_decoder.py:build") for m in models)  # the Hugging Face-style decoder
    assert any(m.endswith("user_models.py:build_lstm") for m in models)  # cuDNN's RNNs, not modelled yet
    assert any(m.endswith("user_models.py:build_self_attention") for m in models)  # 1,024-token attention
    assert any(m.endswith("user_models.py:build_short_conv") for m in models)  # a depthwise Conv1d
    assert {(mode, opt, p) for _, _, mode, opt, p in todo} == {
        (mode, opt, p) for mode, opt in gpu_accuracy.RUNS for p in gpu_accuracy.PRECISIONS}
    first_round = [m for m, *_ in todo[:len(models)]]
    assert len(set(first_round)) == len(models)  # every model before any model's second configuration


def test_dry_run_records_every_field_and_says_it_is_not_a_measurement(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_accuracy.py"), "--dry-run",
                           "--models", "tiny_transformer.yaml", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    document = gpu_accuracy.load_document(str(tmp_path / "gpu_accuracy.json"))
    assert document["dry_run"] is True and document["gpu"] == "dry run (CPU)"
    assert [(c["model"], c["mode"], c["precision"]) for c in document["cases"]] == [
        ("tiny_transformer.yaml", "train", "float32"), ("tiny_transformer.yaml", "inference", "float32")]
    for case in document["cases"]:
        assert "error" not in case, case.get("error")
        assert case["max_memory_allocated"] is None and case["max_memory_reserved"] is None
        assert case["trace"]["events"] == 0 and case["segments_before"] == []
        assert case["warmup_steps"] == 1  # float32: no GradScaler to skip the warm-up
    assert [c["alloc_conf"] for c in document["fresh_cases"]] == [""]  # a fresh process per allocator setting
    assert document["conv_workspaces"] and all("error" not in r for r in document["conv_workspaces"])
    assert all(r["forward_requests"] == [] == r["backward_weight_only_requests"] for r in document["conv_workspaces"])
    # cuDNN's RNNs: every probed shape in training and inference, recorded apart from the convolutions
    rnns = document["rnn_workspaces"]
    assert [(r["rnn"], r["layers"], r["mode"]) for r in rnns] == [
        (cell, layers, mode) for cell, layers, *_ in gpu_accuracy.DRY_RNN_SHAPES for mode in ("train", "inference")]
    assert all("error" not in r and r["trace"]["events"] == 0 for r in rnns), rnns


def test_no_cuda_without_dry_run_is_refused_plainly(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_accuracy.py"), "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 2 and "no CUDA device" in done.stderr


def test_channels_last_convolutions_are_found_and_probed_channels_last(monkeypatch):
    """ConvNeXt's convolutions after a permute run cuDNN's NHWC kernels on a GPU: the probe list
    names their layout (the meta forward keeps channels-last through a convolution, as cuDNN
    does), and the probe runs them channels-last."""
    import torch

    convs = gpu_accuracy.distinct_convolutions([("convnext_tiny", 2), ("resnet18", 2)])
    layouts = {(c["model"], c["layout"], tuple(c["kernel"])) for c in convs}
    assert ("convnext_tiny", "nhwc", (7, 7)) in layouts and ("convnext_tiny", "nhwc", (2, 2)) in layouts
    assert ("convnext_tiny", "nchw", (4, 4)) in layouts  # the stem reads the image, contiguous
    assert {layout for model, layout, _ in layouts if model == "resnet18"} == {"nchw"}
    depthwise = next(c for c in convs if c["layout"] == "nhwc" and c["groups"] > 1)
    seen = []
    original = torch.nn.functional.conv2d
    monkeypatch.setattr(torch.nn.functional, "conv2d", lambda x, *a: seen.append(
        x.is_contiguous(memory_format=torch.channels_last)) or original(x, *a))
    row = gpu_accuracy._one_conv(gpu_accuracy.DryRun(torch), depthwise, torch.float32)
    assert seen == [True] and {"forward", "backward", "backward_weight_only"} <= set(row)


def test_the_warm_up_repeats_while_the_grad_scaler_skips_the_optimizer_step():
    """A float16 GradScaler skips a step whose scaled gradients overflow and halves its scale; a
    skipped step makes no optimizer state, so the recording warms up until a step is taken. Here
    the gradients (3 per element) overflow float16 at the scales 2^16 and 2^15, not at 2^14."""
    import torch

    weight = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.Adam([weight])
    scaler = torch.amp.GradScaler("cpu")
    states = []

    def one_step():
        loss = (weight.half() * 3).sum()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        states.append(len(optimizer.state))

    assert gpu_accuracy.warm_up(one_step, scaler) == 3
    assert states == [0, 0, 1] and scaler.get_scale() == 2.0**14
    assert gpu_accuracy.warm_up(lambda: states.append("ran"), None) == 1  # no scaler: one step


def test_a_probe_reads_the_requests_made_and_freed_inside_the_call():
    """cuDNN's workspaces as asked for: allocations freed inside the call, in order; the outputs
    (kept) and anything freed that the call did not make are not workspaces."""
    entries = [{"action": "alloc", "addr": 1, "size": 4096}, {"action": "alloc", "addr": 2, "size": 29_311_379},
               {"action": "free_requested", "addr": 2, "size": 29_311_379},
               {"action": "free_completed", "addr": 2, "size": 29_311_379},
               {"action": "free_completed", "addr": 9, "size": 512},
               {"action": "alloc", "addr": 2, "size": 700}, {"action": "free_completed", "addr": 2, "size": 700}]
    assert gpu_accuracy._freed_inside(entries) == [29_311_379, 700]
