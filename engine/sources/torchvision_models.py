"""torchvision models by name: built without weights and without memory, with natural inputs."""
from __future__ import annotations

import difflib
import functools

from ..errors import ModelNotFoundError, UnsupportedError
from .empty_init import empty_weights
from .loaded import LoadedModel

# Per family: (torchvision submodule, default input shape without the batch dimension).
_FAMILIES = {
    "classification": ("", (3, 224, 224)),
    "segmentation": ("segmentation", (3, 520, 520)),
    "video": ("video", (3, 16, 112, 112)),
}
_INPUT_OVERRIDES = {
    "inception_v3": (3, 299, 299),
    # These video transformers / S3D were designed for 224x224 crops.
    "mvit_v1_b": (3, 16, 224, 224),
    "mvit_v2_s": (3, 16, 224, 224),
    "s3d": (3, 16, 224, 224),
    "swin3d_t": (3, 16, 224, 224),
    "swin3d_s": (3, 16, 224, 224),
    "swin3d_b": (3, 16, 224, 224),
}
_REFUSED = {
    "detection": "detection models are not supported: their heads (anchor matching, non-maximum "
    "suppression) use data-dependent ops such as nonzero, whose output size depends on the "
    "values in the image, so a trace without real data cannot know how much memory they take",
    "optical_flow": "optical-flow models (RAFT) are not supported: they take two frames and "
    "iterate a data-dependent number of refinement steps",
    "quantization": "quantized models are not supported: their int8 kernels have no fake-tensor "
    "implementation; analyse the float model of the same name instead",
}


@functools.lru_cache(maxsize=1)
def catalog() -> dict[str, list[str]]:
    """Family -> sorted model names, for the GUI's searchable list and error suggestions."""
    import torchvision.models as tvm

    out: dict[str, list[str]] = {}
    for family, (sub, _) in _FAMILIES.items():
        module = getattr(tvm, sub) if sub else tvm
        out[family] = sorted(tvm.list_models(module=module))
    for family in _REFUSED:
        module = getattr(tvm, family, None)
        out[family] = sorted(tvm.list_models(module=module)) if module is not None else []
    return out


def family_of(name: str) -> str | None:
    for family, names in catalog().items():
        if name in names:
            return family
    return None


def load_torchvision(name: str) -> LoadedModel:
    import torchvision.models as tvm

    family = family_of(name)
    if family is None:
        known = [n for names in catalog().values() for n in names]
        close = difflib.get_close_matches(name, known, n=4, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelNotFoundError(
            f"unknown model {name!r}: not a torchvision model, a spec file (.yaml/.json) or "
            f"file.py:function.{hint}"
        )
    if family in _REFUSED:
        raise UnsupportedError(f"{name}: {_REFUSED[family]}")
    kwargs = {"weights": None}
    if family == "segmentation":
        kwargs["weights_backbone"] = None
    if name in ("googlenet", "inception_v3"):
        kwargs["init_weights"] = False  # weights stay on meta anyway; avoids torchvision's FutureWarning
    with empty_weights():
        module = tvm.get_model(name, **kwargs)
    shape = _INPUT_OVERRIDES.get(name, _FAMILIES[family][1])
    task = "segmentation" if family == "segmentation" else "classification"
    return LoadedModel(module=module, name=name, source="torchvision", input_shape=shape, task=task)
