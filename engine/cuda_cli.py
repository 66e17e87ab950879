"""CLI flags for the CUDA memory model (issue 7): the environment torch reads on the target, and
the target GPU's architecture. Unset flags take the variables from this environment, as torch
would in a process started here."""
from __future__ import annotations

import argparse
import os

from .cuda_workspaces import parse_arch


def add_cuda_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("CUDA target (with --device cuda)")
    group.add_argument("--alloc-conf", default=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""), metavar="CONF",
                       help="PYTORCH_CUDA_ALLOC_CONF for the simulated caching allocator, e.g. "
                            "expandable_segments:True,max_split_size_mb:128 (default: $PYTORCH_CUDA_ALLOC_CONF)")
    group.add_argument("--cublas-workspace-config", default=os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""),
                       metavar=":SIZE:COUNT", help="CUBLAS_WORKSPACE_CONFIG, e.g. :4096:8 (default: the variable, "
                                                   "else torch's default for the architecture)")
    group.add_argument("--cublaslt-workspace-size", default=os.environ.get("CUBLASLT_WORKSPACE_SIZE", ""),
                       metavar="KIB", help="CUBLASLT_WORKSPACE_SIZE in KiB (default: the variable, else 1024)")
    group.add_argument("--cuda-arch", default=None, metavar="X.Y",
                       help="compute capability of the target GPU, e.g. 8.0 (A100), 9.0 (H100/H200; the default)")


def cuda_request_fields(args: argparse.Namespace) -> dict:
    """The AnalysisRequest fields these flags set."""
    return {
        "alloc_conf": args.alloc_conf, "cublas_workspace_config": args.cublas_workspace_config,
        "cublaslt_workspace_size": args.cublaslt_workspace_size,
        "cuda_arch": parse_arch(args.cuda_arch) if args.cuda_arch else None,
    }
