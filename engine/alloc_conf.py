"""`PYTORCH_CUDA_ALLOC_CONF` as torch's caching allocator reads it (c10/core/AllocatorConfig.cpp):
the options that change where device memory goes, parsed into a frozen `AllocConf`, with a
one-line `RequestError` for anything torch itself would refuse.

Options torch accepts but the simulator does not model (another backend, a garbage-collection
threshold that acts only under a memory fraction) are kept as `warnings`, never dropped.
"""
from __future__ import annotations

from dataclasses import dataclass

from .errors import RequestError

MIB = 2**20
K_LARGE_BUFFER = 20 * MIB  # kLargeBuffer: the smallest allowed max_split_size_mb / max_non_split_rounding_mb
ROUNDUP_INTERVALS = 16  # kRoundUpPowerOfTwoIntervals: 1 MiB, 2 MiB ... 32 GiB (and above)
NO_LIMIT = 2**64 - 1  # SIZE_MAX: max_split_size when unset
ENV_VAR = "PYTORCH_CUDA_ALLOC_CONF"
_BOOLEAN = ("True", "False")
_HOST_ONLY = ("pinned_use_cuda_host_register", "pinned_use_hip_host_register", "pinned_num_register_threads",
              "pinned_use_background_threads")


@dataclass(frozen=True)
class AllocConf:
    """What the native caching allocator is told; defaults are torch's."""

    expandable_segments: bool = False
    max_split_size: int = NO_LIMIT  # bytes; blocks this large are never split
    max_non_split_rounding: int = K_LARGE_BUFFER  # an oversize request may take a block this much larger
    roundup_power2_divisions: tuple[int, ...] = (0,) * ROUNDUP_INTERVALS  # per power-of-two interval from 1 MiB
    text: str = ""
    warnings: tuple[str, ...] = ()

    def divisions(self, size: int) -> int:
        """roundup_power2_divisions for a request of `size` bytes (AllocatorConfig::roundup_power2_divisions)."""
        index = size.bit_length() - 1 - 20
        return self.roundup_power2_divisions[min(max(index, 0), ROUNDUP_INTERVALS - 1)]

    def describe(self) -> str:
        return self.text or "torch's defaults"


DEFAULT = AllocConf()


# ---- Public API
def parse_alloc_conf(text: str | None) -> AllocConf:
    """'expandable_segments:True,max_split_size_mb:128,roundup_power2_divisions:4' -> AllocConf."""
    if text is None or not text.strip():
        return DEFAULT
    tokens = _lex(text)
    values: dict = {}
    warnings: list[str] = []
    i = 0
    while i < len(tokens):
        name = tokens[i]
        if name in ",:[]":
            raise _error(text, f"expected an option name, found {name!r}")
        i = _expect(tokens, i + 1, ":", text, name)
        if name in ("max_split_size_mb", "max_non_split_rounding_mb"):
            mib, i = _integer(tokens, i + 1, text, name)
            if mib < K_LARGE_BUFFER // MIB:
                raise _error(text, f"{name} must be >= {K_LARGE_BUFFER // MIB} (MiB), got {mib}")
            values["max_split_size" if name == "max_split_size_mb" else "max_non_split_rounding"] = mib * MIB
        elif name == "roundup_power2_divisions":
            values["roundup_power2_divisions"], i = _divisions(tokens, i + 1, text)
        elif name == "expandable_segments":
            values["expandable_segments"], i = _boolean(tokens, i + 1, text, name)
        elif name == "garbage_collection_threshold":
            value, i = _number(tokens, i + 1, text, name)
            if not 0.0 < value < 1.0:
                raise _error(text, f"garbage_collection_threshold must be between 0 and 1 (exclusive), got {value}")
            warnings.append(f"{ENV_VAR}: garbage_collection_threshold:{value} is not modelled (it acts only under "
                            "torch.cuda.set_per_process_memory_fraction); the reserve is simulated without it")
        elif name == "backend":
            i += 1
            backend = tokens[i] if i < len(tokens) else ""
            if backend not in ("native", "cudaMallocAsync"):
                raise _error(text, f"unknown allocator backend {backend!r}: options are native and cudaMallocAsync")
            if backend == "cudaMallocAsync":
                warnings.append(f"{ENV_VAR}: backend:cudaMallocAsync is not modelled (CUDA's own pool allocator); "
                                "the reserve is simulated for torch's native caching allocator")
        elif name in ("release_lock_on_cudamalloc", "release_lock_on_hipmalloc"):
            _, i = _boolean(tokens, i + 1, text, name)  # locking only: no effect on memory
        elif name in _HOST_ONLY:
            i += 1
            if i >= len(tokens) or tokens[i] in ",:[]":
                raise _error(text, f"expected a value for {name}")
            warnings.append(f"{ENV_VAR}: {name} concerns pinned host memory, not the device: not modelled")
        else:
            raise _error(text, f"unknown option {name!r} (known: backend, expandable_segments, max_split_size_mb, "
                               "max_non_split_rounding_mb, roundup_power2_divisions, garbage_collection_threshold, "
                               "release_lock_on_cudamalloc, pinned_*)")
        i += 1
        if i < len(tokens):
            i = _expect(tokens, i, ",", text, name) + 1
    return AllocConf(text=text.strip(), warnings=tuple(warnings), **values)


