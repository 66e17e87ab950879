"""GRUs as a CPU runs them, which meta tensors would not show.

oneDNN takes only LSTMs: ATen runs `nn.GRU` itself, step by step (native/RNN.cpp FullLayer,
FullBidirectionalLayer, GRUCell). On a CPU it first projects the input of every step at once,
one matrix product held for the whole direction; meta tensors, not being CPU tensors, would
take the other branch and project step by step (a bidirectional tagger's inference read -5.5%,
its training +2.3%). A packed sequence goes through ATen's packed loop alike (`packed_gru`; a
packed classifier's inference read -8.6%). Inside a CPU trace both route the CPU's way.
Measured exact on a 2-layer bidirectional tagger, a packed 2-layer classifier (AMX,
AVX-512 and AVX2) and a 1-layer batch-first tagger (AVX-512 BF16, AVX2; its projection's bias added
in place, eager_composites.py `aten_linear`) (torch.profiler's allocator events, torch 2.14, 2026-11-28); no kernel here
depends on the instruction set.
"""
from __future__ import annotations

import torch

from .cpu_lstm import packed_rnn, route_meta_rnn
from .eager_composites import aten_linear

aten = torch.ops.aten


# ---- Public API
def cpu_gru(x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first):
    """aten::gru as ATen runs it on a CPU: per layer, the forward direction over the projected
    input, then (bidirectional) the reverse over its own projection, their outputs stacked and
    concatenated; the final states stacked."""
    x = x.transpose(0, 1) if batch_first else x
    directions = 2 if bidirectional else 1
    per_layer = 4 if has_biases else 2
    hidden = hx.unbind(0)
    finals = []
    for layer in range(num_layers):
        # ATen's layer holds every step's state and projection until it returns, and makes the
        # reverse direction's projection before it lets the forward one go.
        outputs, held, steps = [], [], None
        for direction in range(directions):
            index = layer * directions + direction
            w = params[index * per_layer:(index + 1) * per_layer]
            b_ih, b_hh = (w[2], w[3]) if has_biases else (None, None)
            steps = aten_linear(x, w[0], b_ih).unbind(0)  # the bias added in place, as ATen does
            states, h = _full_layer(steps[::-1] if direction else steps, hidden[index], w[1], b_hh)
            outputs.append(torch.stack(states[::-1] if direction else states, 0))
            held.append(states)
            finals.append(h)
        x = outputs[0] if directions == 1 else torch.cat(outputs, -1)
        del outputs, held, steps
        if dropout and train and layer < num_layers - 1:
            x = torch.dropout(x, dropout, True)
    return (x.transpose(0, 1) if batch_first else x), torch.stack(finals, 0)


def _full_layer(steps, h, w_hh, b_hh):
    states = []
    for projected in steps:
        h = _gru_cell(projected, h, w_hh, b_hh)
        states.append(h)
    return states, h


def _gru_cell(projected, h, w_hh, b_hh):
    """GRUCell with the input already projected: the hidden gates, the new gate, the state."""
    i_r, i_z, i_n = projected.unsafe_chunk(3, 1)
    h_r, h_z, h_n = torch.nn.functional.linear(h, w_hh, b_hh).unsafe_chunk(3, 1)
    reset = h_r.add_(i_r).sigmoid_()
    update = h_z.add_(i_z).sigmoid_()
    new = i_n.add(h_n.mul_(reset)).tanh_()
    return (h - new).mul_(update).add_(new)


def packed_gru(data, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional):
    """aten::gru over a packed sequence as a CPU runs it: ATen's packed loop (engine/cpu_lstm.py's
    `packed_rnn`, one input projection per direction) with GRU cells."""
    out, (h,) = packed_rnn(data, batch_sizes, (hx,), params, has_biases, num_layers, dropout, train,
                           bidirectional, lambda step, states, w_hh, b_hh: (_gru_cell(step, states[0], w_hh, b_hh),))
    return out, h


# ATen's CPU GRU inside a CPU trace (every step's input projected at once), its packed loop for a
# packed sequence; ATen's composite elsewhere.
_LIBRARY = route_meta_rnn("gru", lambda *args: cpu_gru(*args), lambda *args: packed_gru(*args))
