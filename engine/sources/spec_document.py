"""Reading a layer spec, before anything is built: text, YAML, top-level keys and the size of the
network it expands to. Needs no torch, so a bad spec is reported in a fraction of a second, and
absurd networks are refused before they cost memory or time.

Limits (documented in resources/specs/README.md):
- a spec file is at most `MAX_SPEC_BYTES` (1 MiB; real specs are a few KiB);
- lists nest at most `MAX_DEPTH` levels (repeats and residuals inside each other);
- the expanded network has at most `MAX_LAYERS` layers (every repeat copy counted; YAML anchors
  that reuse a block count each use), and each size (input dimension, `out`, `vocab` ...) is at
  most `MAX_SIZE`.
"""
from __future__ import annotations

import codecs
import os

import yaml

from ..errors import SpecError

MAX_SPEC_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_LAYERS = 10_000
MAX_SIZE = 2**31 - 1
TOP_LEVEL_KEYS = ("name", "input", "input_dtype", "vocab", "layers", "description")
STRUCTURAL = ("repeat", "residual")


# ---- YAML with line numbers
class LineDict(dict):
    line: int = 0
    key_lines: dict


class LineList(list):
    line: int = 0
    item_lines: list


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers where every mapping, key and list item was written, and takes
    only plain values: numbers, strings, booleans, null, lists and mappings."""


def _construct_mapping(loader, node, deep=False):
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise SpecError("mapping keys must be plain names", line=key_node.start_mark.line + 1)
        if key in mapping:
            raise SpecError(f"duplicate key '{key}'", line=key_node.start_mark.line + 1, key=str(key))
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


def _construct_sequence(loader, node, deep=False):
    seq = LineList(loader.construct_object(child, deep=True) for child in node.value)
    seq.line = node.start_mark.line + 1
    seq.item_lines = [child.start_mark.line + 1 for child in node.value]
    return seq


def _refuse_tag(loader, node):
    raise SpecError(f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed in a spec: "
                    "use plain numbers, strings, lists and mappings", line=node.start_mark.line + 1)


def _construct_float(loader, node):
    try:
        return yaml.SafeLoader.construct_yaml_float(loader, node)
    except ValueError:
        raise SpecError(f"{loader.construct_scalar(node)!r} is not a number",
                        line=node.start_mark.line + 1) from None


def _construct_int(loader, node):
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:
        raise SpecError(f"{loader.construct_scalar(node)!r} is not an integer",
                        line=node.start_mark.line + 1) from None


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)
_LineLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)
for _tag in ("timestamp", "binary", "set", "omap", "pairs"):
    _LineLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)
_LineLoader.add_constructor(None, _refuse_tag)  # any other tag (!python/object, !custom ...)


# ---- Public API
def read_spec_text(path: str) -> str:
    """The spec's text: UTF-8 (a BOM is fine) or UTF-16 with a BOM; at most MAX_SPEC_BYTES."""
    try:
        size = os.stat(path).st_size
        if os.path.isdir(path):
            raise SpecError("is a folder, not a spec file", path=path)
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"the file is {size:,} bytes; a spec may have at most {MAX_SPEC_BYTES:,} "
                            "(a network of any size fits in a few KiB with 'repeat')", path=path)
        with open(path, "rb") as f:
            data = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise SpecError(f"cannot read spec: {e.strerror}", path=path) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif b"\x00" in data:
        raise SpecError("the spec contains NUL bytes: UTF-16 without a byte-order mark, or not text at all? "
                        "save it as UTF-8", path=path, line=data[:data.index(b"\x00")].count(b"\n") + 1)
    else:
        encoding = "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SpecError(f"not {encoding.replace('-sig', '').upper()} text (byte 0x{data[e.start]:02x} "
                        "cannot be decoded); save the spec as UTF-8", path=path, line=line) from None


