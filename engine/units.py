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
