"""Small models whose checkpointed, frozen or accumulated steps can be worked out by hand
(tests/engine/test_levers.py)."""
import torch
from torch import nn


class Block(nn.Module):
    """fc1 -> relu -> fc2: relu saves its output, which fc2 also saves (one 64-wide tensor)."""

    def __init__(self, width=64):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class BlockNet(nn.Module):
    def __init__(self, width=64):
        super().__init__()
        self.stem = nn.Linear(32, width)
        self.blocks = nn.Sequential(Block(width), Block(width))
        self.flatten = nn.Flatten()
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.flatten(self.blocks(self.stem(x))))


def block_net():
    return BlockNet(), torch.zeros(1, 32)


class _SelfCheckpointed(nn.Module):
    """A model that checkpoints its own block (as Hugging Face models do with gradient checkpointing)."""

    def __init__(self):
        super().__init__()
        self.net = BlockNet()

    def forward(self, x):
        from torch.utils.checkpoint import checkpoint

        h = self.net.stem(x)
        h = checkpoint(self.net.blocks[0], h, use_reentrant=False)
        return self.net.head(self.net.blocks[1](h))


def self_checkpointed():
    return _SelfCheckpointed(), torch.zeros(1, 32)
