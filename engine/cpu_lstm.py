"""LSTMs as a CPU runs them, which meta tensors would not show.

On a CPU, ATen runs `nn.LSTM` through oneDNN: one `mkldnn_rnn_layer` per layer and direction
(meta tensors would take ATen's step-by-step cells instead, with other buffers: inside a CPU
trace `onednn_lstm` routes them the CPU's way). Each layer copies its weights (in training with
oneDNN's padded leading dimension; in inference each gate padded to the brgemm block, the one
thing here that depends on the ISA), sums the biases, takes a scratchpad holding at least the
gates of every step and, in training, a workspace kept for the backward: oneDNN's page-aligned
arrays of gates, states and their gradients (exact on 14 measured shapes). The backward copies
the weights again. Measured alike on every ISA family (torch.profiler's allocator events,
torch 2.14, 2026-11-28). A packed sequence does not go to oneDNN; ATen's CPU loop projects every
step's input at once first (`packed_lstm`).
The backward copies the weights transposed where oneDNN pads their width, and a bidirectional
layer's output gradient contiguous.
In inference the scratchpad holds the states as well (`_inference_scratchpad`, exact): it grows
with an input wider than the hidden state (291,672 bytes for a bidirectional tagger's second
layer, 256 inputs and 128 hidden units, against its gates' 163,840).
Not modelled (lower bounds): the training scratchpad beyond the gates (6-25 KiB per layer),
bfloat16 LSTMs.
"""
from __future__ import annotations

import torch

from .cpu_isa import AMX, AVX512, AVX512_BF16, onednn_family

aten = torch.ops.aten
Step = tuple


