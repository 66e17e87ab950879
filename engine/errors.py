"""Errors the engine raises on purpose. Each carries a message a user can act on.

The CLI prints `str(error)` and exits non-zero; the GUI shows it and keeps the last analysis.
Anything else escaping the engine is a bug.
"""
from __future__ import annotations


class MemLensError(Exception):
    """Base class: a problem with the user's request or model, explained in plain words.

    The message is always one line: only the first line of a multi-line text (a C++ dump quoted
    from torch) is kept. Errors pickle with their attributes (analyses may run in a child process).
    """

    def __init__(self, message: str = ""):
        lines = str(message).strip().splitlines()
        super().__init__(lines[0].strip() if lines else type(self).__name__)

    def __reduce__(self):
        return _restore, (type(self), str(self), dict(self.__dict__))


def _restore(cls, message: str, attributes: dict) -> MemLensError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(attributes)
    return error


class RequestError(MemLensError):
    """A configuration value is out of range or malformed (batch <= 0, bad input shape ...)."""


class ModelNotFoundError(MemLensError):
    """An unknown model name; the message suggests close names."""


class SpecError(MemLensError):
    """A custom layer spec is malformed. Names the file, the line and the offending key."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None, key: str | None = None):
        self.path, self.line, self.key = path, line, key
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")


class ShapeError(MemLensError):
    """A model builds but its layers do not fit together (the layer and both shapes are named)."""


class UnsupportedError(MemLensError):
    """The model uses something the meta-tensor trace cannot follow (data-dependent ops, ...)."""


class CancelledError(MemLensError):
    """The caller asked to stop."""


class AnalysisTimeout(MemLensError):
    """The analysis ran longer than the caller allowed (the CLI's --timeout)."""
