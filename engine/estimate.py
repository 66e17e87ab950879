"""The article's arithmetic (the textbook estimate), shown beside the traced figure.

parameters x bytes; feature maps H x W x C x batch x bytes per layer; training = parameters +
gradients + optimizer copies (SGD 0, momentum 1, Adam 2) + every feature map; inference =
parameters + the two largest consecutive feature maps.
"""
from __future__ import annotations

from .analysis import Layer, Textbook

OPTIMIZER_COPIES = {"none": 0, "sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}


def textbook(layers: tuple[Layer, ...], parameter_bytes: int, trainable_bytes: int, mode: str, optimizer: str) -> Textbook:
    maps = [layer.textbook_bytes for layer in layers if layer.textbook_bytes > 0]
    if mode == "train":
        grads = trainable_bytes
        opt = OPTIMIZER_COPIES[optimizer] * trainable_bytes
        fmaps = sum(maps)
        peak = parameter_bytes + grads + opt + fmaps
        formula = (f"parameters + gradients + {OPTIMIZER_COPIES[optimizer]} optimizer "
                   f"cop{'y' if OPTIMIZER_COPIES[optimizer] == 1 else 'ies'} + all feature maps")
    else:
        grads = opt = 0
        pairs = [a + b for a, b in zip(maps, maps[1:])] or maps or [0]
        fmaps = max(pairs)
        peak = parameter_bytes + fmaps
        formula = "parameters + the two largest consecutive feature maps"
    return Textbook(
        parameters_bytes=parameter_bytes, gradients_bytes=grads, optimizer_bytes=opt,
        feature_map_bytes=fmaps, peak_bytes=peak, formula=formula,
    )
