"""MemLens engine: headless (torch, numpy, stdlib only; never Qt)."""
from .analysis import Analysis, EventLog, Layer, Lifetime, MemoryEvent, NotModelled, Peak, Textbook, Timeline
from .analyze import analyze
from .categories import CATEGORIES, LAYER_KINDS, PHASES
from .errors import MemLensError
from .request import AnalysisRequest

__all__ = [
    "Analysis", "AnalysisRequest", "CATEGORIES", "EventLog", "LAYER_KINDS", "Layer", "Lifetime",
    "MemLensError", "MemoryEvent", "NotModelled", "PHASES", "Peak", "Textbook", "Timeline", "analyze",
]
