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
