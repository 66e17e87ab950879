"""An example for `--model resources/examples/mlp.py:build`: any function returning an nn.Module,
optionally with an example input whose shape (after the batch dimension) MemLens will use."""
import torch
from torch import nn


def build():
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 10),
    )
    return model, torch.zeros(1, 1, 28, 28)
