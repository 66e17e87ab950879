"""Models for the distributed tests (tests/engine/test_distributed.py)."""
import torch
from torch import nn


def no_parameters():
    """Nothing to shard or reduce: FSDP/DDP must be refused."""
    return nn.Sequential(nn.ReLU(), nn.Flatten()), torch.zeros(1, 8)
