"""cuDNN's convolution workspaces on a CUDA trace (engine/cudnn_workspaces.py): each convolution
takes its workspace from the table recorded on an H200, scaled with the batch when only another
batch was recorded, estimated by kind otherwise; the trace allocates it inside the op, after the
outputs, and the backward runs the input's pass before the weight's, as cuDNN does."""
import os
import sys

import pytest
import torch

from conftest import ROOT

from engine import AnalysisRequest, analyze
from engine.cudnn_workspaces import data_workspace_bytes, load_table, workspace_bytes

MIB = 2**20
# ResNet-18's first convolution at batch 32, float32 (recorded: 3x224x224 -> 64 channels, 7x7, stride 2)
CONV1 = dict(x_shape=(32, 3, 224, 224), dtype=torch.float32, w_shape=(64, 3, 7, 7), stride=(2, 2), padding=(3, 3),
             dilation=(1, 1), groups=1, transposed=False)


@pytest.fixture(scope="module")
def table():
    return load_table()


def test_a_recorded_convolution_takes_the_recorded_workspace(table):
    raw = table.exact[("float32", 32, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1)]
    assert workspace_bytes(table, **CONV1, direction="forward", output_bytes=0) == (raw[0], "recorded")
    assert raw[0] > 100 * MIB  # the first convolution's workspace is larger than its output (98 MiB)


def test_another_batch_is_scaled_linearly_from_the_recorded_one(table):
    recorded_batch, raw = table.by_shape[("float32", 3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1)]
    assert ("float32", 5, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1) not in table.exact  # batch 5: never recorded
    nbytes, source = workspace_bytes(table, **{**CONV1, "x_shape": (5, 3, 224, 224)}, direction="backward",
                                     output_bytes=0)
    assert source == "scaled" and nbytes == int(raw[1] * 5 / recorded_batch)


def test_an_unrecorded_convolution_is_estimated_from_its_kind(table):
    odd = {**CONV1, "x_shape": (4, 5, 37, 37), "w_shape": (11, 5, 3, 3), "stride": (1, 1), "padding": (1, 1)}
    output_bytes = 4 * 11 * 37 * 37 * 4
    nbytes, source = workspace_bytes(table, **odd, direction="forward", output_bytes=output_bytes)
    assert source == "estimated" and nbytes == int(table.ratios[("float32", "kxk", "forward")] * output_bytes)
    assert data_workspace_bytes(table, **odd) is None


