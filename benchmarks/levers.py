"""What a lever costs to trace: the plain step against the same step with every block checkpointed
(three traces' work: the plain baseline, the checkpointed step, and a FLOP-counting pass), frozen
parameters and a micro-batch, measured in this process. Budget: checkpointing within 5x the plain
trace; freezing and micro-batches within 1.5x.

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

BUDGET = {"checkpoint": 5.0, "freeze": 1.5, "micro_batch": 1.5}
MODELS = {"resnet18": 32, "resnet50": 32, "vit_b_16": 8,
          os.path.join("resources", "specs", "tiny_transformer.yaml"): 32}
FREEZE = {"resnet18": "layer1*", "resnet50": "layer1*", "vit_b_16": "encoder.layers.encoder_layer_[0-5]*"}


def timed(request) -> tuple[float, object]:
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
        analyze(plain)  # warm: imports, the model's first build
        base, _ = timed(plain)
        levers = {"checkpoint": {"checkpoint": ("every-block",)}, "micro_batch": {"micro_batch": batch // 4}}
        if model in FREEZE:
            levers["freeze"] = {"freeze": (FREEZE[model],)}
        for name, fields in levers.items():
            seconds, analysis = timed(plain.replace(**fields))
            ratio = seconds / base
            over += ratio > BUDGET[name]
            print(f"{os.path.basename(model)} b{batch} {name}: {seconds:.2f} s vs plain {base:.2f} s "
                  f"(x{ratio:.1f}, budget x{BUDGET[name]}) {'; '.join(summary_lines(analysis))}", flush=True)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
