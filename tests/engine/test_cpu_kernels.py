"""The scratch buffers a CPU kernel takes, per oneDNN ISA family, against the allocator's events
measured inside that one op on a real step.

Where the figures come from: torch.profiler's allocator events attributed to the innermost op
(the probe is one convolution's forward or backward, float32, 2 threads), on a Sapphire Rapids
Xeon (torch 2.14.1, oneDNN 3.x), each family selected with ONEDNN_MAX_CPU_ISA (AVX2 also with
ATEN_CPU_CAPABILITY=avx2), 2026-11-28. Each measured list is the op's events in order, outputs
included; per-thread scratchpads the model does not derive are taken out and named.
"""
import pytest
import torch

import engine.cpu_isa as cpu_isa
import engine.cpu_kernels as cpu_kernels
import engine.cpu_gru as cpu_gru
import engine.cpu_lstm as cpu_lstm
from engine.cpu_isa import AMX, AVX2, AVX512, AVX512_BF16, family_from
from engine.cpu_kernels import kernel_script

aten = torch.ops.aten


@pytest.fixture
def family(monkeypatch):
    """Run the model as oneDNN would on a CPU of the given family, with 2 threads (as measured)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)

    def use(name):
        monkeypatch.setattr(cpu_isa, "onednn_family", lambda: name)
        monkeypatch.setattr(cpu_kernels, "onednn_family", lambda: name)
        monkeypatch.setattr(cpu_lstm, "onednn_family", lambda: name)
        # oneDNN takes bfloat16 convolutions from AVX-512 on (native or emulated), not on AVX2.
        monkeypatch.setattr(cpu_kernels, "onednn_low_precision", lambda: name != AVX2)

    yield use
    torch.set_num_threads(threads)


def events(script, outputs):
    """The allocator events a script stands for (what engine/tracer.py's _replay records)."""
    held, out = {}, []
    for step in script:
        if step[0] == "alloc" and step[2]:
            held[step[1]] = step[2]
            out.append(step[2])
        elif step[0] == "free" and step[1] in held:
            out.append(-held.pop(step[1]))
        elif step[0] == "out" and (step[2] if len(step) > 2 else outputs[step[1]]):
            out.append(step[2] if len(step) > 2 else outputs[step[1]])
    return out


def without(measured, *scratch):
    """The measured events less the named scratchpads (their allocation and their free)."""
    rest = list(measured)
    for nbytes in scratch:
        rest.remove(nbytes)
        rest.remove(-nbytes)
    return rest


def meta(*shape):
    return torch.empty(shape, device="meta")


def conv_backward(n, c_in, c_out, k, stride, h, input_grad=True):
    x, w = meta(n, c_in, h, h), meta(c_out, c_in, k, k)
    h_out = (h + 2 * (k // 2) - k) // stride + 1
    grad_out = meta(n, c_out, h_out, h_out)
    args = (grad_out, x, w, [c_out], [stride] * 2, [k // 2] * 2, [1, 1], False, [0, 0], 1, [input_grad, True, True])
    outputs = (x.numel() * 4 if input_grad else 0, w.numel() * 4, c_out * 4)
    return events(kernel_script(aten.convolution_backward.default, args), outputs)


def transposed(n, c_in, c_out, k, stride, h, backward=False):
    x, w = meta(n, c_in, h, h), meta(c_in, c_out, k, k)
    h_out = (h - 1) * stride + k
    out_bytes = n * c_out * h_out * h_out * 4
    if not backward:
        args = (x, w, meta(c_out), [stride] * 2, [0, 0], [1, 1], True, [0, 0], 1)
        return events(kernel_script(aten.convolution.default, args), (out_bytes,))
    args = (meta(n, c_out, h_out, h_out), x, w, [c_out], [stride] * 2, [0, 0], [1, 1], True, [0, 0], 1,
            [True, True, True])
    return events(kernel_script(aten.convolution_backward.default, args), (x.numel() * 4, w.numel() * 4, c_out * 4))


# ---- Convolution backward with channels below a block
def test_small_channels_pad_the_input_gradient_to_the_block_and_the_weight_gradient_to_avx2s(family):
    # 4 -> 8 channels, 3x3, 32x32, batch 4: the input gradient goes through 16-channel blocks with
    # AVX-512, the weight gradient through AVX2's 8-channel kernel on every family.
    measured = [262144, 9216, 262144, -9216, -262144, 65536, -262144,
                131072, 131072, 2304, 26912, 32, -26912, -131072, -131072, 32, 1152, -2304, -32]
    for name in (AVX512, AVX512_BF16, AMX):
        family(name)
        assert conv_backward(4, 4, 8, 3, 1, 32) == measured  # 26912: AVX2's kernel's reduction over 2 threads
    family(AVX2)
    measured = [131072, 2304, 131072, -2304, -131072, 65536, -131072,
                131072, 131072, 2304, 26912, 32, -26912, -131072, -131072, 32, 1152, -2304, -32]
    assert conv_backward(4, 4, 8, 3, 1, 32) == measured


def test_avx512_takes_its_16_channel_weight_gradient_once_the_input_has_16_channels(family):
    # 16 -> 8 channels, 3x3, 32x32, batch 4.
    family(AVX512)
    measured = [262144, 9216, 262144, -9216, -262144, 262144, -262144,
                262144, 262144, 9216, 30144, 32, -30144, -262144, -262144, 32, 4608, -9216, -32]
    assert conv_backward(4, 16, 8, 3, 1, 32) == without(measured, 30144)
    family(AVX2)
    measured = [131072, 4608, 262144, -4608, -131072, 262144, -262144,
                131072, 262144, 4608, 12320, 32, -12320, -262144, -131072, 32, 4608, -4608, -32]
    assert conv_backward(4, 16, 8, 3, 1, 32) == measured  # 12320: two input blocks, split over threads


@pytest.mark.parametrize("threads, c_in, c_out, k, scratch", [
    (2, 8, 8, 1, 21152), (2, 8, 8, 5, 31008), (2, 8, 8, 7, 37152), (2, 3, 8, 3, 25472),
    (4, 8, 8, 1, 21728), (4, 8, 8, 3, 31584), (4, 8, 8, 7, 62304), (2, 8, 4, 3, 27072), (1, 8, 4, 3, 160),
    (1, 8, 8, 3, 0), (2, 8, 12, 3, 0), (2, 8, 16, 3, 0),
])
def test_avx2s_weight_gradient_sums_per_thread_copies_when_the_output_is_one_block(
        family, threads, c_in, c_out, k, scratch):
    # Batch 4, 16x16, AVX2, measured with torch.set_num_threads(threads): the one scratchpad the
    # weight gradient takes beside its blocked copies (none when the output has two blocks).
    family(AVX2)
    torch.set_num_threads(threads)
    x, w = meta(4, c_in, 16, 16), meta(c_out, c_in, k, k)
    args = (meta(4, c_out, 16, 16), x, w, [c_out], [1, 1], [k // 2] * 2, [1, 1], False, [0, 0], 1, [True, True, True])
    script = kernel_script(aten.convolution_backward.default, args)
    assert sum(step[2] for step in script if step[:2] == ("alloc", "accumulate")) == scratch


def test_a_first_convolution_reads_its_input_as_it_is_on_avx512_but_pads_it_on_avx2(family):
    # 1 -> 32 channels (MNIST's first layer), 3x3, 28x28, batch 4.
    family(AVX512)
    measured = [401408, 18432, 200704, -18432, -401408, 12544, -200704,
                401408, 1152, 9600, 128, -9600, -401408, 128, 1152, -1152, -128]
    assert conv_backward(4, 1, 32, 3, 1, 28) == without(measured, 9600)
    family(AVX2)
    measured = [401408, 9216, 100352, -9216, -401408, 12544, -100352,
                401408, 100352, 9216, 128, -100352, -401408, 128, 1152, -9216, -128]
    assert conv_backward(4, 1, 32, 3, 1, 28) == measured


def test_a_strided_input_gradient_takes_a_second_input_sized_buffer(family):
    # 3 -> 16 channels, 3x3 stride 2, 32x32, batch 4: the gradient is computed unpadded (3
    # channels), then a second buffer of its size is taken beside the real one.
    family(AVX512)
    measured = [65536, 9216, 49152, 94256, -94256, -9216, -65536, 49152, 49152, -49152, -49152,
                65536, 1728, 22464, 64, -22464, -65536, 64, 1728, -1728, -64]
    assert conv_backward(4, 3, 16, 3, 2, 32) == without(measured, 94256, 22464)
    family(AVX2)
    measured = [65536, 4608, 49152, 94256, -94256, -4608, -65536, 49152, 49152, -49152, -49152,
                65536, 1728, 64, -65536, 64, 1728, -1728, -64]
    assert conv_backward(4, 3, 16, 3, 2, 32) == without(measured, 94256)


def test_wide_strided_convolutions_also_take_the_second_buffer(family):
    # 64 -> 128 channels, 3x3 stride 2, 28x28, batch 2 (a ResNet downsampling block).
    measured = [200704, 294912, 401408, 290864, -290864, -294912, -200704, 401408, 401408, -401408, -401408,
                200704, 401408, 294912, 512, -401408, -200704, 512, 294912, -294912, -512]
    for name in (AVX2, AVX512):
        family(name)
        assert conv_backward(2, 64, 128, 3, 2, 28) == without(measured, 290864)


# ---- Grouped convolutions
@pytest.mark.parametrize("name", [AVX2, AMX])
@pytest.mark.parametrize("c, groups, stride, measured", [
    (72, 3, 2, [451584, 62208, 112896, -62208, -451584, 112896, -112896]),  # regnet_x_1_6gf's 24 per group
    (40, 5, 1, [250880, 11520, 250880, -11520, -250880, 250880, -250880]),
    (64, 2, 1, [401408, 73728, 401408, -73728, -401408, 401408, -401408]),
])
def test_grouped_float32_convolutions_copy_without_padding_channels(family, name, c, groups, stride, measured):
    # c -> c channels in groups, 3x3, 28x28, batch 2, inference (nothing padded to 8 or 16).
    family(name)
    x, w = meta(2, c, 28, 28), meta(c, c // groups, 3, 3)
    h_out = (28 + 2 - 3) // stride + 1
    args = (x, w, meta(c), [stride] * 2, [1, 1], [1, 1], False, [0, 0], groups)
    assert events(kernel_script(aten.convolution.default, args), (2 * c * h_out * h_out * 4,)) == measured


# ---- bfloat16 convolution backward
def bf16_conv_backward(n, c_in, c_out, k, stride, h, input_grad=True, bias=False):
    x, w = torch.empty(n, c_in, h, h, dtype=torch.bfloat16, device="meta"), torch.empty(
        c_out, c_in, k, k, dtype=torch.bfloat16, device="meta")
    h_out = (h + 2 * (k // 2) - k) // stride + 1
    grad_out = torch.empty(n, c_out, h_out, h_out, dtype=torch.bfloat16, device="meta")
    args = (grad_out, x, w, [c_out] if bias else None, [stride] * 2, [k // 2] * 2, [1, 1], False, [0, 0], 1,
            [input_grad, True, bias])
    outputs = (x.numel() * 2 if input_grad else 0, w.numel() * 2, c_out * 2 if bias else 0)
    return events(kernel_script(aten.convolution_backward.default, args), outputs)


def test_avx2s_bf16_backward_unfolds_the_whole_batch_into_columns_like_its_forward(family):
    # No oneDNN bfloat16 on AVX2: slow_conv2d's backward, 2 threads, batch 2 (AMP on AVX2).
    family(AVX2)
    assert bf16_conv_backward(2, 64, 64, 3, 1, 56) == [802816, 73728, 7225344, -7225344]
    # A bias sums the output gradient in float32 first.
    assert bf16_conv_backward(2, 64, 64, 3, 1, 56, bias=True) == [
        802816, 128, 256, 1605632, -1605632, -256, 73728, 7225344, -7225344]
    # The first convolution takes its columns though its input needs no gradient.
    assert bf16_conv_backward(2, 3, 64, 7, 2, 64, input_grad=False) == [18816, 602112, -602112]
    # A 1x1 kernel without stride or padding reads the input as it is.
    assert bf16_conv_backward(2, 64, 128, 1, 1, 28) == [200704, 16384]


@pytest.mark.parametrize("name", [AVX512, AVX512_BF16, AMX])
@pytest.mark.parametrize("c, h, avx512, amx", [(512, 7, 9582980, 9774768), (128, 28, 2019716, 1070768),
                                               (64, 56, 1937796, 645808)])
def test_a_bf16_weight_gradient_is_reduced_in_float32_a_lower_bound_of_its_scratchpad(family, name, c, h, avx512, amx):
    # c -> c channels, 3x3, batch 2, 2 threads: oneDNN's weight-gradient scratchpad, measured on
    # AVX-512 (with or without native bf16: the same) and AMX, holds at least a float32 weight.
    measured = amx if name == AMX else avx512
    family(name)
    x, w = torch.empty(2, c, h, h, dtype=torch.bfloat16, device="meta"), torch.empty(
        c, c, 3, 3, dtype=torch.bfloat16, device="meta")
    args = (torch.empty(2, c, h, h, dtype=torch.bfloat16, device="meta"), x, w, None, [1, 1], [1, 1], [1, 1],
            False, [0, 0], 1, [True, True, False])
    script = kernel_script(aten.convolution_backward.default, args)
    accumulate = sum(step[2] for step in script if step[:2] == ("alloc", "accumulate"))
    assert accumulate == c * c * 9 * 4 <= measured


# ---- Transposed convolution (float32: the same kernel on every family)
@pytest.mark.parametrize("name", [AVX2, AVX512, AVX512_BF16, AMX])
def test_a_2x2_upsampling_takes_its_scratchpad_an_input_copy_and_two_output_sized_buffers(family, name):
    family(name)
    # 32 -> 16 channels, 2x2 stride 2, 16x16 -> 32x32, batch 4.
    assert transposed(4, 32, 16, 2, 2, 16) == [94384, 131072, 8192, 262144, -8192, -131072, -94384,
                                               262144, 262144, -262144, -262144]
    # 16 -> 3 channels: the weight's output channels padded to the block (16, or AVX2's 8).
    w = 4096 if name != AVX2 else 2048
    assert transposed(4, 16, 3, 2, 2, 32) == [159920, 262144, w, 196608, -w, -262144, -159920,
                                              196608, 196608, -196608, -196608]
    # 8x8 input: rows padded to 16 pixels in the per-thread buffers.
    assert transposed(4, 32, 16, 2, 2, 8)[0] == 61616


def test_other_transposed_kernels_get_a_lower_bound_of_their_scratchpad(family):
    family(AVX512)
    # 64 -> 32 channels, 3x3 stride 2, 16x16: measured 820016 bytes of scratchpad.
    scratch = transposed(4, 64, 32, 3, 2, 16)[0]
    assert 2 * 64 * 16 * 16 * 4 == scratch <= 820016


@pytest.mark.parametrize("name", [AVX2, AVX512])
def test_transposed_backward_is_a_convolution_of_the_output_gradient_and_a_weight_gradient(family, name):
    family(name)
    # 32 -> 16 channels, 2x2 stride 2, 16x16, batch 4 (AVX-512 adds a 16768-byte scratchpad).
    measured = [262144, 8192, 131072, -8192, -262144, 131072, -131072,
                262144, 131072, 8192, 64, -131072, -262144, 64, 8192, -8192, -64]
    assert transposed(4, 32, 16, 2, 2, 16, backward=True) == measured
    # 16 -> 3 channels: the output gradient is too narrow to be blocked, nothing pads.
    measured = [768, 262144, -768, 262144, -262144, 262144, 768, 12, -262144, 12, 768, -768, -12]
    assert transposed(4, 16, 3, 2, 2, 32, backward=True) == measured


# ---- bfloat16 matrix products (AMP's linear layers)
@pytest.mark.parametrize("m, k, n, scratch", [
    (1000, 2, 1024, 4096128), (64, 64, 64, 16512), (256, 8, 512, 524416), (1000, 16, 1024, 4096128),
])
def test_avx512_without_native_bf16_accumulates_a_bf16_product_in_float32(family, m, k, n, scratch):
    # Measured with ONEDNN_MAX_CPU_ISA=AVX512_CORE: torch.mm and torch.addmm alike.
    family(AVX512)
    a, b = torch.empty(m, k, dtype=torch.bfloat16, device="meta"), torch.empty(k, n, dtype=torch.bfloat16, device="meta")
    out = m * n * 2
    assert events(kernel_script(aten.mm.default, (a, b)), (out,)) == [out, scratch, -scratch]
    assert events(kernel_script(aten.addmm.default, (meta(n), a, b)), (out,)) == [out, scratch, -scratch]


def test_small_bf16_products_and_other_families_take_no_accumulator(family):
    a, b = torch.empty(3, 64, dtype=torch.bfloat16, device="meta"), torch.empty(64, 17, dtype=torch.bfloat16, device="meta")
    family(AVX512)
    assert kernel_script(aten.mm.default, (a, b)) is None  # 3 x 64 x 17 <= 16^3: ATen's kernel (measured)
    a = torch.empty(64, 64, dtype=torch.bfloat16, device="meta")
    family(AVX2)
    assert kernel_script(aten.mm.default, (a, a)) is None  # measured: no scratch


# ---- LSTM (oneDNN's mkldnn_rnn_layer: the same on every family but inference weight copies)
def rnn_layer(n, t, e, h, train=True):
    x, hx = meta(t, n, e), meta(n, h)
    args = (x, meta(4 * h, e), meta(4 * h, h), meta(4 * h), meta(4 * h), hx, hx, False, [], 2, h, 1, True, False,
            False, train)
    return events(kernel_script(aten.mkldnn_rnn_layer.default, args), (t * n * h * 4, n * h * 4, n * h * 4, 0))


@pytest.mark.parametrize("n, t, e, h, workspace", [
    (4, 20, 64, 128, 643072), (4, 20, 128, 128, 643072), (4, 20, 16, 128, 643072), (4, 20, 64, 64, 335872),
    (4, 20, 64, 32, 237568), (4, 20, 64, 256, 1323008), (1, 20, 64, 128, 180224), (2, 20, 64, 128, 331776),
    (8, 20, 64, 128, 1282048), (4, 1, 64, 128, 57344), (4, 2, 64, 128, 86016), (4, 10, 64, 128, 331776),
    (4, 40, 64, 128, 1261568), (2, 10, 16, 32, 57344),
])
def test_an_lstm_layer_keeps_onednns_page_aligned_workspace_for_the_backward(n, t, e, h, workspace):
    # Measured: the 'empty' of that size inside mkldnn_rnn_layer (nn.LSTM, 1 layer, train mode).
    assert rnn_layer(n, t, e, h)[4] == workspace


def test_an_lstm_layer_copies_its_weights_with_onednns_padded_leading_dimension_in_training():
    # Batch 4, 20 steps, 64 inputs, 128 hidden: output, hy, cy, bias sum, workspace, then the
    # weights (512 gates padded to 528), the scratchpad (measured 184888: the model takes its
    # gates, 20 x 4 x 528 floats, as a lower bound), all freed, the bias sum last.
    measured = [40960, 2048, 2048, 2048, 643072, 135168, 270336, 184888, -184888, -270336, -135168, -2048]
    traced = rnn_layer(4, 20, 64, 128)
    assert traced == [168960 if b == 184888 else -168960 if b == -184888 else b for b in measured]
    # Inference: no workspace, unpadded weight copies, the scratchpad (states included) exact.
    measured = [40960, 2048, 2048, 2048, 131072, 262144, 193368, -193368, -262144, -131072, -2048]
    assert rnn_layer(4, 20, 64, 128, train=False) == measured


@pytest.mark.parametrize("n, t, e, h, scratchpad", [
    (4, 20, 64, 128, 193368), (4, 20, 256, 128, 291672), (4, 20, 128, 128, 193528), (4, 20, 512, 128, 463704),
    (4, 20, 256, 64, 246616), (4, 20, 256, 256, 390136), (4, 10, 256, 128, 164696), (4, 40, 256, 128, 549720),
    (8, 20, 256, 128, 570200), (1, 20, 256, 128, 127832), (4, 20, 100, 100, 164856), (2, 20, 64, 128, 107352),
    (3, 20, 64, 128, 148312), (16, 20, 64, 128, 738136), (5, 7, 48, 96, 82776), (2, 20, 96, 96, 78840),
    (4, 20, 64, 100, 164696),
])
def test_an_lstm_layers_inference_scratchpad_holds_the_states_of_every_step(n, t, e, h, scratchpad):
    # Measured: the last allocation inside mkldnn_rnn_layer (nn.LSTM, 1 layer, no_grad, 2
    # threads), alike on AMX, AVX-512 and AVX2; it grows with an input wider than the state.
    assert rnn_layer(n, t, e, h, train=False)[6] == scratchpad


@pytest.mark.parametrize("name, width", [(AMX, 512), (AVX512, 512), (AVX2, 448)])
def test_an_lstm_layers_inference_weight_copies_pad_each_gate_to_the_isas_block(family, name, width):
    # 100 hidden units, 64 inputs (measured per family): each of the 4 gates padded to 32 columns
    # with AVX-512's brgemm kernels, to 16 on AVX2.
    family(name)
    assert rnn_layer(4, 20, 64, 100, train=False)[4:6] == [64 * width * 4, 100 * width * 4]


def rnn_layer_backward(t, n, e, h, grad_out):
    x, hx, w_ih, w_hh = meta(t, n, e), meta(n, h), meta(4 * h, e), meta(4 * h, h)
    args = (x, w_ih, w_hh, meta(4 * h), meta(4 * h), hx, hx, meta(t, n, h), hx, hx, grad_out, hx, hx, False, 2, h,
            1, True, True, False, [], False, meta(1))
    script = kernel_script(aten.mkldnn_rnn_layer_backward.default, args)
    return [step[2] for step in script if step[0] == "alloc" and step[2]]


@pytest.mark.parametrize("e, h, transposed", [
    (64, 128, []), (256, 128, [557056]), (200, 128, [425984]), (100, 128, [229376]), (64, 256, [1114112]),
    (128, 100, [179200]),
])
def test_an_lstm_backward_copies_the_weights_transposed_where_onednn_pads_their_width(e, h, transposed):
    # 20 steps, batch 4 (nn.LSTM, 1 layer): the measured allocations inside
    # mkldnn_rnn_layer_backward before its weight copies: a transposed input (or recurrent)
    # weight, 4h rows with oneDNN's leading dimension, when that pads the width.
    ld = -(-4 * h // 16) * 16 + (16 if 4 * h % 256 == 0 else 0)  # the gates' padded leading dimension
    bias, scratch = 4 * h * 4, 20 * 4 * ld * 4
    assert rnn_layer_backward(20, 4, e, h, meta(20, 4, h)) == [bias, bias, *transposed, e * ld * 4, h * ld * 4, scratch]


def test_a_bidirectional_layers_output_gradient_is_copied_contiguous():
    # 2 x 128 hidden units, 20 steps, batch 4: the gradient of one direction is a slice of the
    # concatenated output's (measured: a 40960-byte copy before the backward's outputs).
    sliced = meta(20, 4, 256)[:, :, 128:]
    assert rnn_layer_backward(20, 4, 256, 128, sliced)[0] == 40960
    assert 40960 not in rnn_layer_backward(20, 4, 256, 128, meta(20, 4, 128))


# ---- Which family oneDNN runs
@pytest.mark.parametrize("flags, cap, expected", [
    ({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "amx_bf16", "amx_tile"}, None, AMX),
    ({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16", "amx_bf16", "amx_tile"},
     "AVX512_CORE_BF16", AVX512_BF16),
    ({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"}, None, AVX512_BF16),  # Zen 4
    ({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"}, "avx2", AVX2),
    ({"avx2", "fma"}, "AVX512_CORE", AVX2),
])
def test_the_family_is_the_cpus_capped_by_onednn_max_cpu_isa(flags, cap, expected):
    assert family_from(flags, cap) == expected


# ---- LSTMs take oneDNN's route in CPU traces only
def _graph_ops(t):
    seen, stack = set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack += [n for n, _ in node.next_functions]
    return {type(n).__name__ for n in seen}


def test_meta_lstms_outside_a_cpu_trace_keep_atens_composite():
    lstm = torch.nn.LSTM(8, 16, num_layers=2, batch_first=True).to("meta")
    y, (h, c) = lstm(meta(2, 5, 8).requires_grad_())
    assert y.shape == (2, 5, 16) and h.shape == c.shape == (2, 2, 16)
    assert not any("Mkldnn" in name for name in _graph_ops(y))


@pytest.mark.parametrize("module, route, builder", [
    (cpu_lstm, "onednn_lstm", "build_lstm"),  # oneDNN's LSTM
    (cpu_gru, "cpu_gru", "build_bidirectional_gru"),  # ATen's CPU GRU: every step's input projected at once
], ids=["lstm", "gru"])
def test_a_cpu_trace_runs_the_cpus_rnn_and_a_gpu_trace_does_not(monkeypatch, module, route, builder):
    from engine import AnalysisRequest, analyze
    from conftest import DATA

    calls = []
    original = getattr(module, route)
    monkeypatch.setattr(module, route, lambda *args: calls.append(1) or original(*args))
    model = f"{DATA}/user_models.py:{builder}"
    analyze(AnalysisRequest(model=model, batch=4, mode="inference", optimizer="none", device="cuda"))
    assert calls == []
    analyze(AnalysisRequest(model=model, batch=4, mode="inference", optimizer="none"))
    assert calls == [1]


def test_the_cpu_gru_computes_what_atens_gru_computes():
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 5, num_layers=2, batch_first=True, bidirectional=True)
    x, h0 = torch.randn(3, 4, 6), torch.randn(4, 3, 5)
    expected, expected_h = gru(x, h0)
    y, h = cpu_gru.cpu_gru(x, h0, gru._flat_weights, True, 2, 0.0, False, True, True)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(h, expected_h)


def test_the_cpu_packed_gru_computes_what_atens_computes():
    torch.manual_seed(0)
    gru = torch.nn.GRU(6, 5, num_layers=2, bidirectional=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(4, 3, 6), [4, 3, 1])
    hx = torch.randn(4, 3, 5)
    expected, expected_h = gru(packed, hx)
    y, h = cpu_gru.packed_gru(packed.data, packed.batch_sizes, hx, gru._flat_weights, True, 2, 0.0, False, True)
    torch.testing.assert_close(y, expected.data)
    torch.testing.assert_close(h, expected_h)


def test_the_cpu_packed_lstm_computes_what_atens_computes_in_both_directions():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(6, 5, batch_first=True, bidirectional=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(3, 4, 6), [4, 2, 1], batch_first=True)
    hx = (torch.randn(2, 3, 5), torch.randn(2, 3, 5))
    expected, (expected_h, expected_c) = lstm(packed, hx)
    y, h, c = cpu_lstm.packed_lstm(packed.data, packed.batch_sizes, hx, lstm._flat_weights, True, 1, 0.0, False, True)
    torch.testing.assert_close(y, expected.data)
    torch.testing.assert_close((h, c), (expected_h, expected_c))


# ---- Grouped and depthwise convolutions' backward (float32, contiguous)
def grouped_backward(n, c_in, c_out, groups, k, stride, h):
    x, w = meta(n, c_in, h, h), meta(c_out, c_in // groups, k, k)
    h_out = (h + 2 * (k // 2) - k) // stride + 1
    args = (meta(n, c_out, h_out, h_out), x, w, [c_out], [stride] * 2, [k // 2] * 2, [1, 1], False, [0, 0], groups,
            [True, True, True])
    outputs = (x.numel() * 4, w.numel() * 4, c_out * 4)
    return events(kernel_script(aten.convolution_backward.default, args), outputs)


# (batch, in, out, groups, kernel, stride, pixels wide): the events inside convolution_backward.
GROUPED_BACKWARD = {
    # Depthwise 3x3: the jit kernels' blocked copies, channels padded to the block (16 or 8).
    (AMX, (4, 24, 24, 24, 3, 1, 16)): [131072, 1152, 131072, -1152, -131072, 98304, -131072, 131072, 131072, 1152,
                                       96, -131072, -131072, 96, 864, -1152, -96],
    (AVX2, (4, 24, 24, 24, 3, 1, 16)): [98304, 864, 98304, -864, -98304, 98304, -98304, 98304, 98304, 864, 96,
                                        -98304, -98304, 96, 864, -864, -96],
    (AMX, (4, 24, 24, 24, 3, 2, 16)): [32768, 1152, 131072, -1152, -32768, 98304, -131072, 32768, 131072, 1152, 96,
                                       -131072, -32768, 96, 864, -1152, -96],
    (AVX2, (4, 20, 20, 20, 3, 2, 16)): [24576, 864, 98304, -864, -24576, 81920, -98304, 24576, 98304, 864, 80,
                                        -98304, -24576, 80, 720, -864, -80],
    (AMX, (2, 96, 96, 96, 3, 1, 14)): [150528, 3456, 150528, -3456, -150528, 150528, -150528, 150528, 150528, 3456,
                                       384, -150528, -150528, 384, 3456, -3456, -384],
    # Depthwise 5x5: the weight gradient through im2col+GEMM (per-thread columns and reductions).
    (AMX, (4, 40, 40, 40, 5, 1, 16)): [196608, 4800, 196608, -4800, -196608, 163840, -196608, 4000, 83456, 160,
                                       -83456, 160, 4000, -4000, -160],
    (AVX2, (4, 40, 40, 40, 5, 1, 16)): [163840, 4000, 163840, -4000, -163840, 163840, -163840, 4000, 83456, 160,
                                        -83456, 160, 4000, -4000, -160],
    # Groups of a whole number of 8 channels: the jit kernels, unpadded.
    (AMX, (4, 32, 32, 4, 3, 1, 16)): [131072, 9216, 131072, -9216, -131072, 131072, -131072, 131072, 131072, 9216,
                                      128, -131072, -131072, 128, 9216, -9216, -128],
    (AVX2, (4, 96, 96, 4, 3, 1, 16)): [393216, 82944, 393216, -82944, -393216, 393216, -393216, 393216, 393216,
                                       82944, 384, -393216, -393216, 384, 82944, -82944, -384],
    (AMX, (4, 64, 64, 2, 1, 1, 16)): [262144, 8192, 262144, -8192, -262144, 262144, -262144, 262144, 262144, 8192,
                                      256, -262144, -262144, 256, 8192, -8192, -256],
    # Groups of 4 or 12 channels: GEMM weight gradient; the input gradient jit from AVX-512 on,
    # GEMM on AVX2 (columns of every thread, even for one image).
    (AMX, (4, 128, 128, 32, 3, 1, 16)): [524288, 18432, 524288, -18432, -524288, 524288, -524288, 18432, 221440,
                                         512, -221440, 512, 18432, -18432, -512],
    (AVX2, (4, 128, 128, 32, 3, 1, 16)): [524288, 73856, -73856, 524288, -524288, 18432, 221440, 512, -221440, 512,
                                          18432, -18432, -512],
    (AVX2, (1, 128, 128, 32, 3, 1, 16)): [131072, 73856, -73856, 131072, -131072, 18432, 221440, 512, -221440,
                                          512, 18432, -18432, -512],
    (AMX, (2, 48, 48, 4, 3, 2, 16)): [24576, 20736, 98304, -20736, -24576, 98304, -98304, 20736, 221440, 192,
                                      -221440, 192, 20736, -20736, -192],
    (AVX2, (2, 16, 16, 4, 3, 2, 16)): [32768, 18560, -18560, 32768, -32768, 2304, 37120, 64, -37120, 64, 2304,
                                       -2304, -64],
    (AVX2, (4, 96, 96, 8, 3, 1, 16)): [393216, 221312, -221312, 393216, -393216, 41472, 553216, 384, -553216, 384,
                                       41472, -41472, -384],
    # Two outputs per input channel: GEMM both ways, on every family.
    (AMX, (4, 64, 128, 64, 3, 1, 8)): [65536, 4736, -4736, 65536, -65536, 4608, 41728, 512, -41728, 512, 4608,
                                       -4608, -512],
    (AVX2, (4, 64, 128, 64, 3, 1, 8)): [65536, 4736, -4736, 65536, -65536, 4608, 41728, 512, -41728, 512, 4608,
                                        -4608, -512],
}


@pytest.mark.parametrize("name, shape", list(GROUPED_BACKWARD))
def test_a_grouped_convolutions_backward_takes_the_kernels_buffers(family, name, shape):
    family(name)
    assert grouped_backward(*shape) == GROUPED_BACKWARD[name, shape]


def test_avx2s_strided_gemm_input_gradient_is_left_to_its_output(family):
    family(AVX2)
    # Groups of 12 channels, stride 2: measured a further weight copy (27648 bytes), per-thread
    # buffers (61488) and a second input-sized buffer, not modelled.
    measured_weight_part = [20736, 221440, 192, -221440, 192, 20736, -20736, -192]
    traced = grouped_backward(2, 48, 48, 4, 3, 2, 16)
    assert traced == [98304] + measured_weight_part


# ---- Other kernels' buffers, measured live on this CPU (torch.profiler)
def _live(op):
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = op()
    del out
    return [e.nbytes() for e in sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                                       key=lambda e: e.start_ns())]


@pytest.mark.parametrize("mode", ["bicubic", "bilinear"])
@pytest.mark.parametrize("size", [(48, 40), (32, 40), (16, 16)], ids=str)
def test_an_antialiased_resize_takes_the_width_pass_buffer_when_both_sides_change(mode, size):
    x = torch.randn(2, 4, 32, 16)
    func = {"bicubic": aten._upsample_bicubic2d_aa.default, "bilinear": aten._upsample_bilinear2d_aa.default}[mode]
    measured = _live(lambda: torch.nn.functional.interpolate(x, size=size, mode=mode, antialias=True))
    out = 2 * 4 * size[0] * size[1] * 4
    script = kernel_script(func, (meta(2, 4, 32, 16), list(size), False, None, None))
    expected = [out] if script is None else events(script, (out,))
    assert [e for e in measured if abs(e) > 1200] == expected  # the passes' index and weight tables aside


@pytest.mark.parametrize("shape", [(4, 32, 8000), (4, 32, 10, 10), (64, 32)], ids=str)
def test_batch_norm_backward_allocates_the_input_gradient_twice(shape):
    x, w = torch.randn(shape), torch.ones(32)
    mean, var = torch.zeros(32), torch.ones(32)
    y, save_mean, save_invstd = aten.native_batch_norm(x, w, torch.zeros(32), mean, var, True, 0.1, 1e-5)
    grad = torch.randn_like(y)
    args = (grad, x, w, mean, var, save_mean, save_invstd, True, 1e-5, [True, True, True])
    measured = _live(lambda: aten.native_batch_norm_backward(*args))
    n = x.numel() * 4
    assert events(kernel_script(aten.native_batch_norm_backward.default, args), (n, 128, 128)) == measured[:5]
    assert measured[:5] == [n, 128, 128, n, -n]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("dims", [(1, 2), (2, 3), (-1,), None], ids=str)
def test_the_mean_of_a_16_bit_tensor_takes_a_float32_copy_of_it(dtype, dims):
    """Global average pooling under CPU autocast: the mean of a bfloat16 tensor is taken in float32,
    over a float32 copy of the whole input (a sum takes none)."""
    x = torch.randn(4, 32, 16, 16, dtype=dtype)
    out = x.mean() if dims is None else x.mean(dims)
    args = (x,) if dims is None else (x, list(dims))
    func = aten.mean.default if dims is None else aten.mean.dim
    measured = _live(lambda: x.mean() if dims is None else x.mean(dims))
    script = kernel_script(func, args)
    if dtype == torch.float32:
        assert script is None and measured[0] == out.numel() * 4
        return
    expected = events(script, (out.numel() * out.element_size(),))
    assert [e for e in measured if abs(e) > 8] == [e for e in expected if abs(e) > 8]  # the scalar divisor's aside
    assert 4 * x.numel() in expected
