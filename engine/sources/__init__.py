"""Where a model comes from: a torchvision name, a YAML/JSON layer spec, or a python callable."""
from __future__ import annotations

from ..choices import source_kind
from .loaded import LoadedModel
from .torchvision_models import catalog, load_torchvision


def load_model(model: str) -> LoadedModel:
    kind = source_kind(model)
    if kind == "python":
        from .python_file import load_python

        return load_python(model)
    if kind == "spec":
        from .spec import load_spec

        return load_spec(model)
    return load_torchvision(model.strip())


__all__ = ["LoadedModel", "catalog", "load_model", "source_kind"]
