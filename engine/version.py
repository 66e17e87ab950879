"""MemLens's version, in one place: pyproject reads it, the About box and the analysis cache key show it."""
__version__ = "0.1.0"
