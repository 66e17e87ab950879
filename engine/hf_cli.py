"""Command-line flags for token models and Hugging Face configs: the sequence length and LoRA.

`--seq N` is the request's input shape `[N]` (token ids), the one notion of sequence the planner's
`--max-seq` and `--sweep seq=` already use; it is a shorthand for `--input N`, so giving both is
refused. The LoRA flags fill the request's `lora_*` fields (engine/lora.py); `--kv-cache` makes an
inference pass a prefill that keeps its KV cache.
"""
from __future__ import annotations

import argparse

from .errors import RequestError


def add_hf_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("language models (token ids, Hugging Face configs)")
    group.add_argument("--seq", type=int, default=None, metavar="N",
                       help="sequence length: N token ids per sample (the same as --input N)")
    group.add_argument("--lora-rank", type=int, default=0, metavar="R",
                       help="train LoRA adapters of rank R on a Hugging Face model (base weights frozen)")
    group.add_argument("--lora-alpha", type=float, default=None, metavar="A", help="LoRA alpha (default: 2 x rank)")
    group.add_argument("--lora-targets", default=None, metavar="NAMES",
                       help="modules that get adapters, e.g. q_proj,v_proj (default: peft's for the architecture)")
    group.add_argument("--kv-cache", action="store_true",
                       help="inference keeps the KV cache: a prefill for generation (Hugging Face models)")


def hf_request_fields(args: argparse.Namespace) -> dict:
    """The request fields these flags set: input_shape (from --seq) and the lora_* fields."""
    fields: dict = {}
    seq = getattr(args, "seq", None)
    if seq is not None:
        if seq <= 0:
            raise RequestError(f"--seq must be a positive number of tokens, got {seq}")
        if getattr(args, "input", None):
            raise RequestError(f"give the sequence once: --seq {seq} or --input {args.input}, not both")
        fields["input_shape"] = (seq,)
    fields["lora_rank"] = getattr(args, "lora_rank", 0) or 0
    fields["lora_alpha"] = getattr(args, "lora_alpha", None)
    targets = getattr(args, "lora_targets", None)
    fields["lora_targets"] = tuple(t.strip() for t in targets.split(",") if t.strip()) if targets else ()
    if targets is not None and not fields["lora_targets"]:
        raise RequestError(f"--lora-targets {targets!r}: name at least one module, e.g. q_proj,v_proj")
    fields["kv_cache"] = bool(getattr(args, "kv_cache", False))
    return fields
