"""MemLens engine: headless (torch, numpy, stdlib only; never Qt).

Names are loaded on first use (PEP 562) so that light modules such as `engine.categories` and
`engine.units` can be imported by the GUI at start-up without importing torch.
"""
import importlib

_EXPORTS = {
    "analyze": "pipeline",
    "AnalysisRequest": "request",
    "Analysis": "analysis", "EventLog": "analysis", "Layer": "analysis", "Lifetime": "analysis",
    "MemoryEvent": "analysis", "NotModelled": "analysis", "Peak": "analysis", "Textbook": "analysis",
    "Timeline": "analysis",
    "CATEGORIES": "categories", "LAYER_KINDS": "categories", "PHASES": "categories",
    "MemLensError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
