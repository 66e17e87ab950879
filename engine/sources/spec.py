"""Custom networks from a YAML or JSON layer spec (read with a safe YAML loader; JSON is YAML).

Schema (documented for users in resources/specs/README.md):

    name: my-net                  # optional, defaults to the file name
    input: [3, 224, 224]          # one sample's shape, without the batch dimension
    input_dtype: long             # optional: 'float' (default) or 'long' (token ids)
    layers:                       # applied in order
      - conv2d: {out: 64, kernel: 3, padding: 1}
      - relu                      # a bare name takes the defaults
      - {type: maxpool, kernel: 2}
      - repeat: 2                 # N copies of a block
        layers: [...]
      - residual: [...]           # x + f(x); add `shortcut: [...]` when f changes the shape
      - flatten
      - linear: {out: 10}

Input sizes (channels, features, model width) are inferred from the previous layer's output.
Every error names the file, the line and the offending key.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..errors import CancelledError, ShapeError, SpecError
from .loaded import LoadedModel
from .spec_document import MAX_SIZE, STRUCTURAL, parse_document, read_spec_text, short_repr


# ---- Modules the spec can build that torch.nn lacks
class Residual(nn.Module):
    """x + body(x), with an optional shortcut applied to x when the body changes the shape."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.body(x) + identity


class SelfAttention(nn.Module):
    """Multi-head self-attention over (batch, sequence, features); `causal`: each position sees
    only itself and earlier ones (a decoder)."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0, causal: bool = False):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.causal = causal

    def forward(self, x):
        mask = causal_mask(x) if self.causal else None
        return self.attn(x, x, x, need_weights=False, attn_mask=mask, is_causal=self.causal)[0]


class CausalTransformerLayer(nn.TransformerEncoderLayer):
    """A decoder block (GPT): the encoder layer with a causal mask, made as PyTorch code makes it
    (`nn.Transformer.generate_square_subsequent_mask`); MultiheadAttention then hands SDPA its
    `is_causal` hint. The mask (sequence² floats) is live while the block runs, as in real code."""

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        return super().forward(src, src_mask=causal_mask(src), is_causal=True)


class TokenEmbedding(nn.Embedding):
    """Token ids -> vectors, plus a learned position table (GPT-2/3's `wpe`) when `positions` is
    given: the two added, one parameter each (`weight`, `position_weight`)."""

    def __init__(self, vocab: int, dim: int, positions: int | None = None):
        super().__init__(vocab, dim)
        self.position_weight = nn.Parameter(torch.empty(positions, dim)) if positions else None

    def forward(self, ids):
        x = super().forward(ids)
        if self.position_weight is None:
            return x
        seq = ids.shape[-1]
        if seq > self.position_weight.shape[0]:
            raise ValueError(f"a sequence of {seq} tokens is longer than the {self.position_weight.shape[0]} "
                             "positions the embedding has")
        return x + self.position_weight[:seq]


def causal_mask(x) -> torch.Tensor:
    """The (sequence x sequence) additive mask hiding later positions, on `x`'s device and dtype."""
    return nn.Transformer.generate_square_subsequent_mask(x.shape[-2], device=x.device, dtype=x.dtype)


# ---- Layer types: builder(shape, args) -> module, with their arguments and defaults
@dataclass(frozen=True)
class _Kind:
    build: Callable[[tuple[int, ...], dict], nn.Module]
    required: tuple[str, ...] = ()
    optional: dict[str, Any] | None = None
    needs: str = ""  # 'image' (C,H,W), 'seq' (S,D), 'tokens' (integer ids) or '' (any)


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


def _conv2d(shape, a):
    return nn.Conv2d(shape[0], a["out"], _pair(a["kernel"]), stride=_pair(a["stride"]),
                     padding=_pair(a["padding"]), dilation=_pair(a["dilation"]), groups=a["groups"], bias=a["bias"])


def _dim(dim: int, shape) -> int:
    """A dimension of the batched input (batch first); negative ones count from the end."""
    rank = len(shape) + 1
    if not -rank <= dim < rank:
        raise ValueError(f"dim {dim} is out of range for an input of {rank} dimensions (batch first): "
                         f"use {-rank}..{rank - 1}")
    return dim


def _batchnorm(shape, a):
    return nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])


