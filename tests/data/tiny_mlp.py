"""A network small enough to work out its memory by hand (see tests/engine/test_exact_bytes.py)."""
import torch
from torch import nn
def build():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)), torch.zeros(1, 8)


def data_dependent():
    """A model whose forward needs tensor values (nonzero): must be refused, naming op and module."""

    class Gate(nn.Module):
        def forward(self, x):
            return x[torch.nonzero(x > 0, as_tuple=True)]

    return nn.Sequential(nn.Linear(8, 8), Gate()), torch.zeros(1, 8)


def broken():
    raise ValueError("this model cannot be built")


def not_a_module():
    return 42
