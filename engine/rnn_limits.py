"""Where the trace of a recurrent layer is not what the target runs: named in the warnings.

On a CPU, float32 LSTMs and GRUs are traced as ATen and oneDNN run them (engine/cpu_lstm.py,
cpu_gru.py). Two paths are not modelled:
- a GPU runs nn.LSTM, nn.GRU and nn.RNN through cuDNN's RNN kernels, which take a workspace and
  keep a reserve buffer (the gates of every step) for the backward; cuDNN sizes both itself
  (cudnnGetRNNTempSpaceSizes) and no GPU recording measures them yet. The trace follows ATen's
  step-by-step cells instead;
- under CPU autocast an LSTM runs in bfloat16 through oneDNN's bf16 kernels (on CPUs where
  oneDNN runs bfloat16: AVX-512 and later), whose workspace and weight copies differ from
  float32's (measured: a 2-layer tagger -12% to -18%). Elsewhere ATen's cells run it, as traced.
An LSTM with projections (`proj_size`) skips oneDNN; ATen's cells project the whole input at once
and add the bias in place inside C++, which under the trace's dispatch mode takes the out-of-place
branch (an extra output-sized buffer, so the figure reads high): named too.
"""
from __future__ import annotations

from torch import nn

from .cpu_kernels import onednn_low_precision


def rnn_warning(model: nn.Module, device: str, amp: bool) -> str | None:
    """The warning for `model`'s recurrent layers on `device`, or None when they are modelled."""
    kinds = sorted({type(m).__name__ for m in model.modules() if isinstance(m, nn.RNNBase)})
    if not kinds:
        return None
    names = " and ".join(f"nn.{k}" for k in kinds)
    if device == "cuda":
        return (f"{names} on a GPU: cuDNN's RNN kernels are not modelled; the figure follows ATen's step-by-step "
                "cells, whose saved tensors stand in for cuDNN's workspace and the reserve of every step's gates "
                "it keeps for the backward")
    if device == "cpu" and any(isinstance(m, nn.LSTM) and m.proj_size for m in model.modules()):
        return ("nn.LSTM with proj_size on a CPU: the figure can read high; ATen's cells run it (oneDNN does not "
                "take it) and add their batched input projection's bias in place, where the trace adds it out of "
                "place (+24% measured in inference on a small tagger, within 1% in training)")
    if device == "cpu" and amp and "LSTM" in kinds and onednn_low_precision():
        return ("nn.LSTM under CPU autocast: oneDNN's bfloat16 kernels are not modelled and the figure reads low; "
                "measured -12% to -18% on a 2-layer LSTM tagger (their workspace and weight copies differ from "
                "float32's)")
    return None