_KINDS: dict[str, _Kind] = {
    "conv2d": _Kind(_conv2d, ("out", "kernel"), {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}, "image"),
    "linear": _Kind(lambda s, a: nn.Linear(s[-1], a["out"], bias=a["bias"]), ("out",), {"bias": True, "tied": False}),
    "maxpool": _Kind(lambda s, a: nn.MaxPool2d(_pair(a["kernel"]), _pair(a["stride"] or a["kernel"]), _pair(a["padding"])),
                     ("kernel",), {"stride": None, "padding": 0}, "image"),
    "avgpool": _Kind(lambda s, a: nn.AvgPool2d(_pair(a["kernel"]), _pair(a["stride"] or a["kernel"]), _pair(a["padding"])),
                     ("kernel",), {"stride": None, "padding": 0}, "image"),
    "adaptiveavgpool": _Kind(lambda s, a: nn.AdaptiveAvgPool2d(_pair(a["size"])), (), {"size": 1}, "image"),
    "adaptivemaxpool": _Kind(lambda s, a: nn.AdaptiveMaxPool2d(_pair(a["size"])), (), {"size": 1}, "image"),
    "batchnorm": _Kind(_batchnorm, ()),
    "layernorm": _Kind(lambda s, a: nn.LayerNorm(s[-1], eps=a["eps"]), (), {"eps": 1e-5}),
    "groupnorm": _Kind(lambda s, a: nn.GroupNorm(a["groups"], s[0]), ("groups",), None, "image"),
    "relu": _Kind(lambda s, a: nn.ReLU(inplace=a["inplace"]), (), {"inplace": False}),
    "relu6": _Kind(lambda s, a: nn.ReLU6(inplace=a["inplace"]), (), {"inplace": False}),
    "leakyrelu": _Kind(lambda s, a: nn.LeakyReLU(a["slope"], inplace=a["inplace"]), (), {"slope": 0.01, "inplace": False}),
    "gelu": _Kind(lambda s, a: nn.GELU()),
    "silu": _Kind(lambda s, a: nn.SiLU()),
    "tanh": _Kind(lambda s, a: nn.Tanh()),
    "sigmoid": _Kind(lambda s, a: nn.Sigmoid()),
    "hardswish": _Kind(lambda s, a: nn.Hardswish()),
    "softmax": _Kind(lambda s, a: nn.Softmax(dim=_dim(a["dim"], s)), (), {"dim": -1}),
    "dropout": _Kind(lambda s, a: nn.Dropout(a["p"]), (), {"p": 0.5}),
    "flatten": _Kind(lambda s, a: nn.Flatten()),
    "embedding": _Kind(lambda s, a: TokenEmbedding(a["vocab"], a["dim"], a["positions"]), ("vocab", "dim"),
                       {"positions": None}, "tokens"),
    "attention": _Kind(lambda s, a: SelfAttention(s[-1], a["heads"], a["dropout"], a["causal"]), ("heads",),
                       {"dropout": 0.0, "causal": False}, "seq"),
    "transformer": _Kind(
        lambda s, a: (CausalTransformerLayer if a["causal"] else nn.TransformerEncoderLayer)(
            s[-1], a["heads"], a["mlp"] or 4 * s[-1], a["dropout"], activation=a["activation"],
            batch_first=True, norm_first=a["norm_first"]),
        ("heads",), {"mlp": None, "dropout": 0.0, "activation": "gelu", "norm_first": True, "causal": False}, "seq"),
}
_ALIASES = {"conv": "conv2d", "fc": "linear", "dense": "linear", "maxpool2d": "maxpool", "avgpool2d": "avgpool",
            "batchnorm2d": "batchnorm", "bn": "batchnorm", "ln": "layernorm", "transformer_block": "transformer",
            "multihead_attention": "attention", "adaptive_avgpool": "adaptiveavgpool"}
_STRUCTURAL = STRUCTURAL
# One sample's output of any layer: 2^36 elements (256 GiB in float32) is far beyond real networks
# and keeps every byte count of a batch well inside 64 bits.
MAX_SAMPLE_ELEMENTS = 2**36
_INT_ARGS = {"out", "groups", "heads", "vocab", "dim", "mlp", "positions"}
# Sizes of a window: an integer or a list of integers (one per spatial dimension).
_WINDOW_ARGS = {"kernel": 1, "stride": 1, "dilation": 1, "size": 1, "padding": 0}  # the smallest allowed
_FLOAT_ARGS = {"eps", "slope"}
_BOOL_ARGS = {"bias", "inplace", "norm_first", "causal", "tied"}


