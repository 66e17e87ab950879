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