# ---- Private API
def _lex(text: str) -> list[str]:
    """AllocatorConfig::lexArgs: ',', ':', '[' and ']' are tokens of their own; spaces vanish."""
    tokens, word = [], ""
    for ch in text:
        if ch in ",:[]":
            if word:
                tokens.append(word)
                word = ""
            tokens.append(ch)
        elif ch != " ":
            word += ch
    if word:
        tokens.append(word)
    return tokens


def _error(text: str, why: str) -> RequestError:
    return RequestError(f"{ENV_VAR} {text.strip()!r}: {why}")


def _expect(tokens: list[str], i: int, token: str, text: str, after: str) -> int:
    if i >= len(tokens) or tokens[i] != token:
        found = repr(tokens[i]) if i < len(tokens) else "the end"
        raise _error(text, f"expected {token!r} after {after!r}, found {found}")
    return i


def _value(tokens: list[str], i: int, text: str, name: str) -> str:
    if i >= len(tokens) or tokens[i] in ",:[]":
        raise _error(text, f"expected a value for {name}")
    return tokens[i]


def _integer(tokens, i, text, name) -> tuple[int, int]:
    word = _value(tokens, i, text, name)
    if not word.isdigit():
        raise _error(text, f"{name} must be a whole number, got {word!r}")
    return int(word), i


def _number(tokens, i, text, name) -> tuple[float, int]:
    word = _value(tokens, i, text, name)
    try:
        return float(word), i
    except ValueError:
        raise _error(text, f"{name} must be a number, got {word!r}") from None


def _boolean(tokens, i, text, name) -> tuple[bool, int]:
    word = _value(tokens, i, text, name)
    if word not in _BOOLEAN:
        raise _error(text, f"{name} takes True or False, got {word!r}")
    return word == "True", i


def _power_of_two(value: int, zero_ok: bool) -> bool:
    return (zero_ok and value == 0) or (value > 0 and value & (value - 1) == 0)


def _divisions(tokens, i, text) -> tuple[tuple[int, ...], int]:
    """Either one power of two for every size, or '[256:1,512:2,>:8]': per interval (MiB) from there on."""
    name = "roundup_power2_divisions"
    if i < len(tokens) and tokens[i] == "[":
        table = [0] * ROUNDUP_INTERVALS
        first, last_index = True, 0
        i += 1
        while i < len(tokens) and tokens[i] != "]":
            key = tokens[i]
            i = _expect(tokens, i + 1, ":", text, key)
            divisions, i = _integer(tokens, i + 1, text, name)
            if not _power_of_two(divisions, zero_ok=True):
                raise _error(text, f"{name}: divisions must be a power of 2 (or 0), got {divisions}")
            if key == ">":
                table[last_index:] = [divisions] * (ROUNDUP_INTERVALS - last_index)
            else:
                if not key.isdigit() or not _power_of_two(int(key), zero_ok=False):
                    raise _error(text, f"{name}: interval sizes (MiB) must be powers of 2, got {key!r}")
                index = min(int(key).bit_length() - 1, ROUNDUP_INTERVALS - 1)
                if first:
                    table[:index] = [divisions] * index
                    first = False
                table[index] = divisions
                last_index = index
            i += 1
            if i < len(tokens) and tokens[i] == ",":
                i += 1
        if i >= len(tokens):
            raise _error(text, f"{name}: missing ']'")
        return tuple(table), i
    divisions, i = _integer(tokens, i, text, name)
    if not _power_of_two(divisions, zero_ok=False):
        raise _error(text, f"{name} must be a power of 2, got {divisions}")
    return (divisions,) * ROUNDUP_INTERVALS, i
