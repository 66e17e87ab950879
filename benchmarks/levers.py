"""What a lever costs to trace: the plain step against the same step with every block checkpointed
(the plain baseline, the checkpointed step with its recomputation, and a FLOP-counting pass whose
FlopCounterMode costs about a trace: 1.1 of 2.2 s for vit_b_16 b8), frozen parameters and a
micro-batch, each timed on its second run in this process. Budget: checkpointing within 8x the
plain trace; freezing and micro-batches within 2.5x (measured on 2 shared cores: resnet18 b32
x1.6 / x0.4 / x0.4, vit_b_16 b8 x6.1 / x1.8 / x1.8, tiny transformer b32 x2.5 / x1.0).

The budgets are the lever's own trace (what a search such as --max-batch pays per point, inside
`without_savings()`). An analysis also traces the request without any lever, to say what the levers
saved (engine/levers.py): printed beside it, with no budget of its own; checkpointing's baseline
already is that trace. Measured with it on 2 shared cores (noisy): resnet18 b32 freeze x3.4,
micro-batch x2.1 (its comparison is the full batch), vit_b_16 b8 x1.3 / x2.0; llama-3.1-8b s2048
LoRA r8: 8.1 s cold with the full fine-tuning comparison (model built twice), 1.4 s warm without.

Run: `.venv/bin/python benchmarks/levers.py [--models resnet18,vit_b_16]`
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine import AnalysisRequest, analyze  # noqa: E402
from engine.lever_fields import summary_lines  # noqa: E402
from engine.levers import without_savings  # noqa: E402

BUDGET = {"checkpoint": 8.0, "freeze": 2.5, "micro_batch": 2.5}
MODELS = {"resnet18": 32, "resnet50": 32, "vit_b_16": 8,
          os.path.join("resources", "specs", "tiny_transformer.yaml"): 32}
FREEZE = {"resnet18": "layer1*", "resnet50": "layer1*", "vit_b_16": "encoder.layers.encoder_layer_[0-5]*"}


def timed(request) -> tuple[float, object]:
    """The second trace of `request`: the first fills the memo of meta kernels for its shapes
    (engine/meta_cache.py), as the plain step's warm-up does."""
    analyze(request)
    started = time.perf_counter()
    analysis = analyze(request)
    return time.perf_counter() - started, analysis


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    over = 0
    for model in args.models.split(","):
        batch = MODELS.get(model, 8)
        plain = AnalysisRequest(model=model, batch=batch)
        base, _ = timed(plain)
        levers = {"checkpoint": {"checkpoint": ("every-block",)}, "micro_batch": {"micro_batch": batch // 4}}
        if model in FREEZE:
            levers["freeze"] = {"freeze": (FREEZE[model],)}
        for name, fields in levers.items():
            with without_savings():
                seconds, _ = timed(plain.replace(**fields))
            full, analysis = timed(plain.replace(**fields))
            ratio = seconds / base
            over += ratio > BUDGET[name]
            print(f"{os.path.basename(model)} b{batch} {name}: {seconds:.2f} s vs plain {base:.2f} s "
                  f"(x{ratio:.1f}, budget x{BUDGET[name]}); with what it saved {full:.2f} s (x{full / base:.1f}) "
                  f"{'; '.join(summary_lines(analysis))}", flush=True)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