def _pad(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


_PAGE = 4096


def _good_ld(dim: int, elem: int = 4) -> int:
    """oneDNN's RNN leading dimension: a whole cache line, and one more when it is a multiple of
    256 elements (rnn_utils get_good_ld, against 4K aliasing)."""
    ld = _pad(dim, 64 // elem)
    return ld + 64 // elem if ld % 256 == 0 else ld


def _rnn_workspace(steps: int, batch: int, inputs: int, hidden: int) -> int:
    """oneDNN's LSTM training workspace (float32, one layer and direction): page-aligned arrays of
    the gates of every step, three state arrays as wide as the input or the hidden state, two as
    wide as the hidden state (each over 2 layers and steps + 1), and the hidden states of every
    step. Measured exact for batch 1-8, 1-40 steps, 16-128 inputs, 32-256 hidden units."""
    def pages(nbytes):
        return _pad(nbytes, _PAGE)

    wide = pages(2 * (steps + 1) * batch * _good_ld(max(inputs, hidden)) * 4)
    narrow = pages(2 * (steps + 1) * batch * hidden * 4)
    return (pages(steps * batch * _good_ld(4 * hidden) * 4) + 3 * wide + 2 * narrow
            + pages(steps * batch * _good_ld(hidden) * 4))


def _inference_scratchpad(steps: int, batch: int, inputs: int, hidden: int) -> int:
    """oneDNN's LSTM inference scratchpad (float32, one layer and direction): with no workspace,
    the states go there too, each array page-aligned: the layer states as wide as the input or the
    hidden state and the cell states (over 2 layers and steps + 1), the gates of one step (of
    every step for a batch of 1), and oneDNN's kernel buffers: a further batch x hidden floats and
    a page when the hidden size is a multiple of 32 below 256 (measured at 64, 96, 128; none at 100
    or 256), and 856 bytes (80 of them per thread; 1016 when the input and the hidden state are
    as wide). Measured alike on AMX, AVX-512 and AVX2 (2 threads), exact on 18 shapes: batch
    1-16, 7-40 steps, 32-512 inputs, 64-256 hidden units."""
    def pages(nbytes):
        return _pad(nbytes, _PAGE)

    layer_states = pages(2 * (steps + 1) * batch * _good_ld(max(inputs, hidden)) * 4)
    cell_states = pages(2 * (steps + 1) * batch * _good_ld(hidden) * 4)
    gates = pages((steps if batch == 1 else 1) * batch * _good_ld(4 * hidden) * 4)
    kernel = pages(batch * hidden * 4) + _PAGE if hidden % 32 == 0 and hidden < 256 else 0
    return layer_states + cell_states + gates + kernel + (1016 if inputs == hidden else 856)


def _inference_gates_width(hidden: int) -> int:
    """The inference weight copies' width: each gate padded to oneDNN's brgemm block of 32
    columns from AVX-512 on, to 16 on AVX2 (measured at 100 hidden units: 512 and 448)."""
    return 4 * _pad(hidden, 32 if onednn_family() in (AVX512, AVX512_BF16, AMX) else 16)


def _rnn_copies(x, w_ih, w_hh, train: bool) -> list[Step]:
    gates, e = w_ih.shape[0], w_ih.element_size()
    steps, batch = x.shape[0], x.numel() // (x.shape[0] * x.shape[-1])
    if train:
        ld = _good_ld(gates, e)
        # The scratchpad's gates of every step: a lower bound of it (measured 85-90% at 20 steps).
        scratch = steps * batch * ld * 4
    else:
        ld = _inference_gates_width(w_hh.shape[1])
        scratch = _inference_scratchpad(steps, batch, x.shape[-1], w_hh.shape[1])
    return [("alloc", "w_ih", w_ih.shape[1] * ld * e), ("alloc", "w_hh", w_hh.shape[1] * ld * e),
            ("alloc", "scratch", scratch), ("free", "scratch"), ("free", "w_hh"), ("free", "w_ih")]


# ---- Public API
def rnn_forward(args) -> list[Step] | None:
    """The allocations of `mkldnn_rnn_layer` around its outputs (engine/cpu_kernels.py's format)."""
    x, w_ih, w_hh, hx = args[0], args[1], args[2], args[5]
    train = args[15]
    if x.dtype != torch.float32 or x.dim() != 3:
        return None
    steps, batch = x.shape[0], x.shape[1]  # time-major (onednn_lstm transposes first)
    script: list[Step] = [("out", 0), ("out", 1), ("out", 2), ("alloc", "bias", w_ih.shape[0] * 4)]
    if train:
        script.append(("out", 3, _rnn_workspace(steps, batch, x.shape[2], hx.shape[-1])))
    return script + _rnn_copies(x, w_ih, w_hh, train) + [("free", "bias")]


def rnn_backward(args) -> list[Step] | None:
    """The allocations of `mkldnn_rnn_layer_backward` around its outputs."""
    x, w_ih, w_hh, hx = args[0], args[1], args[2], args[5]
    grad_out, grad_hy, grad_cy = args[10], args[11], args[12]
    if x.dtype != torch.float32 or x.dim() != 3:
        return None
    state = hx.numel() * 4
    # A bidirectional layer's output gradient is a slice of the next layer's: copied contiguous.
    grad_copy = grad_out.numel() * 4 if grad_out is not None and not grad_out.is_contiguous() else 0
    return ([("alloc", "grad_out", grad_copy), ("alloc", "zero_hy", state if grad_hy is None else 0),
             ("alloc", "zero_cy", state if grad_cy is None else 0),
             ("alloc", "bias", w_ih.shape[0] * 4), ("out", 0), ("out", 5), ("out", 6), ("out", 1), ("out", 2),
             ("out", 3), ("alloc", "grad_bias", w_ih.shape[0] * 4)]
            + _transposed_weights(w_ih, w_hh)
            + _rnn_copies(x, w_ih, w_hh, True)
            + [("free", "w_ih_t"), ("free", "w_hh_t"), ("free", "grad_bias"), ("out", 4), ("free", "bias"),
               ("free", "zero_hy"), ("free", "zero_cy"), ("free", "grad_out")])


def _transposed_weights(w_ih, w_hh) -> list[Step]:
    """The backward multiplies by the transposed weights, copied with oneDNN's leading dimension
    where it is not the width itself (a width not a multiple of 16, or a multiple of 256):
    measured for 64-256 inputs and 100-256 hidden units."""
    gates = w_ih.shape[0]
    steps = []
    for name, width in (("w_ih_t", w_ih.shape[1]), ("w_hh_t", w_hh.shape[1])):
        if _good_ld(width) != width:
            steps.append(("alloc", name, gates * _good_ld(width) * 4))
    return steps


def onednn_lstm(x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """aten::lstm as ATen runs it on a CPU with oneDNN (mkldnn/RNN.cpp, mkldnn_rnn): the input
    made time-major and contiguous, one `mkldnn_rnn_layer` per layer and direction, the final
    states stacked. Autograd then records oneDNN's backward, with its own buffers."""
    h0, c0 = hx
    directions = 2 if bidirectional else 1
    per_layer = 4 if has_biases else 2
    # ATen holds the contiguous input until the end (a local of mkldnn_rnn): so does this frame.
    time_major = (x.transpose(0, 1) if batch_first else x).contiguous()
    x = time_major
    hy, cy = [], []
    # One output per direction, each replaced by the next layer's (ATen's layer_output): a
    # bidirectional layer's outputs stay live until that direction of the next layer is done.
    outputs = [None] * directions
    for layer in range(num_layers):
        for direction in range(directions):
            index = layer * directions + direction
            w = params[index * per_layer:(index + 1) * per_layer]
            b_ih, b_hh = (w[2], w[3]) if has_biases else (torch.zeros_like(w[0]), torch.zeros_like(w[1]))
            out, h, c, _ = aten.mkldnn_rnn_layer(x, w[0], w[1], b_ih, b_hh, h0[index], c0[index], direction > 0,
                                                 [], 2, h0.shape[2], num_layers, has_biases, bidirectional,
                                                 batch_first, train)
            outputs[direction] = out
            hy.append(h)
            cy.append(c)
        x = outputs[0] if directions == 1 else torch.cat(outputs, -1)
        if dropout and train and layer < num_layers - 1:
            x = torch.dropout(x, dropout, True)
    return (x.transpose(0, 1) if batch_first else x), torch.stack(hy, 0), torch.stack(cy, 0)


def lstm_takes_onednn(x, hx, params, has_biases, num_layers, bidirectional) -> bool:
    """ATen's use_mkldnn for an LSTM (native/RNN.cpp), for the dtypes a meta trace has."""
    return (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
            and x.dtype == torch.float32 and x.numel() > 0
            and whole_params(params, has_biases, num_layers, bidirectional))


def whole_params(params, has_biases, num_layers, bidirectional) -> bool:
    """Every layer and direction has its weights (and biases): the flat list ATen's RNNs unpack."""
    return len(params) == num_layers * (2 if bidirectional else 1) * (4 if has_biases else 2)


def _in_cpu_trace() -> bool:
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    from .tracer import StepRecorder

    return any(isinstance(m, StepRecorder) and m.device == "cpu" for m in _get_current_dispatch_mode_stack())


def packed_lstm(data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional):
    """aten::lstm over a packed sequence as a CPU runs it (native/RNN.cpp PackedLayer,
    ReversedPackedLayer, LSTMCell): no oneDNN, but the input projection of every step is
    computed first, in one matrix product held for the whole layer (meta tensors would project
    step by step). A bidirectional layer runs the forward direction, then the reverse, then
    concatenates their outputs."""
    out, (h, c) = packed_rnn(data, batch_sizes, hx, params, has_biases, num_layers, dropout, train,
                             bidirectional, _lstm_cell)
    return out, h, c


def packed_rnn(data, batch_sizes, initial, params, has_biases, num_layers, dropout, train, bidirectional, cell):
    """ATen's CPU loop over a packed sequence for any cell: `initial` holds the first states
    (h, or h and c), `cell(projected_step, states, w_hh, b_hh)` returns the next ones, whose
    first is the step's output. Returns the output and each final state stacked."""
    sizes = batch_sizes.tolist()
    directions = 2 if bidirectional else 1
    per_layer = 4 if has_biases else 2
    layer_input, finals = data, []
    for layer in range(num_layers):
        outputs = []
        for direction in range(directions):
            index = layer * directions + direction
            w = params[index * per_layer:(index + 1) * per_layer]
            b_ih, b_hh = (w[2], w[3]) if has_biases else (None, None)
            run = _reversed_packed_layer if direction else _packed_layer
            out, states = run(layer_input, sizes, tuple(s[index] for s in initial), w[0], w[1], b_ih, b_hh, cell)
            outputs.append(out)
            finals.append(states)
        layer_input = outputs[0] if directions == 1 else torch.cat(outputs, -1)
        if dropout and train and layer < num_layers - 1:
            layer_input = torch.dropout(layer_input, dropout, True)
    return layer_input, tuple(torch.stack([f[k] for f in finals], 0) for k in range(len(initial)))


def _packed_layer(data, sizes, states, w_ih, w_hh, b_ih, b_hh, cell):
    projected = torch.nn.functional.linear(data, w_ih, b_ih)
    outputs, finished, offset, last = [], [], 0, sizes[0]
    for size in sizes:
        step = projected.narrow(0, offset, size)
        offset += size
        if size < last:  # sequences that ended: their final states are set aside
            finished.append(tuple(s.narrow(0, size, last - size) for s in states))
            states = tuple(s.narrow(0, 0, size) for s in states)
        last = size
        states = cell(step, states, w_hh, b_hh)
        outputs.append(states[0])
    finished.append(states)
    finished.reverse()
    return torch.cat(outputs, 0), tuple(torch.cat([f[k] for f in finished], 0) for k in range(len(states)))


def _reversed_packed_layer(data, sizes, initial, w_ih, w_hh, b_ih, b_hh, cell):
    """From the last step back: the states start with the shortest batch and grow (copied
    whole) as longer sequences join."""
    projected = torch.nn.functional.linear(data, w_ih, b_ih)
    outputs, offset, last = [], data.shape[0], sizes[-1]
    states = tuple(s.narrow(0, 0, last) for s in initial)
    for size in reversed(sizes):
        if size > last:
            states = tuple(torch.cat([s, s0.narrow(0, last, size - last)], 0) for s, s0 in zip(states, initial))
        offset -= size
        last = size
        states = cell(projected.narrow(0, offset, size), states, w_hh, b_hh)
        outputs.append(states[0])
    outputs.reverse()
    return torch.cat(outputs, 0), states


def _lstm_cell(projected, states, w_hh, b_hh):
    h, c = states
    gates = torch.nn.functional.linear(h, w_hh, b_hh).add_(projected)
    i, f, g, o = gates.unsafe_chunk(4, 1)
    i, f, g, o = i.sigmoid_(), f.sigmoid_(), g.tanh_(), o.sigmoid_()
    c = (f * c).add_(i * g)
    return o * c.tanh(), c


def route_meta_rnn(name: str, on_cpu, packed_on_cpu, takes_cpu=None) -> torch.library.Library:
    """Meta tensors would otherwise always take ATen's composite (CompositeImplicitAutograd) RNN
    `name` ('lstm', 'gru'): inside a CPU trace, its two overloads run the CPU's way (`on_cpu` for
    `name.input`, `packed_on_cpu` for a packed sequence, `name.data`) when the parameter list is
    whole (and `takes_cpu(x, hx, params, has_biases, num_layers, bidirectional)` agrees, where
    given); elsewhere, the composite. Keep the returned library alive: it holds the kernels."""
    overloads = getattr(aten, name)

    def on_input(x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
        args = (x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first)
        cpu = takes_cpu(x, hx, params, has_biases, num_layers, bidirectional) if takes_cpu is not None \
            else whole_params(params, has_biases, num_layers, bidirectional)
        if cpu and _in_cpu_trace():
            return on_cpu(*args)
        return overloads.input.decompose(*args)

    def on_data(data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional):
        args = (data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional)
        if whole_params(params, has_biases, num_layers, bidirectional) and _in_cpu_trace():
            return packed_on_cpu(*args)
        return overloads.data.decompose(*args)

    library = torch.library.Library("aten", "IMPL")
    library.impl(f"{name}.input", on_input, "AutogradMeta")
    library.impl(f"{name}.data", on_data, "AutogradMeta")
    return library


# oneDNN's LSTM inside a CPU trace (ATen's use_mkldnn), ATen's packed loop for a packed sequence.
# (The lambdas look the kernels up when called, so a test can wrap them on the module.)
_LIBRARY = route_meta_rnn("lstm", lambda *args: onednn_lstm(*args), lambda *args: packed_lstm(*args),
                          lstm_takes_onednn)
