"""The one formatter for byte counts. Binary units (KiB, MiB, GiB) everywhere, never mixed with SI."""

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(nbytes: float, digits: int = 1) -> str:
    """`format_bytes(411041792) == '392.0 MiB'`; negative values keep their sign."""
    sign = "-" if nbytes < 0 else ""
    value = float(abs(nbytes))
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{sign}{int(value)} B"
            return f"{sign}{value:.{digits}f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_count(n: int) -> str:
    """Parameter counts the way papers print them: 138.4M, 1.8K, 3.0B."""
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


# ---- Display units: one unit per view, chosen from the data (the views' axes and labels)
BINARY_UNITS = (("KiB", 2**10), ("MiB", 2**20), ("GiB", 2**30), ("TiB", 2**40))
DECIMAL_UNITS = (("KB", 10**3), ("MB", 10**6), ("GB", 10**9), ("TB", 10**12))


def choose_unit(max_bytes: float, decimal: bool = False) -> tuple[str, int]:
    """The largest unit in which `max_bytes` is at least 1 (KiB at the least, TiB at the most):
    `choose_unit(3 * 2**30) == ('GiB', 2**30)`; `decimal` picks KB/MB/GB/TB, as vendors sell memory."""
    units = DECIMAL_UNITS if decimal else BINARY_UNITS
    chosen = units[0]
    for unit in units:
        if abs(max_bytes) >= unit[1]:
            chosen = unit
    return chosen


def format_in_unit(nbytes: float, unit: tuple[str, int], digits: int = 1) -> str:
    """`nbytes` in a unit from `choose_unit`: `format_in_unit(1.5 * 2**30, ('GiB', 2**30)) == '1.5 GiB'`."""
    name, size = unit
    return f"{nbytes / size:.{digits}f} {name}"


def format_size(nbytes: float, decimal: bool = False, digits: int = 1) -> str:
    """`format_bytes`, or the same in MB/GB when `decimal`: each number in its own best unit."""
    if not decimal:
        return format_bytes(nbytes, digits)
    if abs(nbytes) < 1000:
        return f"{int(nbytes)} B"
    return format_in_unit(nbytes, choose_unit(nbytes, decimal=True), digits)


_PARSE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}


def parse_bytes(text: str | int) -> int:
    """'24 GiB', '24GiB', '80GB', '512 MiB', '1e9', 123 -> bytes (int). The one parser for the CLI
    and the GUI. GB/MB/KB are decimal (80GB = 80e9 bytes, as vendors print it), GiB/MiB/KiB binary.
    Anything else (words after the unit, a sign, zero) is a `RequestError` naming the text.
    """
    import re

    from .errors import RequestError

    if isinstance(text, bool):
        raise RequestError(f"capacity must be a size like '24 GiB' or '80GB', got {text!r}")
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
        if match is None:
            raise RequestError(f"cannot read {text!r} as a size: write a number and a unit, e.g. '24 GiB', '80GB' "
                               "or '16000 MiB'")
        value, unit = float(match.group(1)), match.group(2).lower()
        if unit not in _PARSE_UNITS:
            raise RequestError(f"unknown unit {match.group(2)!r} in {text!r}: use B, KB, MB, GB, TB (powers of 1000) "
                               "or KiB, MiB, GiB, TiB (powers of 1024)")
    nbytes = int(round(value * _PARSE_UNITS[unit]))
    if nbytes <= 0:
        raise RequestError(f"a size must be positive, got {text!r}")
    return nbytes
