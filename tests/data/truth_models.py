"""Small models whose real CPU step checks a corner of the trace (tests/engine/test_truth_cpu.py)."""
import torch
from torch import nn


class _UnusedBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(256, 10)
        self.unused = nn.Linear(4096, 4096)  # never called: gets no gradient, so no optimizer state

    def forward(self, x):
        return self.used(x)


def unused_branch():
    return _UnusedBranch(), torch.zeros(1, 256)


class _TiedLM(nn.Module):
    def __init__(self, vocab=4096, dim=256):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied: one tensor, one gradient, one optimizer state

    def forward(self, tokens):
        return self.head(torch.relu(self.mix(self.embed(tokens))))


def tied_embedding():
    return _TiedLM(), torch.zeros(1, 32, dtype=torch.long)


def lazy():
    """Lazy layers learn their input size from the first forward, as in plain torch."""
    return nn.Sequential(nn.LazyLinear(32), nn.ReLU(), nn.LazyLinear(4)), torch.zeros(1, 12)


def scalar_samples():
    """One number per sample: the example input has shape (B,)."""

    class PerSample(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1, 8)

        def forward(self, x):
            return self.fc(x.unsqueeze(-1))

    return PerSample(), torch.zeros(5)
