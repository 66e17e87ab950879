"""Which kind of layer a module is: picks its colour in the diagram and whether the textbook
estimate counts its output as a feature map."""
from __future__ import annotations

from torch import nn

# The article sums the outputs of conv, pool and fully connected layers; we also count the other
# layers that write a new feature map. Activations (in-place ReLU in VGG) and dropout do not.
TEXTBOOK_KINDS = frozenset({"conv", "pool", "linear", "norm", "attention", "embedding"})

_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Hardsigmoid,
    nn.LeakyReLU, nn.ELU, nn.Mish, nn.PReLU, nn.Softmax, nn.Softplus, nn.SELU, nn.GLU,
)
_POOLS = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
)
_NORMS = (
    nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm, nn.GroupNorm,
    nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d, nn.LocalResponseNorm,
)


def layer_kind(module: nn.Module) -> str:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return "conv"
    if isinstance(module, _POOLS):
        return "pool"
    if isinstance(module, _NORMS):
        return "norm"
    if isinstance(module, _ACTIVATIONS):
        return "activation"
    if isinstance(module, (nn.Linear, nn.Bilinear)):
        return "linear"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding"
    name = type(module).__name__.lower()
    if isinstance(module, nn.MultiheadAttention) or "attention" in name:
        return "attention"
    if "norm" in name:
        return "norm"
    if "conv" in name:
        return "conv"
    return "other"