def test_the_trace_puts_each_workspace_inside_its_convolution():
    """A convolution's workspace is allocated after its output and freed before the next op:
    the step's events hold an alloc/free pair of the recorded size right after the output."""
    a = analyze(AnalysisRequest(model="resnet18", batch=32, mode="inference", optimizer="none", device="cuda"))
    sizes = a.events.nbytes.tolist()
    table = load_table()
    raw = table.exact[("float32", 32, 3, 224, 224, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1)]
    workspace = -(-raw[0] // 512) * 512
    i = sizes.index(workspace)
    assert sizes[i - 1] == 32 * 64 * 112 * 112 * 4 and sizes[i + 1] == -workspace  # output, workspace, free
    summary = a.cuda.convolutions
    assert (summary.recorded, summary.estimated, summary.threads) == (20, 0, 1)  # inference: one thread
    assert summary.largest_bytes == raw[0] and summary.largest_at.startswith("conv1")


def test_the_backward_runs_the_input_pass_then_the_weight_pass():
    """Input gradient, its workspace, freed; weight gradient, its workspace, freed (the recorded order)."""
    a = analyze(AnalysisRequest(model="resnet18", batch=32, mode="train", optimizer="sgd", device="cuda"))
    sizes = a.events.nbytes.tolist()
    table = load_table()
    # layer4's 3x3 512-channel convolution at 7x7: both passes recorded on the H200
    raw = table.exact[("float32", 32, 512, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1)]
    data, weight_pass = (-(-v // 512) * 512 for v in (raw[3], raw[2]))
    grad_input, grad_weight = 32 * 512 * 7 * 7 * 4, 512 * 512 * 9 * 4
    pattern = [grad_input, data, -data, grad_weight, weight_pass, -weight_pass]
    assert any(sizes[i:i + 6] == pattern for i in range(len(sizes) - 5))


# ---- Channels-last: cuDNN's NHWC kernels (ConvNeXt's depthwise 7x7 after its LayerNorm2d's permute)
# ConvNeXt-T's stage-2 depthwise convolution at batch 16, float32: 192 channels at 28x28, 7x7, padding 3
DEPTHWISE = dict(x_shape=(16, 192, 28, 28), dtype=torch.float32, w_shape=(192, 1, 7, 7), stride=(1, 1),
                 padding=(3, 3), dilation=(1, 1), groups=192, transposed=False)


def test_a_channels_last_convolution_takes_the_nhwc_row_read_from_the_recorded_steps(table):
    """NCHW, a depthwise convolution runs on ATen's own kernel without a workspace (the probe's 0);
    channels-last it runs on cuDNN, whose weight pass took 92 MiB in the recorded ConvNeXt steps."""
    nchw = workspace_bytes(table, **DEPTHWISE, direction="backward_weight_only", output_bytes=0)
    nhwc = workspace_bytes(table, **DEPTHWISE, direction="backward_weight_only", output_bytes=0, layout="nhwc")
    assert nchw == (0, "recorded")
    assert nhwc == (table.exact[("float32/nhwc", 16, 192, 28, 28, 192, 7, 7, 1, 1, 3, 3, 1, 1, 192)][2], "recorded")
    assert nhwc[0] > 90 * MIB
    assert data_workspace_bytes(table, **DEPTHWISE, layout="nhwc") == 0  # the input's pass takes none
    half = workspace_bytes(table, **{**DEPTHWISE, "x_shape": (8, 192, 28, 28)}, direction="backward_weight_only",
                           output_bytes=0, layout="nhwc")
    assert half == (nhwc[0] // 2, "scaled")


def test_a_channels_last_convolution_off_the_nhwc_rows_is_estimated(table):
    """Its kind's channels-last ratio where one was recorded (depthwise), else the NCHW figure,
    both counted as estimates."""
    odd = {**DEPTHWISE, "x_shape": (4, 40, 17, 17), "w_shape": (40, 1, 7, 7), "groups": 40}
    output_bytes = 4 * 40 * 17 * 17 * 4
    nbytes, source = workspace_bytes(table, **odd, direction="backward_weight_only", output_bytes=output_bytes,
                                     layout="nhwc")
    ratio = table.ratios[("float32/nhwc", "depthwise", "backward_weight_only")]
    assert source == "estimated" and nbytes == int(ratio * output_bytes) and ratio > 0
    pointwise = {**CONV1, "w_shape": (64, 3, 1, 1), "stride": (1, 1), "padding": (0, 0)}  # no NHWC 1x1 recorded
    assert ("float32/nhwc", "1x1", "forward") not in table.ratios
    nchw, _ = workspace_bytes(table, **pointwise, direction="forward", output_bytes=output_bytes)
    assert workspace_bytes(table, **pointwise, direction="forward", output_bytes=output_bytes,
                           layout="nhwc") == (nchw, "estimated")


def test_a_cuda_trace_writes_a_convolution_of_a_channels_last_input_channels_last(tmp_path):
    """cuDNN (like oneDNN) writes channels-last; the meta kernel says contiguous. A model that then
    asks for a contiguous tensor copies it on the GPU: the trace holds that copy."""
    source = tmp_path / "channels_last_net.py"
    source.write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = torch.nn.Conv2d(8, 16, 3, padding=1)\n"
        "    def forward(self, x):\n"
        "        return self.conv(x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)).contiguous()\n"
        "def build():\n"
        "    return Net()\n")
    a = analyze(AnalysisRequest(model=f"{source}:build", batch=4, input_shape=(8, 32, 32), mode="inference",
                                optimizer="none", device="cuda"))
    output = 4 * 16 * 32 * 32 * 4  # 512-byte multiple
    allocations = [n for n in a.events.nbytes.tolist() if n == output]
    assert len(allocations) == 2  # the convolution's channels-last output, and its contiguous copy


def test_the_table_builder_reads_every_convolution_of_a_recorded_step():
    # benchmarks/gpu_conv_table.py reads each pass's workspace from the recorded SGD steps, as cuDNN
    # asked for it. ResNet-18's first convolution (no input gradient) aside, each convolution shape
    # is read, in autograd's order: a pass that takes no workspace (layer2's 1x1 downsample's input
    # gradient) reads 0 and the next one is still read (a reader once ran off the end there, and
    # layer1's 3x3 convolutions went unread: reserved -6%).
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from gpu_conv_table import FRESH, step_workspaces

    nchw, nhwc = step_workspaces(FRESH, lambda case: case["model"] == "resnet18" and case["precision"] == "float32")
    forward = {key: v[0] for key, v in nchw.items()}
    weight = {key: v[1] for key, v in nchw.items()}
    data = {key: v[2] for key, v in nchw.items() if v[2] is not None}

    def key(c, hw, out, k, stride):
        return ("float32", 32, c, hw, hw, out, k, k, stride, stride, k // 2, k // 2, 1, 1, 1)

    three_by_three = [key(64, 56, 64, 3, 1), key(64, 56, 128, 3, 2), key(128, 28, 128, 3, 1), key(128, 28, 256, 3, 2),
                      key(256, 14, 256, 3, 1), key(256, 14, 512, 3, 2), key(512, 7, 512, 3, 1)]
    downsamples = [key(64, 56, 128, 1, 2), key(128, 28, 256, 1, 2), key(256, 14, 512, 1, 2)]
    stem = key(3, 224, 64, 7, 2)
    assert set(data) == {*three_by_three, *downsamples} and not nhwc
    assert set(forward) == set(weight) == {*three_by_three, *downsamples, stem}
    assert all(data[k] > 0 for k in three_by_three)
    assert data[key(64, 56, 64, 3, 1)] == 51_528_192  # layer1: the recorded request (49.14 MiB), not a 2 MiB block
    assert data[key(64, 56, 128, 1, 2)] == 0  # layer2's 1x1 downsample: none, read as none
    # The forward's own request, where the probe's block-rounded peak read 27,262,976 (26 MiB): a
    # cached block handed out unsplit, its remainder under 1 MiB counted as workspace.
    assert forward[key(128, 28, 128, 3, 1)] == 26_280_448
    assert forward[key(64, 56, 128, 1, 2)] == 0 and weight[key(64, 56, 128, 1, 2)] > 0

def test_eval_batch_norm_keeps_saved_statistics_only_where_the_gpu_does():
    """A GPU's eval-mode batch norm: cuDNN (float32, float16 under AMP) returns no saved
    statistics, the native kernel (bfloat16) a pair per layer; the meta kernel always makes them.
    Small allocations of a recorded inference pass, counted, against its CUDA trace's."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from gpu_accuracy import load_document
    from gpu_predict import request_for

    from engine.allocator_replay import decode_trace

    run = os.path.join(ROOT, "tests", "data", "gpu", "h200_2026-11-28_fresh", "gpu_accuracy.json")
    cases = load_document(run)["cases"]

    def small(sizes):
        return sum(1 for n in sizes if 0 < n <= 8192)

    counts = {}
    for precision in ("float32", "amp_float16", "amp_bfloat16"):
        case = next(c for c in cases if c["model"] == "resnet18" and c["mode"] == "inference"
                    and c["precision"] == precision)
        traced = analyze(request_for(case, (9, 0)))
        counts[precision] = small(traced.events.nbytes.tolist())
        assert counts[precision] == small(decode_trace(case["trace"])[0].tolist()), precision
    assert counts["float32"] == 0 and counts["amp_bfloat16"] >= 2 * 20  # resnet18's 20 batch norms


def test_a_batch_norm_frozen_in_eval_mode_still_trains_on_a_cuda_target():
    """Eval-mode batch norm inside a training step (statistics frozen, weights trained): its saved
    statistics are dropped as cuDNN drops them, and the backward still runs on the trace."""
    from conftest import DATA

    model = f"{DATA}/user_models.py:build_frozen_bn"
    for amp in (False, True):
        analysis = analyze(AnalysisRequest(model=model, batch=4, optimizer="adam", device="cuda", amp=amp))
        assert analysis.peak.total_bytes > analysis.parameter_bytes
        assert any(m == "bn" for m in analysis.events.modules)


def test_a_convolution_of_a_channel_half_copies_it_first_as_the_gpu_did():
    """ShuffleNetV2's stride-1 blocks convolve one half of `chunk(2, dim=1)`: not contiguous, so ATen
    hands cuDNN a copy (forward, and backward for the weight's gradient), freed when the op returns.
    The traced SGD step then makes every allocation the H200's recorded step made, and no other."""
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from gpu_accuracy import load_document
    from gpu_trace_diff import unmatched

    run = os.path.join(ROOT, "tests", "data", "gpu", "h200_2026-11-28_fresh", "gpu_accuracy.json")
    case = next(c for c in load_document(run)["cases"] if c["model"] == "shufflenet_v2_x1_0"
                and c["mode"] == "train" and c["optimizer"] == "sgd" and c["precision"] == "float32")
    assert unmatched(case, (9, 0)) == ([], [])
