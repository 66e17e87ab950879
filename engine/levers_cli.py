"""The levers' flags of `python main.py analyze`: activation checkpointing, freezing, micro-batches.

    analyze --model resnet50 --checkpoint every-block            # or "layer1,layer2", every-2-blocks
    analyze --model resnet50 --batch 256 --checkpoint fit --gpu "RTX 4090"   # fewest blocks to fit
    analyze --model vgg16 --freeze "features.*"
    analyze --model resnet50 --batch 256 --micro-batch 64
"""
from __future__ import annotations

import argparse
import json
import sys

from .errors import RequestError
from .lever_fields import FIT


def add_levers_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("levers (training)")
    group.add_argument("--checkpoint", metavar="NAMES|PRESET",
                       help='activation checkpointing: modules ("layer1,layer2"), every-block, every-K-blocks, or fit '
                            "(the fewest blocks that fit under --gpu/--capacity)")
    group.add_argument("--freeze", metavar="PATTERNS",
                       help='parameters or modules to freeze, comma-separated fnmatch patterns ("features.*")')
    group.add_argument("--micro-batch", type=int, metavar="M",
                       help="gradient accumulation: trace one micro-step of M samples of the --batch, with the "
                            "earlier micro-steps' gradients live")


def levers_fields(args: argparse.Namespace) -> dict:
    """The request fields the flags give ('fit' is searched by `run_fit`, not traced as is)."""
    checkpoint = _split(getattr(args, "checkpoint", None))
    return {"checkpoint": () if checkpoint == (FIT,) else checkpoint,
            "freeze": _split(getattr(args, "freeze", None)),
            "micro_batch": getattr(args, "micro_batch", None)}


def fit_requested(args: argparse.Namespace) -> bool:
    return _split(getattr(args, "checkpoint", None)) == (FIT,)


def run_fit(args: argparse.Namespace, request) -> int:
    """`--checkpoint fit`: search the fewest blocks, then print the analysis and fit as planning does."""
    from .levers import fewest_blocks_to_fit
    from .planning_cli import _device, _fit_dict, _overrides, _write, fit_text  # the planning flags' own readers

    if args.max_batch or args.max_resolution or args.max_seq or args.sweep:
        raise RequestError("--checkpoint fit searches for blocks at the request's own sizes: it does not combine "
                           "with --max-batch, --max-resolution, --max-seq or --sweep")
    device = _device(args)
    found = fewest_blocks_to_fit(request, device, _overrides(args.overhead),
                                 progress=lambda f, m: print(m, file=sys.stderr) if args.json != "-" else None)
    if found.blocks:
        line = (f"fewest blocks to fit on {device.name}: {len(found.blocks)} of {found.candidates} "
                f"({', '.join(found.blocks)}); {found.traces} traces")
    else:
        line = f"fits on {device.name} without checkpointing ({found.traces} trace)"
    if args.json:
        from .report import analysis_to_dict

        doc = {**analysis_to_dict(found.analysis), "fit": _fit_dict(found.fit),
               "checkpoint_search": {"blocks": list(found.blocks), "candidates": found.candidates,
                                     "traces": found.traces, "capacity_bytes": found.fit.capacity_bytes}}
        _write(args.json, json.dumps(doc, indent=1))
    else:
        from .cli import summary_text

        print(summary_text(found.analysis))
        print(fit_text(found.fit))
        print(line)
    return 0


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())