def parse_document(text: str, path: str) -> LineDict:
    """YAML/JSON text -> the checked top-level mapping, or a SpecError naming file:line."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(f"the spec has {len(text):,} characters; at most {MAX_SPEC_BYTES:,} are read", path=path)
    _check_flow_depth(text, path)
    try:
        doc = yaml.load(text, Loader=_LineLoader)  # a SafeLoader: no python objects
    except SpecError as e:
        raise SpecError(str(e), path=path, line=e.line, key=e.key) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise SpecError(f"not valid YAML/JSON: {e.problem or e.context}", path=path,
                        line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise SpecError(f"not valid YAML/JSON: {e}", path=path) from None
    except RecursionError:
        raise SpecError(f"lists or mappings are nested too deeply (at most {MAX_DEPTH} levels)", path=path) from None
    if not isinstance(doc, dict):
        raise SpecError("a spec must be a mapping with 'input' and 'layers'", path=path, line=1)
    lines = doc.key_lines
    for key in doc:
        if key not in TOP_LEVEL_KEYS:
            raise SpecError(f"unknown top-level key '{key}' (known: {', '.join(sorted(TOP_LEVEL_KEYS))})",
                            path=path, line=lines.get(key), key=str(key))
    for key in ("input", "layers"):
        if key not in doc:
            raise SpecError(f"missing '{key}'", path=path, line=1, key=key)
    shape = doc["input"]
    if (not isinstance(shape, list) or not shape
            or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in shape)):
        raise SpecError(f"'input' must be a list of positive integers (one sample, no batch), got {short_repr(shape)}",
                        path=path, line=lines.get("input"), key="input")
    if any(d > MAX_SIZE for d in shape):
        raise SpecError(f"'input' dimension {max(shape)} is larger than the supported {MAX_SIZE}",
                        path=path, line=lines.get("input"), key="input")
    count = _LayerCounter(path).count(doc["layers"], lines.get("layers"), 1)
    if count > MAX_LAYERS:
        raise SpecError(f"the network expands to {_big_count(count)} layers; a spec may have at most "
                        f"{MAX_LAYERS:,} (check the 'repeat' counts)", path=path, line=lines.get("layers"),
                        key="layers")
    return doc


def check_spec_file(path: str) -> None:
    """Everything that can be checked without building: raises SpecError, returns nothing."""
    parse_document(read_spec_text(path), path)


def _check_flow_depth(text: str, path: str) -> None:
    """PyYAML's scanner slows down quadratically in deeply nested [ ] and { } (seconds for a few
    thousand levels) before its recursion fails, so such nesting is refused first. Brackets in
    quotes and comments are counted too: that only errs on the side of a clear message."""
    depth = deepest = 0
    line = 1
    for ch in text:
        if ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > 4 * MAX_DEPTH:
                    raise SpecError(f"lists or mappings are nested more than {4 * MAX_DEPTH} levels deep",
                                    path=path, line=line)
        elif ch in "]}":
            depth -= 1
        elif ch == "\n":
            line += 1


class _LayerCounter:
    """Counts the layers a list expands to without expanding it: each list is counted once (a
    YAML anchor reused a billion times is one list), and a repeat multiplies."""

    def __init__(self, path: str):
        self.path = path
        self.memo: dict[int, int] = {}

    def count(self, entries, line, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise SpecError(f"repeats and residuals are nested more than {MAX_DEPTH} levels deep",
                            path=self.path, line=line)
        if not isinstance(entries, list):
            return 1  # the builder says what is wrong with it, with its line
        if id(entries) in self.memo:
            return self.memo[id(entries)]
        total = 0
        lines = getattr(entries, "item_lines", [line] * len(entries))
        for entry, item_line in zip(entries, lines):
            total += self.entry(entry, item_line, depth)
        self.memo[id(entries)] = total
        return total

    def entry(self, entry, line, depth: int) -> int:
        if not isinstance(entry, dict):
            return 1
        line = getattr(entry, "line", line)
        kind = entry.get("type", None)
        if not any(k in entry for k in STRUCTURAL) and kind not in STRUCTURAL:
            return 1
        if "repeat" in entry:
            times = entry["repeat"]
            inner = self.count(entry.get("layers"), line, depth + 1)
            if isinstance(times, int) and not isinstance(times, bool) and times > 0:
                return times * inner
            return inner
        total = 1
        for key in ("residual", "layers", "shortcut"):
            if isinstance(entry.get(key), list):
                total += self.count(entry[key], line, depth + 1)
        return total


def _big_count(count: int) -> str:
    return f"{count:,}" if count < 10**15 else f"about 10^{len(str(count)) - 1}"


def short_repr(value, limit: int = 60) -> str:
    """A value as the user wrote it, cut short: a message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."