class _Builder:
    def __init__(self, path: str, cancelled: Callable[[], bool] | None = None):
        self.path = path
        self.cancelled = cancelled
        self.counts: dict[str, int] = {}
        self.token_input = False
        self.embedding: TokenEmbedding | None = None  # the first token embedding: what a tied head shares

    def err(self, message: str, line: int | None, key: str | None = None) -> SpecError:
        return SpecError(message, path=self.path, line=line, key=key)

    # ---- entries
    def build_layers(self, entries, shape: tuple[int, ...], where: int) -> tuple[nn.Sequential, tuple[int, ...]]:
        if not isinstance(entries, list) or not entries:
            raise self.err("'layers' must be a non-empty list of layers", where, "layers")
        seq = nn.Sequential()
        lines = getattr(entries, "item_lines", [where] * len(entries))
        # Names are unique within one list: an explicit name may not repeat, and automatic names
        # skip the explicit ones (a repeated name would silently replace a layer).
        explicit = {e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)}
        taken: dict[str, int] = {}
        for entry, line in zip(entries, lines):
            module, name, shape = self.build_entry(entry, shape, line, explicit)
            if name in taken:
                raise self.err(f"layer name '{name}' is used twice, at lines {taken[name]} and {line}: "
                               "each layer of a list needs its own name", line, "name")
            taken[name] = line
            seq.add_module(name, module)
        return seq, shape

    def build_entry(self, entry, shape, line, explicit=frozenset()):
        if self.cancelled is not None and self.cancelled():
            raise CancelledError("analysis cancelled")
        kind, args, arg_lines, name = self.parse_entry(entry, line)
        if kind == "repeat":
            return self.build_repeat(entry, shape, line, name or self.auto_name("repeat", explicit))
        if kind == "residual":
            return self.build_residual(entry, args, shape, line, name or self.auto_name("residual", explicit))
        spec = _KINDS[kind]
        values = self.check_args(kind, spec, args, arg_lines, line)
        name = name or self.auto_name(kind, explicit)
        self.check_input(kind, spec.needs, shape, line, name)
        with torch.device("meta"):
            try:
                module = spec.build(shape, values)
            except (ValueError, TypeError, AssertionError, RuntimeError, OverflowError) as e:
                raise self.err(f"layer '{name}' ({kind}): {_first_line(e)}", line, kind) from None
        if kind == "embedding" and self.embedding is None:
            self.embedding = module
        if values.get("tied"):
            self.tie(module, name, line)
        return module, name, self.infer(module, shape, line, name, kind)

    def tie(self, head: nn.Linear, name: str, line) -> None:
        """The output head shares the token embedding's weight (vocab x width), as GPT-2/3 do."""
        embedding = self.embedding
        if embedding is None:
            raise self.err(f"layer '{name}' (linear): 'tied' shares the token embedding's weight, but no embedding "
                           "comes before it", line, "tied")
        if tuple(head.weight.shape) != tuple(embedding.weight.shape):
            raise self.err(f"layer '{name}' (linear): 'tied' needs out = the embedding's vocab "
                           f"({embedding.num_embeddings}) and an input of its width ({embedding.embedding_dim}); "
                           f"this layer maps {head.in_features} -> {head.out_features}", line, "tied")
        head.weight = embedding.weight

    def parse_entry(self, entry, line):
        """-> (kind, args, arg lines, explicit name) for the three ways to write a layer."""
        if isinstance(entry, str):
            kind = self.kind_name(entry, line, entry)
            if kind in _STRUCTURAL:
                raise self.err(f"'{entry}' needs its layers: write "
                               + ("'- repeat: 2' with 'layers: [...]' under it" if kind == "repeat"
                                  else "'- residual: [...]'"), line, kind)
            return kind, {}, {}, None
        if not isinstance(entry, dict) or not entry:
            raise self.err(f"a layer must be a name or a mapping, got {entry!r}", line)
        line = getattr(entry, "line", line)
        key_lines = getattr(entry, "key_lines", {})
        args = dict(entry)
        name = args.pop("name", None)
        if name is not None and (not isinstance(name, str) or not name.isidentifier()):
            raise self.err(f"layer name must be an identifier, got {name!r}", key_lines.get("name", line), "name")
        if "type" in args:
            kind = self.kind_name(args.pop("type"), key_lines.get("type", line), "type")
            return kind, args, key_lines, name
        for structural in _STRUCTURAL:
            if structural in args:
                return structural, args, key_lines, name
        if len(args) != 1:
            keys = ", ".join(map(str, args))
            raise self.err(f"cannot tell the layer type from keys {keys}: write {{type: ..., ...}} or "
                           "{conv2d: {...}}", line, next(iter(args), None))
        (key, value), = args.items()
        kind = self.kind_name(key, key_lines.get(key, line), str(key))
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.err(f"the arguments of '{key}' must be a mapping, got {value!r}", key_lines.get(key, line), str(key))
        return kind, dict(value), getattr(value, "key_lines", {}) or {k: key_lines.get(key, line) for k in value}, name

    def kind_name(self, raw, line, key):
        kind = _ALIASES.get(str(raw).lower(), str(raw).lower())
        if kind not in _KINDS and kind not in _STRUCTURAL:
            import difflib

            close = difflib.get_close_matches(kind, [*_KINDS, *_STRUCTURAL], n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise self.err(f"unknown layer type '{raw}'{hint}; known: {', '.join(sorted([*_KINDS, *_STRUCTURAL]))}",
                           line, key)
        return kind

    def check_args(self, kind, spec: _Kind, args, arg_lines, line):
        optional = spec.optional or {}
        values = dict(optional)
        for key, value in args.items():
            key_line = arg_lines.get(key, line)
            if key not in spec.required and key not in optional:
                allowed = ", ".join([*spec.required, *optional]) or "none"
                raise self.err(f"{kind} has no argument '{key}' (arguments: {allowed})", key_line, str(key))
            if kind == "softmax" and key == "dim":  # any dimension torch accepts, negative ones too
                if isinstance(value, bool) or not isinstance(value, int):
                    raise self.err(f"softmax: 'dim' must be an integer, got {short_repr(value)}", key_line, key)
            elif key in _INT_ARGS and value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise self.err(f"{kind}: '{key}' must be a positive integer, got {short_repr(value)}", key_line, str(key))
            elif key in _INT_ARGS and value is not None and value > MAX_SIZE:
                raise self.err(f"{kind}: '{key}' is {value}, larger than the supported {MAX_SIZE}", key_line, str(key))
            if key in _WINDOW_ARGS and value is not None and not _is_window(value, _WINDOW_ARGS[key]):
                least = "positive" if _WINDOW_ARGS[key] else "non-negative"
                raise self.err(f"{kind}: '{key}' must be a {least} integer or a list of them, got {short_repr(value)}",
                               key_line, str(key))
            if key in _FLOAT_ARGS and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise self.err(f"{kind}: '{key}' must be a number, got {short_repr(value)}", key_line, str(key))
            if key in _BOOL_ARGS and not isinstance(value, bool):
                raise self.err(f"{kind}: '{key}' must be true or false, got {short_repr(value)}", key_line, str(key))
            if key == "activation" and value not in ("relu", "gelu"):
                raise self.err(f"{kind}: 'activation' must be relu or gelu, got {short_repr(value)}", key_line, key)
            if key == "p" and (not isinstance(value, (int, float)) or not 0 <= value < 1):
                raise self.err(f"{kind}: 'p' must be a probability in [0, 1), got {short_repr(value)}", key_line, key)
            values[key] = value
        for key in spec.required:
            if key not in args:
                raise self.err(f"{kind} needs '{key}'", line, key)
        return values

    def check_input(self, kind, needs, shape, line, name):
        if needs == "image" and len(shape) != 3:
            raise ShapeError(f"{self.path}:{line}: layer '{name}' ({kind}) needs an input of shape "
                             f"channels x height x width, but receives {_fmt(shape)}")
        if needs == "seq" and len(shape) != 2:
            raise ShapeError(f"{self.path}:{line}: layer '{name}' ({kind}) needs an input of shape "
                             f"sequence x features, but receives {_fmt(shape)}")
        if needs == "tokens" and not self.token_input:
            raise ShapeError(f"{self.path}:{line}: layer '{name}' (embedding) needs integer token ids: set "
                             "'input_dtype: long' and put it first")

    def infer(self, module, shape, line, name, kind):
        """Run the layer on a meta tensor to learn its output shape (and catch misfits)."""
        dtype = torch.long if self.token_input else torch.float32
        module.eval()
        try:
            x = torch.zeros((2, *shape), dtype=dtype, device="meta")
            with torch.no_grad():
                y = module(x)
        except Exception as e:  # torch's own words name the mismatch
            raise ShapeError(f"{self.path}:{line}: layer '{name}' ({kind}) does not fit its input "
                             f"{_fmt(shape)}: {_first_line(e)}") from None
        finally:
            module.train()
        self.token_input = self.token_input and not y.is_floating_point()
        out = tuple(y.shape[1:])
        if any(d > MAX_SIZE for d in out) or math.prod(out) > MAX_SAMPLE_ELEMENTS:
            raise ShapeError(f"{self.path}:{line}: layer '{name}' ({kind}) turns input {_fmt(shape)} into "
                             f"{_fmt(out)}, larger than MemLens can trace")
        if any(d <= 0 for d in out):
            raise ShapeError(f"{self.path}:{line}: layer '{name}' ({kind}) turns input {_fmt(shape)} into an "
                             f"empty output {_fmt(out)}")
        return out

    def auto_name(self, kind, explicit=frozenset()):
        while True:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            name = f"{kind}{self.counts[kind]}"
            if name not in explicit:
                return name

    def build_repeat(self, entry, shape, line, name):
        key_lines = getattr(entry, "key_lines", {})
        times = entry["repeat"]
        if isinstance(times, bool) or not isinstance(times, int) or times <= 0:
            raise self.err(f"'repeat' must be a positive integer, got {short_repr(times)}", key_lines.get("repeat", line), "repeat")
        extra = set(entry) - {"repeat", "layers", "name"}
        if extra:
            key = sorted(map(str, extra))[0]
            raise self.err(f"repeat takes 'layers' (and 'name'), not '{key}'", key_lines.get(key, line), key)
        if "layers" not in entry:
            raise self.err("repeat needs 'layers'", line, "layers")
        seq = nn.Sequential()
        for i in range(times):
            block, shape = self.build_layers(entry["layers"], shape, key_lines.get("layers", line))
            seq.add_module(str(i), block)
        return seq, name, shape

    def build_residual(self, entry, args, shape, line, name):
        key_lines = getattr(entry, "key_lines", {})
        body_entries = args.pop("residual", None) if "residual" in args else None
        if body_entries is None or body_entries == {}:
            body_entries = args.pop("layers", None)
        else:
            args.pop("layers", None)
        shortcut_entries = args.pop("shortcut", None)
        if args:
            key = sorted(map(str, args))[0]
            raise self.err(f"residual takes 'layers' and 'shortcut', not '{key}'", key_lines.get(key, line), key)
        where = key_lines.get("residual", key_lines.get("layers", line))
        body, out = self.build_layers(body_entries, shape, where)
        shortcut, short_out = None, shape
        if shortcut_entries is not None:
            shortcut, short_out = self.build_layers(shortcut_entries, shape, key_lines.get("shortcut", line))
        if out != short_out:
            raise ShapeError(f"{self.path}:{line}: residual '{name}': its layers turn {_fmt(shape)} into "
                             f"{_fmt(out)}, which cannot be added to the {'shortcut output ' if shortcut else 'input '}"
                             f"{_fmt(short_out)} (add a 'shortcut' that produces {_fmt(out)})")
        return Residual(body, shortcut), name, out


def _is_window(value, least: int) -> bool:
    items = value if isinstance(value, list) and 1 <= len(value) <= 3 else [value]
    return all(isinstance(v, int) and not isinstance(v, bool) and least <= v <= MAX_SIZE for v in items)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _fmt(shape) -> str:
    return "(" + " x ".join(str(d) for d in shape) + ")" if shape else "(scalar)"


def parse_spec_text(text: str, path: str, cancelled: Callable[[], bool] | None = None) -> LoadedModel:
    doc = parse_document(text, path)  # YAML, top-level keys, input and the expanded size
    lines = doc.key_lines
    shape = doc["input"]
    input_dtype = doc.get("input_dtype", "float")
    if input_dtype not in ("float", "long"):
        raise SpecError(f"'input_dtype' must be float or long, got {short_repr(input_dtype)}", path=path,
                        line=lines.get("input_dtype"), key="input_dtype")
    builder = _Builder(path, cancelled)
    builder.token_input = input_dtype == "long"
    model, _ = builder.build_layers(doc["layers"], tuple(shape), lines.get("layers"))
    name = doc.get("name") or os.path.splitext(os.path.basename(path))[0]
    high = 2
    if input_dtype == "long":
        vocabs = [m.num_embeddings for m in model.modules() if isinstance(m, nn.Embedding)]
        high = min(vocabs) if vocabs else 2
    return LoadedModel(
        module=model, name=str(name), source="spec", input_shape=tuple(shape),
        input_dtype=torch.long if input_dtype == "long" else None, task="auto", input_high=high,
    )


def load_spec(path: str, cancelled: Callable[[], bool] | None = None) -> LoadedModel:
    """Build a spec; `cancelled()` is asked before each layer (a 10,000-layer spec takes a while)."""
    return parse_spec_text(read_spec_text(path), path, cancelled)
